//go:build !unix

package statsd

import "net"

func readPackets(c net.PacketConn, packet func([]byte), idle func()) error {
	return readPacketsPortable(c, packet, idle)
}
