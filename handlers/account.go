package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"keydesk/models"
	"keydesk/views"
	"keydesk/web"
)

type accountHandlers struct {
	store *models.Store
}

func (h *accountHandlers) passwordForm(c echo.Context) error {
	return web.Render(c, http.StatusOK, views.PasswordPage(views.PasswordProps{Done: c.QueryParam("done") == "1"}))
}

// changePassword replaces the password; the store ends every other session.
func (h *accountHandlers) changePassword(c echo.Context) error {
	err := h.store.ChangePassword(c.Request().Context(), web.Principal(c), c.FormValue("current"), c.FormValue("new"), web.Meta(c))
	if fe := models.FieldErrors(err); fe != nil {
		return web.Render(c, http.StatusUnprocessableEntity, views.PasswordPage(views.PasswordProps{Errors: fe}))
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/account/password?done=1")
}

// setLanguage saves the console language chosen in the account menu ("" is
// the browser's) and goes back to the page it was chosen on.
func (h *accountHandlers) setLanguage(c echo.Context) error {
	lang := c.FormValue("language")
	if lang != "" && !views.Messages().Has(lang) {
		return &models.ValidationError{Fields: map[string]string{"language": "Choose a language from the list."}}
	}
	if err := h.store.SetLanguage(c.Request().Context(), web.Principal(c), lang, web.Meta(c)); err != nil {
		return err
	}
	next, ok := web.SafeReturnPath(c.FormValue("next"))
	if !ok {
		next = "/"
	}
	return web.Redirect(c, next)
}

// timeZoneForm is the time zone page the account menu opens.
func (h *accountHandlers) timeZoneForm(c echo.Context) error {
	next, _ := web.SafeReturnPath(c.QueryParam("next"))
	return web.Render(c, http.StatusOK, views.TimeZonePage(views.TimeZoneProps{Current: web.Principal(c).User.Zone().String(), Next: next}))
}

// setTimeZone saves the time zone chosen (an IANA name, checked by the
// store) and goes back to the page the menu was opened on.
func (h *accountHandlers) setTimeZone(c echo.Context) error {
	next, ok := web.SafeReturnPath(c.FormValue("next"))
	if !ok {
		next = ""
	}
	err := h.store.SetTimeZone(c.Request().Context(), web.Principal(c), c.FormValue("time_zone"), web.Meta(c))
	if fe := models.FieldErrors(err); fe != nil {
		return web.Render(c, http.StatusUnprocessableEntity, views.TimeZonePage(views.TimeZoneProps{
			Current: web.Principal(c).User.Zone().String(), Next: next, Error: fe["time_zone"]}))
	}
	if err != nil {
		return err
	}
	if next == "" {
		next = "/"
	}
	return web.Redirect(c, next)
}
