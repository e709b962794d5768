//go:build !unix

package statsd

import (
	"net"
	"time"
)

func readPackets(c net.PacketConn, _ readerRole, _ time.Duration, packet func([]byte), _ func() time.Time, flush func()) error {
	return readPacketsPortable(c, packet, flush)
}
