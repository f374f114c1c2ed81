package views

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// templAllowed are the words a template may show as they are: the brand,
// protocol and format names, the same in every language.
var templAllowed = regexp.MustCompile(`\b(keydesk|SMTP|STARTTLS|REST|API|JSONL|JSON|CSV|IP|UTC|Ctrl)\b`)

var (
	templExpr     = regexp.MustCompile(`\{\{.*?\}\}|\{[^{}]*(\{[^{}]*\}[^{}]*)*\}`)
	templTag      = regexp.MustCompile(`<[^<>]*>`)
	templAttr     = regexp.MustCompile(`\b(placeholder|title|aria-label|alt|data-label|label|value)="([^"]*)"`)
	templCall     = regexp.MustCompile(`@(Field|stat|dialogShell|copyButton|Notice|Page|Bare)\((.*)\)`)
	templGoString = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)
	// Catalog look-ups and their values are not literals.
	templCatalogCall = regexp.MustCompile(`\b(T|TN|Msg)\(ctx, "[^"]*"|Args\{[^}]*\}`)
	// An attribute line of a tag written over several lines.
	templAttrLine  = regexp.MustCompile(`^[\w-]+(=("[^"]*")?)?$`)
	templCodeStart = regexp.MustCompile(`^(if |} else|else |for |switch |case |default:|@|//|}|\{\{|templ |\{ children)`)
)

// visible reports whether s, once the allowed words and anything that is
// not a letter are taken out, still says something.
func visible(s string) bool {
	s = templAllowed.ReplaceAllString(s, "")
	letters := 0
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r > 0xC0 && r != '·' && r != '…' && r != '→' && r != '←' && r != '●' && r != '○' && r != '✓' && r != '⚠' && r != '⌘' {
			letters++
		}
	}
	return letters >= 2
}

// untranslated lists templates not converted to the catalog yet (a new
// screen landed before its texts were). Each one is an open item of issue
// 14: convert it, then take it off this list. Keep it empty.
var untranslated = map[string]bool{}

// Templates show only catalog messages: no user-visible English literal in
// a text node, a user-visible attribute or a component's label argument.
func TestTemplatesHaveNoLiteralText(t *testing.T) {
	files, err := filepath.Glob("*.templ")
	if err != nil || len(files) == 0 {
		t.Fatalf("no templates: %v", err)
	}
	for _, f := range files {
		if untranslated[f] {
			t.Logf("%s is not in the catalog yet (untranslated list)", f)
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inTempl := false
		for i, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(line, "templ ") {
				inTempl = true
				continue
			}
			if line == "}" {
				inTempl = false
				continue
			}
			if !inTempl {
				continue
			}
			where := f + ":" + strconv.Itoa(i+1)
			// Labels passed to components.
			if m := templCall.FindStringSubmatch(line); m != nil {
				args := templCatalogCall.ReplaceAllString(m[2], "")
				for _, lit := range templGoString.FindAllStringSubmatch(args, -1) {
					if (strings.ContainsAny(lit[1], " ") || regexp.MustCompile(`[A-Z]`).MatchString(lit[1])) && visible(lit[1]) {
						t.Errorf("%s: literal %q passed to @%s (use T(ctx, …))", where, lit[1], m[1])
					}
				}
				continue
			}
			code := templExpr.ReplaceAllString(line, "")
			for _, m := range templAttr.FindAllStringSubmatch(code, -1) {
				if visible(m[2]) && m[1] != "value" {
					t.Errorf("%s: literal %s=%q (use T(ctx, …))", where, m[1], m[2])
				}
			}
			trimmed := strings.TrimSpace(code)
			if templCodeStart.MatchString(strings.TrimSpace(line)) {
				continue
			}
			if templAttrLine.MatchString(trimmed) {
				continue
			}
			if open := strings.LastIndex(trimmed, "<"); open >= 0 && !strings.Contains(trimmed[open:], ">") {
				// A tag whose attributes go on over the next lines: what
				// comes before it is checked, the tag is not text.
				trimmed = trimmed[:open]
			}
			text := templTag.ReplaceAllString(trimmed, " ")
			if visible(text) {
				t.Errorf("%s: literal text %q (use T(ctx, …))", where, strings.TrimSpace(text))
			}
		}
	}
}
