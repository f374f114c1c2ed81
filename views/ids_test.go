package views

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Every message ID the code asks for by name is in the catalog: T, TN and
// the Localizer's methods return the ID itself for an unknown one, so a
// typo or a forgotten entry would show "people.off" to the reader. IDs
// built at run time ("plan."+name) are not checked here.
func TestEveryMessageIDUsedIsInTheCatalog(t *testing.T) {
	ids, err := Messages().IDs("en")
	if err != nil {
		t.Fatal(err)
	}
	use := regexp.MustCompile(`\b(?:T|TN)\((?:ctx|c|r\.Context\(\)), "([^"]+)"\s*[,)]|\.(?:T|TN)\("([^"]+)"\s*[,)]`)
	seen := 0
	for _, dir := range []string{".", "../handlers", "../web"} {
		files, err := filepath.Glob(filepath.Join(dir, "*"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if !(strings.HasSuffix(f, ".templ") || strings.HasSuffix(f, ".go")) || strings.HasSuffix(f, "_templ.go") || strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range use.FindAllStringSubmatch(string(src), -1) {
				id := m[1] + m[2]
				seen++
				if !slices.Contains(ids, id) {
					t.Errorf("%s asks for message %q, which en.toml lacks", f, id)
				}
			}
		}
	}
	if seen < 100 {
		t.Fatalf("found only %d uses of the catalog: the scan no longer matches how the code calls it", seen)
	}
}
