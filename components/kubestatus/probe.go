package kubestatus

import (
	"context"
	"fmt"
	"sync"
	"time"

	"net/http"

	"github.com/sluicehq/sluice/components/kubestatus/internal/kubewatch"
)

// The API server probe. Informers do not say when the API server is gone:
// client-go's reflector retries a refused connection on its own without
// calling the watch error handler, so the statuses would be exported as
// current for as long as the server is down. A cheap GET of /readyz,
// through the same client (same address, TLS and credentials), every
// probeEvery tells: after the failed probes of unreachableAfter, the
// component is unhealthy and sluice_kubernetes_api_up is 0.
const (
	defaultProbeEvery       = 5 * time.Second
	defaultUnreachableAfter = 10 * time.Second
	probeTimeout            = 5 * time.Second
)

// prober is a func that asks the API server for a sign of life.
type prober func(ctx context.Context) error

// readyzProber GETs /readyz through kw. An authorization error is an
// answer too: the server is there (a service account may be denied the
// non-resource URL where the default public-info-viewer role was removed).
func readyzProber(kw *kubewatch.Client) prober {
	return func(ctx context.Context) error {
		err := kw.Readyz(ctx)
		if c := kubewatch.Code(err); c == http.StatusForbidden || c == http.StatusUnauthorized {
			return nil
		}
		return err
	}
}

// contact is what the probe learnt: when the API server last answered,
// and the last failure since.
type contact struct {
	mu       sync.Mutex
	last     time.Time // last answer (or the start of probing; zero before)
	failures int       // consecutive failed probes
	err      error
	down     bool // unreachable past the threshold: health and logs say so
}

// probeLoop probes every c.probeEvery until ctx ends, with the prober of
// the current client (none: nothing to probe).
func (c *Component) probeLoop(ctx context.Context) {
	t := time.NewTicker(c.probeEvery)
	defer t.Stop()
	for {
		if p := c.probe.Load(); p != nil && *p != nil {
			c.contact.mu.Lock()
			if c.contact.last.IsZero() {
				c.contact.last = time.Now() // probing starts: the age counts from here
			}
			c.contact.mu.Unlock()
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			err := (*p)(pctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			c.probed(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probed records a probe's result, counts and logs failures, and logs the
// transitions to and from unreachable.
func (c *Component) probed(err error) {
	ct := &c.contact
	ct.mu.Lock()
	defer ct.mu.Unlock()
	now := time.Now()
	if err == nil {
		if ct.down {
			c.opts.Logger.Info("API server reachable again: statuses are current",
				"unreachable_for", now.Sub(ct.last).Round(time.Second), "failed_probes", ct.failures)
		}
		ct.last, ct.failures, ct.err, ct.down = now, 0, nil, false
		return
	}
	c.self.probeFailures.Inc()
	ct.failures++
	ct.err = err
	// Counted in probes, not by the clock: the probes are unreachableAfter
	// apart in sum, so a clock comparison at the boundary would wait for
	// one more probe half of the time.
	if !ct.down && ct.failures >= c.failuresToDown() {
		ct.down = true
		c.opts.Logger.Error("API server unreachable: the exported statuses are stale until it answers",
			"since_last_contact", now.Sub(ct.last).Round(time.Second), "failed_probes", ct.failures, "err", err)
		return
	}
	c.errLog.Warn("API server probe failed", "err", err)
}

// failuresToDown is the number of consecutive failed probes that spans
// unreachableAfter (2 with the defaults: unhealthy 5 to 10s after the
// server went away, plus the probe timeout when it does not answer at all).
func (c *Component) failuresToDown() int {
	return max(1, int((c.unreachableAfter+c.probeEvery/2)/c.probeEvery))
}

// contactAge is the time since the API server last answered, and whether
// the last probe was answered; ok is false before the first probe.
func (c *Component) contactAge() (age time.Duration, up, ok bool) {
	ct := &c.contact
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if ct.last.IsZero() {
		return 0, false, false
	}
	return time.Since(ct.last), ct.failures == 0, true
}

// unreachable is the health message while the API server is unreachable.
func (c *Component) unreachable() (string, bool) {
	ct := &c.contact
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if !ct.down {
		return "", false
	}
	return fmt.Sprintf("API server unreachable for %v (%d failed probes), statuses are stale: %v",
		time.Since(ct.last).Round(time.Second), ct.failures, ct.err), true
}
