package handlers

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"keydesk/models"
	"keydesk/views"
	"keydesk/web"
)

type keyHandlers struct {
	web   *web.Server
	store *models.Store
}

var keyNotices = map[string]string{
	"renamed":     "The key was renamed.",
	"deactivated": "The key was deactivated. The REST API and SMTP now reject it.",
	"activated":   "The key was activated. Its current secret works again.",
	"ended":       "The older secret key was ended. The REST API and SMTP now reject it.",
	"reset":       "The secret key was reset. Update every application and SMTP client with the new one.",
}

func (h *keyHandlers) row(k models.APIKey) views.KeyRow {
	return views.NewKeyRow(k, h.store.Now(), h.store.RotationDays())
}

// page builds the keys page props, with dialog open when not nil.
func (h *keyHandlers) page(c echo.Context, dialog templ.Component) (views.KeysPageProps, error) {
	ctx, actor := c.Request().Context(), web.Actor(c)
	search, page := listQuery(c)
	v, err := h.store.KeysPage(ctx, actor, search, page)
	if err != nil {
		return views.KeysPageProps{}, err
	}
	limit, err := h.store.SubaccountLimitStatus(ctx, actor)
	if err != nil {
		return views.KeysPageProps{}, err
	}
	p := views.KeysPageProps{
		AccountName: web.Principal(c).Account.Name, RotationDays: h.store.RotationDays(), SMTP: h.web.Config.SMTP,
		Dialog: dialog, Now: h.store.Now(), Notice: keyNotices[c.QueryParam("done")],
		Usage: limit.Usage, Limit: limit, Search: search, Total: v.Total, Page: v.Page, Pages: v.Pages, OverdueTotal: v.OverdueTotal,
	}
	if v.Master != nil {
		r := h.row(*v.Master)
		p.Master = &r
	}
	for _, k := range v.Subaccounts {
		p.Subaccounts = append(p.Subaccounts, h.row(k))
	}
	for _, k := range v.Overdue {
		p.Overdue = append(p.Overdue, h.row(k))
	}
	return p, nil
}

func (h *keyHandlers) list(c echo.Context) error { return h.dialog(c, http.StatusOK, nil) }

// dialog renders d over the keys page (or alone for htmx).
func (h *keyHandlers) dialog(c echo.Context, status int, d templ.Component) error {
	return renderDialog(c, status, d, func(d templ.Component) (templ.Component, error) {
		p, err := h.page(c, d)
		return views.KeysPage(p), err
	})
}

// key loads the key named in the URL; a malformed or foreign ID is 404.
func (h *keyHandlers) key(c echo.Context) (*models.APIKey, error) {
	id, err := strconv.ParseUint(c.Param("id"), 10, 32)
	if err != nil || id == 0 {
		return nil, models.ErrNotFound
	}
	return h.store.KeyByID(c.Request().Context(), web.Actor(c), uint(id))
}

func (h *keyHandlers) resetForm(c echo.Context) error {
	k, err := h.key(c)
	if err != nil {
		return err
	}
	need := !web.Principal(c).InSudo(h.store.Now())
	return h.dialog(c, http.StatusOK, views.ResetDialog(h.resetProps(k, "", need)))
}

func (h *keyHandlers) resetProps(k *models.APIKey, grace string, needPassword bool) views.ResetProps {
	now := h.store.Now()
	p := views.ResetProps{Key: h.row(*k), Grace: grace, NeedPassword: needPassword}
	if v := k.CapVictim(now); v != nil {
		r := views.NewOldSecretRow(*v, now)
		p.CapVictim = &r
	}
	return p
}

// reset replaces the secret and answers with the only response that
// shows the new one (no-store).
func (h *keyHandlers) reset(c echo.Context) error {
	k, err := h.key(c)
	if err != nil {
		return err
	}
	props := h.resetProps(k, c.FormValue("grace"), !web.Principal(c).InSudo(h.store.Now()))
	grace, ok := models.ParseGrace(props.Grace)
	if !ok {
		props.Errors = map[string]string{"grace": "Choose when the current secret stops working."}
		return h.dialog(c, http.StatusUnprocessableEntity, views.ResetDialog(props))
	}
	actor, fe, err := ensureSudo(c, h.store, h.store.Now())
	if fe != nil {
		props.Errors = fe
		return h.dialog(c, http.StatusUnprocessableEntity, views.ResetDialog(props))
	}
	if err != nil {
		return err
	}
	// Without htmx the reveal opens over the keys page. That page is read
	// now, before the reset: after the commit nothing is read, so no
	// failure can answer an error and lose the only copy of the new secret.
	var page *views.KeysPageProps
	if !web.IsHTMX(c) {
		pp, err := h.page(c, nil)
		if err != nil {
			return err
		}
		page = &pp
	}
	key, secret, err := h.store.ResetSecret(c.Request().Context(), actor, k.ID, grace)
	if errors.Is(err, models.ErrReauthRequired) {
		props.NeedPassword = true
		props.Errors = map[string]string{"password": "Enter your password to confirm."}
		return h.dialog(c, http.StatusUnprocessableEntity, views.ResetDialog(props))
	}
	if err != nil {
		return err
	}
	// From here on: memory only (ResetSecret read the key and its old
	// secrets inside its transaction).
	web.NoStore(c)
	reveal := views.RevealModal(views.RevealProps{
		Title: "Your new secret key", Name: key.Name, APIKey: secret.APIKey, Secret: secret.Secret,
		SMTP: h.web.Config.SMTP, Continue: "/keys", Done: "reset",
	})
	if page == nil {
		return web.Render(c, http.StatusOK, reveal)
	}
	row := h.row(*key)
	if page.Master != nil && page.Master.ID == key.ID {
		page.Master = &row
	}
	for i := range page.Subaccounts {
		if page.Subaccounts[i].ID == key.ID {
			page.Subaccounts[i] = row
		}
	}
	page.Dialog, page.Notice = reveal, keyNotices["reset"]
	return web.Render(c, http.StatusOK, views.KeysPage(*page))
}

// oldSecret finds the live old secret named in the URL on key k; any other
// ID (unknown, ended, another key's) is 404.
func (h *keyHandlers) oldSecret(c echo.Context, k *models.APIKey) (*models.OldSecret, error) {
	id, err := strconv.ParseUint(c.Param("secret"), 10, 32)
	if err != nil || id == 0 {
		return nil, models.ErrNotFound
	}
	now := h.store.Now()
	for i := range k.OldSecrets {
		if o := &k.OldSecrets[i]; o.ID == uint(id) && o.Live(now) {
			return o, nil
		}
	}
	return nil, models.ErrNotFound
}

func (h *keyHandlers) endSecretProps(c echo.Context) (views.EndSecretProps, uint, error) {
	k, err := h.key(c)
	if err != nil {
		return views.EndSecretProps{}, 0, err
	}
	o, err := h.oldSecret(c, k)
	if err != nil {
		return views.EndSecretProps{}, 0, err
	}
	now := h.store.Now()
	return views.EndSecretProps{Key: h.row(*k), Secret: views.NewOldSecretRow(*o, now), NeedPassword: !web.Principal(c).InSudo(now)}, o.ID, nil
}

func (h *keyHandlers) endSecretForm(c echo.Context) error {
	props, _, err := h.endSecretProps(c)
	if err != nil {
		return err
	}
	return h.dialog(c, http.StatusOK, views.EndSecretDialog(props))
}

// endSecret stops one older secret before its grace period ends (sudo).
func (h *keyHandlers) endSecret(c echo.Context) error {
	props, secretID, err := h.endSecretProps(c)
	if err != nil {
		return err
	}
	actor, fe, err := ensureSudo(c, h.store, h.store.Now())
	if fe != nil {
		props.Errors = fe
		return h.dialog(c, http.StatusUnprocessableEntity, views.EndSecretDialog(props))
	}
	if err != nil {
		return err
	}
	_, _, err = h.store.EndOldSecret(c.Request().Context(), actor, props.Key.ID, secretID)
	if errors.Is(err, models.ErrReauthRequired) {
		props.NeedPassword = true
		props.Errors = map[string]string{"password": "Enter your password to confirm."}
		return h.dialog(c, http.StatusUnprocessableEntity, views.EndSecretDialog(props))
	}
	if err != nil {
		return err
	}
	return web.Redirect(c, "/keys?done=ended")
}

func (h *keyHandlers) renameForm(c echo.Context) error {
	k, err := h.key(c)
	if err != nil {
		return err
	}
	return h.dialog(c, http.StatusOK, views.RenameDialog(views.RenameProps{Key: h.row(*k), Name: k.Name}))
}

func (h *keyHandlers) rename(c echo.Context) error {
	k, err := h.key(c)
	if err != nil {
		return err
	}
	name := c.FormValue("name")
	_, err = h.store.RenameKey(c.Request().Context(), web.Actor(c), k.ID, name)
	if fe := models.FieldErrors(err); fe != nil {
		return h.dialog(c, http.StatusUnprocessableEntity, views.RenameDialog(views.RenameProps{Key: h.row(*k), Name: name, Errors: fe}))
	}
	if err != nil {
		return err
	}
	return web.Redirect(c, "/keys?done=renamed")
}

func (h *keyHandlers) deactivateForm(c echo.Context) error {
	k, err := h.key(c)
	if err != nil {
		return err
	}
	props := views.DeactivateProps{Key: h.row(*k)}
	if k.IsMaster {
		props.Error = models.ErrMasterKeyDeactivation.Fields["active"]
	}
	return h.dialog(c, http.StatusOK, views.DeactivateDialog(props))
}

func (h *keyHandlers) deactivate(c echo.Context) error {
	k, err := h.key(c)
	if err != nil {
		return err
	}
	_, err = h.store.SetKeyActive(c.Request().Context(), web.Actor(c), k.ID, false)
	if fe := models.FieldErrors(err); fe != nil {
		return h.dialog(c, http.StatusUnprocessableEntity, views.DeactivateDialog(views.DeactivateProps{Key: h.row(*k), Error: fe["active"]}))
	}
	if err != nil {
		return err
	}
	return web.Redirect(c, "/keys?done=deactivated")
}

func (h *keyHandlers) activate(c echo.Context) error {
	k, err := h.key(c)
	if err != nil {
		return err
	}
	if _, err := h.store.SetKeyActive(c.Request().Context(), web.Actor(c), k.ID, true); err != nil {
		return err
	}
	return web.Redirect(c, "/keys?done=activated")
}

// usageDays is the period of the usage views.
const usageDays = 30

// usage shows one key's last 30 days: totals and a server-rendered chart.
func (h *keyHandlers) usage(c echo.Context) error {
	k, err := h.key(c)
	if err != nil {
		return err
	}
	u, err := h.store.UsageForKey(c.Request().Context(), web.Actor(c), k.ID, usageDays)
	if err != nil {
		return err
	}
	return web.Render(c, http.StatusOK, views.UsagePage(views.UsagePageProps{Key: h.row(u.Key), Usage: *u, Now: h.store.Now()}))
}
