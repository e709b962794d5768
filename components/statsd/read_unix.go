//go:build unix

package statsd

import (
	"errors"
	"net"
	"syscall"
)

// readBurst bounds the datagrams read in one go, so that closing the
// socket (which waits for a read in progress) is never held up for long.
const readBurst = 256

// readPackets reads datagrams from c and hands each to packet. It drains
// the socket without blocking and calls idle when the socket is empty, so
// that batches are as large as the load and no larger: one datagram per
// batch when traffic is light, hundreds under load. It returns when c is
// closed (net.ErrClosed) or a read fails.
func readPackets(c net.PacketConn, packet func([]byte), idle func()) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return readPacketsPortable(c, packet, idle)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	buf := make([]byte, 65536)
	var rerr error
	read := func(fd uintptr) bool {
		for range readBurst {
			n, err := syscall.Read(int(fd), buf)
			switch {
			case err == nil:
				if n > 0 {
					packet(buf[:n])
				}
			case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EWOULDBLOCK):
				idle()
				return false // wait until readable
			case errors.Is(err, syscall.EINTR):
			default:
				rerr = err
				idle()
				return true
			}
		}
		idle()
		return true
	}
	for {
		if err := rc.Read(read); err != nil {
			return err
		}
		if rerr != nil {
			return rerr
		}
	}
}
