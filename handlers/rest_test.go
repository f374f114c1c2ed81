package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	mailjet "github.com/mailjet/mailjet-apiv3-go/v4"
	"github.com/mailjet/mailjet-apiv3-go/v4/resources"

	"keydesk/models"
	"keydesk/models/testdb"
)

// The official Mailjet Go client, pointed at keydesk, works unchanged.
func TestOfficialMailjetClientManagesKeys(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	apiKey, secret := c.signup("Acme Mail", "owner@acme.example")
	testdb.Must(t, a.store.DB().Table("accounts").Where("name = ?", "Acme Mail").Update("plan", "essential"))
	mj := mailjet.NewMailjetClient(apiKey, secret, a.srv.URL+"/v3")

	var keys []resources.Apikey
	count, total, err := mj.List("apikey", &keys)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if count != 1 || total != 1 || len(keys) != 1 || keys[0].APIKey != apiKey || !keys[0].IsMaster || !keys[0].IsActive ||
		keys[0].SecretKey != "" || keys[0].CreatedAt == nil || keys[0].CreatedAt.IsZero() || keys[0].Runlevel != resources.RunNormal || keys[0].UserID == 0 {
		t.Fatalf("List: count %d total %d %+v", count, total, keys)
	}

	// Create a sub-account key: the one response with its SecretKey.
	var created []resources.Apikey
	err = mj.Post(&mailjet.FullRequest{Info: &mailjet.Request{Resource: "apikey"}, Payload: &resources.Apikey{Name: "newsletters"}}, &created)
	if err != nil {
		t.Fatalf("Post: %v", err)
	}
	if len(created) != 1 || created[0].IsMaster || created[0].Name != "newsletters" || !models.ValidSecretFormat(created[0].SecretKey) {
		t.Fatalf("Post: %+v", created)
	}
	sub := created[0]
	if _, err := a.store.Verify(context.Background(), sub.APIKey, sub.SecretKey); err != nil {
		t.Fatalf("created credentials do not verify: %v", err)
	}

	// Read it back by ID: no secret any more.
	var got []resources.Apikey
	if err := mj.Get(&mailjet.Request{Resource: "apikey", ID: sub.ID}, &got); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if len(got) != 1 || got[0].APIKey != sub.APIKey || got[0].SecretKey != "" {
		t.Fatalf("Get: %+v", got)
	}

	// Rename, then deactivate.
	if err := mj.Put(&mailjet.FullRequest{Info: &mailjet.Request{Resource: "apikey", ID: sub.ID}, Payload: &resources.Apikey{Name: "news-eu"}}, []string{"Name"}); err != nil {
		t.Fatalf("Put Name: %v", err)
	}
	if err := mj.Put(&mailjet.FullRequest{Info: &mailjet.Request{Resource: "apikey", ID: sub.ID}, Payload: &resources.Apikey{IsActive: false}}, []string{"IsActive"}); err != nil {
		t.Fatalf("Put IsActive: %v", err)
	}
	got = nil
	if err := mj.Get(&mailjet.Request{Resource: "apikey", ID: sub.ID}, &got); err != nil {
		t.Fatal(err)
	}
	if got[0].Name != "news-eu" || got[0].IsActive {
		t.Fatalf("after Put: %+v", got[0])
	}
	// The deactivated key no longer authenticates.
	subClient := mailjet.NewMailjetClient(sub.APIKey, sub.SecretKey, a.srv.URL+"/v3")
	var none []resources.Apikey
	_, _, err = subClient.List("apikey", &none)
	var rerr mailjet.RequestError
	if !errors.As(err, &rerr) || rerr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("deactivated key: %v", err)
	}
	// Filters and paging.
	keys = nil
	count, total, err = mj.List("apikey", &keys, mailjet.Filter("IsMaster", "false"))
	if err != nil || count != 1 || total != 1 || keys[0].ID != sub.ID {
		t.Fatalf("IsMaster=false: %d %d %v %+v", count, total, err, keys)
	}
	keys = nil
	count, total, err = mj.List("apikey", &keys, mailjet.Filter("Limit", "1"), mailjet.Filter("Offset", "1"))
	if err != nil || count != 1 || total != 2 || keys[0].ID != sub.ID {
		t.Fatalf("Limit/Offset: %d %d %v %+v", count, total, err, keys)
	}
}

func restDo(t *testing.T, a *app, method, path, user, pass, body string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, a.srv.URL+path, strings.NewReader(body))
	if user != "" || pass != "" {
		req.SetBasicAuth(user, pass)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: not JSON (%d): %s", method, path, res.StatusCode, b)
	}
	return res.StatusCode, m, res.Header
}

func TestRESTErrorsAreMailjetShaped(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	apiKey, secret := c.signup("Acme Mail", "owner@acme.example")
	other := a.client()
	otherKey, otherSecret := other.signup("Other", "other@other.example")

	check := func(name string, status int, m map[string]any, want int) {
		t.Helper()
		if status != want {
			t.Errorf("%s: status %d, want %d (%v)", name, status, want, m)
			return
		}
		if _, ok := m["ErrorInfo"].(string); !ok || m["ErrorMessage"] == "" || m["StatusCode"] != float64(want) {
			t.Errorf("%s: not a Mailjet error: %v", name, m)
		}
	}
	for name, auth := range map[string][2]string{
		"no auth":       {"", ""},
		"wrong secret":  {apiKey, otherSecret},
		"unknown key":   {strings.Repeat("a", 32), secret},
		"malformed key": {"nope", secret},
	} {
		st, m, h := restDo(t, a, "GET", "/v3/REST/apikey", auth[0], auth[1], "")
		check(name, st, m, 401)
		if h.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate", name)
		}
	}
	// One message for every credential failure.
	_, m1, _ := restDo(t, a, "GET", "/v3/REST/apikey", apiKey, otherSecret, "")
	_, m2, _ := restDo(t, a, "GET", "/v3/REST/apikey", strings.Repeat("b", 32), secret, "")
	if m1["ErrorMessage"] != m2["ErrorMessage"] {
		t.Error("credential failures are distinguishable")
	}
	// Malformed Authorization header.
	req, _ := http.NewRequest("GET", a.srv.URL+"/v3/REST/apikey", nil)
	req.Header.Set("Authorization", "Basic !!!not-base64")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 401 {
		t.Errorf("malformed Authorization: %d", res.StatusCode)
	}
	res.Body.Close()

	// Another tenant's ID is 404; bad input is 400.
	_, mo, _ := restDo(t, a, "GET", "/v3/REST/apikey", otherKey, otherSecret, "")
	otherID := mo["Data"].([]any)[0].(map[string]any)["ID"].(float64)
	st, m, _ := restDo(t, a, "GET", "/v3/REST/apikey/"+jsonNum(otherID), apiKey, secret, "")
	check("other tenant's ID", st, m, 404)
	st, m, _ = restDo(t, a, "PUT", "/v3/REST/apikey/"+otherKey, apiKey, secret, `{"Name":"mine"}`)
	check("other tenant's key by API key", st, m, 404)
	for name, tc := range map[string]struct{ method, path, body string }{
		"Limit too big":  {"GET", "/v3/REST/apikey?Limit=1001", ""},
		"Limit negative": {"GET", "/v3/REST/apikey?Limit=-1", ""},
		"Offset text":    {"GET", "/v3/REST/apikey?Offset=x", ""},
		"IsActive text":  {"GET", "/v3/REST/apikey?IsActive=maybe", ""},
		"body not JSON":  {"POST", "/v3/REST/apikey", "{"},
		"no Name":        {"POST", "/v3/REST/apikey", `{}`},
		"Name not text":  {"POST", "/v3/REST/apikey", `{"Name": 5}`},
		"read-only prop": {"POST", "/v3/REST/apikey", `{"Name":"x","SecretKey":"kd_live_x"}`},
		"unknown prop":   {"PUT", "/v3/REST/apikey/1", `{"Colour":"red"}`},
		"empty Name":     {"POST", "/v3/REST/apikey", `{"Name":"  "}`},
		"master off":     {"PUT", "/v3/REST/apikey/" + apiKey, `{"IsActive":false}`},
	} {
		st, m, _ := restDo(t, a, tc.method, tc.path, apiKey, secret, tc.body)
		check(name, st, m, 400)
	}
	// The console's session cookie is not accepted on /v3.
	req, _ = http.NewRequest("GET", a.srv.URL+"/v3/REST/apikey", nil)
	for _, ck := range c.http.Jar.Cookies(req.URL) {
		req.AddCookie(ck)
	}
	if res, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 401 {
		t.Errorf("session cookie accepted on /v3: %d", res.StatusCode)
	}
	res.Body.Close()
}

func jsonNum(f float64) string {
	return strings.TrimSuffix(strings.TrimSuffix(jsonFloat(f), ".0"), ".")
}

func jsonFloat(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}

func TestRESTSubaccountKeySeesOnlyItself(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	apiKey, secret := c.signup("Acme Mail", "owner@acme.example")
	st, m, h := restDo(t, a, "POST", "/v3/REST/apikey", apiKey, secret, `{"Name":"newsletters"}`)
	if st != 201 || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("create: %d %v", st, h)
	}
	d := m["Data"].([]any)[0].(map[string]any)
	subKey, subSecret := d["APIKey"].(string), d["SecretKey"].(string)
	st, m, _ = restDo(t, a, "GET", "/v3/REST/apikey", subKey, subSecret, "")
	if st != 200 || m["Count"] != float64(1) || m["Total"] != float64(1) || m["Data"].([]any)[0].(map[string]any)["APIKey"] != subKey {
		t.Fatalf("sub-account list: %d %v", st, m)
	}
	st, _, _ = restDo(t, a, "GET", "/v3/REST/apikey/"+apiKey, subKey, subSecret, "")
	if st != 404 {
		t.Fatalf("sub-account reads its parent's key: %d", st)
	}
	st, _, _ = restDo(t, a, "POST", "/v3/REST/apikey", subKey, subSecret, `{"Name":"sibling"}`)
	if st != 403 {
		t.Fatalf("sub-account created a key: %d", st)
	}
	st, _, _ = restDo(t, a, "PUT", "/v3/REST/apikey/"+subKey, subKey, subSecret, `{"Name":"renamed"}`)
	if st != 403 {
		t.Fatalf("sub-account renamed itself: %d", st)
	}
	// At the plan limit (free: 1) the master key gets a clear refusal.
	st, m, _ = restDo(t, a, "POST", "/v3/REST/apikey", apiKey, secret, `{"Name":"second"}`)
	if st < 400 || st >= 500 || !strings.Contains(strings.ToLower(m["ErrorMessage"].(string)), "limit") {
		t.Fatalf("over the limit: %d %v", st, m)
	}
	// Countonly.
	st, m, _ = restDo(t, a, "GET", "/v3/REST/apikey?Countonly=1", apiKey, secret, "")
	if st != 200 || m["Count"] != float64(2) || m["Total"] != float64(2) || len(m["Data"].([]any)) != 0 {
		t.Fatalf("Countonly: %v", m)
	}
}

func TestRESTAuthIsThrottled(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	apiKey, secret := c.signup("Acme Mail", "owner@acme.example")
	// A well-formed secret of another key: right format, wrong pair.
	_, wrong := a.client().signup("Other Mail", "owner@other.example")
	for i := 0; i < models.DefaultThrottle.PerPair; i++ {
		if st, _, _ := restDo(t, a, "GET", "/v3/REST/apikey", apiKey, wrong, ""); st != 401 {
			t.Fatalf("attempt %d: %d", i, st)
		}
	}
	st, m, h := restDo(t, a, "GET", "/v3/REST/apikey", apiKey, secret, "")
	if st != 429 || h.Get("Retry-After") == "" || m["StatusCode"] != float64(429) {
		t.Fatalf("after %d failures the right secret got %d %v", models.DefaultThrottle.PerPair, st, m)
	}
}

// issue 13 #1: a master key's default list is served from an encoding kept
// with the tree cache; every change to the tree (REST create and rename,
// console rename and deactivation) shows in the next answer, and other
// queries are answered from the same keys.
func TestRESTDefaultListFollowsEveryChange(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	apiKey, secret := c.signup("Acme Mail", "owner@acme.example")
	list := func() []map[string]any {
		t.Helper()
		st, m, _ := restDo(t, a, "GET", "/v3/REST/apikey", apiKey, secret, "")
		if st != 200 {
			t.Fatalf("list: %d %v", st, m)
		}
		var out []map[string]any
		for _, d := range m["Data"].([]any) {
			out = append(out, d.(map[string]any))
		}
		if m["Count"] != float64(len(out)) {
			t.Fatalf("Count %v for %d keys", m["Count"], len(out))
		}
		return out
	}
	if l := list(); len(l) != 1 || l[0]["Name"] != "Acme Mail" {
		t.Fatalf("first list: %v", l)
	}
	if l := list(); len(l) != 1 {
		t.Fatalf("second list: %v", l)
	}
	st, m, _ := restDo(t, a, "POST", "/v3/REST/apikey", apiKey, secret, `{"Name":"newsletters"}`)
	if st != 201 {
		t.Fatalf("create: %d %v", st, m)
	}
	subKey := m["Data"].([]any)[0].(map[string]any)["APIKey"].(string)
	if l := list(); len(l) != 2 || l[1]["Name"] != "newsletters" {
		t.Fatalf("after a REST create: %v", l)
	}
	if st, m, _ = restDo(t, a, "PUT", "/v3/REST/apikey/"+subKey, apiKey, secret, `{"Name":"letters"}`); st != 200 {
		t.Fatalf("rename: %d %v", st, m)
	}
	if l := list(); l[1]["Name"] != "letters" {
		t.Fatalf("after a REST rename: %v", l)
	}
	id := c.keyIDs()["letters"]
	c.submit("/keys/"+id+"/rename", "/keys/"+id+"/rename", url.Values{"name": {"weekly"}})
	if l := list(); l[1]["Name"] != "weekly" {
		t.Fatalf("after a console rename: %v", l)
	}
	c.submit("/keys/"+id+"/deactivate", "/keys/"+id+"/deactivate", nil)
	if l := list(); l[1]["IsActive"] != false {
		t.Fatalf("after a console deactivation: %v", l)
	}
	st, m, _ = restDo(t, a, "GET", "/v3/REST/apikey?IsActive=true", apiKey, secret, "")
	if st != 200 || m["Count"] != float64(1) || m["Total"] != float64(1) {
		t.Fatalf("filtered list: %d %v", st, m)
	}
	st, m, _ = restDo(t, a, "GET", "/v3/REST/apikey?Limit=1&Offset=1", apiKey, secret, "")
	if st != 200 || m["Count"] != float64(1) || m["Total"] != float64(2) || m["Data"].([]any)[0].(map[string]any)["Name"] != "weekly" {
		t.Fatalf("paged list: %d %v", st, m)
	}
}
