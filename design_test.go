package main

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The package boundaries docs/DESIGN.md states ("Never: models →
// echo/templ/web/handlers/views; web → handlers; views → web/handlers or
// the database; handlers → gorm"), checked on the non-test imports of
// every package, so a change that breaks one fails here rather than in a
// review.
func TestPackageBoundariesFromTheDesign(t *testing.T) {
	imports := moduleImports(t)
	forbidden := map[string][]string{
		"models":   {"github.com/labstack/echo", "github.com/a-h/templ", "keydesk/"},
		"web":      {"keydesk/handlers", "keydesk/cli", "keydesk/smtp", "gorm.io/"},
		"views":    {"keydesk/web", "keydesk/handlers", "keydesk/cli", "gorm.io/", "database/sql", "github.com/jackc/", "github.com/glebarez/"},
		"handlers": {"gorm.io/", "database/sql", "keydesk/cli", "keydesk/smtp"},
		"smtp":     {"keydesk/web", "keydesk/handlers", "keydesk/views", "keydesk/cli", "github.com/labstack/echo"},
		"static":   {"keydesk/"},
	}
	for pkg, bad := range forbidden {
		if _, ok := imports[pkg]; !ok {
			t.Errorf("package %s/ is in the design's rules but not in the module", pkg)
		}
		for _, imp := range imports[pkg] {
			for _, b := range bad {
				if imp == strings.TrimSuffix(b, "/") || strings.HasPrefix(imp, b) {
					t.Errorf("%s/ imports %s: docs/DESIGN.md forbids %s → %s", pkg, imp, pkg, b)
				}
			}
		}
	}
	// Only main.go's package and cli/ wire everything; nothing imports cli.
	for pkg, imps := range imports {
		for _, imp := range imps {
			if imp == "keydesk/cli" && pkg != "." {
				t.Errorf("%s/ imports keydesk/cli: only main.go may", pkg)
			}
		}
	}
}

// Every package of the module has its row in docs/DESIGN.md's package
// table, so a newcomer finds what each folder owns.
func TestEveryPackageIsInTheDesign(t *testing.T) {
	design, err := os.ReadFile("docs/DESIGN.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z]+/|main\\.go)` \\|")
	rows := map[string]bool{}
	for _, m := range row.FindAllSubmatch(design, -1) {
		rows[strings.TrimSuffix(string(m[1]), "/")] = true
	}
	for pkg := range moduleImports(t) {
		name := pkg
		if pkg == "." {
			name = "main.go"
		}
		if strings.Contains(pkg, "/") || strings.HasSuffix(pkg, "testdb") {
			continue // test harnesses and nested helpers belong to their parent's row
		}
		if !rows[name] {
			t.Errorf("package %s has no row in docs/DESIGN.md's package table (rows: %v)", pkg, keys(rows))
		}
	}
}

// Files that cite docs/… cite files that exist.
func TestCitedDocsExist(t *testing.T) {
	cite := regexp.MustCompile(`docs/[A-Za-z_-]+\.md`)
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == ".git") {
			return filepath.SkipDir
		}
		if d.IsDir() || !(strings.HasSuffix(path, ".go") || strings.HasSuffix(path, ".md") || strings.HasPrefix(path, ".ci/")) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, c := range cite.FindAllString(string(b), -1) {
			if _, err := os.Stat(c); err != nil {
				t.Errorf("%s cites %s, which is not in the repository", path, c)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// moduleImports maps each package directory of the module ("." for the
// root) to the imports of its non-test, non-generated-test Go files.
func moduleImports(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != "." && (strings.HasPrefix(n, ".") || n == "node_modules" || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir := filepath.Dir(path)
		if _, ok := out[dir]; !ok {
			out[dir] = nil
		}
		for _, s := range f.Imports {
			imp, err := strconv.Unquote(s.Path.Value)
			if err != nil {
				return err
			}
			out[dir] = append(out[dir], imp)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func keys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
