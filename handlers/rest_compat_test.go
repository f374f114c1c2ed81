package handlers_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	mailjet "github.com/mailjet/mailjet-apiv3-go/v4"
	"github.com/mailjet/mailjet-apiv3-go/v4/resources"

	"keydesk/models/testdb"
)

// mjTree is a main account (essential plan) with three sub-accounts made
// through the API, for the filter and sort tests.
func mjTree(t *testing.T, a *app) (apiKey, secret string, mj *mailjet.Client) {
	t.Helper()
	c := a.client()
	apiKey, secret = c.signup("Acme Mail", "owner@acme.example")
	testdb.Must(t, a.store.DB().Table("accounts").Where("name = ?", "Acme Mail").Update("plan", "essential"))
	mj = mailjet.NewMailjetClient(apiKey, secret, a.srv.URL+"/v3")
	for _, name := range []string{"charlie", "alpha", "bravo"} {
		var created []resources.Apikey
		if err := mj.Post(&mailjet.FullRequest{Info: &mailjet.Request{Resource: "apikey"}, Payload: &resources.Apikey{Name: name}}, &created); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		a.clock.Advance(1e9) // distinct CreatedAt
	}
	return apiKey, secret, mj
}

func mjStatus(err error) int {
	var re mailjet.RequestError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	var rp *mailjet.RequestError
	if errors.As(err, &rp) {
		return rp.StatusCode
	}
	return 0
}

// Filter names are case-insensitive, as at Mailjet: countOnly (the
// spelling of Mailjet's guide and node-mailjet) counts without data.
func TestRESTFilterNamesAreCaseInsensitive(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	apiKey, secret, mj := mjTree(t, a)
	for _, spelling := range []string{"countOnly", "Countonly", "COUNTONLY", "countonly"} {
		var keys []resources.Apikey
		count, total, err := mj.List("apikey", &keys, mailjet.Filter(spelling, "1"))
		if err != nil || count != 4 || total != 4 || len(keys) != 0 {
			t.Errorf("%s=1: count %d total %d err %v data %d", spelling, count, total, err, len(keys))
		}
	}
	var keys []resources.Apikey
	count, total, err := mj.List("apikey", &keys, mailjet.Filter("limit", "2"), mailjet.Filter("OFFSET", "1"), mailjet.Filter("ismaster", "false"))
	if err != nil || count != 2 || total != 3 || len(keys) != 2 {
		t.Errorf("limit/OFFSET/ismaster: count %d total %d err %v", count, total, err)
	}
	for _, k := range keys {
		if k.IsMaster {
			t.Errorf("ismaster=false returned the master key")
		}
	}
	st, m, _ := restDo(t, a, "GET", "/v3/REST/apikey?name=alpha", apiKey, secret, "")
	if st != 200 || m["Count"] != float64(1) {
		t.Errorf("name=alpha: %d %v", st, m)
	}
}

// Sort on the documented fields; an unknown field is a 400; Limit is
// capped at 1000 with an error naming the cap.
func TestRESTSortAndLimit(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	apiKey, secret, mj := mjTree(t, a)
	list := func(opts ...mailjet.RequestOptions) []resources.Apikey {
		t.Helper()
		var keys []resources.Apikey
		if _, _, err := mj.List("apikey", &keys, opts...); err != nil {
			t.Fatalf("List: %v", err)
		}
		return keys
	}
	ids := func(keys []resources.Apikey) []int64 {
		out := make([]int64, len(keys))
		for i, k := range keys {
			out[i] = k.ID
		}
		return out
	}
	names := func(keys []resources.Apikey) string {
		out := make([]string, len(keys))
		for i, k := range keys {
			out[i] = k.Name
		}
		return strings.Join(out, ",")
	}
	desc := ids(list(mailjet.Sort("ID", mailjet.SortDesc)))
	if len(desc) != 4 || !sort.SliceIsSorted(desc, func(i, j int) bool { return desc[i] > desc[j] }) {
		t.Errorf("Sort=ID DESC: %v", desc)
	}
	asc := ids(list(mailjet.Sort("ID", mailjet.SortAsc)))
	if len(asc) != 4 || !sort.SliceIsSorted(asc, func(i, j int) bool { return asc[i] < asc[j] }) {
		t.Errorf("Sort=ID ASC: %v", asc)
	}
	if got := names(list(mailjet.Sort("Name", mailjet.SortAsc), mailjet.Filter("IsMaster", "false"))); got != "alpha,bravo,charlie" {
		t.Errorf("Sort=Name: %s", got)
	}
	if got := names(list(mailjet.Sort("CreatedAt", mailjet.SortDesc), mailjet.Filter("IsMaster", "false"))); got != "bravo,alpha,charlie" {
		t.Errorf("Sort=CreatedAt DESC: %s", got)
	}
	// Sorting happens before paging.
	if got := names(list(mailjet.Filter("sort", "name desc"), mailjet.Filter("Limit", "1"), mailjet.Filter("IsMaster", "false"))); got != "charlie" {
		t.Errorf("sort=name desc, Limit=1: %s", got)
	}
	for _, bad := range []string{"Colour", "SecretKey", "ID sideways", "ID DESC extra", ""} {
		var keys []resources.Apikey
		_, _, err := mj.List("apikey", &keys, mailjet.Filter("Sort", bad))
		if mjStatus(err) != http.StatusBadRequest {
			t.Errorf("Sort=%q: %v", bad, err)
		}
	}
	st, m, _ := restDo(t, a, "GET", "/v3/REST/apikey?Sort=Colour", apiKey, secret, "")
	if st != 400 || !strings.Contains(m["ErrorMessage"].(string), "Colour") {
		t.Errorf("unknown sort field: %d %v", st, m)
	}
	var keys []resources.Apikey
	_, _, err := mj.List("apikey", &keys, mailjet.Filter("Limit", "1001"))
	if mjStatus(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "1000") {
		t.Errorf("Limit=1001: %v", err)
	}
	if got := list(mailjet.Filter("Limit", "1000")); len(got) != 4 {
		t.Errorf("Limit=1000: %d keys", len(got))
	}
}

// Unsupported methods answer 405 with Allow, in Mailjet's shape.
func TestRESTUnsupportedMethodsAre405(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	apiKey, secret, mj := mjTree(t, a)
	err := mj.Delete(&mailjet.Request{Resource: "apikey", ID: 1})
	if mjStatus(err) != http.StatusMethodNotAllowed {
		t.Errorf("official client Delete: %v", err)
	}
	for _, tc := range []struct{ method, path, allow string }{
		{"DELETE", "/v3/REST/apikey/" + apiKey, "GET, PUT"},
		{"PATCH", "/v3/REST/apikey/1", "GET, PUT"},
		{"POST", "/v3/REST/apikey/1", "GET, PUT"},
		{"DELETE", "/v3/REST/apikey", "GET, POST"},
		{"PUT", "/v3/REST/apikey", "GET, POST"},
		{"PATCH", "/v3/REST/apikey", "GET, POST"},
	} {
		for _, auth := range [][2]string{{apiKey, secret}, {"", ""}} {
			st, m, h := restDo(t, a, tc.method, tc.path, auth[0], auth[1], `{"Name":"x"}`)
			if st != 405 || h.Get("Allow") != tc.allow || m["StatusCode"] != float64(405) || m["ErrorMessage"] == "" {
				t.Errorf("%s %s (auth %v): %d Allow %q %v", tc.method, tc.path, auth[0] != "", st, h.Get("Allow"), m)
			}
		}
	}
	// Nothing was deleted.
	var keys []resources.Apikey
	if count, _, err := mj.List("apikey", &keys); err != nil || count != 4 {
		t.Errorf("after 405s: %d %v", count, err)
	}
}

// ACL is a documented writable property; keydesk has no scopes, so a
// non-empty ACL is refused with that reason (never "Unknown property").
func TestRESTACLIsRefusedWithTheRealReason(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	apiKey, secret, _ := mjTree(t, a)
	for _, tc := range []struct{ method, path string }{
		{"POST", "/v3/REST/apikey"},
		{"PUT", "/v3/REST/apikey/" + apiKey},
	} {
		st, m, _ := restDo(t, a, tc.method, tc.path, apiKey, secret, `{"Name":"scoped","ACL":"1:send"}`)
		msg, _ := m["ErrorMessage"].(string)
		if st != 400 || strings.Contains(msg, "Unknown property") || !strings.Contains(msg, "ACL") || !strings.Contains(msg, "scope") {
			t.Errorf("%s with ACL: %d %q", tc.method, st, msg)
		}
	}
	// An empty ACL (what clients send by default) is accepted.
	st, m, _ := restDo(t, a, "POST", "/v3/REST/apikey", apiKey, secret, `{"Name":"plain","ACL":""}`)
	if st != 201 {
		t.Errorf("empty ACL: %d %v", st, m)
	}
	// No key was made by the refused request.
	st, m, _ = restDo(t, a, "GET", "/v3/REST/apikey?Name=scoped", apiKey, secret, "")
	if st != 200 || m["Count"] != float64(0) {
		t.Errorf("refused ACL left a key: %v", m)
	}
}

// Validation messages name Mailjet's properties, never internal fields.
func TestRESTValidationNamesMailjetProperties(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	apiKey, secret, _ := mjTree(t, a)
	for _, tc := range []struct{ method, path, body, prop string }{
		{"PUT", "/v3/REST/apikey/" + apiKey, `{"IsActive":false}`, "IsActive"},
		{"POST", "/v3/REST/apikey", `{"Name":"  "}`, "Name"},
		{"POST", "/v3/REST/apikey", `{"Name":"alpha"}`, "Name"},
		{"PUT", "/v3/REST/apikey/" + apiKey, `{"Name":"` + strings.Repeat("n", 300) + `"}`, "Name"},
	} {
		st, m, _ := restDo(t, a, tc.method, tc.path, apiKey, secret, tc.body)
		msg, _ := m["ErrorMessage"].(string)
		if st != 400 || !strings.HasPrefix(msg, tc.prop+": ") || strings.Contains(msg, "active:") || strings.Contains(msg, "name:") {
			t.Errorf("%s %s: %d %q", tc.method, tc.body[:min(len(tc.body), 30)], st, msg)
		}
	}
}

// issue 9 #8: null for a boolean or a string is a 400, and a body that is
// not application/json is a 415; either way nothing changes.
func TestRESTNullAndContentType(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	apiKey, secret, mj := mjTree(t, a)
	var subs []resources.Apikey
	if _, _, err := mj.List("apikey", &subs, mailjet.Filter("Name", "alpha")); err != nil || len(subs) != 1 {
		t.Fatalf("alpha: %v %v", err, subs)
	}
	alpha := subs[0]
	path := "/v3/REST/apikey/" + alpha.APIKey
	for _, body := range []string{`{"IsActive": null}`, `{"Name": null}`, `{"Name":"x","IsActive":null}`, `null`, `[]`, `{"IsActive":"false"}`} {
		st, m, _ := restDo(t, a, "PUT", path, apiKey, secret, body)
		if st != 400 || m["StatusCode"] != float64(400) {
			t.Errorf("PUT %s: %d %v", body, st, m)
		}
	}
	st, m, _ := restDo(t, a, "POST", "/v3/REST/apikey", apiKey, secret, `{"Name":"delta","IsActive":null}`)
	if st != 400 {
		t.Errorf("POST IsActive null: %d %v", st, m)
	}
	send := func(method, path, ctype, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, a.srv.URL+path, strings.NewReader(body))
		req.SetBasicAuth(apiKey, secret)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var out map[string]any
		_ = json.Unmarshal(b, &out)
		return res.StatusCode, out
	}
	for _, ctype := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", "application/jsonp", "text/json"} {
		st, m := send("PUT", path, ctype, `{"IsActive":false}`)
		if st != 415 || m["StatusCode"] != float64(415) || m["ErrorMessage"] == "" {
			t.Errorf("PUT as %q: %d %v", ctype, st, m)
		}
		st, m = send("POST", "/v3/REST/apikey", ctype, `{"Name":"echo"}`)
		if st != 415 || m["StatusCode"] != float64(415) {
			t.Errorf("POST as %q: %d %v", ctype, st, m)
		}
	}
	// application/json with parameters is JSON.
	if st, m := send("PUT", path, "application/json; charset=utf-8", `{"Name":"alpha-2"}`); st != 200 {
		t.Errorf("application/json; charset=utf-8: %d %v", st, m)
	}
	// Nothing else changed: alpha is still active, no echo/delta key.
	subs = nil
	if _, _, err := mj.List("apikey", &subs, mailjet.Filter("IsMaster", "false")); err != nil {
		t.Fatal(err)
	}
	if len(subs) != 3 {
		t.Errorf("keys after refusals: %+v", subs)
	}
	for _, k := range subs {
		if !k.IsActive || k.Name == "x" {
			t.Errorf("changed by a refused request: %+v", k)
		}
	}
}

// Every REST error path, driven through the official Go client: each is
// Mailjet's RequestError with the status and a message.
func TestOfficialClientErrorPaths(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	apiKey, secret, mj := mjTree(t, a)
	other := a.client()
	otherKey, otherSecret := other.signup("Other", "other@other.example")
	var subs []resources.Apikey
	if _, _, err := mj.List("apikey", &subs, mailjet.Filter("Name", "alpha")); err != nil || len(subs) != 1 {
		t.Fatalf("alpha: %v", err)
	}
	var otherKeys []resources.Apikey
	if _, _, err := mailjet.NewMailjetClient(otherKey, otherSecret, a.srv.URL+"/v3").List("apikey", &otherKeys); err != nil {
		t.Fatal(err)
	}
	// alpha has no secret in hand here; a fresh sub-account key does.
	var created []resources.Apikey
	if err := mj.Post(&mailjet.FullRequest{Info: &mailjet.Request{Resource: "apikey"}, Payload: &resources.Apikey{Name: "delta"}}, &created); err != nil {
		t.Fatal(err)
	}
	subClient := mailjet.NewMailjetClient(created[0].APIKey, created[0].SecretKey, a.srv.URL+"/v3")
	var keys []resources.Apikey
	for _, tc := range []struct {
		name   string
		call   func() error
		status int
		text   string
	}{
		{"bad secret", func() error {
			_, _, err := mailjet.NewMailjetClient(apiKey, otherSecret, a.srv.URL+"/v3").List("apikey", &keys)
			return err
		}, 401, "authentication"},
		{"another tenant's key", func() error {
			return mj.Get(&mailjet.Request{Resource: "apikey", ID: otherKeys[0].ID}, &keys)
		}, 404, ""},
		{"unknown sort", func() error {
			_, _, err := mj.List("apikey", &keys, mailjet.Sort("Colour", mailjet.SortAsc))
			return err
		}, 400, "Colour"},
		{"Limit over 1000", func() error { _, _, err := mj.List("apikey", &keys, mailjet.Filter("Limit", "5000")); return err }, 400, "1000"},
		{"IsActive filter", func() error { _, _, err := mj.List("apikey", &keys, mailjet.Filter("isActive", "maybe")); return err }, 400, "IsActive"},
		{"delete", func() error { return mj.Delete(&mailjet.Request{Resource: "apikey", ID: subs[0].ID}) }, 405, "GET, PUT"},
		{"master deactivation", func() error {
			return mj.Put(&mailjet.FullRequest{Info: &mailjet.Request{Resource: "apikey", AltID: apiKey}, Payload: &resources.Apikey{IsActive: false}}, []string{"IsActive"})
		}, 400, "IsActive: "},
		{"duplicate name", func() error {
			return mj.Post(&mailjet.FullRequest{Info: &mailjet.Request{Resource: "apikey"}, Payload: &resources.Apikey{Name: "Alpha"}}, &keys)
		}, 400, "Name: "},
		{"ACL", func() error {
			return mj.Post(&mailjet.FullRequest{Info: &mailjet.Request{Resource: "apikey"}, Payload: &resources.Apikey{Name: "scoped", ACL: "x"}}, &keys)
		}, 400, "ACL"},
		{"sub-account key writes", func() error {
			return subClient.Post(&mailjet.FullRequest{Info: &mailjet.Request{Resource: "apikey"}, Payload: &resources.Apikey{Name: "sibling"}}, &keys)
		}, 403, "sub-account"},
		{"plan limit", func() error {
			for i := 0; i < 5; i++ {
				err := mj.Post(&mailjet.FullRequest{Info: &mailjet.Request{Resource: "apikey"}, Payload: &resources.Apikey{Name: fmt.Sprintf("more-%d", i)}}, &keys)
				if err != nil {
					return err
				}
			}
			return nil
		}, 409, "limit"},
	} {
		err := tc.call()
		var re mailjet.RequestError
		var rp *mailjet.RequestError
		msg := ""
		switch {
		case errors.As(err, &re):
			msg = re.ErrorMessage
		case errors.As(err, &rp):
			msg = rp.ErrorMessage
		}
		if mjStatus(err) != tc.status || msg == "" || !strings.Contains(msg, tc.text) {
			t.Errorf("%s: %v (status %d, want %d with %q)", tc.name, err, mjStatus(err), tc.status, tc.text)
		}
	}
	// Throttling: after the per-key limit of wrong secrets, even the right one waits (429).
	bad := mailjet.NewMailjetClient(otherKey, secret, a.srv.URL+"/v3")
	for i := 0; i < 30; i++ {
		if _, _, err := bad.List("apikey", &keys); mjStatus(err) == http.StatusTooManyRequests {
			return
		}
	}
	t.Error("no 429 after 30 wrong secrets")
}
