//go:build unix

package statsd

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"
)

// readBurst bounds the datagrams read in one go, so that closing the
// socket (which waits for a read in progress) is never held up for long.
const readBurst = 256

// helperPoll is how often a helper reader looks at its socket without
// being woken, and helperEngaged how long a signal has it read like the
// primary (see readPackets).
const (
	helperPoll    = 5 * time.Millisecond
	helperEngaged = 100 * time.Millisecond
	// helperBacklog is how many datagrams the primary reads without
	// emptying the socket before it signals a helper: a sustained backlog
	// (0.6 ms of datagrams at 100k/s), not the few that queue while a
	// loaded machine runs something else for a moment.
	helperBacklog = 64
)

// drainSocket reads fd until the socket is empty (then it flushes) or
// readBurst datagrams, handing each datagram to packet; it returns how many
// it read and whether it emptied the socket. A primary signals a helper
// (rl.wake) once it has read signalAt in this call. After a full burst the
// batches are flushed if the oldest unflushed datagram is hold old. A read
// error other than EAGAIN and EINTR ends it, after a flush.
func drainSocket(rb *recvBufs, fd uintptr, rl readerRole, signalAt int, hold time.Duration, packet func([]byte), pending func() time.Time, flush func()) (got int, empty bool, err error) {
	for got < readBurst {
		n, err := rb.recv(fd)
		switch {
		case err == nil:
			for i := range n {
				if d := rb.datagram(i); len(d) > 0 {
					packet(d)
				}
			}
			before := got
			got += max(n, 1)
			if rl.primary && before < signalAt && got >= signalAt && rl.wake != nil {
				select {
				case rl.wake <- struct{}{}:
				default: // a helper is already on its way
				}
			}
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EWOULDBLOCK):
			flush()
			return got, true, nil
		case errors.Is(err, syscall.EINTR):
		default:
			flush()
			return got, false, err
		}
	}
	if since := pending(); !since.IsZero() && time.Since(since) >= hold {
		flush()
	}
	return got, false, nil
}

// readPackets reads datagrams from c and hands each to packet, draining
// the socket without blocking, and calls flush whenever the socket is
// empty (and, while it never empties, at the latest hold after the
// oldest unflushed datagram: pending reports when that was). It returns
// when c is closed (net.ErrClosed), stop is closed, or a read fails.
//
// Only the primary reader of a socket waits on it (in Go's netpoller).
// The others (dup'ed descriptors of the same socket) wait on wake, which
// the primary signals when it finds a backlog (helperBacklog datagrams
// read without emptying the socket); a signal has a helper read like the primary, waiting on the
// socket too, for helperEngaged, before it goes back to waiting for a
// signal (under sustained load every reader takes datagrams, as before;
// and on a machine shared with busier processes, every runnable thread
// gets its share of the CPU). When
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
	// waits is whether a drained socket is waited on (in the netpoller):
	// always for the primary, for a helper while it is engaged.
	waits := rl.primary
	drained := false
	read := func(fd uintptr) bool {
		var err error
		_, drained, err = drainSocket(rb, fd, rl, helperBacklog, hold, packet, pending, flush)
		switch {
		case err != nil:
			rerr = err
			return true
		case drained:
			return !waits
		}
		return true
	}
	if rl.primary {
		for {
			if err := rc.Read(read); err != nil {
				return err
			}
			if rerr != nil {
				return rerr
			}
		}
	}
	poll := time.NewTicker(helperPoll)
	defer poll.Stop()
	for {
		// A signal engages the helper: it reads like the primary, waiting
		// on the socket too, for helperEngaged (one deadline, not one per
		// wait), then goes back to waiting for a signal. A tick only has
		// it drain what is there.
		select {
		case <-rl.stop:
			return net.ErrClosed
		case <-rl.wake:
			waits = true
			c.SetReadDeadline(time.Now().Add(helperEngaged))
		case <-poll.C:
			waits = false
		}
		for {
			err := rc.Read(read)
			if waits && errors.Is(err, os.ErrDeadlineExceeded) {
				flush()
				c.SetReadDeadline(time.Time{})
				break
			}
			if err != nil {
				return err
			}
			if rerr != nil {
				return rerr
			}
			if drained && !waits {
				break
			}
			select {
			case <-rl.stop:
				return net.ErrClosed
			default:
			}
		}
	}
}
