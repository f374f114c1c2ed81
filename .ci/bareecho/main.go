// Command bareecho is the yardstick of .ci/bench rest: a bare Echo server
// (no middleware) answering GET /v3/REST/apikey with the exact bytes of a
// file, as keydesk answered them. It prints its URL on stdout and serves
// until killed.
//
//	go build -o bareecho ./.ci/bareecho && ./bareecho body.json
//
// With a second argument, "served", it is not the yardstick but the
// informational line beside it: the same bare handler with what keydesk's
// answers cannot go without on the wire — serve's http.Server timeouts
// (slowloris, slow readers, idle connections) behind its listener
// (web.LazyDeadlines), and the API's security headers and an
// X-Request-Id (the same header bytes keydesk sends).
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"

	"keydesk/web"
)

func main() {
	if len(os.Args) < 2 || len(os.Args) > 3 || (len(os.Args) == 3 && os.Args[2] != "served") {
		fmt.Fprintln(os.Stderr, "usage: bareecho BODY_FILE [served]")
		os.Exit(2)
	}
	served := len(os.Args) == 3
	body, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	if served {
		csp, nosniff := []string{"default-src 'none'; frame-ancestors 'none'"}, []string{"nosniff"}
		referrer, id := []string{"strict-origin-when-cross-origin"}, []string{"XXXXXXXX-1"}
		e.GET("/v3/REST/apikey", func(c echo.Context) error {
			h := c.Response().Header()
			h["Content-Security-Policy"], h["X-Content-Type-Options"], h["Referrer-Policy"], h["X-Request-Id"] = csp, nosniff, referrer, id
			return c.JSONBlob(http.StatusOK, body)
		})
	} else {
		e.GET("/v3/REST/apikey", func(c echo.Context) error { return c.JSONBlob(http.StatusOK, body) })
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("http://%s\n", ln.Addr())
	if served {
		// cli/serve.go's httpServeTimeouts.
		hs := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second}
		err = hs.Serve(web.LazyDeadlines(ln))
	} else {
		err = http.Serve(ln, e)
	}
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
