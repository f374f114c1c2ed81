package views

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Every language has every message of en.toml, and nothing en.toml lacks.
func TestCatalogIsComplete(t *testing.T) {
	cat := Messages()
	if len(cat.Languages) < 2 || cat.Languages[0].Tag != "en" || !cat.Has("fr") {
		t.Fatalf("languages %v, want English first and French", cat.Languages)
	}
	en, err := cat.IDs("en")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range cat.Languages[1:] {
		ids, err := cat.IDs(l.Tag)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range en {
			if !slices.Contains(ids, id) {
				t.Errorf("%s.toml lacks %s", l.Tag, id)
			}
		}
		for _, id := range ids {
			if !slices.Contains(en, id) {
				t.Errorf("%s.toml has %s, which en.toml does not", l.Tag, id)
			}
		}
	}
}

// Every message renders in every language without falling back to its
// ID, and plural messages have every CLDR form their language uses (French
// "many" included: 1 000 000 is "1 000 000 sous-comptes").
func TestEveryMessageRendersInEveryLanguage(t *testing.T) {
	cat := Messages()
	en, err := cat.IDs("en")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := localeFiles.ReadFile("locales/en.toml")
	all, _ := flatten(raw)
	for _, l := range cat.Languages {
		loc := cat.Locale(l.Tag)
		for _, id := range en {
			if _, plural := all[id].(map[string]any); plural {
				for _, n := range []int{0, 1, 2, 5, 21, 1000000} {
					if _, _, err := loc.loc.LocalizeWithTag(pluralConfig(id, n)); err != nil {
						t.Errorf("%s: %s with %d: %v", l.Tag, id, n, err)
					}
				}
				continue
			}
			if got := loc.T(id, Args{}); got == id || got == "" {
				t.Errorf("%s: %s renders as %q", l.Tag, id, got)
			}
		}
	}
}

// French typography: typographic apostrophes, a no-break space before
// « : » and a narrow one before ; ? !, no-break spaces inside « ».
func TestFrenchTypography(t *testing.T) {
	raw, _ := localeFiles.ReadFile("locales/fr.toml")
	all, err := flatten(raw)
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		re   *regexp.Regexp
		what string
	}{
		{regexp.MustCompile(`'`), "a straight apostrophe (use ’)"},
		{regexp.MustCompile(`[^\x{00A0}\x{202F}}]:(\s|$)`), "a colon without a no-break space before it"},
		{regexp.MustCompile(`[^\x{202F}\x{00A0}][;?!]`), "; ? or ! without a narrow no-break space before it"},
		{regexp.MustCompile(`«[^\x{00A0}\x{202F}]|[^\x{00A0}\x{202F}]»`), "« » without no-break spaces inside"},
		{regexp.MustCompile(`"`), "straight quotes (use « »)"},
		{regexp.MustCompile(`n° `), "n° without a no-break space after it"},
	}
	for id, v := range all {
		var texts []string
		switch v := v.(type) {
		case string:
			texts = []string{v}
		case map[string]any:
			for _, f := range v {
				if s, ok := f.(string); ok {
					texts = append(texts, s)
				}
			}
		}
		for _, s := range texts {
			s = regexp.MustCompile(`\{\{[^}]*\}\}`).ReplaceAllString(s, "X")
			for _, b := range bad {
				if b.re.MatchString(s) {
					t.Errorf("fr %s: %s: %q", id, b.what, s)
				}
			}
		}
	}
}

// Sentences written in English below the views come out in French, with
// their numbers formatted the French way; unknown ones are left alone.
func TestMsgTranslatesEnglishSentences(t *testing.T) {
	fr := Messages().Locale("fr")
	for in, want := range map[string]string{
		"Enter your password to confirm.":                                                         "Saisissez votre mot de passe pour confirmer.",
		"Use at least 12 characters.":                                                             "12 caractères au moins.",
		"Sub-account \"news\" created":                                                            "Sous-compte «\u00a0news\u00a0» créé",
		"entry #48211 was altered: its content does not match its hash":                           "l’entrée n°\u00a048\u202f211 a été modifiée\u00a0: son contenu ne correspond plus à son empreinte",
		"anchor head seq 3 (entry #12) on line 4 has an invalid signature: forged or edited":      "la tête n°\u00a03 de l’ancre (entrée n°\u00a012) à la ligne 4 porte une signature non valide\u00a0: falsifiée ou modifiée",
		"signed head seq 2 (entry #9) in the database has an invalid signature: forged or edited": "la tête signée n°\u00a02 (entrée n°\u00a09) dans la base porte une signature non valide\u00a0: falsifiée ou modifiée",
		"The audit log does not verify (entry #5 was altered: its content does not match its hash). A tampered log is never signed, so it cannot be exported; run keydesk audit verify.": "Le journal d’audit n’est pas vérifié (l’entrée n°\u00a05 a été modifiée\u00a0: son contenu ne correspond plus à son empreinte). Un journal altéré n’est jamais signé et ne peut donc pas être exporté\u202f; lancez keydesk audit verify.",
		"More than 20 actors start with “ana”: type more of it.":                   "Plus de 20 auteurs commencent par «\u00a0ana\u00a0»\u00a0: précisez davantage.",
		"Unknown action filter “key.eaten” was ignored.":                           "Le filtre d’action inconnu «\u00a0key.eaten\u00a0» a été ignoré.",
		"anchor head seq 3 (entry #12) has an invalid signature: forged or edited": "la tête n°\u00a03 de l’ancre (entrée n°\u00a012) porte une signature non valide\u00a0: falsifiée ou modifiée",
		"something the catalog does not know":                                      "something the catalog does not know",
	} {
		if got := fr.Msg(in); got != want {
			t.Errorf("Msg(%q) = %q, want %q", in, got, want)
		}
		if got := Messages().Locale("en").Msg(in); got != in {
			t.Errorf("English Msg(%q) = %q", in, got)
		}
	}
}

func TestNumbersDatesAndPlurals(t *testing.T) {
	ctxFR := WithLocale(context.Background(), Messages().Locale("fr"))
	ctxEN := context.Background()
	day := time.Date(2026, 11, 27, 14, 3, 0, 0, time.UTC)
	for _, c := range []struct{ got, want string }{
		{Num(ctxFR, 48211), "48\u202f211"},
		{Num(ctxEN, 48211), "48,211"},
		{Num(ctxFR, -1234567), "-1\u202f234\u202f567"},
		{Num(ctxFR, 999), "999"},
		{Date(ctxFR, day), "27 nov. 2026"},
		{Date(ctxEN, day), "27 Nov 2026"},
		{At(ctxEN, day), "2026-11-27 14:03 UTC"},
		{At(ctxFR, day), "27 nov. 2026 à 14:03 UTC"},
		{TN(ctxFR, "common.subaccounts", 0), "0 sous-compte"},
		{TN(ctxFR, "common.subaccounts", 1), "1 sous-compte"},
		{TN(ctxFR, "common.subaccounts", 2), "2 sous-comptes"},
		{TN(ctxFR, "common.subaccounts", 1000000), "1\u202f000\u202f000 sous-comptes"},
		{TN(ctxEN, "common.subaccounts", 1), "1 sub-account"},
		{TN(ctxEN, "common.subaccounts", 0), "0 sub-accounts"},
		{Ago(ctxFR, day.Add(-3*24*time.Hour), day), "il y a 3 jours"},
		{Ago(ctxEN, day.Add(-time.Minute), day), "1 minute ago"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestAcceptLanguage(t *testing.T) {
	cat := Messages()
	for h, want := range map[string]string{
		"":                        "en",
		"fr-FR,fr;q=0.9,en;q=0.8": "fr",
		"fr-CA":                   "fr",
		"de-DE,de;q=0.9":          "en",
		"de-DE,fr;q=0.5":          "fr",
		"en-GB,en;q=0.9,fr;q=0.8": "en",
		"*":                       "en",
		"garbage;;;q=x":           "en",
	} {
		if got := cat.Match(h); got != want {
			t.Errorf("Accept-Language %q: %q, want %q", h, got, want)
		}
	}
	if strings.Join([]string{cat.Languages[0].Name, cat.Languages[1].Name}, ",") != "English,Français" {
		t.Errorf("language names %v", cat.Languages)
	}
}

// A sentence with a count written below the views takes the form its
// count needs, in English too: "Try again in 1 minutes." was shown as
// such (issue 14 #3).
func TestMsgPluralSentences(t *testing.T) {
	en, fr := Messages().Locale("en"), Messages().Locale("fr")
	for _, c := range []struct{ in, en, fr string }{
		{"Too many sign-ups from your network. Try again in 1 minutes.",
			"Too many sign-ups from your network. Try again in 1 minute.",
			"Trop d’inscriptions depuis votre réseau. Réessayez dans 1 minute."},
		{"Too many sign-ups from your network. Try again in 5 minutes.",
			"Too many sign-ups from your network. Try again in 5 minutes.",
			"Trop d’inscriptions depuis votre réseau. Réessayez dans 5 minutes."},
		{"Too many attempts. Try again in 1 minutes.",
			"Too many attempts. Try again in 1 minute.",
			"Trop de tentatives. Réessayez dans 1 minute."},
		{"Too many attempts. Try again in 2 minutes.",
			"Too many attempts. Try again in 2 minutes.",
			"Trop de tentatives. Réessayez dans 2 minutes."},
		{"The account already uses 1 sub-accounts; the limit cannot be lower than that.",
			"The account already uses 1 sub-account; the limit cannot be lower than that.",
			"Le compte utilise déjà 1 sous-compte\u202f; la limite ne peut pas être inférieure."},
		{"The account already uses 1234 sub-accounts; the limit cannot be lower than that.",
			"The account already uses 1,234 sub-accounts; the limit cannot be lower than that.",
			"Le compte utilise déjà 1\u202f234 sous-comptes\u202f; la limite ne peut pas être inférieure."},
	} {
		if got := en.Msg(c.in); got != c.en {
			t.Errorf("English Msg(%q) = %q, want %q", c.in, got, c.en)
		}
		if got := fr.Msg(c.in); got != c.fr {
			t.Errorf("French Msg(%q) = %q, want %q", c.in, got, c.fr)
		}
	}
	ctxFR := WithLocale(context.Background(), fr)
	for _, c := range []struct{ got, want string }{
		{TN(context.Background(), "people.tfa_on", 1), "Two-factor sign-in is on. 1 recovery code left."},
		{TN(context.Background(), "people.tfa_on", 9), "Two-factor sign-in is on. 9 recovery codes left."},
		{TN(ctxFR, "people.tfa_on", 1), "La connexion en deux étapes est activée. Il vous reste 1 code de secours."},
		{TN(context.Background(), "keys.overdue", 1, Args{"Days": TN(context.Background(), "time.days", 1)}), "1 secret key is older than 1 day:"},
		{TN(ctxFR, "keys.overdue", 2, Args{"Days": TN(ctxFR, "time.days", 90)}), "2 clés secrètes ont plus de 90 jours\u00a0:"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// Every message whose text holds a number next to a noun takes its form
// from that number: a plural table chosen by {{.Count}}. A number other
// than the count ({{.Days}}, {{.Minutes}}) must come in as a phrase
// already in its form ("1 day"), or be a fixed figure the program never
// sets to 1 (listed here).
func TestCountsNextToNounsArePlural(t *testing.T) {
	fixed := map[string]bool{
		"common.password_sudo": true, // models.SudoWindow, 15 minutes
		"usage.empty":          true, // the chart's 30 days
		"usage.chart_title":    true,
		"msg.password_min":     true, // models.PasswordMinLen, 12
		"msg.password_max":     true,
		"msg.prefix_names":     true, // 20 names
		// "of 1 sub-accounts": the noun counts the used ones, the form
		// follows {{.Count}} ("1 of 5 sub-accounts used", "0/1 sub-accounts").
		"subaccounts.usage": true,
		"support.usage":     true,
	}
	noun := regexp.MustCompile(`\{\{\.(\w+)\}\} (minutes?|days?|hours?|seconds?|sub-accounts?|keys?|codes?|recovery codes?|entries|entry|characters?)\b`)
	raw, _ := localeFiles.ReadFile("locales/en.toml")
	all, err := flatten(raw)
	if err != nil {
		t.Fatal(err)
	}
	for id, v := range all {
		var texts []string
		plural := false
		switch v := v.(type) {
		case string:
			texts = []string{v}
		case map[string]any:
			plural = true
			for _, f := range v {
				if s, ok := f.(string); ok {
					texts = append(texts, s)
				}
			}
		}
		for _, s := range texts {
			for _, m := range noun.FindAllStringSubmatch(s, -1) {
				if (plural && m[1] == "Count") || fixed[id] {
					continue
				}
				t.Errorf("en %s: %q: {{.%s}} %s takes no plural form from its number", id, s, m[1], m[2])
			}
		}
	}
}

// Times are shown in the reader's time zone and name it; days of the
// usage counters stay UTC days (issue 14 #4).
func TestTimesInTheReadersZone(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	saoPaulo, _ := time.LoadLocation("America/Sao_Paulo")
	fr := WithZone(WithLocale(context.Background(), Messages().Locale("fr")), paris)
	en := WithZone(context.Background(), paris)
	winter := time.Date(2026, 11, 27, 23, 30, 0, 0, time.UTC)
	summer := time.Date(2026, 7, 1, 8, 5, 9, 0, time.UTC)
	for _, c := range []struct{ got, want string }{
		{At(en, winter), "2026-11-28 00:30 CET"},
		{At(fr, winter), "28 nov. 2026 à 00:30 CET"},
		{At(en, summer), "2026-07-01 10:05 CEST"},
		{At(WithZone(context.Background(), saoPaulo), summer), "2026-07-01 05:05 UTC-03:00"},
		{At(context.Background(), winter), "2026-11-27 23:30 UTC"},
		{AtSeconds(en, summer), "2026-07-01 10:05:09"},
		{Date(en, winter), "28 Nov 2026"},
		{Day(en, time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)), "27 Nov 2026"},
		{ZoneName(fr), "Europe/Paris"},
		{ZoneName(context.Background()), "UTC"},
		{T(fr, "audit.time", Args{"Zone": ZoneName(fr)}), "Heure (Europe/Paris)"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
