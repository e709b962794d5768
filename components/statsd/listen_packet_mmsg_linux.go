//go:build linux && (amd64 || arm64)

package statsd

import (
	"syscall"
	"unsafe"
)

// recvSlots is the number of datagrams one recvmmsg call may return once
// a reader has seen a backlog (see recvBufs). Each slot holds the largest
// datagram.
const recvSlots = 8

// mmsghdr is struct mmsghdr: a msghdr and the length the kernel received.
type mmsghdr struct {
	hdr syscall.Msghdr
	n   uint32
}

// recvBufs receives up to recvSlots datagrams per system call (recvmmsg):
// under load, the per-call cost of the kernel entry and the socket lock is
// shared by several datagrams.
//
// The slots are allocated as they are needed, not when the reader starts:
// one slot until two calls in a row find a datagram (a backlog), then all
// of them. A sidecar's socket
// mostly holds one datagram at a time, and every slot is the largest
// datagram (64 KiB): eight of them for each reader were 1 MiB of an idle
// agent's heap, most of it never written to (issue 22).
type recvBufs struct {
	slots int // slots in use: 0 before the first call, then 1 or recvSlots
	// streak counts the calls that returned datagrams since the socket
	// was last found empty: two in a row are a backlog.
	streak int
	bufs   [recvSlots][]byte
	iovs   [recvSlots]syscall.Iovec
	hdrs   [recvSlots]mmsghdr
}

func newRecvBufs() *recvBufs { return &recvBufs{} }

// grow allocates slots up to n.
func (rb *recvBufs) grow(n int) {
	if n <= rb.slots {
		return
	}
	mem := make([]byte, (n-rb.slots)*maxDatagram)
	for i := rb.slots; i < n; i++ {
		j := i - rb.slots
		rb.bufs[i] = mem[j*maxDatagram : (j+1)*maxDatagram : (j+1)*maxDatagram]
		rb.iovs[i].Base = &rb.bufs[i][0]
		rb.iovs[i].SetLen(maxDatagram)
		rb.hdrs[i].hdr.Iov = &rb.iovs[i]
		rb.hdrs[i].hdr.Iovlen = 1
	}
	rb.slots = n
}

// recv reads the datagrams waiting on fd, without blocking, and returns
// how many it read (datagram i is rb.datagram(i)). The call never blocks
// (MSG_DONTWAIT), so it is made raw: the runtime's bookkeeping around a
// system call that may block (entersyscall) wakes the runtime's monitor
// thread when the process was idle, which at a few thousand datagrams a
// second was a third of the receiver's CPU.
func (rb *recvBufs) recv(fd uintptr) (int, error) {
	switch {
	case rb.slots == 0:
		rb.grow(1)
	case rb.streak >= 2 && rb.slots < recvSlots:
		rb.grow(recvSlots) // the last two calls both found datagrams: a backlog
	}
	n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&rb.hdrs[0])), uintptr(rb.slots), syscall.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		rb.streak = 0
		return 0, errno
	}
	rb.streak++
	return int(n), nil
}

func (rb *recvBufs) datagram(i int) []byte {
	return rb.bufs[i][:rb.hdrs[i].n]
}
