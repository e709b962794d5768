package postgres

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Query run outcomes, the status label of sluice_postgres_queries_total.
const (
	statusSuccess = "success"
	statusError   = "error"
	statusTimeout = "timeout"
	statusSkipped = "skipped"
)

var statuses = []string{statusSuccess, statusError, statusTimeout, statusSkipped}

type selfMetrics struct {
	queries     *prometheus.CounterVec
	duration    *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
	rows        *prometheus.GaugeVec
	nulls       *prometheus.CounterVec
}

func newSelfMetrics(reg prometheus.Registerer) (*selfMetrics, error) {
	m := &selfMetrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_postgres_queries_total",
			Help: "Query runs by outcome: success, error, timeout, or skipped (the previous run of the same query was still going).",
		}, []string{"query", "status"}),
		duration: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_postgres_query_duration_seconds",
			Help: "Duration of the query's last run, successful or not.",
		}, []string{"query"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_postgres_query_last_success_timestamp_seconds",
			Help: "Unix time of the query's last successful run.",
		}, []string{"query"}),
		rows: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_postgres_query_rows",
			Help: "Rows returned by the query's last successful run.",
		}, []string{"query"}),
		nulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_postgres_null_values_total",
			Help: "Samples skipped because their value column was NULL in a row of a successful run (the row's other columns are kept).",
		}, []string{"query", "column"}),
	}
	for _, c := range []prometheus.Collector{m.queries, m.duration, m.lastSuccess, m.rows, m.nulls} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// init makes every status of a query visible at 0 before its first run.
func (m *selfMetrics) init(query string) {
	for _, s := range statuses {
		m.queries.WithLabelValues(query, s)
	}
}

func (m *selfMetrics) forget(query string) {
	l := prometheus.Labels{"query": query}
	m.queries.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	m.lastSuccess.DeletePartialMatch(l)
	m.rows.DeletePartialMatch(l)
	m.nulls.DeletePartialMatch(l)
}

// nullValues counts the samples a run skipped for a NULL value, by column.
func (m *selfMetrics) nullValues(query string, nulls map[string]int) {
	for col, n := range nulls {
		m.nulls.WithLabelValues(query, col).Add(float64(n))
	}
}

func (m *selfMetrics) skipped(query string) {
	m.queries.WithLabelValues(query, statusSkipped).Inc()
}

func (m *selfMetrics) count(query, status string) {
	m.queries.WithLabelValues(query, status).Inc()
}

// finish records a run: its duration, and when every database succeeded,
// the time and the row count (summed over databases).
func (m *selfMetrics) finish(query string, d time.Duration, rows int, ok bool, now time.Time) {
	m.duration.WithLabelValues(query).Set(d.Seconds())
	if ok {
		m.lastSuccess.WithLabelValues(query).Set(float64(now.UnixNano()) / 1e9)
		m.rows.WithLabelValues(query).Set(float64(rows))
	}
}
