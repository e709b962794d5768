//go:build unix && !(linux && (amd64 || arm64))

package statsd

import "syscall"

// recvSlots is the number of datagrams one recv call may return.
const recvSlots = 1

// recvBufs receives one datagram per system call (see read_mmsg_linux.go
// for the batched version).
type recvBufs struct {
	buf []byte
	n   int
}

func newRecvBufs() *recvBufs { return &recvBufs{buf: make([]byte, maxDatagram)} }

// recv reads one datagram from fd (non-blocking, as the socket is).
func (rb *recvBufs) recv(fd uintptr) (int, error) {
	n, err := syscall.Read(int(fd), rb.buf)
	if err != nil {
		return 0, err
	}
	rb.n = n
	return 1, nil
}

func (rb *recvBufs) datagram(int) []byte { return rb.buf[:rb.n] }
