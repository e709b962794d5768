package statsd

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// selfMetrics are the receiver's own metrics. Names and labels follow
// statsd_exporter's, so existing dashboards and alerts keep working; the
// agent adds the component_id label.
type selfMetrics struct {
	eventStats            *prometheus.CounterVec
	eventsUnmapped        prometheus.Counter
	eventsActions         *prometheus.CounterVec
	errorEventStats       *prometheus.CounterVec
	conflictingEventStats *prometheus.CounterVec
	metricsCount          *prometheus.GaugeVec
	udpPackets            prometheus.Counter
	readsUncoalesced      prometheus.Counter
	unixgramPackets       prometheus.Counter
	tcpConnections        prometheus.Counter
	tcpErrors             prometheus.Counter
	tcpLineTooLong        prometheus.Counter
	linesReceived         prometheus.Counter
	samplesReceived       prometheus.Counter
	sampleErrors          *prometheus.CounterVec
	tagsReceived          prometheus.Counter
	tagErrors             prometheus.Counter
	configLoads           *prometheus.CounterVec
	mappingsCount         prometheus.Gauge
	maxSeries             prometheus.Gauge
	readErrors            prometheus.Counter
	tcpOpen               prometheus.Gauge
	tcpAcceptPaused       prometheus.Counter

	// Resolved children, for the hot path.
	evCounter, evGauge, evObserver prometheus.Counter
	actMap, actDrop                prometheus.Counter
}

// Reasons of statsd_exporter_events_error_total.
const (
	reasonEmptyName        = "empty_metric_name"
	reasonInvalidName      = "invalid_metric_name"
	reasonInvalidLabel     = "invalid_label_name"
	reasonNegativeCounter  = "illegal_negative_counter"
	reasonSeriesLimit      = "max_series"
	reasonRegistryConflict = "registry_error"
	// A label the event's series type reserves: le on a histogram,
	// quantile on a summary (client_golang would panic on it).
	reasonReservedLabel = "reserved_label"
	// NaN or an infinity, in the value or after the sample rate or scale.
	reasonNonFinite = "non_finite_value"
	// A sample rate that is not a number in (0, 1].
	reasonSampleRate = "invalid_sample_rate"
	// A line whose sample rates would expand it into more than
	// maxLineEvents events.
	reasonTooManyEvents = "too_many_events"
	// A TCP line longer than max_line_length.
	reasonLineTooLong = "line_too_long"
	// A panic recovered while handling the event (or line): a bug, not
	// bad input, but it must not stop ingestion.
	reasonPanic = "panic"
)

func newSelfMetrics(reg prometheus.Registerer) (*selfMetrics, error) {
	m := &selfMetrics{
		eventStats: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "statsd_exporter_events_total",
			Help: "The total number of StatsD events seen.",
		}, []string{"type"}),
		eventsUnmapped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "statsd_exporter_events_unmapped_total",
			Help: "The total number of StatsD events no mapping was found for.",
		}),
		eventsActions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "statsd_exporter_events_actions_total",
			Help: "The total number of StatsD events by action.",
		}, []string{"action"}),
		errorEventStats: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "statsd_exporter_events_error_total",
			Help: "The total number of StatsD events discarded due to errors.",
		}, []string{"reason"}),
		conflictingEventStats: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "statsd_exporter_events_conflict_total",
			Help: "The total number of StatsD events with conflicting names.",
		}, []string{"type", "metric_name"}),
		metricsCount: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "statsd_exporter_metrics_total",
			Help: "The total number of metrics.",
		}, []string{"type"}),
		udpPackets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "statsd_exporter_udp_packets_total",
			Help: "The total number of StatsD packets received over UDP.",
		}),
		unixgramPackets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "statsd_exporter_unixgram_packets_total",
			Help: "The total number of StatsD packets received over Unixgram.",
		}),
		tcpConnections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "statsd_exporter_tcp_connections_total",
			Help: "The total number of TCP connections handled.",
		}),
		tcpErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "statsd_exporter_tcp_connection_errors_total",
			Help: "The number of errors encountered reading from TCP.",
		}),
		tcpLineTooLong: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "statsd_exporter_tcp_too_long_lines_total",
			Help: "The number of lines discarded due to being too long.",
		}),
		linesReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "statsd_exporter_lines_total",
			Help: "The total number of StatsD lines received.",
		}),
		samplesReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "statsd_exporter_samples_total",
			Help: "The total number of StatsD samples received.",
		}),
		sampleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "statsd_exporter_sample_errors_total",
			Help: "The total number of errors parsing StatsD samples.",
		}, []string{"reason"}),
		tagsReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "statsd_exporter_tags_total",
			Help: "The total number of DogStatsD tags processed.",
		}),
		tagErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "statsd_exporter_tag_errors_total",
			Help: "The number of errors parsing DogStatsD tags.",
		}),
		configLoads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "statsd_exporter_config_reloads_total",
			Help: "The number of configuration reloads.",
		}, []string{"outcome"}),
		mappingsCount: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "statsd_exporter_loaded_mappings",
			Help: "The current number of configured metric mappings.",
		}),
		maxSeries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_statsd_max_series",
			Help: "The configured series limit (max_series); 0 means no limit.",
		}),
		readErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_statsd_read_errors_total",
			Help: "Errors reading from a UDP or unixgram socket, or accepting TCP connections.",
		}),
		tcpOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_statsd_tcp_open_connections",
			Help: "TCP connections being served now (at most max_connections).",
		}),
		readsUncoalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_statsd_read_coalescing_suspended_total",
			Help: "Times a UDP or unixgram socket's reader stopped sleeping between reads for 5 s because its receive buffer was over half full after a sleep (Linux): at that rate it wakes for every datagram, which costs more CPU. Raise read_buffer if it keeps growing.",
		}),
		tcpAcceptPaused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_statsd_tcp_accept_paused_total",
			Help: "Times the TCP listener stopped accepting because max_connections were open (new connections wait in the kernel's backlog).",
		}),
	}
	var errs []error
	for _, c := range []prometheus.Collector{
		m.eventStats, m.eventsUnmapped, m.eventsActions, m.errorEventStats, m.conflictingEventStats,
		m.metricsCount, m.udpPackets, m.unixgramPackets, m.tcpConnections, m.tcpErrors, m.tcpLineTooLong,
		m.linesReceived, m.samplesReceived, m.sampleErrors, m.tagsReceived, m.tagErrors, m.configLoads,
		m.mappingsCount, m.maxSeries, m.readErrors, m.tcpOpen, m.tcpAcceptPaused, m.readsUncoalesced,
	} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m.evCounter = m.eventStats.WithLabelValues("counter")
	m.evGauge = m.eventStats.WithLabelValues("gauge")
	m.evObserver = m.eventStats.WithLabelValues("observer")
	m.actMap = m.eventsActions.WithLabelValues("map")
	m.actDrop = m.eventsActions.WithLabelValues("drop")
	// Make the usual outcomes visible at zero.
	m.configLoads.WithLabelValues("success")
	m.configLoads.WithLabelValues("failure")
	for _, r := range []string{reasonReservedLabel, reasonNonFinite, reasonPanic} {
		m.errorEventStats.WithLabelValues(r)
	}
	return m, nil
}

// localCounter counts on one goroutine without atomics and adds its total
// to the shared counter on flush. It satisfies prometheus.Counter, so it can
// be handed to upstream's line parser, which increments per sample.
type localCounter struct {
	prometheus.Counter
	n float64
}

func (c *localCounter) Inc()          { c.n++ }
func (c *localCounter) Add(v float64) { c.n += v }
func (c *localCounter) flush() {
	if c.n != 0 {
		c.Counter.Add(c.n)
		c.n = 0
	}
}

// replacingRegisterer registers a collector in place of an equal one: the
// mapper caches register their metrics each time one is made, which a
// reload does.
type replacingRegisterer struct{ prometheus.Registerer }

func (r replacingRegisterer) Register(c prometheus.Collector) error {
	err := r.Registerer.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		r.Registerer.Unregister(are.ExistingCollector)
		err = r.Registerer.Register(c)
	}
	return err
}

func (r replacingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}
