package models

import (
	"bytes"
	"context"
	"fmt"
	"io"
)

// Outbound mail: the one hand-off from every submission path (SMTP, the
// Send API) to the relay that delivers, or the sink that only records.
// A message is an envelope plus a streamed body, so a 10 MB message never
// has to sit in memory: SMTP spools it to a temporary file and hands the
// file over; the Send API builds a small MIME message in memory and hands
// a bytes.Reader (NewOutgoing).

// Envelope says who a message is from, to whom it goes and whose
// credentials submitted it.
type Envelope struct {
	From      string   // envelope sender (MAIL FROM)
	To        []string // envelope recipients (RCPT TO)
	Principal KeyPrincipal
	RemoteIP  string
	Channel   Channel // ChannelSMTP or ChannelAPI (Send API)
}

// Outgoing is one message handed to a Relay.
type Outgoing struct {
	Envelope
	// MessageID is the Message-ID header's value, "" when absent.
	MessageID string
	// Size is the number of bytes Body yields (-1 when unknown).
	Size int64
	// Body is the whole message (header section and body, CRLF line
	// ends). A relay reads it at most once, only during the Relay call;
	// it need not read it at all.
	Body io.Reader
}

// NewOutgoing wraps a message held in memory.
func NewOutgoing(env Envelope, msg []byte) *Outgoing {
	return &Outgoing{Envelope: env, MessageID: HeaderValue(msg, "Message-Id"), Size: int64(len(msg)), Body: bytes.NewReader(msg)}
}

// Relay takes accepted messages. An error refuses the message: a
// *RelayError carries the reply for the client, anything else means
// "unavailable, try again later".
type Relay interface {
	Relay(ctx context.Context, m *Outgoing) error
}

// RelayError is a refusal with an SMTP reply: 4xx temporary, 5xx permanent.
type RelayError struct {
	Code     int    // e.g. 451 or 554
	Enhanced [3]int // e.g. {4, 3, 0}
	Message  string // safe to show the client
}

func (e *RelayError) Error() string {
	return fmt.Sprintf("%d %d.%d.%d %s", e.Code, e.Enhanced[0], e.Enhanced[1], e.Enhanced[2], e.Message)
}

// Temporary reports whether the client should try again later.
func (e *RelayError) Temporary() bool { return e.Code >= 400 && e.Code < 500 }

// HeaderValue returns the first value of a header field in a message's
// header section (unfolded, trimmed, at most 998 bytes), or "". msg may
// be only the start of a message.
func HeaderValue(msg []byte, name string) string {
	var val []byte
	found := false
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break // end of the header section
		}
		if line[0] == ' ' || line[0] == '\t' {
			if found {
				if len(val) > 0 {
					val = append(val, ' ')
				}
				val = append(val, bytes.TrimSpace(line)...)
			}
			continue
		}
		if found {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(bytes.TrimSpace(k), []byte(name)) {
			found = true
			val = append(val, bytes.TrimSpace(v)...)
		}
	}
	if len(val) > 998 {
		val = val[:998]
	}
	return string(val)
}
