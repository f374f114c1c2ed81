package models_test

import (
	"io"
	"testing"

	"keydesk/models"
)

func TestNewOutgoingWrapsAnInMemoryMessage(t *testing.T) {
	t.Parallel()
	msg := []byte("From: a@x\r\nMessage-ID:\r\n <id@x>\r\nSubject: s\r\n\r\nMessage-ID: <not-a-header@x>\r\n")
	m := models.NewOutgoing(models.Envelope{From: "a@x", To: []string{"b@y"}, Channel: models.ChannelAPI}, msg)
	if m.MessageID != "<id@x>" || m.Size != int64(len(msg)) || m.From != "a@x" || m.Channel != models.ChannelAPI {
		t.Fatalf("NewOutgoing: id %q size %d from %q", m.MessageID, m.Size, m.From)
	}
	got, err := io.ReadAll(m.Body)
	if err != nil || string(got) != string(msg) {
		t.Fatalf("body %q, %v", got, err)
	}
	re := &models.RelayError{Code: 451, Enhanced: [3]int{4, 3, 0}, Message: "later"}
	if !re.Temporary() || re.Error() != "451 4.3.0 later" {
		t.Errorf("RelayError: %v temporary %v", re, re.Temporary())
	}
	if (&models.RelayError{Code: 554}).Temporary() {
		t.Error("554 is not temporary")
	}
	if models.HeaderValue([]byte("Subject: x\r\n\r\nMessage-ID: <b@x>\r\n"), "Message-Id") != "" {
		t.Error("a body line was taken for a header")
	}
}
