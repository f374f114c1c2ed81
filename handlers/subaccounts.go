package handlers

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"keydesk/models"
	"keydesk/views"
	"keydesk/web"
)

type subaccountHandlers struct {
	web   *web.Server
	store *models.Store
}

var subaccountNotices = map[string]string{
	"requested": "Your request was sent to support. Its status appears below.",
}

func (h *subaccountHandlers) page(c echo.Context, dialog templ.Component) (views.SubaccountsPageProps, error) {
	ctx, actor := c.Request().Context(), web.Actor(c)
	search, page := listQuery(c)
	subs, err := h.store.ListSubaccounts(ctx, actor, search, page)
	if err != nil {
		return views.SubaccountsPageProps{}, err
	}
	usage, err := h.store.SubaccountQuota(ctx, actor)
	if err != nil {
		return views.SubaccountsPageProps{}, err
	}
	reqs, err := h.store.LimitRequests(ctx, actor)
	if err != nil {
		return views.SubaccountsPageProps{}, err
	}
	compare, err := h.store.UsageForTree(ctx, actor, usageDays)
	if err != nil {
		return views.SubaccountsPageProps{}, err
	}
	now := h.store.Now()
	p := views.SubaccountsPageProps{Usage: usage, Limit: models.NewLimitStatus(usage, reqs, now), Requests: reqs, Dialog: dialog, Now: now, Notice: subaccountNotices[c.QueryParam("done")], Compare: compare}
	p.Search, p.Total, p.Page, p.Pages = search, subs.Total, subs.Page, subs.Pages
	for _, s := range subs.Items {
		p.Rows = append(p.Rows, views.SubaccountRow{Key: views.NewKeyRow(s.Key, now, h.store.RotationDays()), Description: s.Account.Description})
	}
	return p, nil
}

func (h *subaccountHandlers) list(c echo.Context) error { return h.dialog(c, http.StatusOK, nil) }

// dialog renders d over the sub-accounts page (or alone for htmx).
func (h *subaccountHandlers) dialog(c echo.Context, status int, d templ.Component) error {
	return renderDialog(c, status, d, func(d templ.Component) (templ.Component, error) {
		p, err := h.page(c, d)
		return views.SubaccountsPage(p), err
	})
}

// from is where the flow returns: the keys page or the sub-accounts page
// (an allow-list, so the value can never redirect elsewhere).
func from(v string) string {
	if v == "keys" {
		return "keys"
	}
	return "subaccounts"
}

// pendingRequest is the first pending request, if any.
func pendingRequest(reqs []models.LimitRequest) *models.LimitRequest {
	for i := range reqs {
		if reqs[i].Status == models.RequestPending {
			return &reqs[i]
		}
	}
	return nil
}

// newForm opens the create dialog, or at the limit the request dialog.
func (h *subaccountHandlers) newForm(c echo.Context) error {
	ctx, actor := c.Request().Context(), web.Actor(c)
	usage, err := h.store.SubaccountQuota(ctx, actor)
	if err != nil {
		return err
	}
	if usage.Full() {
		reqs, err := h.store.LimitRequests(ctx, actor)
		if err != nil {
			return err
		}
		return h.dialog(c, http.StatusOK, views.LimitRequestDialog(views.LimitRequestProps{Usage: usage, Extra: "1", Pending: pendingRequest(reqs)}))
	}
	return h.dialog(c, http.StatusOK, views.CreateSubaccountDialog(views.CreateSubaccountProps{
		Usage: usage, From: from(c.QueryParam("from")), NeedPassword: !web.Principal(c).InSudo(h.store.Now()),
	}))
}

// create makes the sub-account and answers with the only response that
// shows its secret (no-store).
func (h *subaccountHandlers) create(c echo.Context) error {
	ctx := c.Request().Context()
	props := views.CreateSubaccountProps{
		Name: c.FormValue("name"), Description: c.FormValue("description"), From: from(c.FormValue("from")),
		NeedPassword: !web.Principal(c).InSudo(h.store.Now()),
	}
	usage, err := h.store.SubaccountQuota(ctx, web.Actor(c))
	if err != nil {
		return err
	}
	props.Usage = usage
	actor, fe, err := ensureSudo(c, h.store, h.store.Now())
	if err != nil {
		return err
	}
	if fe != nil {
		props.Errors = fe
		return h.dialog(c, http.StatusUnprocessableEntity, views.CreateSubaccountDialog(props))
	}
	sub, secret, err := h.store.CreateSubaccount(ctx, actor, props.Name, props.Description)
	switch {
	case errors.Is(err, models.ErrLimitReached):
		return h.dialog(c, http.StatusUnprocessableEntity, views.LimitRequestDialog(views.LimitRequestProps{Usage: usage, Extra: "1",
			Errors: map[string]string{"form": "Your plan's limit was reached meanwhile. Ask support for more."}}))
	case errors.Is(err, models.ErrReauthRequired):
		props.NeedPassword = true
		props.Errors = map[string]string{"password": "Enter your password to confirm."}
		return h.dialog(c, http.StatusUnprocessableEntity, views.CreateSubaccountDialog(props))
	case models.FieldErrors(err) != nil:
		props.Errors = models.FieldErrors(err)
		return h.dialog(c, http.StatusUnprocessableEntity, views.CreateSubaccountDialog(props))
	case err != nil:
		return err
	}
	web.NoStore(c)
	return h.dialog(c, http.StatusCreated, views.RevealModal(views.RevealProps{
		Title: "Sub-account \"" + sub.Account.Name + "\" created", Name: sub.Account.Name, APIKey: secret.APIKey, Secret: secret.Secret,
		SMTP: h.web.Config.SMTP, Continue: "/" + props.From,
	}))
}

func (h *subaccountHandlers) requestMore(c echo.Context) error {
	ctx, actor := c.Request().Context(), web.Actor(c)
	props := views.LimitRequestProps{Extra: c.FormValue("extra"), Reason: c.FormValue("reason")}
	usage, err := h.store.SubaccountQuota(ctx, actor)
	if err != nil {
		return err
	}
	props.Usage = usage
	extra, convErr := strconv.Atoi(strings.TrimSpace(props.Extra))
	if convErr != nil {
		props.Errors = map[string]string{"extra": "Enter a whole number between 1 and 100."}
		return h.dialog(c, http.StatusUnprocessableEntity, views.LimitRequestDialog(props))
	}
	_, err = h.store.RequestMoreSubaccounts(ctx, actor, extra, props.Reason)
	if fe := models.FieldErrors(err); fe != nil {
		props.Errors = fe
		return h.dialog(c, http.StatusUnprocessableEntity, views.LimitRequestDialog(props))
	}
	if err != nil {
		return err
	}
	return web.Redirect(c, "/subaccounts?done=requested")
}
