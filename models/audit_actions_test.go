package models_test

import (
	"slices"
	"testing"

	"keydesk/models"
)

// Every action an operation writes can be picked in the audit filter: an
// action missing from the list is refused as "unknown" by the page.
func TestAuditActionsListsEveryAction(t *testing.T) {
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
