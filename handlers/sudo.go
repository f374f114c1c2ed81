package handlers

import (
	"context"
	"time"

	"github.com/labstack/echo/v4"

	"keydesk/models"
	"keydesk/web"
)

type reauther interface {
	ReauthenticateWithCode(ctx context.Context, p *models.Principal, password, code string, meta models.RequestMeta) error
}

// ensureSudo makes sure the signed-in user authenticated within the sudo
// window, checking the form's password when not. Field errors are for the
// form; err is anything else (a throttle, a database failure).
func ensureSudo(c echo.Context, store reauther, now time.Time) (map[string]string, error) {
	p := web.Principal(c)
	if p.InSudo(now) {
		return nil, nil
	}
	pw := c.FormValue("password")
	if pw == "" {
		return map[string]string{"password": "Enter your password to confirm."}, nil
	}
	err := store.ReauthenticateWithCode(c.Request().Context(), p, pw, c.FormValue("code"), web.Meta(c))
	if fe := models.FieldErrors(err); fe != nil {
		return fe, nil
	}
	return nil, err
}
