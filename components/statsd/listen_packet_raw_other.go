//go:build !(linux && (amd64 || arm64))

package statsd

import (
	"errors"
	"net"
	"time"
)

// rawPackets: reading outside Go's netpoller is Linux-only (see
// listen_packet_raw_linux.go); elsewhere the readers use Go's netpoller.
type rawPackets struct {
	fds        []int
	onPressure func()
}

func openRawPackets(net.PacketConn, int) (*rawPackets, error) { return nil, errors.ErrUnsupported }

func (rp *rawPackets) wake()                   {}
func (rp *rawPackets) close()                  {}
func (rp *rawPackets) setReadBuffer(int) error { return errors.ErrUnsupported }

func readPacketsRaw(*rawPackets, int, readerRole, time.Duration, func([]byte), func() time.Time, func()) error {
	return errors.ErrUnsupported
}
