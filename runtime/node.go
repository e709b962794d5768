package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zclconf/go-cty/cty"
)

// node is one component instance owned by the controller: the component,
// its configuration, its exports and the goroutine that runs it.
type node struct {
	id     string
	typ    string
	ct     ComponentType
	inst   Instance
	logger *slog.Logger
	// selfReg holds the component's self-metrics; the agent serves it.
	selfReg *prometheus.Registry

	// Guarded by the controller's apply lock.
	args      any
	eval      cty.Value
	files     []string
	filesHash string

	mu          sync.Mutex
	deps        []string
	exports     any
	exportsVal  cty.Value
	exportsErr  error           // the last OnExports that could not be evaluated
	onChange    func(id string) // called when exports change after Build
	state       HealthState
	message     string
	since       time.Time
	lastUpdate  time.Time
	generation  uint64 // incremented at each (re)start of Run
	cancel      context.CancelFunc
	done        chan struct{}
	restarts    atomic.Uint64
	stableAfter time.Duration
	// failStreak counts Run failures since Run last stayed up for
	// stableAfter; everStable is whether it ever did (see failing).
	failStreak int
	everStable bool
	lastErr    string
}

// setExports is the component's OnExports callback.
func (n *node) setExports(e any) {
	v, err := exportsToCty(n.id, e)
	n.mu.Lock()
	if err != nil {
		// Build fails with this error; later, the consumers keep the last
		// good exports.
		n.exportsErr = err
		n.mu.Unlock()
		n.logger.Error("invalid exports; consumers keep the previous ones", "err", err)
		return
	}
	n.exportsErr = nil
	if n.exportsVal != cty.NilVal && sameExports(n.exports, e) {
		// Keep the old value: consumers compare it by identity, and an
		// unchanged export must not make them "changed".
		n.mu.Unlock()
		return
	}
	changed := n.inst != nil
	n.exports, n.exportsVal = e, v
	notify := n.onChange
	n.mu.Unlock()
	if changed && notify != nil {
		notify(n.id)
	}
}

func (n *node) exportsValue() cty.Value {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.exportsVal
}

func (n *node) setHealth(state HealthState, msg string, now time.Time) {
	if state != n.state {
		n.since = now
	}
	n.state, n.message = state, msg
}

// health combines what the runner knows with what the component reports.
func (n *node) health() Health {
	n.mu.Lock()
	h := Health{State: n.state, Message: n.message, Since: n.since}
	n.mu.Unlock()
	if h.State == HealthHealthy {
		if hr, ok := n.inst.Component().(HealthReporter); ok {
			ch := hr.Health()
			if ch.State != "" && ch.State != HealthHealthy {
				return ch
			}
		}
	}
	return h
}

// failing reports whether the component cannot start: its Run has failed
// and either it never stayed up for stableAfter since it was started (a
// socket that cannot be bound fails at once, every time), or it failed
// twice without staying up in between. A single crash of a component that
// was running fine is not "failing": it is restarted, and readiness probes
// should not flap because of it.
func (n *node) failing() (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.failStreak > 0 && (!n.everStable || n.failStreak >= 2) {
		return n.lastErr, true
	}
	return "", false
}

// start runs the component until stop, restarting it with exponential
// backoff whenever Run fails or returns early.
func (n *node) start(c *Controller) {
	ctx, cancel := context.WithCancel(context.Background())
	n.mu.Lock()
	n.cancel = cancel
	n.done = make(chan struct{})
	n.lastUpdate = c.now()
	n.stableAfter = c.opts.MinBackoff * 4
	n.mu.Unlock()
	go n.run(ctx, c)
}

func (n *node) run(ctx context.Context, c *Controller) {
	defer close(n.done)
	backoff := c.opts.MinBackoff
	for {
		n.mu.Lock()
		n.generation++
		gen := n.generation
		if n.state != HealthUnhealthy {
			n.setHealth(HealthHealthy, "", c.now())
		}
		n.mu.Unlock()
		// A restarted component is reported unhealthy until it has stayed up
		// for stableAfter.
		stable := time.AfterFunc(n.stableAfter, func() {
			n.mu.Lock()
			if n.generation == gen {
				n.setHealth(HealthHealthy, "", c.now())
				n.failStreak, n.everStable = 0, true
			}
			n.mu.Unlock()
		})
		started := c.now()
		err := runSafely(ctx, n.inst)
		stable.Stop()
		if ctx.Err() != nil {
			n.mu.Lock()
			n.setHealth(HealthExited, "stopped", c.now())
			n.mu.Unlock()
			return
		}
		if err == nil {
			err = errors.New("Run returned before the component was stopped")
		}
		if c.now().Sub(started) > c.opts.MaxBackoff {
			backoff = c.opts.MinBackoff // it ran fine for a while: start over
		}
		n.restarts.Add(1)
		// Component errors may quote their arguments (a DSN).
		errText := RedactText(err.Error())
		n.logger.Error("component failed; restarting", "err", errText, "backoff", backoff)
		n.mu.Lock()
		n.failStreak++
		n.lastErr = errText
		n.setHealth(HealthUnhealthy, fmt.Sprintf("run failed (restarting in %s): %s", backoff, errText), c.now())
		n.mu.Unlock()
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			n.mu.Lock()
			n.setHealth(HealthExited, "stopped", c.now())
			n.mu.Unlock()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, c.opts.MaxBackoff)
	}
}

// runSafely turns a panic in Run into an error, so one component's bug
// restarts that component instead of killing the agent.
func runSafely(ctx context.Context, comp Instance) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return comp.Run(ctx)
}

// cancelRun asks Run to return, without waiting.
func (n *node) cancelRun() {
	n.mu.Lock()
	cancel := n.cancel
	n.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// stop cancels Run and waits for it to return, at most timeout.
func (n *node) stop(timeout time.Duration) error {
	n.mu.Lock()
	cancel, done := n.cancel, n.done
	n.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return fmt.Errorf("%s did not stop within %s", n.id, timeout)
	}
}

// finish calls a Pending's Commit or Abort. Neither may fail; a panic is a
// bug in the component, logged so that it does not take the agent (and
// the reload of every other component) down with it.
func (n *node) finish(f func(), what string) {
	defer func() {
		if r := recover(); r != nil {
			n.logger.Error("panic in "+what+" of new arguments", "panic", RedactText(fmt.Sprint(r)))
		}
	}()
	f()
}

// prepare calls the component's Update for args, turning a panic into an
// error: a reload must not kill the agent.
func (n *node) prepare(args any) (p Pending, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("panic in Update: %v", r)
		}
	}()
	return n.inst.Update(args)
}
