package models

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The Send API (Mailjet's POST /v3.1/send and POST /v3/send) on the same
// keys as the REST API: each message is validated with Mailjet's rules and
// error codes, built into a real MIME message and handed to the same relay
// (or sink) as SMTP, and counted in the key's usage.

// Send API limits, Mailjet's.
const (
	MaxSendMessages    = 50       // Messages per call (v3.1)
	MaxSendMessagesV3  = 100      // Messages per call (v3)
	MaxSendRecipients  = 50       // To + Cc + Bcc per message
	MaxSendAttachments = 50       // Attachments, InlinedAttachments, Headers
	MaxSendPayload     = 15 << 20 // bytes of JSON per call, and of each built message
	MaxSubjectLength   = 255
)

// SendAddress is a sender or recipient.
type SendAddress struct {
	Email string
	Name  string
}

// SendAttachment is an attached (or, with ContentID, inlined) file.
type SendAttachment struct {
	ContentType   string
	Filename      string
	Base64Content string
	ContentID     string // inlined attachments only
}

// SendMessage is one message of a Send API call, as decoded from JSON;
// nil slices and pointers are properties that were absent (or null).
type SendMessage struct {
	From               *SendAddress
	ReplyTo            *SendAddress
	To, Cc, Bcc        []SendAddress
	ToGiven            bool // To was present (possibly empty)
	Subject            string
	TextPart           string
	HTMLPart           string
	CustomID           string
	Headers            map[string]string
	Attachments        []SendAttachment
	InlinedAttachments []SendAttachment
	// Errors found while decoding (type mismatches), reported with the
	// message's validation errors; Undecodable: nothing else is known.
	Errors      []SendError
	Undecodable bool
}

// SendError is one of Mailjet's Send API errors.
type SendError struct {
	ErrorIdentifier string
	ErrorCode       string
	StatusCode      int
	ErrorMessage    string
	ErrorRelatedTo  []string
}

// NewSendError makes an error with a fresh identifier.
func NewSendError(status int, code, msg string, related ...string) SendError {
	return SendError{ErrorIdentifier: newUUID(), ErrorCode: code, StatusCode: status, ErrorMessage: msg, ErrorRelatedTo: related}
}

// SentRecipient is one recipient of a sent message, with its IDs.
type SentRecipient struct {
	Email       string
	MessageUUID string
	MessageID   int64
}

// SendResult is the outcome of one message: Errors, or its recipients.
type SendResult struct {
	CustomID    string
	To, Cc, Bcc []SentRecipient
	Errors      []SendError
}

// Status is Mailjet's per-message status.
func (r SendResult) Status() string {
	if len(r.Errors) > 0 {
		return "error"
	}
	return "success"
}

// forbiddenHeaders have a property of their own (Mailjet's send-0011),
// or are set by the builder.
var forbiddenHeaders = map[string]bool{"From": true, "Sender": true, "To": true, "Cc": true, "Bcc": true, "Subject": true,
	"Reply-To": true, "Content-Type": true, "Content-Transfer-Encoding": true, "Mime-Version": true, "Message-Id": true,
	"Date": true, "X-Mj-Customid": true, "Return-Path": true}

// ValidEmail reports whether s is a bare e-mail address (local@domain).
func ValidEmail(s string) bool {
	if s == "" || len(s) > 254 || strings.ContainsAny(s, " <>\r\n\t\"(),;:\\[]") {
		return false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	return at > 0 && at < len(s)-1 && at <= 64
}

// ValidateSendMessage checks one message with Mailjet's rules and error
// codes, returning every error found (nil when it can be sent).
func ValidateSendMessage(m *SendMessage) []SendError {
	errs := append([]SendError(nil), m.Errors...)
	if m.Undecodable {
		return errs
	}
	add := func(status int, code, msg string, related ...string) {
		errs = append(errs, NewSendError(status, code, msg, related...))
	}
	email := func(prop, v string) {
		switch {
		case v == "":
			add(400, "mj-0012", "The "+prop+" property cannot be an empty string.", prop)
		case !ValidEmail(v):
			add(400, "mj-0013", strconv.Quote(v)+" is an invalid email address.", prop)
		}
	}
	if m.From == nil {
		add(400, "mj-0003", "The From is mandatory but missing from the input", "From")
	} else {
		email("From.Email", m.From.Email)
	}
	if m.ReplyTo != nil {
		email("ReplyTo.Email", m.ReplyTo.Email)
	}
	switch {
	case !m.ToGiven:
		add(400, "mj-0003", "The To is mandatory but missing from the input", "To")
	case len(m.To) == 0:
		add(400, "mj-0007", "The To array cannot be empty: give at least one recipient.", "To")
	}
	for _, l := range []struct {
		prop string
		list []SendAddress
	}{{"To", m.To}, {"Cc", m.Cc}, {"Bcc", m.Bcc}} {
		for i, a := range l.list {
			email(fmt.Sprintf("%s[%d].Email", l.prop, i), a.Email)
		}
	}
	if n := len(m.To) + len(m.Cc) + len(m.Bcc); n > MaxSendRecipients {
		add(400, "send-0015", fmt.Sprintf("Too many recipients: %d, at most %d per message (To, Cc and Bcc together).", n, MaxSendRecipients), "To", "Cc", "Bcc")
	}
	if len(m.Subject) > MaxSubjectLength {
		add(400, "mj-0006", fmt.Sprintf("The Subject is longer than the maximum of %d characters.", MaxSubjectLength), "Subject")
	}
	if m.TextPart == "" && m.HTMLPart == "" {
		add(400, "send-0003", "At least HTMLPart, TextPart or TemplateID must be provided (keydesk has no templates: give TextPart or HTMLPart).",
			"HTMLPart", "TextPart", "TemplateID")
	}
	names := make([]string, 0, len(m.Headers))
	for k := range m.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	if len(names) > MaxSendAttachments {
		add(400, "mj-0008", fmt.Sprintf("Headers has more than the maximum of %d elements.", MaxSendAttachments), "Headers")
	}
	for _, k := range names {
		prop := "Headers[" + strconv.Quote(k) + "]"
		switch {
		case !validHeaderName(k):
			add(400, "mj-0005", "Header name "+strconv.Quote(k)+" is not allowed: use letters, digits and hyphens.", prop)
		case forbiddenHeaders[textproto.CanonicalMIMEHeaderKey(k)]:
			add(400, "send-0011", "Header "+k+" cannot be set in Headers: use the message's own property.", prop)
		case strings.ContainsAny(m.Headers[k], "\r\n\x00"):
			add(400, "mj-0005", "Header "+k+" cannot contain line breaks.", prop)
		}
	}
	for _, l := range []struct {
		prop string
		list []SendAttachment
	}{{"Attachments", m.Attachments}, {"InlinedAttachments", m.InlinedAttachments}} {
		prop, list := l.prop, l.list
		if len(list) > MaxSendAttachments {
			add(400, "mj-0008", fmt.Sprintf("%s has more than the maximum of %d elements.", prop, MaxSendAttachments), prop)
		}
		for i, a := range list {
			p := fmt.Sprintf("%s[%d]", prop, i)
			if a.Filename == "" {
				add(400, "mj-0012", "The Filename property cannot be an empty string.", p+".Filename")
			} else if strings.ContainsAny(a.Filename, "\r\n\x00") {
				add(400, "mj-0005", "The Filename cannot contain line breaks.", p+".Filename")
			}
			if a.ContentType == "" {
				add(400, "mj-0012", "The ContentType property cannot be an empty string.", p+".ContentType")
			} else if mt, _, err := mime.ParseMediaType(a.ContentType); err != nil || !strings.Contains(mt, "/") {
				add(400, "mj-0005", strconv.Quote(a.ContentType)+" is not a valid content type.", p+".ContentType")
			}
			if a.Base64Content == "" {
				add(400, "mj-0012", "The Base64Content property cannot be an empty string.", p+".Base64Content")
			} else if _, err := base64.StdEncoding.DecodeString(a.Base64Content); err != nil {
				add(400, "mj-0004", "Type mismatch. Expected type \"base64\".", p+".Base64Content")
			}
			if prop == "InlinedAttachments" && (a.ContentID == "" || strings.ContainsAny(a.ContentID, "<>\r\n\x00 ")) {
				add(400, "mj-0005", "An inlined attachment needs a ContentID (letters, digits, '.', '@', '-').", p+".ContentID")
			}
		}
	}
	return errs
}

func validHeaderName(k string) bool {
	if k == "" || len(k) > 76 {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// newMessageID is a positive ID below 2^53, so JavaScript clients read it
// exactly.
func newMessageID() int64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return int64(binary.BigEndian.Uint64(b[:])>>11) | 1<<40
}

// BuildMIME renders a validated message as an RFC 5322 message (CRLF line
// ends): multipart/alternative for text and HTML, multipart/related for
// inlined attachments, multipart/mixed for attachments. Bcc recipients are
// not in the header. messageID is the Message-ID header's value.
func BuildMIME(m *SendMessage, messageID string, now time.Time) ([]byte, error) {
	var buf bytes.Buffer
	h := func(k, v string) { buf.WriteString(k + ": " + v + "\r\n") }
	addr := func(a SendAddress) string { return (&mail.Address{Name: a.Name, Address: a.Email}).String() }
	list := func(as []SendAddress) string {
		out := make([]string, len(as))
		for i, a := range as {
			out[i] = addr(a)
		}
		return strings.Join(out, ", ")
	}
	h("From", addr(*m.From))
	h("To", list(m.To))
	if len(m.Cc) > 0 {
		h("Cc", list(m.Cc))
	}
	if m.ReplyTo != nil {
		h("Reply-To", addr(*m.ReplyTo))
	}
	h("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	h("Date", now.UTC().Format(time.RFC1123Z))
	h("Message-ID", "<"+messageID+">")
	if m.CustomID != "" {
		h("X-MJ-CustomID", mime.QEncoding.Encode("utf-8", m.CustomID))
	}
	names := make([]string, 0, len(m.Headers))
	for k := range m.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		h(textproto.CanonicalMIMEHeaderKey(k), mime.QEncoding.Encode("utf-8", m.Headers[k]))
	}
	h("MIME-Version", "1.0")

	// The body is a tree of parts; each level is built into its own
	// buffer and then written as one part of its parent.
	type part struct {
		header textproto.MIMEHeader
		body   []byte
	}
	textPart := func(ctype, s string) part {
		var b bytes.Buffer
		w := quotedprintable.NewWriter(&b)
		_, _ = w.Write([]byte(crlf(s)))
		_ = w.Close()
		return part{textproto.MIMEHeader{"Content-Type": {ctype + "; charset=utf-8"}, "Content-Transfer-Encoding": {"quoted-printable"}}, b.Bytes()}
	}
	fileName := func(n string) string { return mime.QEncoding.Encode("utf-8", n) }
	filePart := func(a SendAttachment, inline bool) (part, error) {
		raw, err := base64.StdEncoding.DecodeString(a.Base64Content)
		if err != nil {
			return part{}, err
		}
		hd := textproto.MIMEHeader{"Content-Type": {mime.FormatMediaType(a.ContentType, map[string]string{"name": fileName(a.Filename)})},
			"Content-Transfer-Encoding": {"base64"}}
		if inline {
			hd.Set("Content-Disposition", mime.FormatMediaType("inline", map[string]string{"filename": a.Filename}))
			hd.Set("Content-ID", "<"+a.ContentID+">")
		} else {
			hd.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": a.Filename}))
		}
		return part{hd, wrap76(base64.StdEncoding.EncodeToString(raw))}, nil
	}
	multi := func(kind string, parts []part) (part, error) {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		for _, p := range parts {
			pw, err := w.CreatePart(p.header)
			if err != nil {
				return part{}, err
			}
			if _, err := pw.Write(p.body); err != nil {
				return part{}, err
			}
		}
		if err := w.Close(); err != nil {
			return part{}, err
		}
		return part{textproto.MIMEHeader{"Content-Type": {"multipart/" + kind + "; boundary=" + w.Boundary()}}, b.Bytes()}, nil
	}
	var alts []part
	if m.TextPart != "" {
		alts = append(alts, textPart("text/plain", m.TextPart))
	}
	if m.HTMLPart != "" {
		alts = append(alts, textPart("text/html", m.HTMLPart))
	}
	body := alts[0]
	var err error
	if len(alts) > 1 {
		if body, err = multi("alternative", alts); err != nil {
			return nil, err
		}
	}
	if len(m.InlinedAttachments) > 0 {
		parts := []part{body}
		for _, a := range m.InlinedAttachments {
			p, err := filePart(a, true)
			if err != nil {
				return nil, err
			}
			parts = append(parts, p)
		}
		if body, err = multi("related", parts); err != nil {
			return nil, err
		}
	}
	if len(m.Attachments) > 0 {
		parts := []part{body}
		for _, a := range m.Attachments {
			p, err := filePart(a, false)
			if err != nil {
				return nil, err
			}
			parts = append(parts, p)
		}
		if body, err = multi("mixed", parts); err != nil {
			return nil, err
		}
	}
	keys := make([]string, 0, len(body.header))
	for k := range body.header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		h(k, body.header.Get(k))
	}
	buf.WriteString("\r\n")
	buf.Write(body.body)
	return buf.Bytes(), nil
}

// crlf normalises line ends to CRLF.
func crlf(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}

func wrap76(s string) []byte {
	var b bytes.Buffer
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	b.WriteString(s + "\r\n")
	return b.Bytes()
}

// ErrNoRelay means the Send API has nowhere to hand messages.
var ErrNoRelay = errors.New("no relay configured for the Send API")

// SendMessages validates, builds and relays the messages of one Send API
// call made with key p; each message succeeds or fails on its own, as at
// Mailjet. In sandbox mode messages are validated but neither relayed nor
// counted. Every relayed message is counted in p's usage.
func (s *Store) SendMessages(ctx context.Context, relay Relay, p KeyPrincipal, ip string, msgs []*SendMessage, sandbox bool) []SendResult {
	out := make([]SendResult, len(msgs))
	for i, m := range msgs {
		r := &out[i]
		r.CustomID = m.CustomID
		if r.Errors = ValidateSendMessage(m); len(r.Errors) > 0 {
			continue
		}
		recipients := func(as []SendAddress) []SentRecipient {
			rs := make([]SentRecipient, len(as))
			for j, a := range as {
				rs[j] = SentRecipient{Email: a.Email}
				if !sandbox {
					rs[j].MessageUUID, rs[j].MessageID = newUUID(), newMessageID()
				}
			}
			return rs
		}
		r.To, r.Cc, r.Bcc = recipients(m.To), recipients(m.Cc), recipients(m.Bcc)
		msgID := newUUID() + "@keydesk"
		data, err := BuildMIME(m, msgID, s.Now())
		if err != nil {
			r.Errors = []SendError{NewSendError(400, "mj-0004", "The message could not be built: "+err.Error(), "Messages")}
			continue
		}
		if len(data) > MaxSendPayload {
			r.Errors = []SendError{NewSendError(400, "mj-0011", fmt.Sprintf("The message is larger than the limit of %d bytes.", MaxSendPayload), "Messages")}
			continue
		}
		if sandbox {
			continue
		}
		if relay == nil {
			r.Errors = []SendError{NewSendError(503, "send-relay", "No relay is configured: the message was not sent.")}
			continue
		}
		env := Envelope{From: m.From.Email, Principal: p, RemoteIP: ip, Channel: ChannelAPI}
		for _, list := range [][]SendAddress{m.To, m.Cc, m.Bcc} {
			for _, a := range list {
				env.To = append(env.To, a.Email)
			}
		}
		if err := relay.Relay(ctx, NewOutgoing(env, data)); err != nil {
			status, msg := 503, "The relay could not take the message; try again later."
			var re *RelayError
			if errors.As(err, &re) {
				msg = "The relay refused the message: " + re.Message
				if !re.Temporary() {
					status = 502
				}
			} else {
				s.log.Error("send api: relay failed", "api_key", p.APIKey, "err", err)
			}
			r.Errors = []SendError{NewSendError(status, "send-relay", msg)}
			r.To, r.Cc, r.Bcc = nil, nil, nil
			continue
		}
		s.RecordSent(p, 1)
	}
	return out
}
