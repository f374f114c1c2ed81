package cli

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"keydesk/models"
	kdsmtp "keydesk/smtp"
	"keydesk/views"
)

// newSMTPServer builds the SMTP submission listener from the settings, or
// returns nil when --smtp-addr is "off".
func newSMTPServer(cfg *config, store *models.Store, relay models.Relay, log *slog.Logger) (*kdsmtp.Server, error) {
	if strings.EqualFold(strings.TrimSpace(cfg.SMTPAddr), "off") {
		log.Info("smtp submission disabled (--smtp-addr off)")
		return nil, nil
	}
	tlsCfg, err := smtpTLS(cfg, log)
	if err != nil {
		return nil, err
	}
	return kdsmtp.New(kdsmtp.Config{
		Addr: cfg.SMTPAddr, TLS: tlsCfg, AllowInsecureAuth: cfg.SMTPInsecure, MaxMessageBytes: cfg.SMTPMaxBytes,
		Domain: smtpInfo(cfg).Host, Relay: relay, Logger: log,
		MaxConns: cfg.SMTPMaxConns, MaxConnsPerIP: cfg.SMTPMaxPerIP, SpoolDir: cfg.SMTPSpoolDir,
	}, store)
}

// smtpTLS loads --tls-cert/--tls-key or, when both are empty, loads or
// creates a self-signed certificate beside the database (the key 0600).
func smtpTLS(cfg *config, log *slog.Logger) (*tls.Config, error) {
	switch {
	case cfg.TLSCert != "" && cfg.TLSKey != "":
		pair, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("load TLS certificate %s and key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
		}
		return kdsmtp.TLSConfig(pair), nil
	case cfg.TLSCert != "" || cfg.TLSKey != "":
		return nil, errors.New("set both --tls-cert and --tls-key (KEYDESK_TLS_CERT, KEYDESK_TLS_KEY), or neither for a self-signed certificate")
	}
	certPath, keyPath := besideDB(cfg, certFile), besideDB(cfg, certKeyFile)
	hosts := []string{smtpInfo(cfg).Host}
	for _, addr := range []string{cfg.SMTPAddr, cfg.Addr} { // the HTTPS listener uses it too
		if h, _, err := net.SplitHostPort(addr); err == nil && h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	pems, err := loadOrGenerate(log, "the SMTP certificate and key", []string{certPath, keyPath}, func() ([]string, error) {
		certPEM, keyPEM, err := kdsmtp.SelfSignedCertificate(hosts...)
		return []string{string(certPEM), string(keyPEM)}, err
	}, "generated a self-signed certificate for SMTP STARTTLS and saved it (key with 0600 permissions); clients must trust it explicitly. Set KEYDESK_TLS_CERT and KEYDESK_TLS_KEY to use a real one",
		"cert", certPath, "key", keyPath, "hosts", hosts)
	if err != nil {
		return nil, err
	}
	_ = os.Chmod(certPath, 0o644) // public: clients may need to trust it
	certPEM, keyPEM := []byte(pems[0]), []byte(pems[1])
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("SMTP certificate %s and key %s: %w", certPath, keyPath, err)
	}
	return kdsmtp.TLSConfig(pair), nil
}

func smtpInfo(cfg *config) views.SMTPInfo {
	if strings.EqualFold(cfg.SMTPAddr, "off") {
		return views.SMTPInfo{Off: true}
	}
	host, portStr, err := net.SplitHostPort(cfg.SMTPAddr)
	port, _ := strconv.Atoi(portStr)
	if err != nil || port == 0 {
		port = kdsmtp.DefaultPort
	}
	if cfg.SMTPHost != "" {
		host = cfg.SMTPHost
	} else if u, err := url.Parse(cfg.BaseURL); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return views.SMTPInfo{Host: host, Port: port, TLSMode: "STARTTLS"}
}
