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

// readPackets reads datagrams from c and hands each to packet. It drains
// the socket without blocking; once the socket is empty it calls flush, at
// the latest hold after the oldest unflushed datagram (pending reports
// when that was): under load, batches for the shards grow to hundreds of
// lines, and a quiet socket still delivers within hold. It returns when c
// is closed (net.ErrClosed) or a read fails.
func readPackets(c net.PacketConn, hold time.Duration, packet func([]byte), pending func() time.Time, flush func()) error {
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
	deadline := false
	read := func(fd uintptr) bool {
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
			case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EWOULDBLOCK):
				since := pending()
				if !since.IsZero() && time.Since(since) < hold {
					if !deadline {
						deadline = true
						c.SetReadDeadline(since.Add(hold))
					}
					return false // wait for data or the deadline
				}
				flush()
				return false
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
	for {
		err := rc.Read(read)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			flush()
			deadline = false
			c.SetReadDeadline(time.Time{})
			continue
		}
		if err != nil {
			return err
		}
		if rerr != nil {
			return rerr
		}
	}
}
