package sluicecmd

import (
	"context"
	"log/slog"
	"time"
)

// Starting the agent makes garbage that an idle agent never makes again:
// package initialisation, the config's parse and evaluation, each
// component's schema and set-up. The collector frees it, but the heap
// pages it took stay resident until the runtime's background scavenger
// gets to them, which for a small heap is never (it keeps what the heap
// goal allows). About 1.4 MiB of a sidecar's idle RSS was that (issue 22),
// so once the agent is first ready its heap is collected and the free
// part handed back to the OS: one collection and one scavenge, a
// millisecond or two for a heap of a few MiB, once per process.

// startupReleaseWait bounds how long the release waits for the agent to
// be ready: an agent with a component that never starts still has its
// start-up garbage to give back.
const startupReleaseWait = time.Minute

// releaseStartupMemory calls release once, as soon as ready reports true
// (looked at every poll) or after wait, whichever is first, and not at
// all if ctx ends before.
func releaseStartupMemory(ctx context.Context, ready func() bool, poll, wait time.Duration, release func()) {
	t := time.NewTicker(poll)
	defer t.Stop()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for !ready() {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			release()
			return
		case <-t.C:
		}
	}
	release()
}

// startupRelease is the release: the executable's pages the agent touched
// to start dropped (startpages.go), unless dropPages is false.
func startupRelease(logger *slog.Logger, dropPages bool) func() {
	return func() {
		if !dropPages {
			return
		}
		start := time.Now()
		n, err := releaseExecutablePages()
		if err != nil {
			logger.Warn("could not drop the executable's start-up pages; the agent runs as before", "err", err)
			return
		}
		logger.Debug("dropped the executable's start-up pages", "mapped_bytes", n, "took", time.Since(start))
	}
}
