package sluicecmd

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// The release comes once, after the agent is ready and not before.
func TestReleaseStartupMemoryOnceReady(t *testing.T) {
	var polls, releases atomic.Int64
	var readyAt atomic.Int64
	ready := func() bool { return polls.Add(1) >= 5 }
	done := make(chan struct{})
	go func() {
		defer close(done)
		releaseStartupMemory(context.Background(), ready, time.Millisecond, time.Hour, func() {
			readyAt.Store(polls.Load())
			releases.Add(1)
		})
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("releaseStartupMemory did not return after the agent was ready")
	}
	if n := releases.Load(); n != 1 {
		t.Fatalf("released %d times, want once", n)
	}
	if at := readyAt.Load(); at < 5 {
		t.Errorf("released after %d looks at readiness, before it was ready (the 5th)", at)
	}
}

// An agent that never becomes ready still gives its start-up garbage back
// once the wait is over; one that stops first does not.
func TestReleaseStartupMemoryWaitAndStop(t *testing.T) {
	never := func() bool { return false }
	var releases atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		releaseStartupMemory(context.Background(), never, time.Millisecond, 20*time.Millisecond, func() { releases.Add(1) })
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("releaseStartupMemory did not return after its wait")
	}
	if n := releases.Load(); n != 1 {
		t.Errorf("an agent never ready: released %d times after the wait, want once", n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	releases.Store(0)
	done = make(chan struct{})
	go func() {
		defer close(done)
		releaseStartupMemory(ctx, never, time.Millisecond, time.Hour, func() { releases.Add(1) })
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("releaseStartupMemory did not return when its context ended")
	}
	if n := releases.Load(); n != 0 {
		t.Errorf("an agent stopped before it was ready: released %d times, want none", n)
	}
}
