package httpjson

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/jsonlimit"
)

// Poll outcomes, the result label of sluice_httpjson_polls_total.
const (
	resultSuccess   = "success"
	resultTimeout   = "timeout"
	resultHTTPError = "http_error" // a status other than 2xx
	resultBadBody   = "bad_body"   // not JSON
	resultTooLarge  = "too_large"  // a response over max_response_bytes
	resultError     = "error"      // connection errors, refused redirects, bad Link targets
)

var results = []string{resultSuccess, resultTimeout, resultHTTPError, resultBadBody, resultTooLarge, resultError}

type selfMetrics struct {
	polls       *prometheus.CounterVec
	duration    prometheus.Gauge
	lastSuccess prometheus.Gauge
	series      prometheus.Gauge
	pages       prometheus.Gauge
	truncated   prometheus.Counter
	dropped     *prometheus.CounterVec
	refused     *prometheus.CounterVec

	mu    sync.Mutex
	known map[string]bool // metrics with drop counters
}

func newSelfMetrics(reg prometheus.Registerer) (*selfMetrics, error) {
	m := &selfMetrics{
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_httpjson_polls_total",
			Help: "Polls by result: success, timeout, http_error, bad_body, too_large or error. Only success replaces the exported values.",
		}, []string{"result"}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_httpjson_poll_duration_seconds",
			Help: "Duration of the last poll, every page included, successful or not.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_httpjson_last_success_timestamp_seconds",
			Help: "Unix time of the last successful poll.",
		}),
		series: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_httpjson_series",
			Help: "Series exported, from the last successful poll.",
		}),
		pages: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_httpjson_pages",
			Help: "Pages fetched by the last successful poll.",
		}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_httpjson_pages_truncated_total",
			Help: "Polls that stopped at max_pages while the API announced a next page.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_httpjson_series_dropped_total",
			Help: "Series not exported, by metric block and reason: eval_error, missing, not_number, bad_labels, bad_element, duplicate, series_limit.",
		}, []string{"metric", "reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_httpjson_responses_refused_total",
			Help: "Responses refused by the JSON decoding limits, by reason: too_large, too_deep, too_many_values, timeout, syntax. Each also fails its poll.",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.polls, m.duration, m.lastSuccess, m.series, m.pages, m.truncated, m.dropped, m.refused} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, r := range results {
		m.polls.WithLabelValues(r)
	}
	for _, r := range jsonlimit.Reasons {
		m.refused.WithLabelValues(r)
	}
	return m, nil
}

// init makes the drop counters of p's metrics visible at 0 and forgets
// those of metrics no longer configured.
func (m *selfMetrics) init(p *plan) {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := map[string]bool{}
	for _, d := range p.metrics {
		names[d.name] = true
		for _, r := range reasons {
			m.dropped.WithLabelValues(d.name, r)
		}
	}
	for name := range m.known {
		if !names[name] {
			m.dropped.DeletePartialMatch(prometheus.Labels{"metric": name})
		}
	}
	m.known = names
}

func (m *selfMetrics) poll(result string, d time.Duration) {
	m.polls.WithLabelValues(result).Inc()
	m.duration.Set(d.Seconds())
}

func (m *selfMetrics) success(now time.Time, series, pages int) {
	m.lastSuccess.Set(float64(now.UnixNano()) / 1e9)
	m.series.Set(float64(series))
	m.pages.Set(float64(pages))
}
