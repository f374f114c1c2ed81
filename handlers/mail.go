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

// buildMessage is a real MIME message: multipart/alternative with a plain
// text part and an HTML part, both quoted-printable UTF-8.
func buildMessage(from, to, subject, text, html string, now time.Time) ([]byte, error) {
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
	fmt.Fprintf(&msg, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-Id: <%s@%s>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=%q\r\n\r\n",
		from, to, mime.QEncoding.Encode("utf-8", subject), now.Format(time.RFC1123Z), hex.EncodeToString(id), domain, mw.Boundary())
	msg.Write(body.Bytes())
	return msg.Bytes(), nil
}

var mailHTML = template.Must(template.New("mail").Parse(`<!DOCTYPE html><html><body style="font-family:sans-serif">
<p>{{.Intro}}</p>
<p><a href="{{.Link}}">{{.Action}}</a></p>
<p style="color:#555">{{.Note}}</p>
</body></html>`))

// send hands one message to the relay; false when there is no relay or it
// refused (logged without the link: the link is a credential).
func (m *mailer) send(c echo.Context, to, subject, intro, action, link, note string) bool {
	if m == nil || m.relay == nil {
		return false
	}
	text := intro + "\n\n" + action + ":\n" + link + "\n\n" + note + "\n"
	var html bytes.Buffer
	if err := mailHTML.Execute(&html, map[string]string{"Intro": intro, "Link": link, "Action": action, "Note": note}); err != nil {
		return false
	}
	msg, err := buildMessage(m.from, to, subject, text, html.String(), time.Now())
	if err == nil {
		err = m.relay.Relay(c.Request().Context(), models.NewOutgoing(models.Envelope{From: m.from, To: []string{to}, RemoteIP: c.RealIP()}, msg))
	}
	if err != nil {
		m.log.Warn("outgoing mail refused", "subject", subject, "to", models.MaskEmail(to), "err", err)
		return false
	}
	return true
}

func (m *mailer) invitation(c echo.Context, inv *models.Invitation, account, link string) bool {
	return m.send(c, inv.Email, "You are invited to "+account+" on keydesk",
		inv.InviterEmail+" invited you to join "+account+" on keydesk as "+string(inv.Role)+".",
		"Accept the invitation", link, "The link works once, for 7 days. If you did not expect it, ignore this message.")
}

func (m *mailer) passwordReset(c echo.Context, to, link string) bool {
	return m.send(c, to, "Reset your keydesk password",
		"Someone (hopefully you) asked to reset the password of your keydesk sign-in.",
		"Choose a new password", link, "The link works once, for 30 minutes. If you did not ask, ignore this message: your password stays as it is.")
}
