package pipeline

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Schedule is the clock of a source that works on its own schedule (a
// query, an HTTP poll, a command) rather than when it is gathered. Scrapes
// read the last good values; Schedule decides when the work runs:
//
//   - the first run after First (Jitter spreads sources that start
//     together), then on a grid of Interval from it: runs stay on the grid
//     however long each takes, and ticks missed are not made up;
//   - single flight: a tick that finds the previous run still going is
//     skipped (Skipped is called), so a slow backend never piles up runs;
//   - a receive on Kick (a committed Update) runs at once, or as soon as
//     the run in flight returns, and restarts the grid from there with
//     Interval read again.
//
// Timeouts are the work's own: derive them from the run's context.
type Schedule struct {
	// Interval is the time between the starts of two runs, read at the
	// start and after each Kick.
	Interval func() time.Duration
	// First delays the first run.
	First time.Duration
	// Kick, if not nil, asks for a run now.
	Kick <-chan struct{}
	// Skipped, if not nil, is called for each skipped tick.
	Skipped func()
}

// Run runs fn on the schedule until ctx ends, and returns once the run in
// flight, whose context is ctx, has returned.
func (s Schedule) Run(ctx context.Context, fn func(ctx context.Context)) {
	var wg sync.WaitGroup
	defer wg.Wait()
	finished := make(chan struct{}, 1)
	running, kicked := false, false
	start := func() {
		running = true
		wg.Go(func() {
			fn(ctx)
			finished <- struct{}{}
		})
	}
	first, interval := time.Now().Add(s.First), s.Interval()
	timer := time.NewTimer(time.Until(first))
	defer timer.Stop()
	restart := func() { // a kicked run: the grid starts again now
		first, interval = time.Now(), s.Interval()
		start()
		timer.Reset(interval)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-finished:
			running = false
			if kicked {
				kicked = false
				restart()
			}
		case <-s.Kick:
			if running {
				kicked = true
			} else {
				restart()
			}
		case <-timer.C:
			switch {
			case !running:
				start()
			case s.Skipped != nil:
				s.Skipped()
			}
			now := time.Now()
			timer.Reset(nextTick(first, interval, now).Sub(now))
		}
	}
}

// nextTick returns the first tick of the grid first + k*interval after
// now: runs stay on the grid however long each one takes (no drift), and
// ticks missed while a run was going are not made up.
func nextTick(first time.Time, interval time.Duration, now time.Time) time.Time {
	if now.Before(first) {
		return first
	}
	k := now.Sub(first)/interval + 1
	return first.Add(k * interval)
}

// Jitter is a random delay for a first run (Schedule.First): up to a tenth
// of interval, at most 5s, so that sources with equal intervals that start
// together spread out.
func Jitter(interval time.Duration) time.Duration {
	return jitter(interval, rand.Int64N)
}

func jitter(interval time.Duration, rnd func(int64) int64) time.Duration {
	span := min(interval/10, 5*time.Second)
	if span <= 0 {
		return 0
	}
	return time.Duration(rnd(int64(span)))
}
