package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type buf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buf) Write(p []byte) (int, error) { b.mu.Lock(); defer b.mu.Unlock(); return b.b.Write(p) }
func (b *buf) String() string              { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

func TestBurstPerIntervalAndSuppressedCount(t *testing.T) {
	var out buf
	warn := slog.LevelWarn
	var mu sync.Mutex
	clock := time.Unix(1000, 0)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	l := newWithClock(slog.New(slog.NewTextHandler(&out, nil)), Options{Interval: time.Minute, Burst: 3, Level: &warn}, now)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				l.Debug("bad line", "line", "x")
			}
		}()
	}
	wg.Wait()
	if got := strings.Count(out.String(), "msg=\"bad line\""); got != 3 {
		t.Fatalf("%d records in one interval, want 3:\n%s", got, out.String())
	}
	if !strings.Contains(out.String(), "level=WARN") || strings.Contains(out.String(), "level=DEBUG") {
		t.Errorf("level not raised to WARN:\n%s", out.String())
	}
	// The next interval's first record says how many were dropped.
	mu.Lock()
	clock = clock.Add(time.Minute)
	mu.Unlock()
	l.With("k", "v").Error("bad line")
	if !strings.Contains(out.String(), "suppressed_since_last=97") || !strings.Contains(out.String(), "k=v") {
		t.Fatalf("no suppressed count after the interval:\n%s", out.String())
	}
}
