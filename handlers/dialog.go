package handlers

import (
	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"keydesk/web"
)

// renderDialog answers htmx with the dialog alone, and anyone else with the
// full page (built by page) with the dialog open, so every flow works
// without JavaScript. A nil dialog renders the plain page.
func renderDialog(c echo.Context, status int, d templ.Component, page func(templ.Component) (templ.Component, error)) error {
	if d != nil && web.IsHTMX(c) {
		return web.Render(c, status, d)
	}
	full, err := page(d)
	if err != nil {
		return err
	}
	return web.Render(c, status, full)
}
