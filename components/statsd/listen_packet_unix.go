//go:build unix

package statsd

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// readBurst bounds the datagrams read in one go, so that closing the
// socket (which waits for a read in progress) is never held up for long.
const readBurst = 256

// helperPoll is how often a helper reader looks at its socket without
// being woken (see readPackets).
const helperPoll = 5 * time.Millisecond

// readPackets reads datagrams from c and hands each to packet, draining
// the socket without blocking, and calls flush whenever the socket is
// empty (and, while it never empties, at the latest hold after the
// oldest unflushed datagram: pending reports when that was). It returns
// when c is closed (net.ErrClosed), stop is closed, or a read fails.
//
// Only the primary reader of a socket waits on it (in Go's netpoller).
// The others (dup'ed descriptors of the same socket) wait on wake, which
// the primary signals when it finds a backlog (a read that filled every
// slot), and go back to waiting once they have drained the socket. When
// every reader waited on the socket, each datagram woke all of them and
// all but one found it empty: at the rates a sidecar sees (a few
// thousand datagrams a second, each alone) those wake-ups, and the
// threads the scheduler started for them, were most of the receiver's
// CPU. A helper also looks at the socket every helperPoll on its own: on
// a loaded machine the primary's thread may be descheduled for longer
// than the socket's buffer lasts, and then nobody would signal. For the same reason an empty socket is flushed at once rather than
// after a timer: a reader applies its batches itself, so holding them
// saved nothing but cost a timer and a wake-up per quiet millisecond.
func readPackets(c net.PacketConn, rl readerRole, hold time.Duration, packet func([]byte), pending func() time.Time, flush func()) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return readPacketsPortable(c, packet, flush)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	rb := newRecvBufs()
	var rerr error
	drained := false
	read := func(fd uintptr) bool {
		drained = false
		for got := 0; got < readBurst; {
			n, err := rb.recv(fd)
			switch {
			case err == nil:
				for i := range n {
					if d := rb.datagram(i); len(d) > 0 {
						packet(d)
					}
				}
				got += max(n, 1)
				if n < recvSlots {
					// Fewer than asked: the socket was empty after
					// these. Whatever arrives next wakes the primary
					// (the netpoller is edge-triggered, and an arrival
					// is an edge), so the read that would fail with
					// EAGAIN is saved.
					flush()
					drained = true
					return !rl.primary
				}
				if rl.primary && rl.wake != nil {
					select {
					case rl.wake <- struct{}{}:
					default: // a helper is already on its way
					}
				}
			case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EWOULDBLOCK):
				flush()
				drained = true
				// The primary waits in the netpoller; a helper returns to
				// wait for the next signal.
				return !rl.primary
			case errors.Is(err, syscall.EINTR):
			default:
				rerr = err
				flush()
				return true
			}
		}
		if since := pending(); !since.IsZero() && time.Since(since) >= hold {
			flush()
		}
		return true
	}
	var poll *time.Ticker
	if !rl.primary {
		poll = time.NewTicker(helperPoll)
		defer poll.Stop()
	}
	for {
		if !rl.primary {
			select {
			case <-rl.stop:
				return net.ErrClosed
			case <-rl.wake:
			case <-poll.C:
			}
		}
		for {
			if err := rc.Read(read); err != nil {
				return err
			}
			if rerr != nil {
				return rerr
			}
			if drained && !rl.primary {
				break
			}
			if !rl.primary {
				select {
				case <-rl.stop:
					return net.ErrClosed
				default:
				}
			}
		}
	}
}
