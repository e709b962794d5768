package pipeline

import (
	"sync"
	"time"
)

// HealthTracker holds the health a component reports about itself (see
// HealthReporter), with Since kept across updates that do not change the
// state. The zero value reports no opinion (an empty State), which the
// kernel reads as "no more than Run has not failed". It is safe for
// concurrent use: Run updates it while the agent's API reads it.
type HealthTracker struct {
	mu sync.Mutex
	h  Health
}

// Set records the current state and message and reports whether the state
// changed, so that callers can log transitions only.
func (t *HealthTracker) Set(state HealthState, msg string) (changed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.h.State != state {
		t.h = Health{State: state, Message: msg, Since: time.Now()}
		return true
	}
	t.h.Message = msg
	return false
}

// SetOK is Set(HealthHealthy, "") when ok, else Set(HealthUnhealthy, msg).
func (t *HealthTracker) SetOK(ok bool, msg string) (changed bool) {
	if ok {
		return t.Set(HealthHealthy, "")
	}
	return t.Set(HealthUnhealthy, msg)
}

// Health returns the recorded health; it implements HealthReporter for a
// component that embeds or forwards to it.
func (t *HealthTracker) Health() Health {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.h
}
