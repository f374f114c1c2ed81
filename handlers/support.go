package handlers

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"keydesk/models"
	"keydesk/views"
	"keydesk/web"
)

type supportHandlers struct {
	store *models.Store
}

func (h *supportHandlers) home(c echo.Context) error {
	ctx, actor := c.Request().Context(), web.Actor(c)
	pending, err := h.store.PendingLimitRequests(ctx, actor)
	if err != nil {
		return err
	}
	p := views.SupportPageProps{Pending: pending, Query: strings.TrimSpace(c.QueryParam("q")), Now: h.store.Now()}
	if p.Query != "" {
		p.Searched = true
		if p.Results, err = h.store.SearchAccounts(ctx, actor, p.Query); err != nil {
			return err
		}
	}
	return web.Render(c, http.StatusOK, views.SupportPage(p))
}

var supportNotices = map[string]string{
	"limit":      "The sub-account limit was changed.",
	"approved":   "The request was approved and the limit raised.",
	"denied":     "The request was denied; the owner sees your note.",
	"suspended":  "The account is suspended: its sessions ended and its keys are refused.",
	"reinstated": "The account is reinstated: its keys work again.",
}

func parseID(s string) (uint, error) {
	id, err := strconv.ParseUint(s, 10, 32)
	if err != nil || id == 0 {
		return 0, models.ErrNotFound
	}
	return uint(id), nil
}

// accountPage renders the support view of an account, with the errors and
// values of a refused form when there are some.
func (h *supportHandlers) accountPage(c echo.Context, id uint, status int, errs map[string]map[string]string, values map[string]string) error {
	v, err := h.store.SupportAccount(c.Request().Context(), web.Actor(c), id)
	if err != nil {
		return err
	}
	now := h.store.Now()
	p := views.SupportAccountProps{View: v, Errors: errs, Values: values, Now: now, Notice: supportNotices[c.QueryParam("done")]}
	for _, k := range v.Keys {
		p.Keys = append(p.Keys, views.NewKeyRow(k, now, h.store.RotationDays()))
	}
	return web.Render(c, status, views.SupportAccountPage(p))
}

func (h *supportHandlers) account(c echo.Context) error {
	id, err := parseID(c.Param("id"))
	if err != nil {
		return err
	}
	return h.accountPage(c, id, http.StatusOK, nil, nil)
}

func (h *supportHandlers) setLimit(c echo.Context) error {
	id, err := parseID(c.Param("id"))
	if err != nil {
		return err
	}
	values := map[string]string{"limit": c.FormValue("limit"), "reason": c.FormValue("reason")}
	limit, convErr := strconv.Atoi(strings.TrimSpace(values["limit"]))
	if convErr != nil {
		return h.accountPage(c, id, http.StatusUnprocessableEntity, map[string]map[string]string{"limit": {"limit": "Enter a whole number."}}, values)
	}
	err = h.store.SetSubaccountLimit(c.Request().Context(), web.Actor(c), id, limit, values["reason"])
	if fe := models.FieldErrors(err); fe != nil {
		return h.accountPage(c, id, http.StatusUnprocessableEntity, map[string]map[string]string{"limit": fe}, values)
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/support/accounts/"+strconv.Itoa(int(id))+"?done=limit")
}

func (h *supportHandlers) decide(approve bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		reqID, err := parseID(c.Param("id"))
		if err != nil {
			return err
		}
		accountID, err := parseID(c.FormValue("account_id"))
		if err != nil {
			accountID = 0
		}
		form := "request-" + strconv.Itoa(int(reqID))
		values := map[string]string{form + "-limit": c.FormValue("limit"), form + "-note": c.FormValue("note")}
		limit := 0
		if approve {
			limit, err = strconv.Atoi(strings.TrimSpace(c.FormValue("limit")))
			if err != nil {
				limit = models.UnreadableLimit
			}
		}
		err = h.store.DecideLimitRequest(c.Request().Context(), web.Actor(c), reqID, approve, limit, c.FormValue("note"))
		if fe := models.FieldErrors(err); fe != nil && accountID != 0 {
			return h.accountPage(c, accountID, http.StatusUnprocessableEntity, map[string]map[string]string{form: fe}, values)
		}
		if fe := models.FieldErrors(err); fe != nil {
			return &models.ValidationError{Fields: fe}
		}
		if err != nil {
			return err
		}
		done := "denied"
		if approve {
			done = "approved"
		}
		if accountID == 0 {
			return web.Redirect(c, "/support?done="+done)
		}
		return web.Redirect(c, "/support/accounts/"+strconv.Itoa(int(accountID))+"?done="+done)
	}
}

// suspend suspends (or reinstates) an account, with the required reason.
func (h *supportHandlers) suspend(on bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := parseID(c.Param("id"))
		if err != nil {
			return err
		}
		values := map[string]string{"suspend-reason": c.FormValue("suspend_reason")}
		op, done := h.store.ReinstateAccount, "reinstated"
		if on {
			op, done = h.store.SuspendAccount, "suspended"
		}
		err = op(c.Request().Context(), web.Actor(c), id, values["suspend-reason"])
		if fe := models.FieldErrors(err); fe != nil {
			return h.accountPage(c, id, http.StatusUnprocessableEntity, map[string]map[string]string{"suspend": fe}, values)
		}
		if err != nil {
			return err
		}
		return web.Redirect(c, "/support/accounts/"+strconv.Itoa(int(id))+"?done="+done)
	}
}
