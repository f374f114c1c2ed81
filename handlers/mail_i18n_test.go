package handlers_test

import (
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"testing"
)

// mailParts is a relayed message decoded: its subject, Content-Language
// and the plain and HTML parts' text.
type mailParts struct {
	subject, lang, plain, html string
}

func decodeMail(t *testing.T, data string) mailParts {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(data))
	if err != nil {
		t.Fatalf("message: %v", err)
	}
	var p mailParts
	if p.subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); err != nil {
		t.Fatalf("subject: %v", err)
	}
	p.lang = msg.Header.Get("Content-Language")
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("content type: %v", err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextPart() // undoes quoted-printable
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("part: %v", err)
		}
		body, _ := io.ReadAll(part)
		switch typ, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type")); typ {
		case "text/plain":
			p.plain = string(body)
		case "text/html":
			p.html = string(body)
		}
	}
	if p.plain == "" || p.html == "" {
		t.Fatalf("message lacks a plain or HTML part:\n%s", data)
	}
	return p
}

// checkMail fails unless a message is wholly in lang: its header, both
// parts, the HTML's lang, and every wanted text (none of the other
// language's).
func checkMail(t *testing.T, what string, p mailParts, lang string, want ...string) {
	t.Helper()
	if p.lang != lang || !strings.Contains(p.html, `<html lang="`+lang+`">`) {
		t.Errorf("%s: Content-Language %q, html %q…, want %s", what, p.lang, p.html[:min(len(p.html), 60)], lang)
	}
	for _, w := range want {
		if !strings.Contains(p.subject+"\n"+p.plain, w) || !strings.Contains(p.subject+"\n"+p.html, w) {
			t.Errorf("%s: %q missing from the subject or a part:\nSubject: %s\n%s\n%s", what, w, p.subject, p.plain, p.html)
		}
	}
}

// Invitations are written in the invitee's saved language when they
// already have a keydesk sign-in, else in the inviter's current language;
// reset links in the person's saved language, else in the language of the
// browser that asked (issue 14 #2).
func TestMailLanguage(t *testing.T) {
	t.Parallel()
	relay, withMail := startMailRelay(t)
	a := newApp(t, withMail)
	owner, _, _, _ := a.owner("Acme Mail", "owner@acme.example")
	ownerFR := owner.with("Accept-Language", "fr-FR,fr;q=0.9")
	// Someone with a saved French choice, and someone without any.
	francophone, _, _, _ := a.owner("Société", "marie@exemple.fr")
	if r := francophone.submit("/keys", "/account/language", url.Values{"language": {"fr"}, "next": {"/keys"}}); r.status != http.StatusSeeOther {
		t.Fatalf("save French: %d", r.status)
	}
	a.owner("Other", "sam@example.com")
	last := func(what string) mailParts {
		t.Helper()
		msgs := relay.got()
		if len(msgs) == 0 {
			t.Fatalf("%s: nothing relayed", what)
		}
		return decodeMail(t, msgs[len(msgs)-1].data)
	}
	invite := func(c *client, email string) mailParts {
		t.Helper()
		r := c.submit("/team", "/team/invitations", url.Values{"email": {email}, "role": {"viewer"}, "scope": {"all"}})
		if r.status != http.StatusCreated {
			t.Fatalf("invite %s: %d", email, r.status)
		}
		return last("invite " + email)
	}
	// A French inviter, a new person: French.
	checkMail(t, "invitation from a French console", invite(ownerFR, "new@agency.example"), "fr",
		"Invitation à rejoindre Acme Mail sur keydesk", "owner@acme.example vous invite à rejoindre Acme Mail sur keydesk en tant que lecteur.",
		"Accepter l’invitation", "pendant 7 jours")
	// An English inviter, a new person: English.
	checkMail(t, "invitation from an English console", invite(owner, "other@agency.example"), "en",
		"You are invited to Acme Mail on keydesk", "owner@acme.example invited you to join Acme Mail on keydesk as viewer.",
		"Accept the invitation", "for 7 days")
	// An English inviter, a person who chose French: French.
	checkMail(t, "invitation to a French user", invite(owner, "marie@exemple.fr"), "fr", "Accepter l’invitation")
	// A French inviter, a person without a choice: the inviter's French.
	checkMail(t, "invitation to a user without a choice", invite(ownerFR, "sam@example.com"), "fr", "Accepter l’invitation")

	forgot := func(email, acceptLanguage string) mailParts {
		t.Helper()
		c := a.client()
		if acceptLanguage != "" {
			c = c.with("Accept-Language", acceptLanguage)
		}
		if r := c.submit("/password/forgot", "/password/forgot", url.Values{"email": {email}}); r.status != http.StatusSeeOther {
			t.Fatalf("forgot %s: %d", email, r.status)
		}
		return last("reset " + email)
	}
	// Saved French wins over an English browser.
	checkMail(t, "reset for a French user", forgot("marie@exemple.fr", "en-US"), "fr",
		"Réinitialisez votre mot de passe keydesk", "Choisir un nouveau mot de passe", "pendant 30 minutes", "votre mot de passe reste inchangé")
	// No choice: the browser's language, English by default.
	checkMail(t, "reset asked in French", forgot("sam@example.com", "fr-CA"), "fr", "Choisir un nouveau mot de passe")
	checkMail(t, "reset asked without a language", forgot("sam@example.com", ""), "en",
		"Reset your keydesk password", "Choose a new password", "for 30 minutes", "your password stays as it is")
}
