//go:build linux && (amd64 || arm64)

package statsd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reading a UDP or unixgram socket with fewer wake-ups (Linux).
//
// A profile of `sluice run` at 100k one-line datagrams/s had two thirds
// of the CPU in Go's scheduler: the primary reader parked in the
// netpoller after each datagram (the socket was empty again), and each
// datagram woke a thread from epoll_wait, readied the reader, woke or
// started another thread for it (futex), and the runtime's idle threads
// spun looking for work before they slept again. Reading the datagram
// itself was a quarter of it. Waiting less often does not help while a
// descriptor of the socket is in Go's netpoller: its registration is
// edge-triggered, and the kernel wakes the runtime's epoll_wait for every
// datagram that arrives, whether or not a goroutine waits on it. Blocking
// system calls of the reader's own (epoll_wait, nanosleep) do not help
// either: the runtime's monitor thread (sysmon) then polls every 20 µs
// to take the reader's P back, half of the CPU at 5k datagrams/s. So on
// Linux the readers read descriptors of their own (dup'ed, never given
// to Go's netpoller), the socket's Go descriptor is closed, and:
//
//   - at low rates the primary reader waits on the socket in Go's
//     netpoller, through a descriptor it registers there for the time it
//     waits (waitConn), as before: an idle socket costs nothing;
//   - when datagrams come faster than one per coalesceWait (the
//     netpoller woke it that soon, coalesceAfter times in a row), it
//     closes that descriptor and sleeps coalesceWait (a Go timer) between
//     reads instead: the datagrams that arrive meanwhile wake nobody, and
//     each wake-up reads the tens to hundreds that queued. After
//     coalesceAfter sleeps in a row that found the socket empty it goes
//     back to waiting in the netpoller;
//   - a helper reader, engaged by the primary when it finds a backlog,
//     reads the same way (sleeping coalesceWait whenever the socket is
//     empty) until its engagement ends, and drains the socket once every
//     helperPoll on its own, as before.
//
// The sleep must not outlast the socket's receive buffer: with the
// kernel's default (rmem_default, 208 KiB, the most an unprivileged
// process may ask for on many nodes) a 1 ms sleep at 150k one-line
// datagrams/s fills it, where waking for every datagram would not. So
// after each sleep the primary looks at how full the buffer is
// (getsockopt SO_MEMINFO: bytes queued against the buffer's size): more
// than half full, it stops coalescing and waits in the netpoller again,
// and does not coalesce for pressureHold (5 s). Large buffers (read_buffer)
// keep the saving at any rate they absorb.
//
// A datagram that arrives while a reader sleeps is read when the sleep
// ends, at most coalesceWait later plus the scheduling of the goroutine
// (the runtime's timers wake it with millisecond precision); its lines
// are handed to the shards when that read empties the socket.

// coalesceWait is how long a reader sleeps, when datagrams come faster
// than one per coalesceWait, before it reads the socket again. At 100k
// datagrams/s that is about 100 datagrams per wake-up; at the rates one
// reader can take (about 500k/s here), 500 queue meanwhile, about 0.5
// MiB of receive buffer (SO_RCVBUF, `read_buffer`; a backlog of
// coalesceBacklog engages a helper).
const coalesceWait = time.Millisecond

// coalesceAfter is how many quick wake-ups in a row (or empty sleeps)
// switch the primary to coalescing (or back to waiting): a borderline
// rate does not flip it at every datagram, as each switch registers or
// closes a descriptor.
const coalesceAfter = 4

// coalesceBacklog is how many datagrams the primary reads in one go,
// right after a coalescing sleep, before it engages a helper: 256k
// datagrams/s or more (helperBacklog is for the reads that follow a wait
// in the netpoller).
const coalesceBacklog = 256

// pressureHold is how long the primary does not coalesce after a sleep
// found the receive buffer more than half full: a rate that fills half
// the buffer in a sleep would find it full in the first sleep that runs
// late, so coalescing is tried again only every few seconds.
const pressureHold = 5 * time.Second

// Primary reader states, for tests (rawPackets.state).
const (
	readerReading    = iota // reading, or handling what it read
	readerWaiting           // waiting for the socket in the netpoller
	readerCoalescing        // sleeping coalesceWait between reads
)

// rawPackets holds a socket's descriptors read outside Go's netpoller.
type rawPackets struct {
	fds []int // one per reader, dup'ed from the socket; fds[0] is the primary's

	mu      sync.Mutex
	stopped bool           // set by wake (Close): no new waitConn
	wait    net.PacketConn // the primary's descriptor in the netpoller while it waits, or nil

	// What the primary does, for tests and diagnostics.
	state     atomic.Int32 // readerReading, readerWaiting, readerCoalescing
	waits     atomic.Int64 // times it registered a descriptor to wait on
	coalesced atomic.Int64 // its coalescing sleeps
	pressured atomic.Int64 // sleeps after which the buffer was over half full

	// onPressure, if set before the readers start, is called when a
	// sleep found the buffer over half full (a self-metric).
	onPressure func()

	// noCoalesceUntil is when the primary may coalesce again after a
	// sleep found the buffer over half full (UnixNano; primary only).
	noCoalesceUntil atomic.Int64
}

// bufferOverHalf says whether fd's socket has more than half of its
// receive buffer taken by queued datagrams (the kernel's accounting, which
// counts each datagram's buffers, not only its bytes: 832 bytes for a
// one-line datagram on loopback). false when the kernel does not say. A
// raw system call (it never blocks): through the runtime's entersyscall,
// each call would wake its monitor thread on an idle process, which cost
// 5 of 13 s per 1M lines at 5k datagrams/s.
func bufferOverHalf(fd int) bool {
	var mi [unix.SK_MEMINFO_VARS]uint32
	l := uint32(unsafe.Sizeof(mi))
	_, _, errno := syscall.RawSyscall6(syscall.SYS_GETSOCKOPT, uintptr(fd), syscall.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&mi[0])), uintptr(unsafe.Pointer(&l)), 0)
	if errno != 0 || l < 8 {
		return false
	}
	return uint64(mi[unix.SK_MEMINFO_RMEM_ALLOC])*2 > uint64(mi[unix.SK_MEMINFO_RCVBUF])
}

// openRawPackets dups n descriptors of c's socket. The caller closes c
// (see above).
func openRawPackets(c net.PacketConn, n int) (*rawPackets, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, errors.New("socket has no descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	rp := &rawPackets{}
	var derr error
	if err := rc.Control(func(fd uintptr) {
		for range n {
			d, err := dupCloexec(int(fd))
			if err != nil {
				derr = err
				return
			}
			rp.fds = append(rp.fds, d)
		}
	}); err != nil {
		rp.close()
		return nil, err
	}
	if derr != nil {
		rp.close()
		return nil, derr
	}
	return rp, nil
}

func dupCloexec(fd int) (int, error) {
	d, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return -1, fmt.Errorf("dup: %w", errno)
	}
	return int(d), nil
}

// waitConn registers a descriptor of the primary's socket in Go's
// netpoller, to wait on; nil with net.ErrClosed once stopped.
func (rp *rawPackets) waitConn() (syscall.RawConn, error) {
	d, err := dupCloexec(rp.fds[0])
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(d), "statsd socket")
	c, err := net.FilePacketConn(f) // dups d again
	f.Close()
	if err != nil {
		return nil, err
	}
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.stopped {
		c.Close()
		return nil, net.ErrClosed
	}
	rp.wait = c
	rp.waits.Add(1)
	return rc, nil
}

// unwait closes the primary's descriptor in the netpoller.
func (rp *rawPackets) unwait() {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.wait != nil {
		rp.wait.Close()
		rp.wait = nil
	}
}

// wake stops the primary from waiting (Close): its wait ends with
// net.ErrClosed, and it registers no new one.
func (rp *rawPackets) wake() {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	rp.stopped = true
	if rp.wait != nil {
		rp.wait.Close()
		rp.wait = nil
	}
}

// close closes every descriptor; the readers must have returned.
func (rp *rawPackets) close() {
	rp.wake()
	for _, fd := range rp.fds {
		syscall.Close(fd)
	}
	rp.fds = nil
}

func (rp *rawPackets) setReadBuffer(n int) error {
	return syscall.SetsockoptInt(rp.fds[0], syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
}

// readPacketsRaw is readPackets for a descriptor of rp: it reads
// datagrams from fd and hands each to packet, calls flush whenever the
// socket is empty (and, while it never empties, at the latest hold after
// the oldest unflushed datagram), and returns net.ErrClosed once rl.stop
// is closed (after reading what was queued), or the error of a read.
func readPacketsRaw(rp *rawPackets, fd int, rl readerRole, hold time.Duration, packet func([]byte), pending func() time.Time, flush func()) error {
	rb := newRecvBufs()
	stopped := func() bool {
		select {
		case <-rl.stop:
			return true
		default:
			return false
		}
	}
	drain := func(fd uintptr, signalAt int) (int, bool, error) {
		return drainSocket(rb, fd, rl, signalAt, hold, packet, pending, flush)
	}
	timer := time.NewTimer(coalesceWait)
	defer timer.Stop()
	sleep := func() bool {
		if rl.primary {
			rp.coalesced.Add(1)
		}
		timer.Reset(coalesceWait)
		select {
		case <-rl.stop:
			return false
		case <-timer.C:
			return true
		}
	}
	if !rl.primary {
		return readHelperRaw(fd, rl, drain, sleep, stopped)
	}
	defer rp.unwait()
	for !stopped() {
		if err := waitRaw(rp, drain); err != nil {
			if errors.Is(err, net.ErrClosed) {
				break
			}
			return err
		}
		// Coalescing: sleep, read what queued, until coalesceAfter sleeps
		// in a row found the socket empty.
		for idle := 0; idle < coalesceAfter && !stopped(); {
			rp.state.Store(readerCoalescing)
			ok := sleep()
			rp.state.Store(readerReading)
			if !ok {
				break
			}
			if bufferOverHalf(fd) {
				// The next sleep could overflow it: read as datagrams
				// come for a while (after reading what is queued).
				// The hold before the count: whoever sees the count sees
				// the hold.
				rp.noCoalesceUntil.Store(time.Now().Add(pressureHold).UnixNano())
				rp.pressured.Add(1)
				if rp.onPressure != nil {
					rp.onPressure()
				}
				idle = coalesceAfter
			}
			got := 0
			for empty := false; !empty && !stopped(); {
				var n int
				var err error
				if n, empty, err = drain(uintptr(fd), coalesceBacklog); err != nil {
					return err
				}
				got += n
			}
			switch {
			case idle >= coalesceAfter: // pressure: back to waiting
			case got == 0:
				idle++
			default:
				idle = 0
			}
		}
	}
	// Stopped: read what is queued, within bounds (datagrams may keep
	// coming faster than they are read).
	for range stopBursts {
		if _, empty, err := drain(uintptr(fd), readBurst+1); err != nil || empty {
			break
		}
	}
	return net.ErrClosed
}

// stopBursts bounds the reads of a stopped primary (readBurst datagrams
// each): what a large receive buffer holds, not a flood that never ends.
const stopBursts = 64

// waitRaw is the primary's waiting: in Go's netpoller, reading through a
// descriptor registered for the wait, until the netpoller wakes it sooner
// than coalesceWait after it parked coalesceAfter times in a row (it
// returns nil: time to coalesce), the wait is closed (net.ErrClosed), or
// a read fails.
func waitRaw(rp *rawPackets, drain func(uintptr, int) (int, bool, error)) error {
	rc, err := rp.waitConn()
	if err != nil {
		if errors.Is(err, net.ErrClosed) {
			return err
		}
		return fmt.Errorf("waiting on the socket: %w", err)
	}
	defer rp.unwait()
	var rerr error
	quick := 0
	var parked time.Time
	for {
		more := false
		err = rc.Read(func(wfd uintptr) bool {
			rp.state.Store(readerReading)
			if !parked.IsZero() {
				if time.Since(parked) < coalesceWait {
					quick++
				} else {
					quick = 0
				}
				parked = time.Time{}
			}
			var empty bool
			if _, empty, rerr = drain(wfd, helperBacklog); rerr != nil {
				return true
			}
			if !empty {
				more = true // a backlog: read on, and not a wake-up
				return true
			}
			if quick >= coalesceAfter && time.Now().UnixNano() >= rp.noCoalesceUntil.Load() {
				return true
			}
			parked = time.Now()
			rp.state.Store(readerWaiting)
			return false
		})
		rp.state.Store(readerReading)
		switch {
		case rerr != nil:
			return rerr
		case errors.Is(err, net.ErrClosed):
			return net.ErrClosed
		case err != nil:
			return err
		case !more:
			return nil
		}
	}
}

// readHelperRaw is a helper reader: a signal engages it for
// helperEngaged, reading and sleeping coalesceWait whenever the socket is
// empty; a tick of its own (helperPoll) has it drain the socket once (the
// primary's thread may be descheduled, on a loaded machine, for longer
// than the socket's buffer lasts, and then nobody would signal).
func readHelperRaw(fd int, rl readerRole, drain func(uintptr, int) (int, bool, error), sleep func() bool, stopped func() bool) error {
	poll := time.NewTicker(helperPoll)
	defer poll.Stop()
	for {
		var until time.Time
		select {
		case <-rl.stop:
			return net.ErrClosed
		case <-rl.wake:
			until = time.Now().Add(helperEngaged)
		case <-poll.C:
		}
		for {
			_, empty, err := drain(uintptr(fd), readBurst+1)
			if err != nil {
				return err
			}
			if stopped() {
				return net.ErrClosed
			}
			if !empty {
				continue
			}
			if until.IsZero() || time.Now().After(until) || !sleep() {
				break
			}
		}
	}
}
