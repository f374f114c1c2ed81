package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// serveHTTPS reads --https: auto serves HTTPS when a certificate is given.
func serveHTTPS(cfg *config) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(cfg.HTTPS)) {
	case "auto", "":
		return cfg.TLSCert != "" && cfg.TLSKey != "", nil
	case "on", "true", "1":
		return true, nil
	case "off", "false", "0":
		if cfg.HTTPRedirect != "" {
			return false, errors.New("--http-redirect-addr needs HTTPS (--https on, or --tls-cert and --tls-key)")
		}
		return false, nil
	}
	return false, fmt.Errorf("--https %q: use auto, on or off", cfg.HTTPS)
}

// listenRedirect serves plain HTTP on --http-redirect-addr, sending every
// request to the same path on the HTTPS base URL (308 keeps the method
// and body, so an API client's POST is repeated over HTTPS; the target
// host is the base URL's, never the request's Host header).
func listenRedirect(cfg *config, log *slog.Logger) (*http.Server, string, error) {
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || base.Scheme != "https" || base.Host == "" {
		return nil, "", fmt.Errorf("--http-redirect-addr needs an https:// base URL, got %q", cfg.BaseURL)
	}
	ln, err := net.Listen("tcp", cfg.HTTPRedirect)
	if err != nil {
		return nil, "", fmt.Errorf("listen on %s: %w", cfg.HTTPRedirect, err)
	}
	rs := &http.Server{ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://"+base.Host+r.URL.RequestURI(), http.StatusPermanentRedirect)
		})}
	log.Info("http redirect listening", "addr", ln.Addr().String(), "to", "https://"+base.Host)
	go func() {
		if err := rs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http redirect listener stopped", "err", err)
		}
	}()
	return rs, ln.Addr().String(), nil
}
