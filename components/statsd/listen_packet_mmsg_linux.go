//go:build linux && (amd64 || arm64)

package statsd

import (
	"syscall"
	"unsafe"
)

// recvSlots is the number of datagrams one recvmmsg call may return. Each
// slot holds the largest datagram; only the pages a datagram is written
// to become resident.
const recvSlots = 8

// mmsghdr is struct mmsghdr: a msghdr and the length the kernel received.
type mmsghdr struct {
	hdr syscall.Msghdr
	n   uint32
}

// recvBufs receives up to recvSlots datagrams per system call (recvmmsg):
// under load, the per-call cost of the kernel entry and the socket lock is
// shared by several datagrams.
type recvBufs struct {
	bufs [recvSlots][]byte
	iovs [recvSlots]syscall.Iovec
	hdrs [recvSlots]mmsghdr
}

func newRecvBufs() *recvBufs {
	rb := &recvBufs{}
	mem := make([]byte, recvSlots*maxDatagram)
	for i := range rb.bufs {
		rb.bufs[i] = mem[i*maxDatagram : (i+1)*maxDatagram : (i+1)*maxDatagram]
		rb.iovs[i].Base = &rb.bufs[i][0]
		rb.iovs[i].SetLen(maxDatagram)
		rb.hdrs[i].hdr.Iov = &rb.iovs[i]
		rb.hdrs[i].hdr.Iovlen = 1
	}
	return rb
}

// recv reads the datagrams waiting on fd, without blocking, and returns
// how many it read (datagram i is rb.datagram(i)). The call never blocks
// (MSG_DONTWAIT), so it is made raw: the runtime's bookkeeping around a
// system call that may block (entersyscall) wakes the runtime's monitor
// thread when the process was idle, which at a few thousand datagrams a
// second was a third of the receiver's CPU.
func (rb *recvBufs) recv(fd uintptr) (int, error) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&rb.hdrs[0])), recvSlots, syscall.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func (rb *recvBufs) datagram(i int) []byte {
	return rb.bufs[i][:rb.hdrs[i].n]
}
