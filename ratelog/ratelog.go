// Package ratelog bounds how often bad input from outside is logged: a
// flood of malformed packets or failing scrapes costs a few log lines, and
// the components' counters tell the whole story.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Options configure a rate-limited logger.
type Options struct {
	// Interval and Burst: at most Burst records per Interval (defaults 10s
	// and 1).
	Interval time.Duration
	Burst    int
	// Level, when set, replaces the level of every record, e.g. to raise an
	// upstream library's Debug messages about bad input to Warn.
	Level *slog.Level
}

// New returns a logger that writes through next at most opts.Burst records
// per opts.Interval and drops the rest. The first record written after some
// were dropped carries suppressed_since_last=N.
func New(next *slog.Logger, opts Options) *slog.Logger {
	return newWithClock(next, opts, time.Now)
}

func newWithClock(next *slog.Logger, opts Options, now func() time.Time) *slog.Logger {
	if next == nil {
		next = slog.New(slog.DiscardHandler)
	}
	if opts.Interval <= 0 {
		opts.Interval = 10 * time.Second
	}
	if opts.Burst <= 0 {
		opts.Burst = 1
	}
	return slog.New(&handler{next: next.Handler(), opts: opts, st: &state{}, now: now})
}

type handler struct {
	next slog.Handler
	opts Options
	st   *state // shared by the handlers WithAttrs/WithGroup derive
	now  func() time.Time
}

type state struct {
	mu         sync.Mutex
	start      time.Time
	n          int
	suppressed int
}

func (h *handler) level(l slog.Level) slog.Level {
	if h.opts.Level != nil {
		return *h.opts.Level
	}
	return l
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, h.level(l))
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	s := h.st
	s.mu.Lock()
	now := h.now()
	if now.Sub(s.start) >= h.opts.Interval {
		s.start, s.n = now, 0
	}
	if s.n >= h.opts.Burst {
		s.suppressed++
		s.mu.Unlock()
		return nil
	}
	s.n++
	suppressed := s.suppressed
	s.suppressed = 0
	s.mu.Unlock()

	out := slog.NewRecord(r.Time, h.level(r.Level), r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool { out.AddAttrs(a); return true })
	if suppressed > 0 {
		out.AddAttrs(slog.Int("suppressed_since_last", suppressed))
	}
	return h.next.Handle(ctx, out)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	return &c
}

func (h *handler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}
