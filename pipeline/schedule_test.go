package pipeline

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

func TestNextTickStaysOnTheGrid(t *testing.T) {
	start := time.Unix(1000, 0)
	iv := 10 * time.Second
	for _, c := range []struct{ now, want time.Duration }{
		{-time.Second, 0},     // before the first tick: the first tick
		{0, 10 * time.Second}, // at a tick: the next one
		{3 * time.Second, 10 * time.Second},
		{12 * time.Second, 20 * time.Second}, // a run that overran lands on the grid
		{35 * time.Second, 40 * time.Second}, // missed ticks are not made up
	} {
		if got := nextTick(start, iv, start.Add(c.now)); !got.Equal(start.Add(c.want)) {
			t.Errorf("nextTick(now=start+%v) = start+%v, want start+%v", c.now, got.Sub(start), c.want)
		}
	}
}

func TestJitterBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[time.Duration]bool{}
	for range 200 {
		j := jitter(time.Minute, r.Int64N)
		if j < 0 || j >= 5*time.Second {
			t.Fatalf("jitter(1m) = %v, want [0, 5s)", j)
		}
		seen[j] = true
		if j2 := jitter(time.Second, r.Int64N); j2 < 0 || j2 >= 100*time.Millisecond {
			t.Fatalf("jitter(1s) = %v, want [0, 100ms)", j2)
		}
	}
	if len(seen) < 100 {
		t.Errorf("jitter is not random: %d distinct values", len(seen))
	}
	if Jitter(0) != 0 {
		t.Error("Jitter(0) != 0")
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gatedRuns is work whose runs wait for a release (or their context).
type gatedRuns struct {
	release                chan struct{}
	running, maxRunning    atomic.Int64
	runs, skips, completed atomic.Int64
}

func (g *gatedRuns) fn(ctx context.Context) {
	n := g.running.Add(1)
	for m := g.maxRunning.Load(); n > m && !g.maxRunning.CompareAndSwap(m, n); m = g.maxRunning.Load() {
	}
	g.runs.Add(1)
	select {
	case <-g.release:
	case <-ctx.Done():
	}
	g.running.Add(-1)
	g.completed.Add(1)
}

func TestScheduleSkipsWhileRunning(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	g := &gatedRuns{release: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Schedule{Interval: func() time.Duration { return 20 * time.Millisecond }, Skipped: func() { g.skips.Add(1) }}.Run(ctx, g.fn)
	}()
	eventually(t, "ticks during a run are skipped", func() bool { return g.skips.Load() >= 3 })
	if n := g.runs.Load(); n != 1 {
		t.Errorf("%d runs started while the first was going", n)
	}
	close(g.release)
	eventually(t, "runs resume", func() bool { return g.runs.Load() >= 3 })
	cancel()
	<-done
	if g.running.Load() != 0 {
		t.Error("Run returned with a run still going")
	}
	if g.maxRunning.Load() != 1 {
		t.Errorf("max concurrent runs = %d", g.maxRunning.Load())
	}
}

// A kick during a run runs again as soon as that run returns, once however
// many kicks came; a kick while idle runs at once, long before the next
// tick, and reads the interval again.
func TestScheduleKick(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	g := &gatedRuns{release: make(chan struct{})}
	kick := make(chan struct{}, 1)
	var interval atomic.Int64
	interval.Store(int64(time.Hour))
	done := make(chan struct{})
	go func() {
		defer close(done)
		Schedule{Interval: func() time.Duration { return time.Duration(interval.Load()) }, Kick: kick}.Run(ctx, g.fn)
	}()
	eventually(t, "the first run, at once", func() bool { return g.runs.Load() == 1 })
	for range 3 {
		kick <- struct{}{}
		eventually(t, "the kick taken", func() bool { return len(kick) == 0 })
	}
	if n := g.runs.Load(); n != 1 {
		t.Fatalf("%d runs while the first was going", n)
	}
	g.release <- struct{}{} // the first run returns
	eventually(t, "the kicked run", func() bool { return g.runs.Load() == 2 })
	g.release <- struct{}{}
	eventually(t, "the kicked run returned", func() bool { return g.completed.Load() == 2 })

	interval.Store(int64(10 * time.Millisecond)) // a committed Update changes the interval
	kick <- struct{}{}
	eventually(t, "a run at once after an idle kick", func() bool { return g.runs.Load() == 3 })
	close(g.release)
	eventually(t, "ticks on the new interval", func() bool { return g.runs.Load() >= 6 })
	cancel()
	<-done
	if g.maxRunning.Load() != 1 {
		t.Errorf("max concurrent runs = %d", g.maxRunning.Load())
	}
}
