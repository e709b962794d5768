package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/config"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/ratelog"
)

// Signals, the signal label of the self-metrics.
const (
	signalSuccess = "success"
	signalFail    = "fail"
	signalStart   = "start"
)

// Reasons an attempt fails, the reason label of
// sluice_heartbeat_failures_total.
const (
	reasonTimeout = "timeout"     // no answer within timeout
	reasonNetwork = "network"     // DNS, connection refused or reset, TLS
	reasonStatus  = "http_status" // an answer other than 2xx
)

// maxBody bounds how much of the monitor's answer is read (and thrown
// away): enough to reuse the connection, not a way to be fed gigabytes.
const maxBody = 64 << 10

// plan is what Run works with: the arguments and the client made from
// them. Update swaps it whole.
type plan struct {
	args   Arguments
	client *http.Client
}

// Component is a running heartbeat.
type Component struct {
	id      string
	health  pipeline.HealthView
	logger  *slog.Logger
	errLog  *slog.Logger
	metrics *selfMetrics
	plan    atomic.Pointer[plan]
	changed chan struct{} // a committed Update: reschedule
	state   pipeline.HealthTracker
	now     func() time.Time
}

// Build creates the component; nothing is sent until Run.
func Build(opts pipeline.Options[Exports], args Arguments) (pipeline.Component[Arguments], error) {
	m, err := newSelfMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	p, err := newPlan(args)
	if err != nil {
		return nil, err
	}
	c := &Component{id: opts.ID, health: opts.Health, logger: opts.Logger, metrics: m,
		changed: make(chan struct{}, 1), now: time.Now,
		errLog: ratelog.New(opts.Logger, ratelog.Options{Interval: time.Minute, Burst: 3})}
	c.plan.Store(p)
	opts.OnExports(Exports{})
	return c, nil
}

func newPlan(args Arguments) (*plan, error) {
	hc, err := config.NewClientFromConfig(args.http, "heartbeat")
	if err != nil {
		return nil, fmt.Errorf("HTTP client: %w", err)
	}
	// Redirects are not followed: a monitor that redirects a ping is
	// misconfigured, and following one could send the body elsewhere.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &plan{args: args, client: hc}, nil
}

// Update readies the new arguments; Commit switches to them at once and
// reschedules the next signal from the last one.
func (c *Component) Update(args Arguments) (pipeline.Pending, error) {
	p, err := newPlan(args)
	if err != nil {
		return nil, err
	}
	return pipeline.CommitFunc(func() {
		if old := c.plan.Swap(p); old != nil {
			old.client.CloseIdleConnections()
		}
		select {
		case c.changed <- struct{}{}:
		default:
		}
	}), nil
}

// Health is unhealthy while the last signal could not be delivered.
func (c *Component) Health() pipeline.Health { return c.state.Health() }

// Run sends the start signal, then a signal at every interval, on a fixed
// schedule: a slow attempt does not push the later ones back.
func (c *Component) Run(ctx context.Context) error {
	defer func() { c.plan.Load().client.CloseIdleConnections() }()
	p := c.plan.Load()
	if p.args.StartURL != "" {
		c.deliver(ctx, p, signalStart, p.args.StartURL, "starting\n", c.now().Add(p.args.Interval))
	}
	last := c.now()
	next := last.Add(p.args.Interval)
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.changed:
			p = c.plan.Load()
			next = last.Add(p.args.Interval)
		case <-timer.C:
			last = c.now()
			next = next.Add(p.args.Interval)
			if !next.After(last) { // Run was held up (a suspended VM): no burst of catch-up signals
				next = last.Add(p.args.Interval)
			}
			c.beat(ctx, p, next)
		}
		timer.Reset(time.Until(next))
	}
}

// beat sends one signal: success, or fail with the unhealthy components.
func (c *Component) beat(ctx context.Context, p *plan, deadline time.Time) {
	bad := c.unhealthy(p.args.Components)
	c.metrics.unhealthy.Set(float64(len(bad)))
	if len(bad) == 0 {
		c.deliver(ctx, p, signalSuccess, p.args.URL, "ok\n", deadline)
		return
	}
	c.deliver(ctx, p, signalFail, p.args.failURL, strings.Join(bad, "\n")+"\n", deadline)
}

// unhealthy lists "ID: state: message" for every watched component that
// is unhealthy, exited or missing. A component whose state is unknown
// (starting, no verdict yet) is not counted: a fail signal pages someone.
func (c *Component) unhealthy(watched []string) []string {
	var all map[string]pipeline.Health
	if c.health != nil {
		all = c.health.ComponentHealth()
	}
	if len(watched) == 0 {
		for id := range all {
			if id != c.id {
				watched = append(watched, id)
			}
		}
		slices.Sort(watched)
	}
	var bad []string
	for _, id := range watched {
		h, ok := all[id]
		switch {
		case !ok:
			bad = append(bad, id+": not running (not in the config)")
		case h.State == pipeline.HealthUnhealthy || h.State == pipeline.HealthExited:
			line := id + ": " + string(h.State)
			if h.Message != "" {
				line += ": " + h.Message
			}
			bad = append(bad, line)
		}
	}
	return bad
}

// deliver POSTs body to u, retrying with backoff until deadline (the next
// signal's time). It records the outcome in the self-metrics and health.
func (c *Component) deliver(parent context.Context, p *plan, signal, u, body string, deadline time.Time) {
	ctx, cancel := context.WithDeadline(parent, deadline)
	defer cancel()
	backoff := p.args.MinBackoff
	var err error
	for attempt := 0; attempt <= p.args.Retries; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
			backoff = min(2*backoff, p.args.MaxBackoff)
		}
		if ctx.Err() != nil {
			break
		}
		var retry bool
		retry, err = c.attempt(ctx, p, u, body)
		if err == nil {
			c.metrics.sent.WithLabelValues(signal, "delivered").Inc()
			c.metrics.lastSuccess.SetToCurrentTime()
			if c.state.Set(pipeline.HealthHealthy, "") {
				c.logger.Info("heartbeat signals delivered again", "signal", signal)
			}
			return
		}
		c.metrics.failures.WithLabelValues(reason(err)).Inc()
		if !retry {
			break
		}
	}
	if parent.Err() != nil {
		return // shutting down: not a lost signal
	}
	if err == nil { // never attempted: the schedule ran out
		err = errors.New("no time left before the next signal")
	}
	c.metrics.sent.WithLabelValues(signal, "lost").Inc()
	msg := fmt.Sprintf("%s signal not delivered: %v", signal, err)
	c.state.Set(pipeline.HealthUnhealthy, msg)
	c.errLog.Warn("heartbeat signal not delivered", "signal", signal, "err", err)
}

// statusError is an answer other than 2xx.
type statusError struct{ code int }

func (e statusError) Error() string { return fmt.Sprintf("the monitor answered HTTP %d", e.code) }

// attempt makes one request. Its error never contains the URL (a
// credential): the url.Error wrapper that names it is taken off. retry
// says whether trying again could help (not for a 4xx other than 408/429:
// a wrong ping URL stays wrong).
func (c *Component) attempt(ctx context.Context, p *plan, u, body string) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, p.args.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return false, errors.New("invalid request") // the URL was validated; say nothing of it
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	req.Header.Set("User-Agent", "sluice-heartbeat")
	resp, err := p.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return true, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	retry = resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout
	return retry, statusError{resp.StatusCode}
}

func reason(err error) string {
	var se statusError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return reasonStatus
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return reasonTimeout
	default:
		return reasonNetwork
	}
}
