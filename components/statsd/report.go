package statsd

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/pipeline"
)

// The safety net of the ingest path. Bad input is checked before it
// reaches upstream's registry and client_golang (which panic on some of
// it); what still panics is recovered where it happens (per line in a
// reader, per item in a shard), counted in
// statsd_exporter_events_error_total{reason="panic"} and logged at a
// bounded rate, so one event cannot stop ingestion. Every lock of the
// ingest path is released by defer. And in case something still wedges a
// worker, each worker (packet reader, TCP connection, shard sweep) keeps
// a heartbeat that the watchdog (Health) reads: a worker busy with the
// same work for longer than stallAfter makes the component unhealthy,
// naming the worker, instead of hiding behind "healthy".

// defaultStallAfter is how long a worker may hold work without progress
// before the component reports unhealthy. Far above any legitimate stall
// (a reader waits at most for a shard applying one batch of 1024 items).
const defaultStallAfter = 10 * time.Second

// progress is one worker's heartbeat. busySince is when the worker took up
// the work it has not yet finished (nanoseconds since the receiver's
// epoch, never 0 when set), or 0 while it is idle (blocked on a socket
// with nothing in hand).
type progress struct {
	name      string
	busySince atomic.Int64
}

// reporter is where every part of the ingest path (listeners, readers,
// shards) counts and logs what goes wrong and keeps its heartbeat: each
// part is given the reporter, not the Receiver.
type reporter struct {
	m        *selfMetrics
	log      *slog.Logger
	badLog   *slog.Logger // bounded rate, for bad input
	panicLog *slog.Logger // bounded rate, for recovered panics
	watchState
}

// eventError counts and logs (at a bounded rate) a dropped event.
func (r *reporter) eventError(reason, msg string, kv ...any) {
	r.m.errorEventStats.WithLabelValues(reason).Inc()
	r.badLog.Warn(msg, append(kv, "reason", reason)...)
}

// nanos is t on the watchdog's monotonic clock, never 0.
func (w *watchState) nanos(t time.Time) int64 { return int64(t.Sub(w.epoch)) + 1 }

// busy marks the start of work if the worker was idle.
func (p *progress) busy(w *watchState) {
	if p.busySince.Load() == 0 {
		p.busySince.Store(w.nanos(time.Now()))
	}
}

// beat records progress while still busy.
func (p *progress) beat(w *watchState) { p.busySince.Store(w.nanos(time.Now())) }

func (p *progress) idle() { p.busySince.Store(0) }

// watch registers a worker's heartbeat with the watchdog; the returned
// function unregisters it.
func (r *reporter) watch(name string) (*progress, func()) {
	p := &progress{name: name}
	r.watchMu.Lock()
	r.workers[p] = struct{}{}
	r.watchMu.Unlock()
	return p, func() {
		r.watchMu.Lock()
		delete(r.workers, p)
		r.watchMu.Unlock()
	}
}

// Health implements pipeline.HealthReporter: unhealthy while a worker has
// been busy without progress for stallAfter (the watchdog), healthy
// otherwise. Bad input (and a recovered panic) does not change it: it is
// counted and logged.
func (r *reporter) Health() pipeline.Health {
	now := r.nanos(time.Now())
	var worst *progress
	var worstAge time.Duration
	r.watchMu.Lock()
	for p := range r.workers {
		since := p.busySince.Load()
		if since == 0 {
			continue
		}
		if age := time.Duration(now - since); age > r.stallAfter && age > worstAge {
			worst, worstAge = p, age
		}
	}
	r.watchMu.Unlock()
	state, msg := pipeline.HealthHealthy, ""
	if worst != nil {
		state = pipeline.HealthUnhealthy
		msg = fmt.Sprintf("%s has made no progress for %s with work in hand: ingestion may be wedged", worst.name, worstAge.Truncate(time.Second))
	}
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	if state != r.health.State {
		r.health.Since = time.Now()
		if state == pipeline.HealthUnhealthy {
			r.log.Error("statsd receiver wedged", "worker", worst.name, "stalled_for", worstAge)
		} else if r.health.State == pipeline.HealthUnhealthy {
			r.log.Info("statsd receiver making progress again")
		}
	}
	r.health.State, r.health.Message = state, msg
	return r.health
}

// recovered counts and logs (at a bounded rate, with the stack) a panic
// recovered in the ingest path.
func (r *reporter) recovered(where string, v any, kv ...any) {
	r.m.errorEventStats.WithLabelValues(reasonPanic).Inc()
	r.panicLog.Error("recovered from a panic in the statsd ingest path; the event was dropped",
		append(kv, "where", where, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))...)
}

// testHooks let tests inject faults into the ingest path. They are set
// before Run and only read afterwards; nil in production.
type testHooks struct {
	// line is called with each line before it is parsed.
	line func(string)
	// apply is called with each item before a shard applies it (the
	// shard's lock held).
	apply func(name string)
	// fullPathOnly turns the readers' fast path off (fastpath.go), to
	// compare it with the full path.
	fullPathOnly bool
}

// watchState is the watchdog's part of the reporter.
type watchState struct {
	epoch      time.Time
	stallAfter time.Duration
	watchMu    sync.Mutex
	workers    map[*progress]struct{}
	healthMu   sync.Mutex
	health     pipeline.Health
}
