package handlers

import (
	"strconv"
	"strings"

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

// listQuery reads a paged list's name search (at most 64 characters, the
// longest name) and page number (the model clamps it).
func listQuery(c echo.Context) (search string, page int) {
	search = strings.TrimSpace(c.QueryParam("q"))
	if r := []rune(search); len(r) > 64 {
		search = string(r[:64])
	}
	page, _ = strconv.Atoi(c.QueryParam("page"))
	return search, page
}
