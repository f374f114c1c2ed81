package handlers

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"keydesk/models"
	"keydesk/views"
	"keydesk/web"
)

type auditStore interface {
	AuditLog(ctx context.Context, actor models.Actor, f models.AuditFilter, before, after *models.AuditCursor) (*models.AuditLogView, error)
	AuditHeadBySeq(ctx context.Context, seq uint64) (*models.AuditHead, error)
	ExportAudit(ctx context.Context, actor models.Actor, f models.AuditFilter, format string, begin func(*models.AuditHead) error, emit func(models.AuditEntry) error) (*models.AuditHead, error)
	MarkReviewed(ctx context.Context, actor models.Actor, through uint64, note string) (*models.AuditReview, error)
	Now() time.Time
}

type auditHandlers struct {
	store auditStore
	log   *slog.Logger
}

// parseAuditFilter reads the filter from the query string: input parsing
// only (formats, ranges); what the actor may see is the model's business.
// Its dates are days in zone, the reader's time zone (the one the page's
// times are shown in).
func parseAuditFilter(q url.Values, staff bool, zone *time.Location) (models.AuditFilter, views.AuditFilterValues, map[string]string) {
	v := views.AuditFilterValues{
		From: strings.TrimSpace(q.Get("from")), To: strings.TrimSpace(q.Get("to")), Actor: strings.TrimSpace(q.Get("actor")),
		Target: strings.TrimSpace(q.Get("target")), IP: strings.TrimSpace(q.Get("ip")), Account: strings.TrimSpace(q.Get("account")),
	}
	var f models.AuditFilter
	errs := map[string]string{}
	known := map[string]bool{}
	for _, a := range models.AuditActions() {
		known[a] = true
	}
	for _, a := range q["action"] {
		if known[a] && !hasString(v.Actions, a) {
			v.Actions = append(v.Actions, a)
		} else if !known[a] {
			errs["form"] = "Unknown action filter “" + truncateRunes(a, 40) + "” was ignored."
		}
	}
	f.Actions = v.Actions
	if v.From != "" {
		t, err := time.ParseInLocation("2006-01-02", v.From, zone)
		if err != nil {
			errs["from"] = "Use a date like 2026-11-26."
		} else {
			f.From = &t
		}
	}
	if v.To != "" {
		t, err := time.ParseInLocation("2006-01-02", v.To, zone)
		if err != nil {
			errs["to"] = "Use a date like 2026-11-26."
		} else {
			end := t.AddDate(0, 0, 1).Add(-time.Microsecond) // the whole day, 23 or 25 hours on a DST change
			f.To = &end
		}
	}
	if f.From != nil && f.To != nil && f.From.After(*f.To) {
		errs["to"] = "The end date is before the start date."
	}
	if v.IP != "" {
		if net.ParseIP(v.IP) == nil {
			errs["ip"] = "Enter a full IPv4 or IPv6 address."
		} else {
			f.IP = v.IP
		}
	}
	f.Actor, f.Target = truncateRunes(v.Actor, 254), truncateRunes(v.Target, 254)
	// Staff narrow to any account; people to an account of their tree in
	// their scope (any other answers 404, decided in models).
	if v.Account != "" {
		id, err := strconv.ParseUint(v.Account, 10, 32)
		if err != nil || id == 0 {
			errs["account"] = "Enter an account ID (a number)."
		} else {
			f.AccountID = uint(id)
		}
	}
	return f, v, errs
}

func hasString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n])
	}
	return s
}

// filterQuery is the filter part of the URL (no cursor), so page links and
// exports keep it.
func filterQuery(v views.AuditFilterValues) url.Values {
	q := url.Values{}
	for k, val := range map[string]string{"from": v.From, "to": v.To, "actor": v.Actor, "target": v.Target, "ip": v.IP, "account": v.Account} {
		if val != "" {
			q.Set(k, val)
		}
	}
	for _, a := range v.Actions {
		q.Add("action", a)
	}
	return q
}

var auditNotices = map[string]string{"reviewed": "Review recorded."}

func (h *auditHandlers) page(c echo.Context) error {
	actor := web.Actor(c)
	staff := actor.Role.IsStaff()
	f, values, errs := parseAuditFilter(c.QueryParams(), staff, views.Zone(c.Request().Context()))
	var before, after *models.AuditCursor
	if s := c.QueryParam("before"); s != "" {
		cur, ok := models.ParseAuditCursor(s)
		if !ok {
			errs["form"] = "That page link is not valid; showing the newest entries."
		} else {
			before = &cur
		}
	} else if s := c.QueryParam("after"); s != "" {
		cur, ok := models.ParseAuditCursor(s)
		if !ok {
			errs["form"] = "That page link is not valid; showing the newest entries."
		} else {
			after = &cur
		}
	}
	status := http.StatusOK
	if len(errs) > 0 {
		status = http.StatusBadRequest
	}
	return h.render(c, status, f, values, errs, before, after, "")
}

// render shows the audit log page: the GET itself, and a refused review
// (422), which comes back as the page with the note kept and its error in
// place rather than as a bare error page.
func (h *auditHandlers) render(c echo.Context, status int, f models.AuditFilter, values views.AuditFilterValues, errs map[string]string,
	before, after *models.AuditCursor, note string) error {
	ctx, actor := c.Request().Context(), web.Actor(c)
	staff := actor.Role.IsStaff()
	v, err := h.store.AuditLog(ctx, actor, f, before, after)
	if err != nil {
		return err
	}
	if v.Refused != nil {
		// A prefix too broad to answer from an index: say so on the page.
		errs = maps.Clone(errs)
		for _, k := range []string{"actor", "target"} {
			if msg := v.Refused[k]; msg != "" {
				errs["form"] = msg
			}
		}
		if status == http.StatusOK {
			status = http.StatusBadRequest
		}
	}
	q := filterQuery(values)
	p := views.AuditPageProps{
		Filter: values, Errors: errs, Entries: v.Entries, Status: v.Status, Chain: v.Chain,
		IsStaff: staff, CanReview: v.MayReview,
		Notice: auditNotices[c.QueryParam("done")], Query: q.Encode(), Now: h.store.Now(), Note: note,
	}
	if v.Older != nil {
		oq := filterQuery(values)
		oq.Set("before", v.Older.String())
		p.OlderURL = "/audit?" + oq.Encode()
	}
	if v.Newer != nil {
		nq := filterQuery(values)
		nq.Set("after", v.Newer.String())
		p.NewerURL = "/audit?" + nq.Encode()
	}
	return web.Render(c, status, views.AuditPage(p))
}

var csvHeader = []string{"id", "time_utc", "actor_type", "actor", "actor_role", "account_id", "action", "target_type", "target_id",
	"target_name", "ip", "user_agent", "details", "prev_hash", "hash"}

// csvSafe defuses spreadsheet formulas in user-supplied text (OWASP CSV
// injection): a leading = + - @ tab or CR gets a quote in front.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func optUint(p *uint) string {
	if p == nil {
		return ""
	}
	return strconv.FormatUint(uint64(*p), 10)
}

// exportWriteWindow is how long one batch of an export may take to reach
// the client: the server-wide write timeout is pushed back by this much
// before each batch, so it never cuts a long export that is still moving.
const exportWriteWindow = 60 * time.Second

// export streams the filtered log as CSV or JSON Lines. The signed head
// the export runs up to is in the X-Keydesk-Audit-Head response header and
// at /audit/heads/SEQ; the CSV stays pure CSV (the row count comes as an
// HTTP trailer once the last row is out), JSON Lines ends with a typed
// head object. An export that cannot finish ends without either and the
// connection is cut, so the client sees an incomplete download. POST: an
// export is itself audited, and GET never changes state.
func (h *auditHandlers) export(c echo.Context) error {
	req, actor := c.Request(), web.Actor(c)
	ctx := req.Context()
	format := c.QueryParam("format")
	if format != "csv" && format != "jsonl" {
		return echo.NewHTTPError(http.StatusBadRequest, "Choose an export format: csv or jsonl.")
	}
	f, _, errs := parseAuditFilter(c.QueryParams(), actor.Role.IsStaff(), views.Zone(c.Request().Context()))
	if len(errs) > 0 {
		return echo.NewHTTPError(http.StatusBadRequest, "The filter is not valid; correct it on the audit page first.")
	}
	res := c.Response()
	rc := http.NewResponseController(res)
	extend := func() { _ = rc.SetWriteDeadline(time.Now().Add(exportWriteWindow)) }
	extend()
	w := bufio.NewWriterSize(res, 64<<10)
	cw := csv.NewWriter(w)
	enc := json.NewEncoder(w)
	n := 0
	var rec [15]string // one CSV row, reused: csv.Writer copies it out
	begin := func(head *models.AuditHead) error {
		hd := res.Header()
		ext, ctype := "csv", "text/csv; charset=utf-8"
		if format == "jsonl" {
			ext, ctype = "jsonl", "application/x-ndjson"
		}
		hd.Set(echo.HeaderContentType, ctype)
		hd.Set(echo.HeaderContentDisposition, `attachment; filename="keydesk-audit-`+strconv.FormatUint(head.Entry, 10)+`.`+ext+`"`)
		hd.Set("Cache-Control", "no-store")
		hd.Set("X-Keydesk-Audit-Head", auditHeadHeader(head))
		hd.Set("X-Keydesk-Audit-Head-URL", "/audit/heads/"+strconv.FormatUint(head.Seq, 10))
		hd.Set("Trailer", "X-Keydesk-Export-Rows")
		res.WriteHeader(http.StatusOK)
		if format == "csv" {
			return cw.Write(csvHeader)
		}
		return nil
	}
	emit := func(e models.AuditEntry) error {
		n++
		var err error
		if format == "csv" {
			rec = [15]string{strconv.FormatUint(e.ID, 10), e.At.UTC().Format(time.RFC3339Nano), e.ActorType, csvSafe(e.ActorLabel),
				e.ActorRole, optUint(e.AccountID), e.Action, e.TargetType, csvSafe(e.TargetID), csvSafe(e.TargetName), e.IP,
				csvSafe(e.UserAgent), csvSafe(e.Details), e.PrevHash, e.Hash}
			err = cw.Write(rec[:])
		} else {
			err = enc.Encode(exportEntry(e))
		}
		if err == nil && n%1000 == 0 {
			extend()
			cw.Flush()
			if err = w.Flush(); err == nil {
				err = rc.Flush()
			}
		}
		return err
	}
	head, err := h.store.ExportAudit(ctx, actor, f, format, begin, emit)
	if err == nil {
		extend()
		if format == "jsonl" {
			err = enc.Encode(map[string]any{"type": "head", "seq": head.Seq, "entry": head.Entry, "link": head.Link, "hash": head.Hash,
				"at": head.At.UTC().Format(time.RFC3339Nano), "kid": head.KeyID, "anchor": head.Anchor, "sig": head.Sig, "rows": n})
		}
		if cw.Flush(); err == nil {
			err = cw.Error()
		}
		if err == nil {
			err = w.Flush()
		}
		if err == nil {
			res.Header().Set("X-Keydesk-Export-Rows", strconv.Itoa(n))
			return nil
		}
	}
	var tampered *models.AuditTamperError
	var invalid *models.ValidationError
	switch {
	case errors.As(err, &invalid) && !res.Committed:
		return echo.NewHTTPError(http.StatusBadRequest, "The filter is not valid; correct it on the audit page first.")
	case errors.As(err, &tampered) && !res.Committed:
		return echo.NewHTTPError(http.StatusConflict, "The audit log does not verify ("+tampered.Report.Problem+"). "+
			"A tampered log is never signed, so it cannot be exported; run keydesk audit verify.")
	case !res.Committed:
		return err
	case ctx.Err() != nil:
		// The client went away: nothing failed on our side.
		h.log.Info("audit export stopped: the client went away", "status", 499, "rows", n, "format", format)
		res.Status = 499
		return nil
	}
	// Too late for an error page: cut the connection so the client sees an
	// incomplete download, never a file that looks whole.
	h.log.Warn("audit export cut short: no signed trailer sent", "rows", n, "format", format, "err", err)
	panic(http.ErrAbortHandler)
}

// auditHeadHeader is the signed head as one header value.
func auditHeadHeader(h *models.AuditHead) string {
	return "seq=" + strconv.FormatUint(h.Seq, 10) + "; entry=" + strconv.FormatUint(h.Entry, 10) + "; link=" + h.Link + "; hash=" + h.Hash +
		"; at=" + h.At.UTC().Format(time.RFC3339Nano) + "; kid=" + h.KeyID + "; anchor=" + h.Anchor + "; sig=" + h.Sig
}

// head serves one signed head as a small JSON file: the signature that
// goes with an export.
func (h *auditHandlers) head(c echo.Context) error {
	seq, err := strconv.ParseUint(c.Param("seq"), 10, 63)
	if err != nil || seq == 0 {
		return echo.NewHTTPError(http.StatusNotFound)
	}
	head, err := h.store.AuditHeadBySeq(c.Request().Context(), seq)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderContentDisposition, `attachment; filename="keydesk-audit-head-`+strconv.FormatUint(seq, 10)+`.json"`)
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, head)
}

type exportedEntry struct {
	ID         uint64          `json:"id"`
	At         string          `json:"time"`
	ActorType  string          `json:"actor_type"`
	Actor      string          `json:"actor"`
	ActorRole  string          `json:"actor_role,omitempty"`
	AccountID  *uint           `json:"account_id"`
	Action     string          `json:"action"`
	TargetType string          `json:"target_type,omitempty"`
	TargetID   string          `json:"target_id,omitempty"`
	TargetName string          `json:"target_name,omitempty"`
	IP         string          `json:"ip,omitempty"`
	UserAgent  string          `json:"user_agent,omitempty"`
	Details    json.RawMessage `json:"details"`
	PrevHash   string          `json:"prev_hash"`
	Hash       string          `json:"hash"`
}

func exportEntry(e models.AuditEntry) exportedEntry {
	d := json.RawMessage(e.Details)
	if !json.Valid(d) {
		d, _ = json.Marshal(e.Details)
	}
	return exportedEntry{ID: e.ID, At: e.At.UTC().Format(time.RFC3339Nano), ActorType: e.ActorType, Actor: e.ActorLabel, ActorRole: e.ActorRole,
		AccountID: e.AccountID, Action: e.Action, TargetType: e.TargetType, TargetID: e.TargetID, TargetName: e.TargetName, IP: e.IP,
		UserAgent: e.UserAgent, Details: d, PrevHash: e.PrevHash, Hash: e.Hash}
}

func (h *auditHandlers) review(c echo.Context) error {
	through, err := strconv.ParseUint(strings.TrimSpace(c.FormValue("through")), 10, 63) // a BIGINT ID
	if err != nil || through == 0 {
		return echo.NewHTTPError(http.StatusBadRequest, "Choose the entry the review goes through.")
	}
	_, err = h.store.MarkReviewed(c.Request().Context(), web.Actor(c), through, c.FormValue("note"))
	if fe := models.FieldErrors(err); fe != nil {
		f, values, _ := parseAuditFilter(url.Values{}, web.Actor(c).Role.IsStaff(), views.Zone(c.Request().Context()))
		return h.render(c, http.StatusUnprocessableEntity, f, values, fe, nil, nil, c.FormValue("note"))
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/audit?done=reviewed")
}
