package handlers_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"keydesk/models"
	"keydesk/models/testdb"
)

// TestScreenshots regenerates the README's screenshots into the folder
// named by KEYDESK_SCREENSHOTS (e.g. ../static/screenshots). It is a tool,
// not a check, so without that variable it says so and skips.
func TestScreenshots(t *testing.T) {
	dir := os.Getenv("KEYDESK_SCREENSHOTS")
	if dir == "" {
		t.Skip("set KEYDESK_SCREENSHOTS=<folder> to regenerate the README screenshots")
	}
	b := newBrowser(t)
	a := b.app
	ctx := context.Background()
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b.signUp("Acme Mail", "owner@acme.example")
	shot("reveal.png")
	b.finishReveal()
	actor := a.actorOf("owner@acme.example")
	accountID := actor.AccountID
	a.setPlan(accountID, models.PlanEssential)
	for _, n := range []string{"newsletters", "billing", "eu-client"} {
		if _, _, err := a.store.CreateSubaccount(ctx, actor, n, ""); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := a.store.ListKeys(ctx, actor)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		switch k.Name {
		case "billing":
			testdb.Must(t, a.store.DB().Table("api_keys").Where("id = ?", k.ID).Updates(map[string]any{"secret_set_at": a.store.Now().Add(-140 * 24 * time.Hour), "is_active": false}))
		case "eu-client":
			if _, _, err := a.store.ResetSecret(ctx, actor, k.ID, 24*time.Hour); err != nil {
				t.Fatal(err)
			}
		}
	}
	b.navigate("keys page", chromedp.Navigate(a.srv.URL+"/keys"))
	shot("keys.png")
	b.click(masterGear)
	shot("gear-menu.png")
	b.navigate("audit page", chromedp.Navigate(a.srv.URL+"/audit"))
	shot("audit.png")
	// Some usage to chart: API calls and SMTP messages over the last days.
	for day := 0; day < 12; day++ {
		for _, k := range keys {
			p := models.KeyPrincipal{KeyID: k.ID, AccountID: k.AccountID}
			for i := 0; i < (day*7+int(k.ID)*5)%23; i++ {
				a.store.RecordUse(p, models.ChannelAPI, "203.0.113.7", 0)
			}
			a.store.RecordUse(p, models.ChannelSMTP, "203.0.113.7", (day*3+int(k.ID))%9)
		}
		if err := a.store.FlushUsage(ctx); err != nil {
			t.Fatal(err)
		}
		a.clock.Advance(24 * time.Hour)
	}
	b.logInAs("owner@acme.example", "/keys") // twelve days on, the session has ended
	b.navigate("sub-accounts page", chromedp.Navigate(a.srv.URL+"/subaccounts"))
	shot("subaccounts.png")
	b.navigate("usage page", chromedp.Navigate(a.srv.URL+"/keys/"+strconv.Itoa(int(keys[0].ID))+"/usage"))
	shot("usage.png")
	if _, err := a.store.RequestMoreSubaccounts(ctx, actor, 5, "three new EU clients next month"); err != nil {
		t.Fatal(err)
	}
	a.staffUser(models.RoleSupport, "ana@support.example")
	b.logOutViaMenu()
	b.logInAs("ana@support.example", "/support")
	shot("support.png")
	b.navigate("support account page", chromedp.Navigate(a.srv.URL+"/support/accounts/"+strconv.Itoa(int(accountID))))
	shot("support-account.png")
	b.logOutViaMenu()
	b.logInAs("owner@acme.example", "/keys")
	b.do("narrow viewport", chromedp.EmulateViewport(375, 800))
	b.navigate("keys page on a phone", chromedp.Navigate(a.srv.URL+"/keys"))
	shot("keys-375.png")
}
