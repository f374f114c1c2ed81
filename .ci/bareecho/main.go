// Command bareecho is the yardstick of .ci/bench rest: a bare Echo server
// (no middleware) answering GET /v3/REST/apikey with the exact bytes of a
// file, as keydesk answered them. It prints its URL on stdout and serves
// until killed.
//
//	go build -o bareecho ./.ci/bareecho && ./bareecho body.json
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/labstack/echo/v4"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: bareecho BODY_FILE")
		os.Exit(2)
	}
	body, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.GET("/v3/REST/apikey", func(c echo.Context) error { return c.JSONBlob(http.StatusOK, body) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("http://%s\n", ln.Addr())
	if err := http.Serve(ln, e); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
