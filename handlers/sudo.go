package handlers

import (
	"time"

	"github.com/labstack/echo/v4"

	"keydesk/models"
	"keydesk/web"
)

// ensureSudo makes sure the signed-in user authenticated within the sudo
// window, checking the form's password (and code) when not, and returns
// the actor for the sensitive action. Field errors are for the form; err
// is anything else (a throttle, a database failure).
func ensureSudo(c echo.Context, store *models.Store, now time.Time) (models.Actor, map[string]string, error) {
	p := web.Principal(c)
	if p.InSudo(now) {
		return web.Actor(c), nil, nil
	}
	pw := c.FormValue("password")
	if pw == "" {
		return models.Actor{}, map[string]string{"password": "Enter your password to confirm."}, nil
	}
	actor, err := store.ReauthenticateWithCode(c.Request().Context(), p, pw, c.FormValue("code"), web.Meta(c))
	if fe := models.FieldErrors(err); fe != nil {
		return models.Actor{}, fe, nil
	}
	return actor, nil, err
}
