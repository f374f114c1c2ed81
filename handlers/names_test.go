package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"keydesk/models"
)

// Issue 9, finding 10: renaming (console and REST) follows creation's
// name rules, and names cannot hide direction overrides or invisible
// characters.
func TestRenameFollowsTheNameRules(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c, accountID, apiKey, secret := a.owner("Acme Mail", "owner@acme.example")
	a.setPlan(accountID, models.PlanEssential)
	c.mustCreateSub("Newsletters")
	subKey, subSecret := c.mustCreateSub("Billing")
	ids := c.keyIDs()
	billing, master := ids["Billing"], c.masterID()
	if billing == "" {
		t.Fatalf("no Billing key on /keys: %v", ids)
	}

	cases := []struct{ what, id, name, want string }{
		{"sub-account to another's name", billing, "newsletters", "already have"},
		{"sub-account to the main account's name", billing, "ACME MAIL", "already have"},
		{"master key to a sub-account's name", master, "billing", "already have"},
		{"right-to-left override", billing, "Bill\u202Eing", "text-direction"},
		{"zero-width space", billing, "Bill\u200Bing", "invisible"},
	}
	for _, tc := range cases {
		r := c.submit("/keys", "/keys/"+tc.id+"/rename", url.Values{"name": {tc.name}})
		if r.status != http.StatusUnprocessableEntity {
			t.Errorf("rename %s: status %d, want 422", tc.what, r.status)
			continue
		}
		if msg := r.text(`[data-testid="rename-dialog"] #e-name`); !strings.Contains(msg, tc.want) {
			t.Errorf("rename %s: inline error %q, want it to mention %q", tc.what, msg, tc.want)
		}
	}
	if k := a.keyRow(subKey, subSecret); k.Name != "Billing" {
		t.Fatalf("refused renames changed the name to %q", k.Name)
	}

	// Creating with such characters is refused the same way.
	r := c.createSub("News\u2066letters")
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.text(`[data-testid="create-dialog"] #e-name`), "text-direction") {
		t.Errorf("create with U+2066: status %d, error %q", r.status, r.text(`[data-testid="create-dialog"] #e-name`))
	}

	// The REST API's rename is the same operation.
	st, m, _ := restDo(t, a, "PUT", "/v3/REST/apikey/"+subKey, apiKey, secret, `{"Name":"NEWSLETTERS"}`)
	if st != http.StatusBadRequest || !strings.Contains(m["ErrorMessage"].(string), "already have") {
		t.Errorf("REST rename to a taken name: %d %v", st, m)
	}
	st, m, _ = restDo(t, a, "PUT", "/v3/REST/apikey/"+subKey, apiKey, secret, `{"Name":"Bill\u202eing"}`)
	if st != http.StatusBadRequest {
		t.Errorf("REST rename with U+202E: %d %v", st, m)
	}
	if k := a.keyRow(subKey, subSecret); k.Name != "Billing" {
		t.Fatalf("refused REST renames changed the name to %q", k.Name)
	}
	// A free name still works, and a key may change its own name's case.
	if r := c.submit("/keys", "/keys/"+billing+"/rename", url.Values{"name": {"BILLING"}}); r.status != http.StatusSeeOther {
		t.Errorf("change the case of its own name: %d", r.status)
	}
}
