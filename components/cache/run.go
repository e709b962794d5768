package cache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/internal/gathermerge"
	"github.com/sluicehq/sluice/pipeline"
)

// Failure reasons, the reason label of sluice_cache_refresh_failures_total.
const (
	reasonError   = "error"   // the input's Gather returned an error and no family (or panicked)
	reasonTimeout = "timeout" // it ran past refresh_timeout and was abandoned
	reasonBlocked = "blocked" // not started: the abandoned gather of the same input still runs
)

// loop runs one refresh at once, then one per refresh_interval (plus or
// minus the jitter) until ctx ends. Refreshes run one at a time, from this
// loop only: that is the single flight. A Commit that changes the input
// refreshes at once; one that changes the interval only reschedules.
func (c *Component) loop(ctx context.Context) error {
	for {
		start := c.now()
		c.refresh(ctx)
		if ctx.Err() != nil {
			return nil
		}
		gen := c.cfg.Load().inputGen
		f := rand.Float64()*2 - 1 // this cycle's jitter, in [-1, 1)
	wait:
		for {
			cfg := c.cfg.Load()
			if cfg.inputGen != gen {
				break // a new input: refresh it now
			}
			d := time.Duration(float64(cfg.interval)*(1+f*cfg.jitter)) - c.now().Sub(start)
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-c.wake:
				t.Stop() // re-read the config
			case <-t.C:
				break wait
			}
		}
	}
}

// gatherCall is one Gather of the input, run in a goroutine of its own:
// Gather takes no context, so a refresh that times out can only abandon it.
type gatherCall struct {
	gen   uint64
	done  chan struct{} // closed when Gather has returned
	fams  []*dto.MetricFamily
	err   error
	state atomic.Int32 // callRunning, then callFinished or callAbandoned
}

const (
	callRunning int32 = iota
	callFinished
	callAbandoned
)

// startGather calls in.Gather in a goroutine. The goroutine ends when
// Gather returns, however late; an abandoned call decrements the gauge of
// outstanding abandoned gathers then.
func (c *Component) startGather(in prometheus.Gatherer, gen uint64) *gatherCall {
	call := &gatherCall{gen: gen, done: make(chan struct{})}
	go func() {
		defer close(call.done)
		call.fams, call.err = safeGather(in)
		if !call.state.CompareAndSwap(callRunning, callFinished) {
			c.metrics.abandonedOutstanding.Dec()
		}
	}()
	return call
}

// safeGather turns a panicking input into an error.
func safeGather(in prometheus.Gatherer) (fams []*dto.MetricFamily, err error) {
	defer func() {
		if r := recover(); r != nil {
			fams, err = nil, fmt.Errorf("input panicked: %v", r)
		}
	}()
	return in.Gather()
}

// refresh gathers the input once and swaps in the merged snapshot; on
// failure it only expires what is older than max_staleness.
//
// At most one abandoned gather of an input is outstanding: while the last
// abandoned call of the current input still runs, refreshes are skipped
// (counted as "blocked") instead of starting another one, so an input
// that hangs costs one goroutine, not one per refresh_interval. A reload
// that changes the input starts afresh; the old input's call, if any, is
// still counted in sluice_cache_abandoned_gathers until it returns.
func (c *Component) refresh(ctx context.Context) {
	cfg := c.cfg.Load()
	if h := c.hung; h != nil {
		if h.state.Load() == callAbandoned && h.gen == cfg.inputGen {
			select {
			case <-h.done:
			default:
				c.fail(reasonBlocked, errors.New("the previous, abandoned gather of the input has not returned yet"), cfg)
				return
			}
		}
		c.hung = nil
	}
	began := c.now()
	call := c.startGather(cfg.input, cfg.inputGen)
	t := time.NewTimer(cfg.timeout)
	defer t.Stop()
	select {
	case <-call.done:
	case <-t.C:
	case <-ctx.Done():
	}
	select {
	case <-call.done:
	default:
		if call.state.CompareAndSwap(callRunning, callAbandoned) {
			c.metrics.abandonedOutstanding.Inc()
			c.hung = call
			if ctx.Err() != nil {
				return // shutting down: not a failure of the input
			}
			c.metrics.duration.Observe(c.now().Sub(began).Seconds())
			c.fail(reasonTimeout, fmt.Errorf("gather ran past refresh_timeout (%v): abandoned", cfg.timeout), cfg)
			return
		}
		<-call.done // it finished in the meantime
	}
	now := c.now()
	c.metrics.duration.Observe(now.Sub(began).Seconds())
	if call.err != nil && len(call.fams) == 0 {
		c.fail(reasonError, call.err, cfg)
		return
	}
	// A partial gather (families and an error, as a registry returns when
	// a collector fails) refreshes with what it has: one bad family must
	// not hold back the others, and its own last series stay until
	// max_staleness like any series missing from a refresh.
	dropped := 0
	if call.err != nil {
		errs := gathermerge.SplitErrors(call.err)
		dropped = len(errs)
		c.metrics.droppedFamilies.Add(float64(dropped))
		c.errLog.Warn("partial refresh: the input dropped families or metrics; the rest is cached", "errors", dropped, "first", errs[0])
	}
	next, st := merge(c.snap.Load(), call.fams, now, cfg.maxStaleness)
	c.storeSnapshot(next)
	c.metrics.expired.Add(float64(st.expired))
	if cfg.persist {
		if err := c.persist.write(next, now); err != nil {
			c.metrics.persistErrors.WithLabelValues(opWrite).Inc()
			c.metrics.persistFailing.Set(1)
			c.errLog.Error("writing the snapshot file failed: the previous one is kept, the next refresh writes again", "err", err)
			c.setHealth(pipeline.HealthUnhealthy, fmt.Sprintf("%d series refreshed, but the snapshot file cannot be written (%v): a restart would serve an older one", next.series, err))
			return
		}
		c.metrics.persistedSeries.Set(float64(next.series))
		c.metrics.persistFailing.Set(0)
	}
	msg := fmt.Sprintf("%d series, %d kept from earlier refreshes", next.series, next.stale)
	if dropped > 0 {
		msg += fmt.Sprintf("; the last gather was partial (%d errors)", dropped)
	}
	c.setHealth(pipeline.HealthHealthy, msg)
}

// fail counts a failed refresh; the snapshot only loses what has expired.
func (c *Component) fail(reason string, err error, cfg *config) {
	c.metrics.failures.WithLabelValues(reason).Inc()
	c.errLog.Warn("refresh failed: serving the last snapshot", "reason", reason, "err", err)
	c.setHealth(pipeline.HealthUnhealthy, fmt.Sprintf("last refresh failed (%s): %v", reason, err))
	next, n := expire(c.snap.Load(), c.now(), cfg.maxStaleness)
	if n > 0 {
		c.storeSnapshot(next)
		c.metrics.expired.Add(float64(n))
	}
}
