// Package static holds the built CSS and vendored JavaScript, embedded in
// the binary so `go run .` needs no Node and no CDN.
package static

import "embed"

// FS holds css/app.css (built by the Tailwind CLI, committed), js/htmx.min.js
// and fonts/ (Inter; both vendored from npm, pinned in package.json),
// js/app.js and img/.
//
//go:embed css js img fonts
var FS embed.FS
