//go:build unix

package statsd

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestHelperReaderTakesOverFromStuckPrimary blocks the primary reader of
// a socket inside its first datagram (as a descheduled thread would be)
// and checks that the helper, which no signal reaches, still reads the
// datagrams that follow (its own look at the socket every helperPoll),
// and that both stop when the socket closes.
func TestHelperReaderTakesOverFromStuckPrimary(t *testing.T) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dup, err := dupPacketConn(conn)
	if err != nil {
		t.Fatal(err)
	}
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
		errs[0] = readPackets(conn, readerRole{primary: true, wake: wake, stop: stop}, flushHold, func([]byte) {
			if primaryGot.Add(1) == 1 {
				<-release // stuck in the first datagram
			}
		}, noPending, func() {})
	}()
	go func() {
		defer wg.Done()
		errs[1] = readPackets(dup, readerRole{wake: wake, stop: stop}, flushHold, func([]byte) { helperGot.Add(1) }, noPending, func() {})
	}()
	c, err := net.Dial("udp", conn.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Send until the primary, which waits on the socket, has taken a
	// datagram and is stuck in it. The helper may take some first (its own
	// look at the socket every helperPoll can come before the primary is
	// scheduled on a busy machine): that is not what this test is about.
	for deadline := time.Now().Add(10 * time.Second); primaryGot.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("the primary reader never took a datagram (the helper took %d)", helperGot.Load())
		}
		c.Write([]byte("a:1|c"))
		time.Sleep(time.Millisecond)
	}
	if got := primaryGot.Load(); got != 1 {
		t.Fatalf("the primary took %d datagrams while stuck in its first", got)
	}
	before := helperGot.Load()
	const n = 200
	for range n {
		if _, err := c.Write([]byte("b:1|c")); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for helperGot.Load()-before < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := helperGot.Load() - before; got < n {
		t.Fatalf("with the primary stuck, the helper read %d of %d datagrams", got, n)
	}
	close(release)
	conn.Close()
	dup.Close()
	close(stop)
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("reader %d ended with %v, want net.ErrClosed", i, err)
		}
	}
}
