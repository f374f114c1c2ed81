package handlers_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// A French owner (a browser asking for fr-FR) signs up, resets the master
// secret from the gear menu (« Réinitialiser la clé secrète »), reads the
// reveal in French and creates a sub-account. With KEYDESK_SCREENSHOTS set
// it also saves the README's French screenshots (keys-fr.png, reveal-fr.png).
func TestBrowserFrenchOwner(t *testing.T) {
	b := newBrowser(t)
	shots := os.Getenv("KEYDESK_SCREENSHOTS")
	shot := func(name string) {
		t.Helper()
		if shots == "" {
			return
		}
		png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := chromedp.Call(b.ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": "fr-FR,fr;q=0.9"}}); err != nil {
		t.Fatalf("ask for French: %v", err)
	}
	// normText folds spaces (no-break ones too) and shows CSS's uppercase.
	wantText := func(sel, want string) {
		t.Helper()
		want = strings.Join(strings.Fields(want), " ")
		if got := b.normText(sel); !strings.Contains(strings.ToLower(got), strings.ToLower(want)) {
			t.Errorf("%s: %q, want it to contain %q", sel, got, want)
		}
	}

	b.navigate("open /", chromedp.Navigate(b.app.srv.URL+"/"))
	b.wantPath("/login")
	if lang := eval[string](b, `document.documentElement.lang`); lang != "fr" {
		t.Fatalf("/login: lang %q, want fr", lang)
	}
	wantText("main h1", "Se connecter à keydesk")
	b.navigate("follow Créer un compte", chromedp.Click(chromedp.CSS(`a[href="/signup"]`)))
	b.wantPath("/signup")
	wantText("main h1", "Créez votre compte keydesk")
	b.fill("#f-account_name", "Société Exemple")
	b.fill("#f-email", "proprietaire@exemple.fr")
	b.fill("#f-password", testPassword)
	if resp := b.navigate("submit the sign-up form", chromedp.Click(chromedp.CSS(`form[action="/signup"] button[type="submit"]`))); resp.Status != 201 {
		t.Fatalf("sign-up: status %d", resp.Status)
	}
	b.visible(revealModal)
	wantText(revealModal+" h2", "Votre Clé API principale")
	b.finishReveal()
	wantText("main h1", "Gestion des clés API")
	wantText(masterCard+" h2", "Clé API principale")

	// The gear menu, in French, resets the secret.
	b.click(masterGear)
	if got := b.normText(masterCard + ` [data-testid="menu-reset"]`); got != "Réinitialiser la clé secrète" {
		t.Fatalf("gear menu item %q, want « Réinitialiser la clé secrète »", got)
	}
	b.click(masterCard + ` [data-testid="menu-reset"]`)
	b.visible(`[data-testid="reset-dialog"]`)
	wantText(`#reset-dialog h2`, "Réinitialiser la clé secrète de «\u00a0Société Exemple\u00a0»\u202f?")
	// French typography reaches the page: no-break spaces inside « » and
	// before the question mark.
	if got := eval[string](b, `document.querySelector("#reset-dialog h2").textContent`); got != "Réinitialiser la clé secrète de «\u00a0Société Exemple\u00a0»\u202f?" {
		t.Errorf("reset dialog title %q: no-break spaces missing", got)
	}
	wantText(`#reset-dialog legend`, "La clé secrète actuelle cesse de fonctionner")
	wantText(`#reset-dialog`, "Immédiatement")
	b.click(`#reset-dialog input[name="grace"][value="24h"]`)
	b.click(`[data-testid="confirm-reset"]`)
	b.visible(revealModal)
	wantText(revealModal+" h2", "Votre nouvelle clé secrète")
	wantText(revealModal, "ne s’affiche qu’une seule fois")
	wantText(revealModal, "J’ai enregistré la clé secrète")
	wantText(revealModal+` [data-copy-label]`, "Copier")
	shot("reveal-fr.png")
	b.finishReveal()
	wantText(`main [role="status"]`, "La clé secrète a été réinitialisée")
	wantText(masterCard+` [data-testid="grace"]`, "valide jusqu’au")

	// A sub-account, created in French.
	b.click(`[data-testid="create-subaccount"]`)
	b.visible(`[data-testid="create-dialog"]`)
	wantText(`#create-dialog h2`, "Créer un sous-compte")
	b.fill(`#create-dialog #f-name`, "newsletters")
	b.click(`[data-testid="confirm-create"]`)
	b.visible(revealModal)
	wantText(revealModal+" h2", "Sous-compte «\u00a0newsletters\u00a0» créé")
	b.finishReveal()
	wantText(`#sub-heading`, "Clés des sous-comptes")
	wantText(`#sub-heading`, "(1 utilisé sur")
	wantText(`[data-testid="key-row"] [data-testid="status"]`, "Active")
	if lang := eval[string](b, `document.documentElement.lang`); lang != "fr" {
		t.Errorf("/keys: lang %q, want fr", lang)
	}
	shot("keys-fr.png")
}
