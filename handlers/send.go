package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"keydesk/models"
	"keydesk/web"
)

// The Send API: POST /v3.1/send and POST /v3/send, authenticated by the
// same middleware as the REST API (Verify, throttle, usage). models
// validates, builds the MIME message, relays and counts it; this file only
// decodes Mailjet's payloads and answers in Mailjet's shapes.

type sendHandlers struct {
	store   *models.Store
	relay   models.Relay
	baseURL string
}

// v31Error is a global (whole-call) Send API v3.1 error.
func v31Error(c echo.Context, e models.SendError) error {
	body := map[string]any{"ErrorIdentifier": e.ErrorIdentifier, "ErrorCode": e.ErrorCode, "StatusCode": e.StatusCode,
		"ErrorMessage": e.ErrorMessage}
	if len(e.ErrorRelatedTo) > 0 {
		body["ErrorRelatedTo"] = e.ErrorRelatedTo
	}
	return c.JSON(e.StatusCode, body)
}

// readSendBody checks the media type and reads at most MaxSendPayload
// bytes; problems come back as the call's one error.
func readSendBody(c echo.Context) ([]byte, *models.SendError) {
	mt, _, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if err != nil || mt != "application/json" {
		e := models.NewSendError(http.StatusUnsupportedMediaType, "mj-0002", "Unsupported Media Type: send the payload as application/json.")
		return nil, &e
	}
	b, err := io.ReadAll(io.LimitReader(c.Request().Body, models.MaxSendPayload+1))
	if err != nil {
		e := models.NewSendError(http.StatusBadRequest, "mj-0002", "The payload could not be read.")
		return nil, &e
	}
	if len(b) > models.MaxSendPayload {
		e := models.NewSendError(http.StatusBadRequest, "mj-0011", fmt.Sprintf("The payload is over the limit of %d bytes.", models.MaxSendPayload))
		return nil, &e
	}
	return b, nil
}

type addrJSON struct {
	Email string
	Name  string
}

type attachmentJSON struct {
	ContentType   string
	Filename      string
	Base64Content string
	ContentID     string
}

// messageV31JSON is one element of Messages (properties keydesk does not
// use, such as TemplateID or Variables, are ignored).
type messageV31JSON struct {
	From               *addrJSON
	ReplyTo            *addrJSON
	To                 *[]addrJSON
	Cc                 []addrJSON
	Bcc                []addrJSON
	Subject            string
	TextPart           string
	HTMLPart           string
	CustomID           string
	Headers            map[string]any
	Attachments        []attachmentJSON
	InlinedAttachments []attachmentJSON
}

func addrs(in []addrJSON) []models.SendAddress {
	out := make([]models.SendAddress, len(in))
	for i, a := range in {
		out[i] = models.SendAddress{Email: a.Email, Name: a.Name}
	}
	return out
}

func attachments(in []attachmentJSON) []models.SendAttachment {
	out := make([]models.SendAttachment, len(in))
	for i, a := range in {
		out[i] = models.SendAttachment(a)
	}
	return out
}

// headerValues turns Headers into strings; objects and arrays are a type
// mismatch.
func headerValues(in map[string]any) (map[string]string, []models.SendError) {
	out := make(map[string]string, len(in))
	var errs []models.SendError
	for k, v := range in {
		switch v := v.(type) {
		case string:
			out[k] = v
		case float64:
			out[k] = strconv.FormatFloat(v, 'f', -1, 64)
		case bool:
			out[k] = strconv.FormatBool(v)
		default:
			errs = append(errs, models.NewSendError(400, "mj-0004", "Type mismatch. Expected type \"string\".", "Headers["+strconv.Quote(k)+"]"))
		}
	}
	return out, errs
}

// decodeSendMessageV31 decodes one element of Messages; a type mismatch
// becomes the message's mj-0004 error, as at Mailjet.
func decodeSendMessageV31(raw json.RawMessage) *models.SendMessage {
	var j messageV31JSON
	m := &models.SendMessage{}
	if err := json.Unmarshal(raw, &j); err != nil {
		related := "Messages"
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			related = te.Field
		}
		m.Errors = []models.SendError{models.NewSendError(400, "mj-0004", "Type mismatch: "+typeErrText(err), related)}
		m.Undecodable = true
		return m
	}
	if j.From != nil {
		m.From = &models.SendAddress{Email: j.From.Email, Name: j.From.Name}
	}
	if j.ReplyTo != nil {
		m.ReplyTo = &models.SendAddress{Email: j.ReplyTo.Email, Name: j.ReplyTo.Name}
	}
	if j.To != nil {
		m.ToGiven, m.To = true, addrs(*j.To)
	}
	m.Cc, m.Bcc = addrs(j.Cc), addrs(j.Bcc)
	m.Subject, m.TextPart, m.HTMLPart, m.CustomID = j.Subject, j.TextPart, j.HTMLPart, j.CustomID
	m.Headers, m.Errors = headerValues(j.Headers)
	m.Attachments, m.InlinedAttachments = attachments(j.Attachments), attachments(j.InlinedAttachments)
	return m
}

func typeErrText(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Field + " should be " + te.Type.String() + ", not " + te.Value + "."
	}
	return "the message is not a JSON object."
}

type recipientJSON struct {
	Email       string
	MessageUUID string
	MessageID   int64
	MessageHref string
}

type resultJSON struct {
	Status   string
	CustomID string             `json:",omitempty"`
	To       []recipientJSON    `json:",omitempty"`
	Cc       []recipientJSON    `json:",omitempty"`
	Bcc      []recipientJSON    `json:",omitempty"`
	Errors   []models.SendError `json:",omitempty"`
}

func (h *sendHandlers) href(id int64) string {
	return strings.TrimSuffix(h.baseURL, "/") + "/v3/REST/message/" + strconv.FormatInt(id, 10)
}

func (h *sendHandlers) recipients(in []models.SentRecipient) []recipientJSON {
	out := make([]recipientJSON, len(in))
	for i, r := range in {
		out[i] = recipientJSON{Email: r.Email, MessageUUID: r.MessageUUID, MessageID: r.MessageID, MessageHref: h.href(r.MessageID)}
	}
	return out
}

// sendV31: POST /v3.1/send {"Messages":[…], "SandboxMode": bool}. Each
// message succeeds or fails on its own; the call is 200 when all
// succeeded, else 400 (a validation error) or the relay's status.
func (h *sendHandlers) sendV31(c echo.Context) error {
	raw, perr := readSendBody(c)
	if perr != nil {
		return v31Error(c, *perr)
	}
	var payload struct {
		Messages    *[]json.RawMessage
		SandboxMode bool
	}
	if err := json.Unmarshal(raw, &payload); err != nil {
		return v31Error(c, models.NewSendError(400, "mj-0002", "Malformed JSON, please review the syntax and properties types."))
	}
	switch {
	case payload.Messages == nil:
		return v31Error(c, models.NewSendError(400, "mj-0003", "Missing mandatory property: Messages.", "Messages"))
	case len(*payload.Messages) == 0:
		return v31Error(c, models.NewSendError(400, "mj-0007", "The Messages array cannot be empty.", "Messages"))
	case len(*payload.Messages) > models.MaxSendMessages:
		return v31Error(c, models.NewSendError(400, "mj-0008",
			fmt.Sprintf("Messages has %d elements, more than the maximum of %d.", len(*payload.Messages), models.MaxSendMessages), "Messages"))
	}
	msgs := make([]*models.SendMessage, len(*payload.Messages))
	for i, r := range *payload.Messages {
		msgs[i] = decodeSendMessageV31(r)
	}
	results := h.store.SendMessages(c.Request().Context(), h.relay, web.APIPrincipal(c), c.RealIP(), msgs, payload.SandboxMode)
	out := struct{ Messages []resultJSON }{Messages: make([]resultJSON, len(results))}
	status := http.StatusOK
	for i, r := range results {
		out.Messages[i] = resultJSON{Status: r.Status(), CustomID: r.CustomID, Errors: r.Errors}
		if len(r.Errors) > 0 {
			if status == http.StatusOK || r.Errors[0].StatusCode == http.StatusBadRequest {
				status = r.Errors[0].StatusCode
			}
			continue
		}
		out.Messages[i].To, out.Messages[i].Cc, out.Messages[i].Bcc = h.recipients(r.To), h.recipients(r.Cc), h.recipients(r.Bcc)
		if out.Messages[i].Cc == nil {
			out.Messages[i].Cc = []recipientJSON{}
		}
		if out.Messages[i].Bcc == nil {
			out.Messages[i].Bcc = []recipientJSON{}
		}
	}
	return c.JSON(status, out)
}

// messageV3JSON is Send API v3's message (or the payload itself).
type messageV3JSON struct {
	FromEmail   string
	FromName    string
	Subject     string
	TextPart    string `json:"Text-part"`
	HTMLPart    string `json:"Html-part"`
	Recipients  *[]addrJSON
	To          string
	Cc          string
	Bcc         string
	Headers     map[string]any
	MjCustomID  string `json:"Mj-CustomID"`
	Attachments []struct {
		ContentType string `json:"Content-Type"`
		Filename    string
		Content     string
	}
	InlineAttachments []struct {
		ContentType string `json:"Content-Type"`
		Filename    string
		Content     string
	} `json:"Inline_attachments"`
	Messages []json.RawMessage
}

// addressList parses v3's "To"/"Cc"/"Bcc" strings ("Name <a@b>, c@d").
func addressList(prop, s string) ([]models.SendAddress, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	list, err := mail.ParseAddressList(s)
	if err != nil {
		return nil, badRequest(prop + ": " + strconv.Quote(s) + " is not a valid list of e-mail addresses.")
	}
	out := make([]models.SendAddress, len(list))
	for i, a := range list {
		out[i] = models.SendAddress{Email: a.Address, Name: a.Name}
	}
	return out, nil
}

// decodeMessageV3 turns one v3 message into what models sends: with
// Recipients, one message per recipient (each sees only itself in To, as
// at Mailjet); with To/Cc/Bcc strings, one message to all of them.
func decodeMessageV3(j *messageV3JSON) ([]*models.SendMessage, error) {
	m := &models.SendMessage{Subject: j.Subject, TextPart: j.TextPart, HTMLPart: j.HTMLPart, CustomID: j.MjCustomID}
	if j.FromEmail != "" || j.FromName != "" {
		m.From = &models.SendAddress{Email: j.FromEmail, Name: j.FromName}
	}
	for _, f := range []struct {
		prop string
		v    string
		dst  *[]models.SendAddress
	}{{"To", j.To, &m.To}, {"Cc", j.Cc, &m.Cc}, {"Bcc", j.Bcc, &m.Bcc}} {
		l, err := addressList(f.prop, f.v)
		if err != nil {
			return nil, err
		}
		if len(l) > 0 {
			*f.dst = append(*f.dst, l...)
			m.ToGiven = true
		}
	}
	var errs []models.SendError
	m.Headers, errs = headerValues(j.Headers)
	if len(errs) > 0 {
		return nil, badRequest(errs[0].ErrorMessage + " (" + strings.Join(errs[0].ErrorRelatedTo, ", ") + ")")
	}
	for _, a := range j.Attachments {
		m.Attachments = append(m.Attachments, models.SendAttachment{ContentType: a.ContentType, Filename: a.Filename, Base64Content: a.Content})
	}
	for _, a := range j.InlineAttachments {
		m.InlinedAttachments = append(m.InlinedAttachments, models.SendAttachment{ContentType: a.ContentType, Filename: a.Filename,
			Base64Content: a.Content, ContentID: a.Filename})
	}
	if j.Recipients == nil || m.ToGiven {
		return []*models.SendMessage{m}, nil
	}
	if len(*j.Recipients) == 0 {
		m.ToGiven = true // an empty To: Mailjet's error
		return []*models.SendMessage{m}, nil
	}
	if len(*j.Recipients) > models.MaxSendRecipients {
		return nil, badRequest(fmt.Sprintf("Recipients: at most %d recipients per message.", models.MaxSendRecipients))
	}
	out := make([]*models.SendMessage, 0, len(*j.Recipients))
	for _, r := range addrs(*j.Recipients) {
		one := *m
		one.ToGiven, one.To = true, []models.SendAddress{r}
		out = append(out, &one)
	}
	return out, nil
}

// sendV3: POST /v3/send (and /v3/send/message, the Go client's path). v3
// is all or nothing: any invalid message refuses the call with a 400 in
// the REST error shape, naming the first problem.
func (h *sendHandlers) sendV3(c echo.Context) error {
	raw, perr := readSendBody(c)
	if perr != nil {
		return web.APIError(perr.StatusCode, perr.ErrorMessage)
	}
	var top messageV3JSON
	if err := json.Unmarshal(raw, &top); err != nil {
		return badRequest("Malformed JSON, please review the syntax and properties types.")
	}
	all := []*messageV3JSON{&top}
	if len(top.Messages) > 0 {
		if len(top.Messages) > models.MaxSendMessagesV3 {
			return badRequest(fmt.Sprintf("Messages: at most %d messages per call.", models.MaxSendMessagesV3))
		}
		all = all[:0]
		for _, r := range top.Messages {
			var j messageV3JSON
			if err := json.Unmarshal(r, &j); err != nil {
				return badRequest("Malformed JSON, please review the syntax and properties types.")
			}
			all = append(all, &j)
		}
	}
	var msgs []*models.SendMessage
	for _, j := range all {
		ms, err := decodeMessageV3(j)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if errs := models.ValidateSendMessage(m); len(errs) > 0 {
				e := errs[0]
				return web.APIError(http.StatusBadRequest, v3Property(e.ErrorRelatedTo)+e.ErrorMessage)
			}
		}
		msgs = append(msgs, ms...)
	}
	results := h.store.SendMessages(c.Request().Context(), h.relay, web.APIPrincipal(c), c.RealIP(), msgs, false)
	type sent struct {
		Email       string
		MessageID   int64
		MessageUUID string
	}
	out := struct{ Sent []sent }{Sent: []sent{}}
	for _, r := range results {
		if len(r.Errors) > 0 {
			e := r.Errors[0]
			return web.APIError(e.StatusCode, e.ErrorMessage)
		}
		for _, list := range [][]models.SentRecipient{r.To, r.Cc, r.Bcc} {
			for _, s := range list {
				out.Sent = append(out.Sent, sent{Email: s.Email, MessageID: s.MessageID, MessageUUID: s.MessageUUID})
			}
		}
	}
	return c.JSON(http.StatusOK, out)
}

// v3Property names the v3 property behind a v3.1 error's ErrorRelatedTo.
func v3Property(related []string) string {
	if len(related) == 0 {
		return ""
	}
	r := related[0]
	for from, to := range map[string]string{"From.Email": "FromEmail", "TextPart": "Text-part", "HTMLPart": "Html-part"} {
		if r == from {
			r = to
		}
	}
	return r + ": "
}
