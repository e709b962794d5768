package pipeline

import "time"

// Timeouts of scheduled work (see Schedule): the rules shared by components
// that do something every interval with a timeout (exec_source,
// http_json_source, postgres_source's queries, cache's refreshes,
// heartbeat's signals).

// DefaultTimeout is the timeout of scheduled work whose timeout the user
// did not set: fallback (the component's default), but never longer than
// interval, as Prometheus does with scrape_timeout. A default must adapt to
// what the user set: `interval = "1s"` alone is a valid config, not an
// error about a timeout the user never wrote. An explicit timeout is the
// component's to check (some refuse one longer than the interval).
func DefaultTimeout(interval, fallback time.Duration) time.Duration {
	if interval > 0 && interval < fallback {
		return interval
	}
	return fallback
}

// ScheduleTimeout is the timeout of scheduled work: timeout as the user set
// it, or DefaultTimeout(interval, fallback) when unset (0).
func ScheduleTimeout(timeout, interval, fallback time.Duration) time.Duration {
	if timeout != 0 {
		return timeout
	}
	return DefaultTimeout(interval, fallback)
}

// DefaultDocumenter is implemented by Arguments types (on the pointer) whose
// defaults depend on other arguments, so SetDefaults leaves them zero: it
// returns, by attribute name, the default as the reference documentation
// shows it, e.g. {"timeout": "min(10s, interval)"}.
type DefaultDocumenter interface {
	DefaultDocs() map[string]string
}
