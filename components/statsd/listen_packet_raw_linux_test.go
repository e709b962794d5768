//go:build linux && (amd64 || arm64)

package statsd

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawReaders runs a primary and a helper reader on descriptors of their
// own of a fresh UDP socket, counting datagrams.
type rawReaders struct {
	rp   *rawPackets
	addr string
	stop chan struct{}
	got  atomic.Int64
	// onPressure counts the calls of rp.onPressure (the self-metric).
	onPressure atomic.Int64
	wg         sync.WaitGroup
	errs       [2]error
}

func startRawReaders(t *testing.T) *rawReaders {
	t.Helper()
	return startRawReadersBuffer(t, 4<<20)
}

// startRawReadersBuffer is startRawReaders with a receive buffer of
// readBuffer bytes (SO_RCVBUF).
func startRawReadersBuffer(t *testing.T, readBuffer int) *rawReaders {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.(*net.UDPConn).SetReadBuffer(readBuffer); err != nil {
		t.Fatal(err)
	}
	rp, err := openRawPackets(conn, 2)
	if err != nil {
		t.Fatal(err)
	}
	r := &rawReaders{rp: rp, addr: conn.LocalAddr().String(), stop: make(chan struct{})}
	rp.onPressure = func() { r.onPressure.Add(1) }
	conn.Close() // as the listener does: only the readers' descriptors stay
	wake := make(chan struct{}, 1)
	noPending := func() time.Time { return time.Time{} }
	for i, fd := range rp.fds {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.errs[i] = readPacketsRaw(rp, fd, readerRole{primary: i == 0, wake: wake, stop: r.stop}, flushHold,
				func([]byte) { r.got.Add(1) }, noPending, func() {})
		}()
	}
	return r
}

// close stops the readers as packetListener.Close does and checks they
// ended with net.ErrClosed.
func (r *rawReaders) close(t *testing.T) {
	t.Helper()
	close(r.stop)
	r.rp.wake()
	r.wg.Wait()
	r.rp.close()
	for i, err := range r.errs {
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("reader %d ended with %v, want net.ErrClosed", i, err)
		}
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRawReaderCoalescesThenWaits floods a socket until the primary
// reader coalesces its wake-ups (sleeps between reads), then stops
// sending: every datagram is read, the primary goes back to waiting in
// the netpoller (a fresh registration) and takes no more coalescing
// sleeps while the socket is idle, and a later datagram still wakes it.
func TestRawReaderCoalescesThenWaits(t *testing.T) {
	r := startRawReaders(t)
	c, err := net.Dial("udp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sent := int64(0)
	for r.rp.coalesced.Load() == 0 {
		if sent == 1_000_000 {
			t.Fatal("the primary never coalesced its wake-ups in 1M back-to-back datagrams")
		}
		if _, err := c.Write([]byte("a:1|c")); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	waitUntil(t, "every datagram read", func() bool { return r.got.Load() == sent })
	waitUntil(t, "the primary back in the netpoller", func() bool {
		return r.rp.state.Load() == readerWaiting && r.rp.waits.Load() >= 2
	})
	t.Logf("sent %d datagrams; %d coalescing sleeps, %d waits in the netpoller", sent, r.rp.coalesced.Load(), r.rp.waits.Load())
	// Idle: no coalescing sleeps, no new registrations (the helper,
	// engaged by the flood, sleeps until its engagement ends, and looks
	// at the socket every helperPoll: not counted here).
	coalesced, waits := r.rp.coalesced.Load(), r.rp.waits.Load()
	time.Sleep(50 * coalesceWait)
	if got := r.rp.coalesced.Load(); got != coalesced {
		t.Errorf("idle socket: %d coalescing sleeps, want none", got-coalesced)
	}
	if got := r.rp.waits.Load(); got != waits || r.rp.state.Load() != readerWaiting {
		t.Errorf("idle socket: the primary left its wait (%d new registrations, state %d)", got-waits, r.rp.state.Load())
	}
	if _, err := c.Write([]byte("b:1|c")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the datagram after the idle spell", func() bool { return r.got.Load() == sent+1 })
	r.close(t)
	if got := r.got.Load(); got != sent+1 {
		t.Errorf("read %d datagrams, sent %d", got, sent+1)
	}
}

// TestRawReaderCloseReadsQueued closes the readers right after sending:
// what the socket had queued is read before they return, whether the
// primary was waiting or coalescing.
func TestRawReaderCloseReadsQueued(t *testing.T) {
	for _, n := range []int{1, 3000} {
		r := startRawReaders(t)
		c, err := net.Dial("udp", r.addr)
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			if _, err := c.Write([]byte("a:1|c")); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
		r.close(t)
		if got := r.got.Load(); got != int64(n) {
			t.Errorf("%d sent: %d read before the readers returned", n, got)
		}
	}
}

// TestRawHelperTakesOverFromStuckPrimary blocks the primary reader inside
// its first datagram (as a descheduled thread would be) and checks that
// the helper, which no signal reaches, still reads the datagrams that
// follow (its own look at the socket every helperPoll).
func TestRawHelperTakesOverFromStuckPrimary(t *testing.T) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rp, err := openRawPackets(conn, 2)
	if err != nil {
		t.Fatal(err)
	}
	addr := conn.LocalAddr().String()
	conn.Close()
	stop := make(chan struct{})
	wake := make(chan struct{}, 1)
	release := make(chan struct{})
	var primaryGot, helperGot atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, 2)
	noPending := func() time.Time { return time.Time{} }
	wg.Add(2)
	go func() {
		defer wg.Done()
		errs[0] = readPacketsRaw(rp, rp.fds[0], readerRole{primary: true, wake: wake, stop: stop}, flushHold, func([]byte) {
			if primaryGot.Add(1) == 1 {
				<-release // stuck in the first datagram
			}
		}, noPending, func() {})
	}()
	go func() {
		defer wg.Done()
		errs[1] = readPacketsRaw(rp, rp.fds[1], readerRole{wake: wake, stop: stop}, flushHold, func([]byte) { helperGot.Add(1) }, noPending, func() {})
	}()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); primaryGot.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("the primary reader never took a datagram (the helper took %d)", helperGot.Load())
		}
		c.Write([]byte("a:1|c"))
		time.Sleep(time.Millisecond)
	}
	before := helperGot.Load()
	const n = 200
	for range n {
		if _, err := c.Write([]byte("b:1|c")); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "the helper to read what the stuck primary cannot", func() bool { return helperGot.Load()-before >= n })
	close(release)
	close(stop)
	rp.wake()
	wg.Wait()
	rp.close()
	for i, err := range errs {
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("reader %d ended with %v, want net.ErrClosed", i, err)
		}
	}
}

// TestRawPrimaryReadsBacklogAlone queues more datagrams than one read
// takes (readBurst) before a lone primary reader starts, and sends no
// more: the primary must read on rather than wait for a datagram that
// does not come (no helper here to look at the socket).
func TestRawPrimaryReadsBacklogAlone(t *testing.T) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conn.(*net.UDPConn).SetReadBuffer(4 << 20)
	rp, err := openRawPackets(conn, 1)
	if err != nil {
		t.Fatal(err)
	}
	addr := conn.LocalAddr().String()
	conn.Close()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 4 * readBurst
	for range n {
		if _, err := c.Write([]byte("a:1|c")); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var got atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- readPacketsRaw(rp, rp.fds[0], readerRole{primary: true, stop: stop}, flushHold,
			func([]byte) { got.Add(1) }, func() time.Time { return time.Time{} }, func() {})
	}()
	waitUntil(t, "the queued datagrams read", func() bool { return got.Load() == n })
	close(stop)
	rp.wake()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Errorf("the primary ended with %v, want net.ErrClosed", err)
	}
	rp.close()
}

// TestRawReaderStopsCoalescingUnderPressure floods a socket with a small
// receive buffer (the kernel's default is 208 KiB, and unprivileged
// processes often cannot raise it): a coalescing sleep that finds the
// buffer more than half full sends the primary back to waiting in the
// netpoller, where each datagram wakes it, and it does not coalesce again
// for pressureHold.
func TestRawReaderStopsCoalescingUnderPressure(t *testing.T) {
	r := startRawReadersBuffer(t, 32<<10)
	c, err := net.Dial("udp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for sent := 0; r.rp.pressured.Load() == 0; sent++ {
		if sent == 1_000_000 {
			t.Fatalf("no sleep found the 32 KiB buffer over half full in 1M back-to-back datagrams (%d coalescing sleeps)", r.rp.coalesced.Load())
		}
		c.Write([]byte("a:1|c")) // the buffer may be full: ECONNREFUSED and drops are not the point
	}
	if until := time.Unix(0, r.rp.noCoalesceUntil.Load()); time.Until(until) < pressureHold-time.Second {
		t.Errorf("after the pressure the primary may coalesce again in %v, want about %v", time.Until(until), pressureHold)
	}
	waitUntil(t, "the primary back in the netpoller", func() bool { return r.rp.state.Load() == readerWaiting })
	// While the hold lasts, datagrams as fast as they come do not make it
	// coalesce again.
	coalesced := r.rp.coalesced.Load()
	for range 20_000 {
		c.Write([]byte("b:1|c"))
	}
	waitUntil(t, "the primary back in the netpoller", func() bool { return r.rp.state.Load() == readerWaiting })
	if time.Now().UnixNano() < r.rp.noCoalesceUntil.Load() {
		if got := r.rp.coalesced.Load(); got != coalesced {
			t.Errorf("%d coalescing sleeps during the hold, want none", got-coalesced)
		}
	}
	if got, want := r.onPressure.Load(), r.rp.pressured.Load(); got != want || got == 0 {
		t.Errorf("onPressure (the self-metric) called %d times for %d suspensions", got, want)
	}
	t.Logf("%d coalescing sleeps before the pressure", coalesced)
	r.close(t)
}
