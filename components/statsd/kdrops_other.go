//go:build !unix

package statsd

import "net"

// socketInode is 0 where sockets have no inode: kernel drops are not read.
func socketInode(net.PacketConn) uint64 { return 0 }
