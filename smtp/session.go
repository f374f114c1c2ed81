package smtp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"keydesk/models"
)

// Replies (see the package comment).
var (
	errAuthFailed = &gosmtp.SMTPError{Code: 535, EnhancedCode: gosmtp.EnhancedCode{5, 7, 8},
		Message: "Authentication failed: invalid API key or secret key"}
	errAuthRequired = &gosmtp.SMTPError{Code: 530, EnhancedCode: gosmtp.EnhancedCode{5, 7, 0},
		Message: "Authentication required: AUTH with your API key and secret key first"}
	errCredentialsGone = &gosmtp.SMTPError{Code: 535, EnhancedCode: gosmtp.EnhancedCode{5, 7, 8},
		Message: "Credentials no longer valid (key deactivated or secret reset): reconnect and AUTH again"}
	errAuthTemporary = &gosmtp.SMTPError{Code: 454, EnhancedCode: gosmtp.EnhancedCode{4, 7, 0},
		Message: "Temporary authentication failure, try again later"}
	errSpool = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0},
		Message: "Message not accepted: local storage problem, try again later"}
	errRelay = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0},
		Message: "Message not accepted: the relay is unavailable, try again later"}
)

func throttledError(t *models.ThrottledError) *gosmtp.SMTPError {
	return &gosmtp.SMTPError{Code: 454, EnhancedCode: gosmtp.EnhancedCode{4, 7, 0},
		Message: fmt.Sprintf("Too many failed authentication attempts for this API key or from this address; try again in %d seconds", t.RetryAfterSeconds())}
}

type backend struct{ s *Server }

func (b *backend) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	ip := c.Conn().RemoteAddr().String()
	if h, _, err := net.SplitHostPort(ip); err == nil {
		ip = h
	}
	b.s.stats.sessions.Add(1)
	return &session{s: b.s, ip: ip}, nil
}

// session is one SMTP conversation. go-smtp starts a new one after
// STARTTLS, so nothing authenticated before TLS survives the upgrade.
type session struct {
	s  *Server
	ip string

	authed bool
	p      models.KeyPrincipal
	// secret is kept for the connection's life so each MAIL re-checks the
	// key: a key deactivated or reset meanwhile stops an open connection.
	// Never logged.
	secret string

	from string
	to   []string

	spool spool // reused by each DATA of the connection
}

var _ gosmtp.AuthSession = (*session)(nil)

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain, sasl.Login} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			// An authorization identity other than the user is not supported.
			if identity != "" && identity != username {
				return errAuthFailed
			}
			return s.authenticate(username, password, sasl.Plain)
		}), nil
	case sasl.Login:
		return &loginServer{auth: func(username, password string) error {
			return s.authenticate(username, password, sasl.Login)
		}}, nil
	}
	return nil, gosmtp.ErrAuthUnknownMechanism
}

// authenticate checks API key + secret through the store (throttle,
// verification, failure counting) and maps the result to a reply.
func (s *session) authenticate(apiKey, secret, mech string) error {
	p, err := s.verify(apiKey, secret)
	if err != nil {
		if c := replyCode(err); c == 454 {
			s.s.log.Warn("smtp auth refused: throttled or temporary failure", "api_key", loggableKey(apiKey), "ip", s.ip, "mech", mech, "reply", c)
		} else {
			s.s.log.Info("smtp auth failed", "api_key", loggableKey(apiKey), "ip", s.ip, "mech", mech, "reply", c)
		}
		return err
	}
	s.authed, s.p, s.secret = true, p, secret
	// A successful AUTH is a use of the key even if no message follows
	// (clients often only test their settings).
	s.s.store.RecordUse(p, models.ChannelSMTP, s.ip, 0)
	s.s.log.Debug("smtp auth ok", "api_key", p.APIKey, "ip", s.ip, "mech", mech, "old_secret", p.UsedPrevious)
	return nil
}

func (s *session) verify(apiKey, secret string) (models.KeyPrincipal, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := s.s.store.VerifyRequest(ctx, apiKey, secret, s.ip, models.ChannelSMTP)
	if err == nil {
		return p, nil
	}
	var te *models.ThrottledError
	switch {
	case errors.As(err, &te):
		return p, throttledError(te)
	case errors.Is(err, models.ErrVerifyFailed):
		return p, errAuthFailed
	default:
		s.s.log.Error("smtp auth: verification error", "err", err, "ip", s.ip)
		return p, errAuthTemporary
	}
}

func (s *session) Mail(from string, _ *gosmtp.MailOptions) error {
	if !s.authed {
		return errAuthRequired
	}
	// Re-check the credentials (a warm check is one SHA-256).
	p, err := s.verify(s.p.APIKey, s.secret)
	if err != nil {
		if err == errAuthFailed {
			err = errCredentialsGone
		}
		s.s.log.Info("smtp credentials rejected at MAIL", "api_key", s.p.APIKey, "ip", s.ip, "reply", replyCode(err))
		return err
	}
	s.p = p
	s.from, s.to = from, s.to[:0]
	return nil
}

func (s *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if !s.authed {
		return errAuthRequired
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	if !s.authed {
		return errAuthRequired
	}
	// The message goes to a spool (memory up to a small threshold, then
	// an unlinked temporary file), so a connection holds at most the
	// threshold in memory whatever the message size.
	sp := &s.spool
	sp.dir, sp.threshold = s.s.cfg.SpoolDir, s.s.cfg.SpoolThreshold
	defer sp.close()
	if err := sp.fill(r); err != nil {
		var se storageError
		if errors.As(err, &se) {
			s.s.log.Error("smtp spool failed", "api_key", s.p.APIKey, "err", err)
			return errSpool
		}
		// ErrDataTooLarge is go-smtp's 552; anything else is a broken
		// connection or an aborted BDAT.
		return err
	}
	body, err := sp.reader()
	if err != nil {
		s.s.log.Error("smtp spool failed", "api_key", s.p.APIKey, "err", err)
		return errSpool
	}
	m := &Message{
		Envelope: models.Envelope{
			From:      s.from,
			To:        s.to,
			Principal: s.p,
			RemoteIP:  s.ip,
			Channel:   models.ChannelSMTP,
		},
		MessageID: models.HeaderValue(sp.head, "Message-Id"),
		Size:      sp.size,
		Body:      body,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.s.relay.Relay(ctx, m); err != nil {
		s.s.stats.messagesRefused.Add(1)
		if se := relayReply(err); se != nil {
			s.s.log.Warn("smtp relay refused a message", "api_key", s.p.APIKey, "code", se.Code, "reply", se.Message)
			return se
		}
		s.s.log.Error("smtp relay failed", "api_key", s.p.APIKey, "err", err)
		return errRelay
	}
	s.s.stats.messagesRelayed.Add(1)
	s.s.store.RecordUse(s.p, models.ChannelSMTP, s.ip, 1)
	return nil
}

// relayReply maps a relay's refusal to the reply for the client (nil when
// err carries no reply).
func relayReply(err error) *gosmtp.SMTPError {
	var re *models.RelayError
	if errors.As(err, &re) {
		return &gosmtp.SMTPError{Code: re.Code, EnhancedCode: gosmtp.EnhancedCode(re.Enhanced), Message: re.Message}
	}
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		return se
	}
	return nil
}

func (s *session) Reset() { s.from, s.to = "", s.to[:0] }

func (s *session) Logout() error {
	s.authed, s.secret, s.p = false, "", models.KeyPrincipal{}
	return nil
}

// loginServer is the server side of the LOGIN mechanism (go-sasl ships
// only the client): "Username:" and "Password:" challenges, the username
// possibly sent as the initial response.
type loginServer struct {
	state int
	user  string
	auth  func(username, password string) error
}

func (a *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch a.state {
	case 0:
		if response == nil {
			a.state = 1
			return []byte("Username:"), false, nil
		}
		a.user, a.state = string(response), 2
		return []byte("Password:"), false, nil
	case 1:
		a.user, a.state = string(response), 2
		return []byte("Password:"), false, nil
	case 2:
		a.state = 3
		return nil, true, a.auth(a.user, string(response))
	}
	return nil, false, sasl.ErrUnexpectedClientResponse
}

// loggableKey returns the username only when it looks like an API key, so
// a secret typed into the username field never reaches a log line.
func loggableKey(u string) string {
	if models.ValidAPIKeyFormat(u) {
		return u
	}
	return "(not an API key)"
}

func replyCode(err error) int {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}
