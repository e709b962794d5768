//go:build unix

package statsd

import (
	"net"
	"syscall"
)

// socketInode is the inode of c's socket (what /proc/net/udp lists), or 0.
func socketInode(c net.PacketConn) uint64 {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	var ino uint64
	rc.Control(func(fd uintptr) {
		var st syscall.Stat_t
		if syscall.Fstat(int(fd), &st) == nil {
			ino = uint64(st.Ino)
		}
	})
	return ino
}
