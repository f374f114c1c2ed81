package handlers_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"keydesk/models"
)

// postForm posts a form from a goroutine (no t.Fatal there): it returns the
// status, or 0 when the request itself failed.
func (c *client) postForm(path string, form url.Values) int {
	req, err := http.NewRequest(http.MethodPost, c.app.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := c.http.Do(req)
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

// 40 wrong passwords for one account sent at once from one address: the
// attempt is reserved before hashing, so at most the limit is evaluated.
func TestParallelWrongLoginsEvaluateAtMostTheLimit(t *testing.T) {
	a := newApp(t)
	a.client().signup("Acme Mail", "owner@acme.example")
	const n = 40
	clients, tokens := make([]*client, n), make([]string, n)
	for i := range clients {
		clients[i] = a.client()
		tokens[i] = clients[i].csrf("/login")
	}
	before := a.store.PasswordEvaluations()
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			statuses[i] = clients[i].postForm("/login", url.Values{
				"_csrf": {tokens[i]}, "email": {"owner@acme.example"}, "password": {"wrong password " + strconv.Itoa(i)},
			})
		}(i)
	}
	wg.Wait()
	evaluated := a.store.PasswordEvaluations() - before
	count := map[int]int{}
	for _, st := range statuses {
		count[st]++
	}
	limit := models.DefaultThrottle.PerPair
	if evaluated > uint64(limit) || count[http.StatusUnauthorized] > limit {
		t.Fatalf("%d parallel wrong logins: %d passwords evaluated (statuses %v); at most %d may be", n, evaluated, count, limit)
	}
	if count[http.StatusUnauthorized]+count[http.StatusTooManyRequests] != n {
		t.Fatalf("statuses %v: want only 401 and 429", count)
	}
}
