package handlers

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"html/template"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"keydesk/models"
	"keydesk/views"
	"keydesk/web"
)

// mailer sends keydesk's own messages (invitations, reset links) through
// the configured relay (KEYDESK_SMTP_RELAY). Without one, nothing is sent:
// the inviter copies the link from its one-time reveal, the operator
// prints reset links with the CLI.
type mailer struct {
	relay models.Relay // nil: no outgoing mail
	from  string
	log   *slog.Logger
}

func newMailer(s *web.Server) *mailer {
	from := s.Config.MailFrom
	if from == "" {
		host := "localhost"
		if u, err := url.Parse(s.Config.BaseURL); err == nil && u.Hostname() != "" {
			host = u.Hostname()
		}
		from = "keydesk@" + host
	}
	return &mailer{relay: s.Config.MailRelay, from: from, log: s.Log}
}

// buildMessage is a real MIME message in one language (Content-Language):
// multipart/alternative with a plain text part and an HTML part, both
// quoted-printable UTF-8.
func buildMessage(from, to, lang, subject, text, html string, now time.Time) ([]byte, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, part := range []struct{ typ, content string }{{"text/plain", text}, {"text/html", html}} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.typ + "; charset=utf-8"},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, err
		}
		qp := quotedprintable.NewWriter(w)
		if _, err := qp.Write([]byte(strings.ReplaceAll(part.content, "\n", "\r\n"))); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	domain := from[strings.LastIndex(from, "@")+1:]
	var msg bytes.Buffer
	fmt.Fprintf(&msg, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-Id: <%s@%s>\r\nMIME-Version: 1.0\r\nContent-Language: %s\r\nContent-Type: multipart/alternative; boundary=%q\r\n\r\n",
		from, to, mime.QEncoding.Encode("utf-8", subject), now.Format(time.RFC1123Z), hex.EncodeToString(id), domain, lang, mw.Boundary())
	msg.Write(body.Bytes())
	return msg.Bytes(), nil
}

var mailHTML = template.Must(template.New("mail").Parse(`<!DOCTYPE html><html lang="{{.Lang}}"><body style="font-family:sans-serif">
<p>{{.Intro}}</p>
<p><a href="{{.Link}}">{{.Action}}</a></p>
<p style="color:#555">{{.Note}}</p>
</body></html>`))

// mailText is one message's texts, already in the reader's language.
type mailText struct {
	lang, subject, intro, action, note string
}

// send hands one message to the relay; false when there is no relay or it
// refused (logged without the link: the link is a credential).
func (m *mailer) send(c echo.Context, to, link string, t mailText) bool {
	if m == nil || m.relay == nil {
		return false
	}
	text := t.intro + "\n\n" + views.Messages().Locale(t.lang).T("mail.link", views.Args{"Action": t.action}) + "\n" + link + "\n\n" + t.note + "\n"
	var html bytes.Buffer
	if err := mailHTML.Execute(&html, map[string]string{"Lang": t.lang, "Intro": t.intro, "Link": link, "Action": t.action, "Note": t.note}); err != nil {
		return false
	}
	msg, err := buildMessage(m.from, to, t.lang, t.subject, text, html.String(), time.Now())
	if err == nil {
		err = m.relay.Relay(c.Request().Context(), models.NewOutgoing(models.Envelope{From: m.from, To: []string{to}, RemoteIP: c.RealIP()}, msg))
	}
	if err != nil {
		m.log.Warn("outgoing mail refused", "lang", t.lang, "to", models.MaskEmail(to), "err", err)
		return false
	}
	return true
}

// mailLanguage is the language of a message to someone: their own saved
// choice when they have one, else the language of the request that sends
// it (the inviter's console, the browser that asked for the reset link).
func mailLanguage(c echo.Context, saved string) string {
	if views.Messages().Has(saved) {
		return saved
	}
	return web.LanguageOf(c)
}

// invitation mails an invitation link in lang.
func (m *mailer) invitation(c echo.Context, lang string, inv *models.Invitation, account, link string) bool {
	l := views.Messages().Locale(lang)
	return m.send(c, inv.Email, link, mailText{
		lang:    l.Lang,
		subject: l.T("mail.invite_subject", views.Args{"Account": account}),
		intro: l.T("mail.invite_intro", views.Args{"Inviter": inv.InviterEmail, "Account": account,
			"Role": l.T("layout.role_" + string(inv.Role))}),
		action: l.T("mail.invite_action"),
		note:   l.T("mail.invite_note", views.Args{"Valid": l.TN("time.days", int(models.InvitationTTL/(24*time.Hour)))}),
	})
}

// passwordReset mails a password reset link in lang.
func (m *mailer) passwordReset(c echo.Context, lang, to, link string) bool {
	l := views.Messages().Locale(lang)
	return m.send(c, to, link, mailText{
		lang:    l.Lang,
		subject: l.T("mail.reset_subject"),
		intro:   l.T("mail.reset_intro"),
		action:  l.T("mail.reset_action"),
		note:    l.T("mail.reset_note", views.Args{"Valid": l.TN("time.minutes", int(models.PasswordResetTTL/time.Minute))}),
	})
}
