package cache

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type selfMetrics struct {
	failures             *prometheus.CounterVec
	duration             prometheus.Histogram
	abandonedOutstanding prometheus.Gauge
	expired              prometheus.Counter
	persistErrors        *prometheus.CounterVec
	persistedSeries      prometheus.Gauge
	persistFailing       prometheus.Gauge
	restoreWaitTimeouts  prometheus.Counter
	droppedFamilies      prometheus.Counter
}

// newSelfMetrics registers the cache's self-metrics. The gauges that
// describe the snapshot are read from it when the agent is scraped.
func newSelfMetrics(reg prometheus.Registerer, c *Component) (*selfMetrics, error) {
	m := &selfMetrics{
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_cache_refresh_failures_total",
			Help: "Refreshes that changed nothing but expiry, by reason: error (the input's Gather failed), timeout (ran past refresh_timeout, abandoned), blocked (not started: the abandoned gather of the same input had not returned).",
		}, []string{"reason"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_cache_refresh_duration_seconds",
			Help:    "Time the input's Gather took, per refresh (an abandoned one counts up to refresh_timeout).",
			Buckets: []float64{.001, .005, .025, .1, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		abandonedOutstanding: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_cache_abandoned_gathers",
			Help: "Gathers of the input abandoned at refresh_timeout that have not returned yet (at most one per input).",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_cache_expired_series_total",
			Help: "Series dropped because they had been missing from the refreshes for max_staleness.",
		}),
		persistErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_cache_persist_errors_total",
			Help: "Snapshot file errors: write (after a refresh; the previous file stays) and restore (unreadable, truncated or corrupt at start: ignored).",
		}, []string{"op"}),
		persistedSeries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_cache_persisted_series",
			Help: "Series in the snapshot file this cache last wrote.",
		}),
		persistFailing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_cache_persist_failing",
			Help: "1 while the last write of the snapshot file failed (full disk, I/O error, read-only; the previous file is kept and the next refresh retries), 0 otherwise.",
		}),
		restoreWaitTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_cache_restore_wait_timeouts_total",
			Help: "Scrapes served before the snapshot file had been read back, because reading it took longer than 2s.",
		}),
		droppedFamilies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_cache_dropped_families_total",
			Help: "Errors of partial gathers: families or metrics the input dropped (one per error) while returning the rest, which the refresh used. A dropped family's last series are served until max_staleness.",
		}),
	}
	m.failures.WithLabelValues(reasonError)
	m.failures.WithLabelValues(reasonTimeout)
	m.failures.WithLabelValues(reasonBlocked)
	m.persistErrors.WithLabelValues(opWrite)
	m.persistErrors.WithLabelValues(opRestore)
	snap := func(f func(*snapshot) float64) func() float64 {
		return func() float64 { return f(c.snap.Load()) }
	}
	collectors := []prometheus.Collector{
		m.failures, m.duration, m.abandonedOutstanding, m.expired, m.persistErrors, m.persistedSeries, m.persistFailing, m.restoreWaitTimeouts, m.droppedFamilies,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_cache_age_seconds",
			Help: "Seconds since the last successful refresh (restored: of the refresh that was persisted; none yet: since the cache was created).",
		}, func() float64 {
			at := c.snap.Load().refreshedAt
			if at.IsZero() {
				at = time.Unix(0, c.started.Load())
			}
			return c.now().Sub(at).Seconds()
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_cache_restored",
			Help: "1 while series restored from the snapshot file, and not seen since, are served.",
		}, snap(func(s *snapshot) float64 {
			if s.restored > 0 {
				return 1
			}
			return 0
		})),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_cache_series",
			Help: "Series served.",
		}, snap(func(s *snapshot) float64 { return float64(s.series) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_cache_stale_series",
			Help: "Series served although missing from the last successful refresh (kept until max_staleness).",
		}, snap(func(s *snapshot) float64 { return float64(s.stale) })),
	}
	for _, col := range collectors {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return m, nil
}
