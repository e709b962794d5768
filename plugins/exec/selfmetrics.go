package exec

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Run outcomes, the result label of sluice_exec_runs_total.
const (
	resultSuccess   = "success"
	resultExitError = "exit_error" // exited with a non-zero code or was killed by a signal
	resultTimeout   = "timeout"    // killed at timeout
	resultBadOutput = "bad_output" // not the text exposition format
	resultTooLarge  = "too_large"  // more than max_output_bytes; killed
	resultError     = "error"      // could not start
)

var results = []string{resultSuccess, resultExitError, resultTimeout, resultBadOutput, resultTooLarge, resultError}

type selfMetrics struct {
	runs        *prometheus.CounterVec
	exitCode    prometheus.Gauge
	duration    prometheus.Gauge
	lastSuccess prometheus.Gauge
	series      prometheus.Gauge
}

func newSelfMetrics(reg prometheus.Registerer) (*selfMetrics, error) {
	m := &selfMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_exec_runs_total",
			Help: "Runs of the command by result: success, exit_error, timeout, bad_output, too_large or error. Only success replaces the exported values.",
		}, []string{"result"}),
		exitCode: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_exec_last_exit_code",
			Help: "Exit code of the last run that exited; -1 when it was killed by a signal (at timeout, or by too much output).",
		}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_exec_duration_seconds",
			Help: "Duration of the last run, successful or not.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_exec_last_success_timestamp_seconds",
			Help: "Unix time of the last successful run.",
		}),
		series: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_exec_series",
			Help: "Series exported, from the last successful run.",
		}),
	}
	for _, c := range []prometheus.Collector{m.runs, m.exitCode, m.duration, m.lastSuccess, m.series} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, r := range results {
		m.runs.WithLabelValues(r)
	}
	return m, nil
}

func (m *selfMetrics) run(result string, d time.Duration) {
	m.runs.WithLabelValues(result).Inc()
	m.duration.Set(d.Seconds())
}
