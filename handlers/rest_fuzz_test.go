package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"keydesk/models"
)

// FuzzDecodeRESTBody: whatever the content type and body, the REST JSON
// decoder answers a 400 or 415 (never panics, never a 5xx), and what it
// accepts is one JSON object holding only writable properties whose
// values the property readers then take or refuse cleanly (null refused).
// Run: go test -run '^$' -fuzz FuzzDecodeRESTBody -fuzztime 10m ./handlers/
func FuzzDecodeRESTBody(f *testing.F) {
	for _, seed := range []struct{ ctype, body string }{
		{"application/json", `{"Name":"newsletters"}`},
		{"application/json; charset=utf-8", `{"Name":"x","IsActive":false}`},
		{"application/json", `{"IsActive":null}`},
		{"application/json", `{"Name":"x","ACL":""}`},
		{"application/json", `{"ACL":"1:send"}`},
		{"application/json", `{"SecretKey":"kd_live_x"}`},
		{"application/json", `{"Name":"a"} {"Name":"b"}`},
		{"application/json", `[1,2]`},
		{"application/json", `null`},
		{"application/json", `{"Name":"\u202e"}`},
		{"text/plain", `{"Name":"x"}`},
		{"", ``},
		{"application/json;;", `{`},
	} {
		f.Add(seed.ctype, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		props, err := decodeRESTBody(ctype, bytes.NewReader(body), "Name", "IsActive")
		if err != nil {
			var he *echo.HTTPError
			if !errors.As(err, &he) || (he.Code != http.StatusBadRequest && he.Code != http.StatusUnsupportedMediaType) {
				t.Fatalf("error is not a 400/415: %#v", err)
			}
			if msg, _ := he.Message.(string); msg == "" {
				t.Fatal("error without a message")
			}
			return
		}
		if props == nil || !json.Valid(bytes.TrimSpace(body)) {
			t.Fatalf("accepted %q as %v", body, props)
		}
		for k := range props {
			if k != "Name" && k != "IsActive" {
				t.Fatalf("accepted property %q", k)
			}
		}
		name, nerr := stringProp(props, "Name")
		active, aerr := boolProp(props, "IsActive")
		for _, e := range []error{nerr, aerr} {
			var he *echo.HTTPError
			if e != nil && (!errors.As(e, &he) || he.Code != http.StatusBadRequest) {
				t.Fatalf("property error is not a 400: %v", e)
			}
		}
		if raw, ok := props["Name"]; ok && nerr == nil && (name == nil || bytes.Equal(bytes.TrimSpace(raw), []byte("null"))) {
			t.Fatalf("Name %s read as %v", raw, name)
		}
		if raw, ok := props["IsActive"]; ok && aerr == nil && (active == nil || bytes.Equal(bytes.TrimSpace(raw), []byte("null"))) {
			t.Fatalf("IsActive %s read as %v", raw, active)
		}
	})
}

// FuzzSendMessageV31: any Messages[] element decodes and validates
// without panicking; one that validates builds a MIME message that parses,
// keeps Bcc out of the header and carries no header it was not given.
// Run: go test -run '^$' -fuzz FuzzSendMessageV31 -fuzztime 10m ./handlers/
func FuzzSendMessageV31(f *testing.F) {
	for _, seed := range []string{
		`{"From":{"Email":"a@acme.example"},"To":[{"Email":"b@example.com","Name":"B"}],"Subject":"Hi","TextPart":"x"}`,
		`{"From":{"Email":"a@acme.example","Name":"A \"quoted\""},"To":[{"Email":"b@example.com"}],"Bcc":[{"Email":"c@example.com"}],"HTMLPart":"<p>x</p>","TextPart":"y"}`,
		`{"From":{"Email":"a@acme.example"},"To":[{"Email":"b@example.com"}],"Subject":"a\r\nBcc: x@y","TextPart":"x","Headers":{"X-A":"1"}}`,
		`{"From":{"Email":"a@acme.example"},"To":[{"Email":"b@example.com"}],"TextPart":"x","Attachments":[{"ContentType":"text/plain","Filename":"a\".txt","Base64Content":"eA=="}]}`,
		`{"From":{"Email":"a@acme.example"},"To":[{"Email":"b@example.com"}],"TextPart":"x","InlinedAttachments":[{"ContentType":"image/png","Filename":"l.png","ContentID":"l","Base64Content":"eA=="}]}`,
		`{"To":"x"}`,
		`[]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m := decodeSendMessageV31(raw)
		if errs := models.ValidateSendMessage(m); len(errs) > 0 {
			for _, e := range errs {
				if e.StatusCode != http.StatusBadRequest || e.ErrorCode == "" || e.ErrorMessage == "" || e.ErrorIdentifier == "" {
					t.Fatalf("incomplete error %+v", e)
				}
			}
			return
		}
		data, err := models.BuildMIME(m, "fuzz@keydesk", time.Unix(0, 0))
		if err != nil {
			t.Fatalf("valid message does not build: %v", err)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("built message does not parse: %v\n%s", err, data)
		}
		if len(m.Bcc) > 0 && msg.Header.Get("Bcc") != "" {
			t.Fatal("Bcc in the header")
		}
		allowed := map[string]bool{"From": true, "To": true, "Cc": true, "Reply-To": true, "Subject": true, "Date": true,
			"Message-Id": true, "X-Mj-Customid": true, "Mime-Version": true, "Content-Type": true, "Content-Transfer-Encoding": true}
		for k := range m.Headers {
			allowed[http.CanonicalHeaderKey(k)] = true
		}
		for k := range msg.Header {
			if !allowed[k] {
				t.Fatalf("header %q was injected:\n%s", k, data)
			}
		}
		if !strings.Contains(msg.Header.Get("Message-Id"), "fuzz@keydesk") {
			t.Fatal("Message-ID lost")
		}
	})
}
