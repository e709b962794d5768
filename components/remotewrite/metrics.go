package remotewrite

import (
	"math"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// selfMetrics are remote_write's own metrics, modelled on Prometheus'
// prometheus_remote_storage_*; all but the gather errors are per endpoint.
type selfMetrics struct {
	samples      *prometheus.CounterVec // endpoint, result
	pending      *prometheus.GaugeVec
	shards       *prometheus.GaugeVec
	highestSent  *prometheus.GaugeVec
	bytesSent    *prometheus.CounterVec
	sendDuration *prometheus.HistogramVec
	walSize      *prometheus.GaugeVec
	walCorrupt   *prometheus.CounterVec
	walFaults    *prometheus.CounterVec // endpoint, op
	walDropped   *prometheus.CounterVec
	invalid      *prometheus.CounterVec
	gatherErrors *prometheus.CounterVec // input, reason
	// skippedGathers counts ticks skipped because a slow gather had just
	// ended (see Run).
	skippedGathers prometheus.Counter
}

func newSelfMetrics(reg prometheus.Registerer) (*selfMetrics, error) {
	ep := []string{"endpoint"}
	m := &selfMetrics{
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_remote_write_samples_total",
			Help: "Samples (and native histograms) by outcome: sent (accepted by the endpoint), failed (refused with a 4xx other than 429, or unencodable), retried (a send attempt that will be retried), dropped (never sent: queue full without a WAL, or beyond max_wal_size/max_wal_age)."},
			[]string{"endpoint", "result"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_remote_write_samples_pending",
			Help: "Samples queued in memory, not yet sent."}, ep),
		shards: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_remote_write_shards",
			Help: "Shards sending to the endpoint in parallel."}, ep),
		highestSent: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_remote_write_highest_sent_timestamp_seconds",
			Help: "Timestamp of the newest sample the endpoint accepted."}, ep),
		bytesSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_remote_write_bytes_sent_total",
			Help: "Compressed request bytes the endpoint accepted."}, ep),
		sendDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_remote_write_send_duration_seconds",
			Help: "Duration of send attempts.", Buckets: prometheus.ExponentialBuckets(0.005, 4, 8)}, ep),
		walSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_remote_write_wal_size_bytes",
			Help: "Size of the endpoint's write-ahead log on disk."}, ep),
		walCorrupt: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_remote_write_wal_corruptions_total",
			Help: "Torn or corrupt WAL records; the rest of their segment was skipped."}, ep),
		walFaults: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_remote_write_wal_faults_total",
			Help: "WAL operations that failed, by op: write (an append: its gather is dropped), create (a new segment), truncate (cutting a failed write's partial record off), sync and close (of a finished segment), position (saving the sent position)."},
			[]string{"endpoint", "op"}),
		walDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_remote_write_wal_dropped_samples_total",
			Help: "Samples dropped because the WAL could not be written (also counted in samples_total{result=\"dropped\"})."}, ep),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_remote_write_invalid_series_total",
			Help: "Series left out of a gather because a label name or value is not valid UTF-8 (a receiver refuses the whole request that carries one); also counted in samples_total{result=\"dropped\"}."}, ep),
		gatherErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_remote_write_gather_errors_total",
			Help: "Gather errors by input and reason: gather (the input failed, nothing gathered), partial (one per family or metric an input dropped while returning the rest, which is sent), inconsistent (a family or series skipped)."}, []string{"input", "reason"}),
		skippedGathers: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_remote_write_gathers_skipped_total",
			Help: "Scrape-interval ticks skipped because the previous gather, being slow, ended less than half an interval before."}),
	}
	for _, c := range []prometheus.Collector{m.samples, m.pending, m.shards, m.highestSent, m.bytesSent, m.sendDuration, m.walSize, m.walCorrupt, m.walFaults, m.walDropped, m.invalid, m.gatherErrors, m.skippedGathers} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// endpointMetrics are selfMetrics curried with one endpoint's label.
type endpointMetrics struct {
	sent, failed, retried, dropped counter
	pending, shards                prometheus.Gauge
	highestSent                    prometheus.Gauge
	bytesSent                      prometheus.Counter
	sendDuration                   prometheus.Observer
	walSize                        prometheus.Gauge
	walCorrupt                     prometheus.Counter
	walFaults                      *prometheus.CounterVec
	walDropped                     prometheus.Counter
	invalid                        prometheus.Counter

	mu      sync.Mutex
	highest float64
}

func (m *selfMetrics) forEndpoint(name string) *endpointMetrics {
	return &endpointMetrics{
		sent:         m.samples.WithLabelValues(name, "sent"),
		failed:       m.samples.WithLabelValues(name, "failed"),
		retried:      m.samples.WithLabelValues(name, "retried"),
		dropped:      m.samples.WithLabelValues(name, "dropped"),
		pending:      m.pending.WithLabelValues(name),
		shards:       m.shards.WithLabelValues(name),
		highestSent:  m.highestSent.WithLabelValues(name),
		bytesSent:    m.bytesSent.WithLabelValues(name),
		sendDuration: m.sendDuration.WithLabelValues(name),
		walSize:      m.walSize.WithLabelValues(name),
		walCorrupt:   m.walCorrupt.WithLabelValues(name),
		walFaults:    m.walFaults.MustCurryWith(prometheus.Labels{"endpoint": name}),
		walDropped:   m.walDropped.WithLabelValues(name),
		invalid:      m.invalid.WithLabelValues(name),
	}
}

// forget removes an endpoint's series when the endpoint goes away.
func (m *selfMetrics) forget(name string) {
	for _, v := range []*prometheus.MetricVec{m.samples.MetricVec, m.pending.MetricVec, m.shards.MetricVec, m.highestSent.MetricVec,
		m.bytesSent.MetricVec, m.walSize.MetricVec, m.walCorrupt.MetricVec, m.walFaults.MetricVec, m.walDropped.MetricVec, m.invalid.MetricVec} {
		v.DeletePartialMatch(prometheus.Labels{"endpoint": name})
	}
	m.sendDuration.DeletePartialMatch(prometheus.Labels{"endpoint": name})
}

// markSent raises the highest sent timestamp (shards race to set it).
func (m *endpointMetrics) markSent(tsSeconds float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if tsSeconds > m.highest && !math.IsNaN(tsSeconds) {
		m.highest = tsSeconds
		m.highestSent.Set(tsSeconds)
	}
}
