package handlers_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"keydesk/models/testdb"
)

// One limit state, rendered the same on /keys and /subaccounts: below the
// limit, at it, a request pending, the request answered.
func TestLimitStateIsTheSameOnKeysAndSubaccounts(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	owner, accountID, _, _ := a.owner("Acme Mail", "owner@acme.example") // free plan: 1
	type view struct {
		banner             string
		create, requestBtn bool
	}
	check := func(step, bannerID string, create, request bool) {
		t.Helper()
		var seen []view
		for _, page := range []string{"/keys", "/subaccounts"} {
			r := owner.get(page)
			if r.status != http.StatusOK {
				t.Fatalf("%s: GET %s %d", step, page, r.status)
			}
			v := view{create: r.has(`[data-testid="create-subaccount"]`), requestBtn: r.has(`[data-testid="request-more"]`)}
			for _, id := range []string{"limit-reached", "limit-pending", "limit-answered"} {
				if r.has(`[data-testid="` + id + `"]`) {
					if v.banner != "" {
						t.Errorf("%s: %s shows two limit banners", step, page)
					}
					v.banner = id + ": " + norm(r.text(`[data-testid="`+id+`"]`))
				}
			}
			if (v.banner == "") != (bannerID == "") || bannerID != "" && v.banner[:len(bannerID)] != bannerID {
				t.Errorf("%s: %s banner %q, want %s", step, page, v.banner, bannerID)
			}
			if v.create != create || v.requestBtn != request {
				t.Errorf("%s: %s Create %v, Request more %v; want %v, %v", step, page, v.create, v.requestBtn, create, request)
			}
			seen = append(seen, v)
		}
		if seen[0] != seen[1] {
			t.Errorf("%s: /keys and /subaccounts differ: %+v vs %+v", step, seen[0], seen[1])
		}
	}
	check("below the limit", "", true, false)
	owner.mustCreateSub("client")
	check("at the limit", "limit-reached", false, true)
	if r := owner.requestMore("2", "Two clients"); r.status != http.StatusSeeOther {
		t.Fatalf("request: %d", r.status)
	}
	check("request pending", "limit-pending", false, false)
	var reqID uint
	testdb.Must(t, a.store.DB().Table("limit_requests").Where("account_id = ?", accountID).Pluck("id", &reqID))
	support := a.supportClient()
	if r := support.submit(accountPath(accountID), fmt.Sprintf("/support/requests/%d/approve", reqID),
		url.Values{"limit": {"3"}, "note": {"ok"}, "account_id": {fmt.Sprint(accountID)}}); r.status != http.StatusSeeOther {
		t.Fatalf("approve: %d", r.status)
	}
	check("request answered", "limit-answered", true, false)
}
