package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"keydesk/models"
)

// Metrics is keydesk's Prometheus exposition: its own registry (never the
// global default), served on a separate listener by main.
type Metrics struct {
	Registry *prometheus.Registry
	requests *prometheus.HistogramVec
}

// NewMetrics registers the HTTP histogram, the store's counters (verify,
// cache, throttle, audit) and the database pool, plus the Go runtime.
func NewMetrics(store *models.Store) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{Registry: reg}
	m.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "keydesk_http_request_duration_seconds",
		Help:    "HTTP requests by route pattern, method and status, with their latency.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
	}, []string{"route", "method", "status"})
	reg.MustRegister(m.requests, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if store != nil {
		reg.MustRegister(storeCollector{store})
	}
	return m
}

// Handler serves the exposition.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// statusLabels avoids formatting the status code on every request.
var statusLabels = func() (s [600]string) {
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER" // a client picks the method: keep the label set bounded
}

// observe is the middleware: one histogram observation per request,
// labelled with Echo's route pattern (never the raw path, which would let
// clients create series at will).
func (m *Metrics) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		route := c.Path()
		if route == "" || c.Response().Status == http.StatusNotFound && route == "/*" {
			route = "unmatched"
		}
		status := c.Response().Status
		label := "other"
		if status >= 0 && status < len(statusLabels) {
			label = statusLabels[status]
		}
		m.requests.WithLabelValues(route, methodLabel(c.Request().Method), label).Observe(time.Since(start).Seconds())
		return err
	}
}

// storeCollector turns models' plain counters into metrics at scrape time.
type storeCollector struct{ s *models.Store }

var (
	descVerify    = prometheus.NewDesc("keydesk_verify_total", "API key verifications by outcome (ok, failed, error).", []string{"outcome"}, nil)
	descCache     = prometheus.NewDesc("keydesk_verify_cache_total", "Verification cache lookups by result (hit, miss).", []string{"result"}, nil)
	descThrottled = prometheus.NewDesc("keydesk_throttle_refusals_total", "Requests refused by the failure throttle, by channel (api: REST and SMTP, login: console).", []string{"channel"}, nil)
	descAppend    = prometheus.NewDesc("keydesk_audit_append_seconds", "Time spent appending audit entries (count and sum).", nil, nil)
	descChainOK   = prometheus.NewDesc("keydesk_audit_chain_ok", "Last background audit chain verification: 1 intact, 0 broken (absent before the first).", nil, nil)
	descChainAt   = prometheus.NewDesc("keydesk_audit_chain_verified_timestamp_seconds", "When the last audit chain verification ran.", nil, nil)
	descPoolOpen  = prometheus.NewDesc("keydesk_db_connections", "Database pool connections by state.", []string{"state"}, nil)
	descPoolMax   = prometheus.NewDesc("keydesk_db_connections_max", "Maximum open database connections (0: unlimited).", nil, nil)
	descPoolWait  = prometheus.NewDesc("keydesk_db_wait_total", "Connections waited for.", nil, nil)
	descPoolWaitS = prometheus.NewDesc("keydesk_db_wait_seconds_total", "Total time waited for a connection.", nil, nil)
)

func (storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descVerify, descCache, descThrottled, descAppend, descChainOK, descChainAt, descPoolOpen, descPoolMax, descPoolWait, descPoolWaitS} {
		ch <- d
	}
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descVerify, st.VerifyOK, "ok")
	counter(descVerify, st.VerifyFailed, "failed")
	counter(descVerify, st.VerifyError, "error")
	counter(descCache, st.CacheHits, "hit")
	counter(descCache, st.CacheMisses, "miss")
	counter(descThrottled, st.ThrottledAPI, "api")
	counter(descThrottled, st.ThrottledLogin, "login")
	ch <- prometheus.MustNewConstSummary(descAppend, st.AuditAppends, st.AuditAppendSeconds, nil)
	if r := st.LastChain; r != nil {
		ok := 0.0
		if r.OK {
			ok = 1
		}
		ch <- prometheus.MustNewConstMetric(descChainOK, prometheus.GaugeValue, ok)
		ch <- prometheus.MustNewConstMetric(descChainAt, prometheus.GaugeValue, float64(r.VerifiedAt.UnixNano())/1e9)
	}
	p := c.s.PoolStats()
	ch <- prometheus.MustNewConstMetric(descPoolOpen, prometheus.GaugeValue, float64(p.InUse), "in_use")
	ch <- prometheus.MustNewConstMetric(descPoolOpen, prometheus.GaugeValue, float64(p.Idle), "idle")
	ch <- prometheus.MustNewConstMetric(descPoolMax, prometheus.GaugeValue, float64(p.MaxOpenConnections))
	counter(descPoolWait, uint64(p.WaitCount))
	ch <- prometheus.MustNewConstMetric(descPoolWaitS, prometheus.CounterValue, p.WaitDuration.Seconds())
}
