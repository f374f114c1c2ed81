package handlers_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"strings"
	"sync"
	"testing"

	gosmtp "github.com/emersion/go-smtp"
	mailjet "github.com/mailjet/mailjet-apiv3-go/v4"

	"keydesk/models"
	"keydesk/models/testdb"
	kdsmtp "keydesk/smtp"
	"keydesk/web"
)

// testRelay is an upstream SMTP server (go-smtp) that records what it is
// given; keydesk forwards to it as it would to a real MTA.
type testRelay struct {
	mu   sync.Mutex
	msgs []relayed
	addr string
}

type relayed struct {
	from string
	to   []string
	data string
}

func (r *testRelay) NewSession(*gosmtp.Conn) (gosmtp.Session, error) { return &relaySession{r: r}, nil }

func (r *testRelay) got() []relayed {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]relayed(nil), r.msgs...)
}

type relaySession struct {
	r   *testRelay
	cur relayed
}

func (s *relaySession) Mail(from string, _ *gosmtp.MailOptions) error { s.cur.from = from; return nil }
func (s *relaySession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}
func (s *relaySession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = string(b)
	s.r.mu.Lock()
	s.r.msgs = append(s.r.msgs, s.cur)
	s.r.mu.Unlock()
	s.cur = relayed{}
	return nil
}
func (s *relaySession) Reset()        { s.cur = relayed{} }
func (s *relaySession) Logout() error { return nil }

func startTestRelay(t *testing.T) *testRelay {
	t.Helper()
	r := &testRelay{}
	srv := gosmtp.NewServer(r)
	srv.Domain, srv.AllowInsecureAuth = "relay.test", true
	srv.MaxMessageBytes = 64 << 20
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

// sendApp is keydesk forwarding Send API messages to a test relay, with a
// main account (essential plan) and one sub-account key.
type sendApp struct {
	*app
	relay             *testRelay
	masterKey, master string
	subKey, sub       string
	subID             uint
	actor             models.Actor
	owner             *client // signed in
}

func newSendApp(t *testing.T) *sendApp {
	t.Helper()
	relay := startTestRelay(t)
	fr, err := kdsmtp.NewForwardRelay("smtp://" + relay.addr)
	if err != nil {
		t.Fatal(err)
	}
	a := newApp(t, func(c *web.Config) { c.Relay = fr })
	c := a.client()
	apiKey, secret := c.signup("Acme Mail", "owner@acme.example")
	testdb.Must(t, a.store.DB().Table("accounts").Where("name = ?", "Acme Mail").Update("plan", "essential"))
	st, m, _ := restDo(t, a, "POST", "/v3/REST/apikey", apiKey, secret, `{"Name":"transactional"}`)
	if st != 201 {
		t.Fatalf("create sub-account: %d %v", st, m)
	}
	d := m["Data"].([]any)[0].(map[string]any)
	return &sendApp{app: a, relay: relay, masterKey: apiKey, master: secret, subKey: d["APIKey"].(string), sub: d["SecretKey"].(string),
		subID: uint(d["ID"].(float64)), owner: c, actor: a.actorOf("owner@acme.example")}
}

func postJSON(t *testing.T, a *app, path, user, pass, ctype string, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", a.srv.URL+path, bytes.NewReader(body))
	req.SetBasicAuth(user, pass)
	req.Header.Set("Content-Type", ctype)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("POST %s: not JSON (%d): %.300s", path, res.StatusCode, b)
	}
	return res.StatusCode, m
}

// The official Go client's SendMailV31 works unchanged with a sub-account
// key: the message reaches the relay with its headers, parts and
// attachments, and is counted in that key's usage.
func TestSendAPIV31WithTheOfficialClient(t *testing.T) {
	t.Parallel()
	a := newSendApp(t)
	mj := mailjet.NewMailjetClient(a.subKey, a.sub, a.srv.URL+"/v3")
	logo := []byte("\x89PNG\r\n\x1a\nnot really a png")
	report := "id,total\n1,42\n"
	res, err := mj.SendMailV31(&mailjet.MessagesV31{Info: []mailjet.InfoMessagesV31{{
		From:     &mailjet.RecipientV31{Email: "billing@acme.example", Name: "Acme Billing"},
		ReplyTo:  &mailjet.RecipientV31{Email: "help@acme.example"},
		To:       &mailjet.RecipientsV31{{Email: "ana@example.com", Name: "Ana Lopes"}, {Email: "bo@example.com"}},
		Cc:       &mailjet.RecipientsV31{{Email: "cc@example.com"}},
		Bcc:      &mailjet.RecipientsV31{{Email: "audit@acme.example"}},
		Subject:  "Votre facture n°42 — merci",
		TextPart: "Bonjour Ana,\nVotre facture est jointe.",
		HTMLPart: `<p>Bonjour Ana,</p><img src="cid:logo1">`,
		CustomID: "invoice-42",
		Headers:  map[string]interface{}{"X-Campaign": "autumn", "X-Priority": 1},
		Attachments: &mailjet.AttachmentsV31{{ContentType: "text/csv", Filename: "report.csv",
			Base64Content: base64.StdEncoding.EncodeToString([]byte(report))}},
		InlinedAttachments: &mailjet.InlinedAttachmentsV31{{AttachmentV31: mailjet.AttachmentV31{ContentType: "image/png", Filename: "logo.png",
			Base64Content: base64.StdEncoding.EncodeToString(logo)}, ContentID: "logo1"}},
	}}})
	if err != nil {
		t.Fatalf("SendMailV31: %v", err)
	}
	if len(res.ResultsV31) != 1 {
		t.Fatalf("results: %+v", res)
	}
	r := res.ResultsV31[0]
	if r.Status != "success" || r.CustomID != "invoice-42" || len(r.To) != 2 || len(r.Cc) != 1 || len(r.Bcc) != 1 {
		t.Fatalf("result: %+v", r)
	}
	seen := map[string]bool{}
	for _, g := range append(append(r.To, r.Cc...), r.Bcc...) {
		if g.MessageUUID == "" || g.MessageID <= 0 || seen[g.MessageUUID] ||
			g.MessageHref != fmt.Sprintf("http://127.0.0.1/v3/REST/message/%d", g.MessageID) {
			t.Errorf("recipient IDs: %+v", g)
		}
		seen[g.MessageUUID] = true
	}
	if r.To[0].Email != "ana@example.com" || r.Bcc[0].Email != "audit@acme.example" {
		t.Errorf("recipient emails: %+v", r)
	}

	got := a.relay.got()
	if len(got) != 1 {
		t.Fatalf("relay received %d messages", len(got))
	}
	g := got[0]
	if g.from != "billing@acme.example" || strings.Join(g.to, ",") != "ana@example.com,bo@example.com,cc@example.com,audit@acme.example" {
		t.Fatalf("envelope: from %s to %v", g.from, g.to)
	}
	msg, err := mail.ReadMessage(strings.NewReader(g.data))
	if err != nil {
		t.Fatalf("relayed message does not parse: %v\n%s", err, g.data)
	}
	dec := new(mime.WordDecoder)
	subject, _ := dec.DecodeHeader(msg.Header.Get("Subject"))
	for k, want := range map[string]string{
		"From": `"Acme Billing" <billing@acme.example>`, "To": `"Ana Lopes" <ana@example.com>, <bo@example.com>`, "Cc": "<cc@example.com>",
		"Reply-To": "<help@acme.example>", "X-Campaign": "autumn", "X-Priority": "1", "X-Mj-Customid": "invoice-42", "Mime-Version": "1.0",
	} {
		if got := msg.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if subject != "Votre facture n°42 — merci" || msg.Header.Get("Bcc") != "" || msg.Header.Get("Date") == "" ||
		!strings.HasSuffix(msg.Header.Get("Message-Id"), "@keydesk>") {
		t.Errorf("subject %q, Bcc %q, Date %q, Message-Id %q", subject, msg.Header.Get("Bcc"), msg.Header.Get("Date"), msg.Header.Get("Message-Id"))
	}
	// multipart/mixed( related( alternative(text, html), logo ), report.csv )
	parts := walkMIME(t, msg.Header.Get("Content-Type"), msg.Body, "")
	want := []string{
		"multipart/mixed/multipart/related/multipart/alternative/text/plain",
		"multipart/mixed/multipart/related/multipart/alternative/text/html",
		"multipart/mixed/multipart/related/image/png",
		"multipart/mixed/text/csv",
	}
	if len(parts) != len(want) {
		t.Fatalf("MIME parts: %+v", parts)
	}
	for i, p := range parts {
		if p.path != want[i] {
			t.Errorf("part %d: %s, want %s", i, p.path, want[i])
		}
	}
	if parts[0].body != "Bonjour Ana,\r\nVotre facture est jointe." || !strings.Contains(parts[1].body, `<img src="cid:logo1">`) {
		t.Errorf("text parts: %q / %q", parts[0].body, parts[1].body)
	}
	if parts[2].body != string(logo) || parts[2].header.Get("Content-Id") != "<logo1>" || !strings.HasPrefix(parts[2].header.Get("Content-Disposition"), "inline") {
		t.Errorf("inlined logo: %q %v", parts[2].body, parts[2].header)
	}
	if parts[3].body != report || parts[3].header.Get("Content-Disposition") != `attachment; filename=report.csv` {
		t.Errorf("attachment: %q %v", parts[3].body, parts[3].header)
	}

	// Sandbox mode validates but neither relays nor counts.
	res, err = mj.SendMailV31(&mailjet.MessagesV31{SandBoxMode: true, Info: []mailjet.InfoMessagesV31{{
		From: &mailjet.RecipientV31{Email: "billing@acme.example"}, To: &mailjet.RecipientsV31{{Email: "ana@example.com"}},
		Subject: "sandbox", TextPart: "x",
	}}})
	if err != nil || res.ResultsV31[0].Status != "success" || res.ResultsV31[0].To[0].MessageID != 0 {
		t.Fatalf("sandbox: %v %+v", err, res)
	}
	if n := len(a.relay.got()); n != 1 {
		t.Errorf("sandbox message relayed: %d", n)
	}

	// The message is in the sub-account key's usage, beside its API requests.
	if err := a.store.FlushUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	u, err := a.store.UsageForKey(context.Background(), a.actor, a.subID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if u.Totals.APIMessages != 1 || u.Totals.APIRequests != 2 || u.Totals.SMTPMessages != 0 {
		t.Errorf("usage: %+v", u.Totals)
	}
	// The console's usage page shows Send API messages.
	page := a.owner.get(fmt.Sprintf("/keys/%d/usage", a.subID))
	if got := strings.TrimSpace(page.doc.Find(`[data-testid="usage-send"]`).Text()); page.status != 200 || got != "1" {
		t.Errorf("usage page: %d, Send API messages %q, want 1", page.status, got)
	}
	if !strings.Contains(page.body, "1 Send API messages") {
		t.Error("the chart's bar for today does not count the Send API message")
	}
}

type mimePart struct {
	path   string
	header mailHeader
	body   string
}

type mailHeader interface{ Get(string) string }

// walkMIME lists the leaves of a MIME tree, depth first, decoded.
func walkMIME(t *testing.T, ctype string, body io.Reader, prefix string) []mimePart {
	t.Helper()
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		t.Fatalf("Content-Type %q: %v", ctype, err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		t.Fatalf("walkMIME on %s", mt)
	}
	var out []mimePart
	r := multipart.NewReader(body, params["boundary"])
	for {
		p, err := r.NextRawPart()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", mt, err)
		}
		pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if strings.HasPrefix(pt, "multipart/") {
			out = append(out, walkMIME(t, p.Header.Get("Content-Type"), p, prefix+mt+"/")...)
			continue
		}
		var rd io.Reader = p
		switch p.Header.Get("Content-Transfer-Encoding") {
		case "base64":
			rd = base64.NewDecoder(base64.StdEncoding, p)
		case "quoted-printable":
			rd = quotedprintable.NewReader(p)
		}
		b, err := io.ReadAll(rd)
		if err != nil {
			t.Fatalf("part %s: %v", pt, err)
		}
		out = append(out, mimePart{path: prefix + mt + "/" + pt, header: p.Header, body: string(b)})
	}
}

func validMessage(extra string) string {
	return `{"From":{"Email":"billing@acme.example"},"To":[{"Email":"ana@example.com"}],"Subject":"Hi","TextPart":"Hello"` + extra + `}`
}

// Every Send API v3.1 validation error answers in Mailjet's shape with its
// code, and nothing invalid reaches the relay.
func TestSendAPIV31Errors(t *testing.T) {
	t.Parallel()
	a := newSendApp(t)
	post := func(body string) (int, map[string]any) {
		t.Helper()
		return postJSON(t, a.app, "/v3.1/send", a.subKey, a.sub, "application/json", []byte(body))
	}
	messageError := func(name, body string, wantCode string, wantRelated string) {
		t.Helper()
		st, m := post(body)
		msgs, _ := m["Messages"].([]any)
		if st != 400 || len(msgs) != 1 {
			t.Errorf("%s: %d %v", name, st, m)
			return
		}
		r := msgs[0].(map[string]any)
		errs, _ := r["Errors"].([]any)
		if r["Status"] != "error" || len(errs) == 0 {
			t.Errorf("%s: %v", name, r)
			return
		}
		for _, e := range errs {
			e := e.(map[string]any)
			rel, _ := json.Marshal(e["ErrorRelatedTo"])
			if e["ErrorCode"] == wantCode && strings.Contains(string(rel), wantRelated) {
				if e["ErrorIdentifier"] == "" || e["StatusCode"] != float64(400) || e["ErrorMessage"] == "" {
					t.Errorf("%s: incomplete error %v", name, e)
				}
				return
			}
		}
		t.Errorf("%s: no %s related to %s in %v", name, wantCode, wantRelated, errs)
	}
	globalError := func(name string, st int, m map[string]any, wantStatus int, wantCode string) {
		t.Helper()
		if st != wantStatus || m["ErrorCode"] != wantCode || m["StatusCode"] != float64(wantStatus) || m["ErrorIdentifier"] == "" || m["ErrorMessage"] == "" {
			t.Errorf("%s: %d %v", name, st, m)
		}
	}
	wrap := func(msgs ...string) string { return `{"Messages":[` + strings.Join(msgs, ",") + `]}` }
	many := func(n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"Email":"r%d@example.com"}`, i)
		}
		return b.String()
	}

	messageError("missing From", wrap(`{"To":[{"Email":"ana@example.com"}],"TextPart":"x"}`), "mj-0003", `"From"`)
	messageError("null From", wrap(`{"From":null,"To":[{"Email":"ana@example.com"}],"TextPart":"x"}`), "mj-0003", `"From"`)
	messageError("empty From.Email", wrap(`{"From":{"Email":""},"To":[{"Email":"ana@example.com"}],"TextPart":"x"}`), "mj-0012", `"From.Email"`)
	messageError("bad From e-mail", wrap(`{"From":{"Email":"billing"},"To":[{"Email":"ana@example.com"}],"TextPart":"x"}`), "mj-0013", `"From.Email"`)
	messageError("missing To", wrap(`{"From":{"Email":"a@acme.example"},"TextPart":"x"}`), "mj-0003", `"To"`)
	messageError("empty To", wrap(`{"From":{"Email":"a@acme.example"},"To":[],"TextPart":"x"}`), "mj-0007", `"To"`)
	messageError("bad To e-mail", wrap(`{"From":{"Email":"a@acme.example"},"To":[{"Email":"ana@example.com"},{"Email":"not an email"}],"TextPart":"x"}`), "mj-0013", `"To[1].Email"`)
	messageError("bad Cc e-mail", wrap(validMessage(`,"Cc":[{"Email":"x@@y"}]`)), "mj-0013", `"Cc[0].Email"`)
	messageError("bad Bcc e-mail", wrap(validMessage(`,"Bcc":[{"Email":"<x@y>"}]`)), "mj-0013", `"Bcc[0].Email"`)
	messageError("too many recipients", wrap(validMessage(`,"Cc":[`+many(30)+`],"Bcc":[`+many(20)+`]`)), "send-0015", `"To","Cc","Bcc"`)
	messageError("no content", wrap(`{"From":{"Email":"a@acme.example"},"To":[{"Email":"ana@example.com"}],"Subject":"x"}`), "send-0003", `"TextPart"`)
	messageError("subject too long", wrap(validMessage(`,"Subject":"`+strings.Repeat("s", 256)+`"`)), "mj-0006", `"Subject"`)
	messageError("forbidden header", wrap(validMessage(`,"Headers":{"Bcc":"spy@evil.example"}`)), "send-0011", `Headers[\"Bcc\"]`)
	messageError("header injection", wrap(validMessage(`,"Headers":{"X-Note":"a\r\nBcc: spy@evil.example"}`)), "mj-0005", `Headers[\"X-Note\"]`)
	messageError("header object", wrap(validMessage(`,"Headers":{"X-Note":{"a":1}}`)), "mj-0004", `Headers[\"X-Note\"]`)
	messageError("attachment not base64", wrap(validMessage(`,"Attachments":[{"ContentType":"text/plain","Filename":"a.txt","Base64Content":"!!"}]`)), "mj-0004", `"Attachments[0].Base64Content"`)
	messageError("attachment without name", wrap(validMessage(`,"Attachments":[{"ContentType":"text/plain","Filename":"","Base64Content":"eA=="}]`)), "mj-0012", `"Attachments[0].Filename"`)
	messageError("inline without ContentID", wrap(validMessage(`,"InlinedAttachments":[{"ContentType":"image/png","Filename":"a.png","Base64Content":"eA=="}]`)), "mj-0005", `"InlinedAttachments[0].ContentID"`)
	messageError("type mismatch", wrap(`{"From":{"Email":"a@acme.example"},"To":"ana@example.com","TextPart":"x"}`), "mj-0004", `"To"`)

	// Whole-call errors.
	st, m := post(`{"Messages":[`)
	globalError("malformed JSON", st, m, 400, "mj-0002")
	st, m = post(`{"SandboxMode":true}`)
	globalError("no Messages", st, m, 400, "mj-0003")
	st, m = post(`{"Messages":[]}`)
	globalError("empty Messages", st, m, 400, "mj-0007")
	msgs := make([]string, 51)
	for i := range msgs {
		msgs[i] = validMessage("")
	}
	st, m = post(wrap(msgs...))
	globalError("51 messages", st, m, 400, "mj-0008")
	big := wrap(validMessage(`,"Attachments":[{"ContentType":"application/octet-stream","Filename":"big.bin","Base64Content":"` +
		strings.Repeat("A", models.MaxSendPayload) + `"}]`))
	st, m = post(big)
	globalError("payload over the limit", st, m, 400, "mj-0011")
	st, m = postJSON(t, a.app, "/v3.1/send", a.subKey, a.sub, "text/plain", []byte(wrap(validMessage(""))))
	globalError("text/plain", st, m, 415, "mj-0002")
	st, m = postJSON(t, a.app, "/v3.1/send", a.subKey, "kd_live_wrong", "application/json", []byte(wrap(validMessage(""))))
	globalError("bad credentials", st, m, 401, "mj-0015")

	if n := len(a.relay.got()); n != 0 {
		t.Fatalf("invalid messages reached the relay: %d", n)
	}

	// A batch: each message on its own; the valid one is sent.
	st, m = post(wrap(validMessage(`,"CustomID":"good"`), `{"From":{"Email":"a@acme.example"},"To":[],"TextPart":"x","CustomID":"bad"}`))
	res, _ := m["Messages"].([]any)
	if st != 400 || len(res) != 2 || res[0].(map[string]any)["Status"] != "success" || res[1].(map[string]any)["Status"] != "error" ||
		res[1].(map[string]any)["CustomID"] != "bad" {
		t.Fatalf("mixed batch: %d %v", st, m)
	}
	if n := len(a.relay.got()); n != 1 {
		t.Fatalf("mixed batch relayed %d messages, want 1", n)
	}

	// The official client surfaces these errors as Mailjet's types.
	mj := mailjet.NewMailjetClient(a.subKey, a.sub, a.srv.URL+"/v3")
	_, err := mj.SendMailV31(&mailjet.MessagesV31{Info: []mailjet.InfoMessagesV31{{To: &mailjet.RecipientsV31{{Email: "ana@example.com"}}, TextPart: "x"}}})
	var fe *mailjet.APIFeedbackErrorsV31
	if !errors.As(err, &fe) || len(fe.Messages) != 1 || fe.Messages[0].Errors[0].ErrorCode != "mj-0003" ||
		fe.Messages[0].Errors[0].ErrorRelatedTo[0] != "From" {
		t.Errorf("client, missing From: %v", err)
	}
	bad := mailjet.NewMailjetClient(a.subKey, "kd_live_wrong", a.srv.URL+"/v3")
	_, err = bad.SendMailV31(&mailjet.MessagesV31{Info: []mailjet.InfoMessagesV31{{From: &mailjet.RecipientV31{Email: "a@acme.example"},
		To: &mailjet.RecipientsV31{{Email: "ana@example.com"}}, TextPart: "x"}}})
	var ie *mailjet.ErrorInfoV31
	if !errors.As(err, &ie) || ie.StatusCode != 401 || ie.Identifier == "" {
		t.Errorf("client, bad credentials: %v", err)
	}
	// A master key sends too, and a deactivated key cannot.
	if st, m := postJSON(t, a.app, "/v3.1/send", a.masterKey, a.master, "application/json", []byte(wrap(validMessage("")))); st != 200 {
		t.Errorf("master key: %d %v", st, m)
	}
	restDo(t, a.app, "PUT", "/v3/REST/apikey/"+a.subKey, a.masterKey, a.master, `{"IsActive":false}`)
	if st, _ := postJSON(t, a.app, "/v3.1/send", a.subKey, a.sub, "application/json", []byte(wrap(validMessage("")))); st != 401 {
		t.Errorf("deactivated key sent: %d", st)
	}
}

// Send API v3: Mailjet's older payload, all or nothing, REST error shape.
func TestSendAPIV3(t *testing.T) {
	t.Parallel()
	a := newSendApp(t)
	body := `{"FromEmail":"billing@acme.example","FromName":"Acme","Subject":"Hello","Text-part":"Hi there","Html-part":"<b>Hi</b>",
		"Recipients":[{"Email":"ana@example.com","Name":"Ana"},{"Email":"bo@example.com"}],"Headers":{"X-Campaign":"v3"},"Mj-CustomID":"v3-1"}`
	st, m := postJSON(t, a.app, "/v3/send", a.subKey, a.sub, "application/json", []byte(body))
	sent, _ := m["Sent"].([]any)
	if st != 200 || len(sent) != 2 || sent[0].(map[string]any)["Email"] != "ana@example.com" || sent[0].(map[string]any)["MessageID"].(float64) <= 0 {
		t.Fatalf("v3 send: %d %v", st, m)
	}
	// Recipients: one message each, To naming only that recipient.
	got := a.relay.got()
	if len(got) != 2 || got[0].from != "billing@acme.example" || strings.Join(got[0].to, ",") != "ana@example.com" ||
		strings.Join(got[1].to, ",") != "bo@example.com" || !strings.Contains(got[0].data, "X-Campaign: v3") ||
		!strings.Contains(got[0].data, "To: \"Ana\" <ana@example.com>\r\n") || !strings.Contains(got[1].data, "To: <bo@example.com>\r\n") {
		t.Fatalf("v3 relayed: %+v", got)
	}
	// The Go client's v3 SendMail (POST /v3/send/message).
	mj := mailjet.NewMailjetClient(a.subKey, a.sub, a.srv.URL+"/v3")
	r, err := mj.SendMail(&mailjet.InfoSendMail{FromEmail: "billing@acme.example", FromName: "Acme", Subject: "Go v3",
		TextPart: "text", Recipients: []mailjet.Recipient{{Email: "cy@example.com"}}})
	if err != nil || len(r.Sent) != 1 || r.Sent[0].Email != "cy@example.com" {
		t.Fatalf("client SendMail: %v %+v", err, r)
	}
	for name, bad := range map[string]string{
		"no FromEmail":  `{"Subject":"x","Text-part":"x","Recipients":[{"Email":"a@example.com"}]}`,
		"bad recipient": `{"FromEmail":"a@acme.example","Text-part":"x","Recipients":[{"Email":"nope"}]}`,
		"bad To list":   `{"FromEmail":"a@acme.example","Text-part":"x","To":"a@,,"}`,
		"no recipient":  `{"FromEmail":"a@acme.example","Text-part":"x"}`,
		"no content":    `{"FromEmail":"a@acme.example","Recipients":[{"Email":"a@example.com"}]}`,
		"malformed":     `{"FromEmail":`,
	} {
		st, m := postJSON(t, a.app, "/v3/send", a.subKey, a.sub, "application/json", []byte(bad))
		if st != 400 || m["StatusCode"] != float64(400) || m["ErrorMessage"] == "" {
			t.Errorf("%s: %d %v", name, st, m)
		}
	}
	if n := len(a.relay.got()); n != 3 {
		t.Errorf("relay got %d messages, want 3", n)
	}
}
