package handlers

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"keydesk/models"
	"keydesk/models/testdb"
)

// failingExportStore streams some entries, then fails as a database that
// goes away would.
type failingExportStore struct {
	auditStore
	rows int
}

func (f *failingExportStore) ExportAudit(ctx context.Context, actor models.Actor, flt models.AuditFilter, format string,
	begin func(*models.AuditHead) error, emit func(models.AuditEntry) error) (*models.AuditHead, error) {
	h := &models.AuditHead{Seq: 7, Entry: 5000, Link: strings.Repeat("a", 64), Hash: strings.Repeat("b", 64), At: time.Now(), Sig: strings.Repeat("c", 64)}
	if err := begin(h); err != nil {
		return h, err
	}
	for i := range f.rows {
		if err := emit(models.AuditEntry{ID: uint64(5000 - i), At: time.Now(), Action: models.ActionKeyRenamed, Details: "{}"}); err != nil {
			return h, err
		}
	}
	return h, errors.New("models: audit export: connection reset by the database")
}

// An export that cannot complete ends without the signed trailer (and
// without the row-count trailer), the client sees a broken download, and
// the log says why.
func TestAuditExportThatCannotFinishFailsVisibly(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"csv", "jsonl"} {
		t.Run(format, func(t *testing.T) {
			logs := &testdb.LogBuffer{}
			h := &auditHandlers{store: &failingExportStore{rows: 2500}, log: slog.New(slog.NewTextHandler(logs, nil))}
			e := echo.New()
			e.POST("/audit/export", h.export)
			srv := httptest.NewServer(e)
			defer srv.Close()
			res, err := http.Post(srv.URL+"/audit/export?format="+format, "application/x-www-form-urlencoded", nil)
			if err != nil {
				t.Fatal(err)
			}
			body, readErr := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || len(body) == 0 {
				t.Fatalf("status %d, %d bytes", res.StatusCode, len(body))
			}
			if readErr == nil {
				t.Fatalf("the cut export reads as a complete download (%d bytes)", len(body))
			}
			if strings.Contains(string(body), `"type":"head"`) || res.Trailer.Get("X-Keydesk-Export-Rows") != "" {
				t.Fatal("a cut export carries the completion trailer")
			}
			if out := logs.String(); !strings.Contains(out, "audit export cut short") || !strings.Contains(out, "connection reset by the database") {
				t.Fatalf("the log does not say why: %s", out)
			}
		})
	}
}
