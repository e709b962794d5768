package statsd

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// limitedHandler logs bad input at a bounded rate: at most burst records per
// interval, each raised to Warn (upstream's parser logs them at Debug). The
// first record after a window with suppressed records says how many were
// suppressed. A flood of bad packets thus costs a few log lines, and the
// counters tell the whole story.
type limitedHandler struct {
	next     slog.Handler
	interval time.Duration
	burst    int
	st       *limitState
}

type limitState struct {
	mu         sync.Mutex
	start      time.Time
	n          int
	suppressed int
}

func newLimitedLogger(l *slog.Logger, interval time.Duration, burst int) *slog.Logger {
	return slog.New(&limitedHandler{next: l.Handler(), interval: interval, burst: burst, st: &limitState{}})
}

func (h *limitedHandler) Enabled(ctx context.Context, _ slog.Level) bool {
	return h.next.Enabled(ctx, slog.LevelWarn)
}

func (h *limitedHandler) Handle(ctx context.Context, r slog.Record) error {
	s := h.st
	s.mu.Lock()
	now := time.Now()
	if now.Sub(s.start) >= h.interval {
		s.start, s.n = now, 0
	}
	if s.n >= h.burst {
		s.suppressed++
		s.mu.Unlock()
		return nil
	}
	s.n++
	suppressed := s.suppressed
	s.suppressed = 0
	s.mu.Unlock()

	out := slog.NewRecord(r.Time, slog.LevelWarn, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool { out.AddAttrs(a); return true })
	if suppressed > 0 {
		out.AddAttrs(slog.Int("suppressed_since_last", suppressed))
	}
	return h.next.Handle(ctx, out)
}

func (h *limitedHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	return &c
}

func (h *limitedHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}
