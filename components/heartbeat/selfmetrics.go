package heartbeat

import "github.com/prometheus/client_golang/prometheus"

type selfMetrics struct {
	sent        *prometheus.CounterVec
	failures    *prometheus.CounterVec
	lastSuccess prometheus.Gauge
	unhealthy   prometheus.Gauge
}

func newSelfMetrics(reg prometheus.Registerer) (*selfMetrics, error) {
	m := &selfMetrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_heartbeat_signals_total",
			Help: "Signals by kind (success, fail, start) and outcome: delivered, or lost (every attempt failed before the next signal was due).",
		}, []string{"signal", "outcome"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_heartbeat_failures_total",
			Help: "Failed HTTP attempts by reason: timeout, network (DNS, connection, TLS) or http_status (an answer other than 2xx).",
		}, []string{"reason"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_heartbeat_last_success_timestamp_seconds",
			Help: "Unix time of the last signal the monitor accepted (2xx).",
		}),
		unhealthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_heartbeat_unhealthy_components",
			Help: "Watched components that were not healthy at the last signal.",
		}),
	}
	for _, c := range []prometheus.Collector{m.sent, m.failures, m.lastSuccess, m.unhealthy} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Every series exists from the start, so that rate() and absent()
	// alerts see them before the first failure.
	for _, s := range []string{signalSuccess, signalFail, signalStart} {
		for _, o := range []string{"delivered", "lost"} {
			m.sent.WithLabelValues(s, o)
		}
	}
	for _, r := range []string{reasonTimeout, reasonNetwork, reasonStatus} {
		m.failures.WithLabelValues(r)
	}
	return m, nil
}
