package web

import (
	"github.com/labstack/echo/v4"

	"keydesk/models"
)

// APIKeyAuth authenticates REST requests with HTTP Basic: username = API
// key, password = secret key, checked only through models (VerifyRequest →
// Verify). Console session cookies are never looked at here.
func (s *Server) APIKeyAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		user, pass, ok := c.Request().BasicAuth()
		if !ok {
			c.Response().Header().Set("WWW-Authenticate", `Basic realm="keydesk"`)
			return models.ErrVerifyFailed
		}
		p, err := s.Store.VerifyRequest(c.Request().Context(), user, pass, c.RealIP(), models.ChannelAPI)
		if err != nil {
			if err == models.ErrVerifyFailed {
				c.Response().Header().Set("WWW-Authenticate", `Basic realm="keydesk"`)
			}
			return err
		}
		c.Set("apikey", p)
		return next(c)
	}
}

// APIPrincipal is the key that authenticated a REST request.
func APIPrincipal(c echo.Context) models.KeyPrincipal {
	p, _ := c.Get("apikey").(models.KeyPrincipal)
	return p
}

// APIError answers in Mailjet's error shape.
func APIError(status int, msg string) error {
	return echo.NewHTTPError(status, msg)
}
