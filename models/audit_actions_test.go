package models_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"keydesk/models"
)

// Every action an operation writes can be picked in the audit filter: an
// action missing from the list is refused as "unknown" by the page.
func TestAuditActionsListsEveryAction(t *testing.T) {
	t.Parallel()
	list := models.AuditActions()
	for _, a := range []string{models.ActionOldSecretEnded, models.ActionSecretReset, models.ActionAuditChainKeyed} {
		if !slices.Contains(list, a) {
			t.Errorf("AuditActions has no %q: the audit page cannot filter on it", a)
		}
	}
	seen := map[string]bool{}
	for _, a := range list {
		if seen[a] {
			t.Errorf("%q listed twice", a)
		}
		seen[a] = true
	}
}

// Every audit action is declared in audit_actions.go and offered by the
// filter menu: an action written but missing from AuditActions could not be
// filtered on (the page refuses an unknown action).
func TestEveryAuditActionIsInOneFileAndInTheFilterMenu(t *testing.T) {
	t.Parallel()
	offered := map[string]bool{}
	for _, a := range models.AuditActions() {
		if offered[a] {
			t.Errorf("AuditActions lists %q twice", a)
		}
		offered[a] = true
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	declared := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, id := range vs.Names {
				if !strings.HasPrefix(id.Name, "Action") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				if name != "audit_actions.go" {
					t.Errorf("%s declares audit action %s outside audit_actions.go", name, id.Name)
				}
				v, _ := strconv.Unquote(lit.Value)
				declared++
				if !offered[v] {
					t.Errorf("audit action %s (%q) is not in AuditActions: the filter would refuse it", id.Name, v)
				}
			}
			return true
		})
	}
	if declared < 20 {
		t.Fatalf("found only %d audit action constants; the scan is broken", declared)
	}
}
