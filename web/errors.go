package web

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"keydesk/models"
	"keydesk/views"
)

// problem is an error as the user sees it. Messages are fixed texts: the
// cause stays in the log, never on the page.
type problem struct {
	Status  int
	Title   string
	Message string
}

// StatusClientClosedRequest is logged when the client disconnected
// before its answer was ready.
const StatusClientClosedRequest = 499

func classify(err error) problem {
	var he *echo.HTTPError
	var te *models.ThrottledError
	var be *models.BusyError
	var ve *models.ValidationError
	switch {
	case errors.As(err, &te):
		return problem{http.StatusTooManyRequests, "Too many attempts", "For your security this is paused for a while. Try again later."}
	case errors.As(err, &be):
		return problem{http.StatusServiceUnavailable, "Busy", "keydesk is checking many passwords right now. Nothing was changed; try again in a few seconds."}
	case errors.Is(err, models.ErrVerifyFailed):
		return problem{http.StatusUnauthorized, "Unauthorized", "API key authentication/authorization failure. You may be unauthorized to access the API or your API key may be expired or inactive. Visit API keys management section to check your keys."}
	case errors.Is(err, models.ErrSubaccountKeyReadOnly):
		return problem{http.StatusForbidden, "Not allowed", "A sub-account API key can only read itself; use the master API key."}
	case errors.Is(err, models.ErrNotFound):
		return problem{http.StatusNotFound, "Not found", "There is nothing here, or it is not yours to see."}
	case errors.Is(err, models.ErrForbidden):
		return problem{http.StatusForbidden, "Not allowed", "Your role does not allow this."}
	case errors.Is(err, models.ErrReauthRequired):
		return problem{http.StatusForbidden, "Confirm your password", "This action needs you to enter your password again."}
	case errors.Is(err, models.ErrLimitReached):
		return problem{http.StatusConflict, "Limit reached", "Your plan's limit is reached."}
	case errors.As(err, &ve):
		return problem{http.StatusUnprocessableEntity, "Check your input", "Some values were not accepted. Go back and correct them."}
	case errors.Is(err, ErrCSRF):
		return problem{http.StatusForbidden, "Request blocked", "This form could not be verified (it came from another site, or it expired). Go back, reload the page and try again."}
	case errors.As(err, &he):
		return fromHTTPError(he)
	}
	return problem{http.StatusInternalServerError, "Something went wrong", "keydesk could not complete this request. Nothing was lost; try again in a moment."}
}

func fromHTTPError(he *echo.HTTPError) problem {
	msg, _ := he.Message.(string)
	switch {
	case he.Code == http.StatusNotFound:
		return problem{404, "Page not found", "There is no page at this address."}
	case he.Code == http.StatusMethodNotAllowed:
		return problem{405, "Not allowed", "This address does not accept that kind of request."}
	case he.Code == http.StatusRequestEntityTooLarge:
		return problem{413, "Too large", "The request is larger than keydesk accepts."}
	case he.Code == http.StatusUnauthorized:
		return problem{401, "Signed out", "Your session has ended. Log in again."}
	case he.Code == http.StatusForbidden:
		return problem{403, "Not allowed", orDefault(msg, "You cannot open this page.")}
	case he.Code >= 500:
		return problem{he.Code, "Something went wrong", "keydesk could not complete this request. Try again in a moment."}
	}
	return problem{he.Code, http.StatusText(he.Code), orDefault(msg, "The request was not accepted.")}
}

func orDefault(s, d string) string {
	if s == "" || s == http.StatusText(http.StatusForbidden) {
		return d
	}
	return s
}

// handleError is the one place errors become responses: a page in the
// layout for the console, Mailjet-shaped JSON under /v3/.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	if errors.Is(err, context.Canceled) && c.Request().Context().Err() != nil {
		// The client went away mid-request: not a server error. 499 (as
		// nginx names it) goes to the access log at info; nothing is sent.
		c.Response().Status = 499
		return
	}
	p := classify(err)
	if p.Status >= 500 {
		s.Log.Error("request failed", "request_id", requestID(c), "method", c.Request().Method,
			"path", c.Request().URL.Path, "err", err)
	}
	var te *models.ThrottledError
	var be *models.BusyError
	if errors.As(err, &te) {
		c.Response().Header().Set("Retry-After", strconv.Itoa(te.RetryAfterSeconds()))
	} else if errors.As(err, &be) {
		c.Response().Header().Set("Retry-After", strconv.Itoa(be.RetryAfterSeconds()))
	}
	if path := c.Request().URL.Path; IsAPIPath(path) {
		status, msg := p.Status, p.Message
		if fe := models.FieldErrors(err); fe != nil {
			// Mailjet answers bad input with 400 and says which property.
			status, msg = http.StatusBadRequest, fieldMessage(fe)
		} else if he := (*echo.HTTPError)(nil); errors.As(err, &he) && he.Code < 500 {
			if m, ok := he.Message.(string); ok && m != "" {
				msg = m
			}
		}
		if strings.HasPrefix(path, "/v3.1/") {
			_ = c.JSON(status, mailjetErrorV31(status, msg))
			return
		}
		_ = c.JSON(status, MailjetError(status, msg))
		return
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(p.Status)
		return
	}
	rid := ""
	if p.Status >= 500 {
		rid = requestID(c)
	}
	if IsHTMX(c) {
		// htmx swaps some error statuses (429) into the dialog slot: answer
		// with a dialog, not a whole page.
		if rerr := Render(c, p.Status, views.ErrorDialog(views.ErrorProps{Status: p.Status, Title: p.Title, Message: p.Message, RequestID: rid})); rerr != nil {
			s.Log.Error("render error dialog", "request_id", requestID(c), "err", rerr)
			s.plainError(c, p)
		}
		return
	}
	if rerr := Render(c, p.Status, views.ErrorPage(views.ErrorProps{
		Status: p.Status, Title: p.Title, Message: p.Message, RequestID: rid, SignedIn: Principal(c) != nil,
	})); rerr != nil {
		s.Log.Error("render error page", "request_id", requestID(c), "err", rerr)
		s.plainError(c, p)
	}
}

// plainError answers in plain text when even the error page could not be
// rendered (Render wrote nothing of it), so the client still gets the
// status and the request ID rather than an empty 200.
func (s *Server) plainError(c echo.Context, p problem) {
	if c.Response().Committed {
		return
	}
	_ = c.String(p.Status, p.Title+". "+p.Message+" Reference: "+requestID(c)+"\n")
}

// mailjetProperty names models' input fields as Mailjet's properties, so a
// REST client reads "IsActive: …", never an internal field name.
var mailjetProperty = map[string]string{"name": "Name", "active": "IsActive", "description": "Description"}

func fieldMessage(fe map[string]string) string {
	keys := make([]string, 0, len(fe))
	for k := range fe {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		name, ok := mailjetProperty[k]
		if !ok {
			name = k
		}
		parts = append(parts, name+": "+fe[k])
	}
	return strings.Join(parts, " ")
}

// MailjetError is the body of an error response in Mailjet's shape.
func MailjetError(status int, msg string) map[string]any {
	return map[string]any{"ErrorInfo": "", "ErrorMessage": msg, "StatusCode": status}
}

// mailjetErrorV31 is a whole-call error of the Send API v3.1: an error
// identifier and code as well as the REST shape's fields.
func mailjetErrorV31(status int, msg string) map[string]any {
	code := map[int]string{http.StatusUnauthorized: "mj-0015", http.StatusBadRequest: "mj-0002"}[status]
	e := models.NewSendError(status, code, msg)
	out := map[string]any{"ErrorIdentifier": e.ErrorIdentifier, "ErrorInfo": "", "ErrorMessage": msg, "StatusCode": status}
	if code != "" {
		out["ErrorCode"] = code
	}
	return out
}
