package web

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/labstack/echo/v4"

	"keydesk/static"
)

// assets maps each embedded file to a short content hash, so URLs change
// whenever a file does and browsers may cache them for a year.
type assets struct {
	hash map[string]string
}

func loadAssets() (*assets, error) {
	a := &assets{hash: map[string]string{}}
	err := fs.WalkDir(static.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) == ".go" {
			return err
		}
		b, err := fs.ReadFile(static.FS, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		a.hash[p] = hex.EncodeToString(sum[:5])
		return nil
	})
	return a, err
}

// url is the versioned URL of a static file.
func (a *assets) url(name string) string {
	v, ok := a.hash[name]
	if !ok {
		v = "0"
	}
	return "/static/" + v + "/" + name
}

func (s *Server) serveStatic(c echo.Context) error {
	name := path.Clean(c.Param("*"))
	want, ok := s.assets.hash[name]
	if !ok {
		return echo.ErrNotFound
	}
	b, err := fs.ReadFile(static.FS, name)
	if err != nil {
		return echo.ErrNotFound
	}
	h := c.Response().Header()
	etag := `"` + want + `"`
	h.Set("ETag", etag)
	if c.Param("version") == want {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		// An old or made-up version, or a URL relative to another file (the
		// fonts named in app.css resolve under the CSS file's version):
		// serve the current file, revalidated each time by its ETag.
		h.Set("Cache-Control", "no-cache")
		if inm := c.Request().Header.Get("If-None-Match"); inm != "" && strings.Contains(inm, etag) {
			return c.NoContent(http.StatusNotModified)
		}
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	return c.Blob(http.StatusOK, ct, b)
}
