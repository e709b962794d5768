package statsd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// flushHold is how long a reader may hold mapped events before handing them
// to the shards while its socket never empties (an empty socket is
// flushed at once): a scrape sees events at most this late.
const flushHold = time.Millisecond

// packetReaders is the number of goroutines (and descriptors) reading one
// UDP or unixgram socket: GOMAXPROCS, or SLUICE_STATSD_READERS (for
// benchmarking).
var packetReaders = func() int {
	if v, err := strconv.Atoi(os.Getenv("SLUICE_STATSD_READERS")); err == nil && v > 0 {
		return v
	}
	return runtime.GOMAXPROCS(0)
}()

// packetListener serves a UDP or unixgram socket. Go serialises reads on
// one descriptor, so it reads through several descriptors of the same
// socket (dup'ed), one goroutine each: the kernel hands each datagram to
// one of them, and parsing and mapping run in parallel.
type packetListener struct {
	rep    *reporter
	kdrops *kernelDrops
	// newProcessor makes a reader's processor, watched under name.
	newProcessor func(name string) (*processor, func())
	spec         string
	conn         net.PacketConn // closed by Start when the readers read raw
	raw          *rawPackets    // the readers' own descriptors (Linux), or nil
	addr         string         // the bound address, kept when conn is closed
	dups         []net.PacketConn
	packets      prometheus.Counter
	uncoalesced  prometheus.Counter // the raw readers' suspended coalescing
	unlink       string             // socket file to remove on close
	mode         string
	rbuf         int
	inode        uint64        // of a UDP socket, for its kernel drops; 0 for unixgram
	stop         chan struct{} // closed by Close: the helper readers stop waiting
	wg           sync.WaitGroup
}

// readerRole is a reader's part on its socket: the primary waits on the
// socket and wakes the helpers (through wake) when it finds a backlog;
// the helpers wait on wake, and stop when stop is closed.
type readerRole struct {
	primary bool
	wake    chan struct{}
	stop    <-chan struct{}
}

func (l *packetListener) Spec() string { return l.spec }
func (l *packetListener) Addr() string {
	if l.addr != "" {
		return l.addr
	}
	return l.conn.LocalAddr().String()
}

func (l *packetListener) setReadBuffer(n int) error {
	if n <= 0 || n == l.rbuf {
		return nil
	}
	type rb interface{ SetReadBuffer(int) error }
	if l.raw != nil {
		if err := l.raw.setReadBuffer(n); err != nil {
			return err
		}
	} else if c, ok := l.conn.(rb); ok {
		if err := c.SetReadBuffer(n); err != nil {
			return err
		}
	}
	l.rbuf = n
	return nil
}

func (l *packetListener) Adjust(args Arguments, log *slog.Logger) {
	if err := l.setReadBuffer(args.ReadBuffer); err != nil {
		log.Warn("could not change read_buffer", "err", err)
	}
	if l.unlink != "" && args.UnixgramMode != l.mode {
		mode, _ := parseMode(args.UnixgramMode)
		if err := os.Chmod(l.unlink, os.FileMode(mode)); err != nil {
			log.Warn("could not change unixgram_mode", "err", err)
		} else {
			l.mode = args.UnixgramMode
		}
	}
}

func (l *packetListener) Start() {
	l.stop = make(chan struct{})
	wake := make(chan struct{}, 1)
	if l.startRaw(wake) {
		return
	}
	conns := []net.PacketConn{l.conn}
	for range packetReaders - 1 {
		d, err := dupPacketConn(l.conn)
		if err != nil {
			l.rep.log.Warn("reading with one goroutine", "err", err)
			break
		}
		l.dups = append(l.dups, d)
		conns = append(conns, d)
	}
	for i, c := range conns {
		l.wg.Add(1)
		rl := readerRole{primary: i == 0, wake: wake, stop: l.stop}
		go func() {
			defer l.wg.Done()
			l.read(func(packet func([]byte), pending func() time.Time, flush func()) error {
				return readPackets(c, rl, flushHold, packet, pending, flush)
			}, fmt.Sprintf("reader %d of %d on %s", i+1, len(conns), l.spec))
		}()
	}
}

// startRaw starts the readers on descriptors of their own, outside Go's
// netpoller, where the platform allows (see listen_packet_raw_linux.go),
// and closes the socket's Go descriptor: while it is open, every datagram
// wakes the runtime's netpoller. It reports whether it did.
func (l *packetListener) startRaw(wake chan struct{}) bool {
	rp, err := openRawPackets(l.conn, packetReaders)
	if err != nil {
		if !errors.Is(err, errors.ErrUnsupported) {
			l.rep.log.Warn("reading the socket through Go's netpoller", "address", l.spec, "err", err)
		}
		return false
	}
	if l.uncoalesced != nil {
		rp.onPressure = l.uncoalesced.Inc
	}
	l.addr = l.conn.LocalAddr().String()
	l.conn.Close()
	l.raw = rp
	for i, fd := range rp.fds {
		l.wg.Add(1)
		rl := readerRole{primary: i == 0, wake: wake, stop: l.stop}
		go func() {
			defer l.wg.Done()
			l.read(func(packet func([]byte), pending func() time.Time, flush func()) error {
				return readPacketsRaw(rp, fd, rl, flushHold, packet, pending, flush)
			}, fmt.Sprintf("reader %d of %d on %s", i+1, len(rp.fds), l.spec))
		}()
	}
	return true
}

func dupPacketConn(c net.PacketConn) (net.PacketConn, error) {
	fc, ok := c.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, errors.New("socket cannot be duplicated")
	}
	f, err := fc.File()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return net.FilePacketConn(f)
}

// readFunc reads a socket until it closes or fails: packet takes each
// datagram, pending tells when the oldest unflushed one came, flush hands
// the mapped events to the shards.
type readFunc func(packet func([]byte), pending func() time.Time, flush func()) error

func (l *packetListener) read(src readFunc, name string) {
	p, unwatch := l.newProcessor(name)
	defer unwatch()
	packets := localCounter{Counter: l.packets}
	defer func() {
		p.flush()
		packets.flush()
	}()
	for {
		err := l.readSome(src, p, &packets)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if !errors.Is(err, errRecovered) {
			l.rep.m.readErrors.Inc()
			l.rep.badLog.Warn("reading from socket failed", "address", l.spec, "err", err)
		}
		time.Sleep(10 * time.Millisecond) // a failing socket must not spin
	}
}

// errRecovered is what readSome returns after recovering a panic.
var errRecovered = errors.New("recovered from a panic")

// readSome reads until the socket fails or closes. The processor recovers
// panics per line; this recovers the rest of the read loop, and leaves the
// processor with nothing pending (the items in hand are dropped) and idle.
func (l *packetListener) readSome(src readFunc, p *processor, packets *localCounter) (err error) {
	defer func() {
		if v := recover(); v != nil {
			l.rep.recovered("reader", v, "address", l.spec)
			for s, b := range p.pending {
				if b != nil {
					putBatch(b)
					p.pending[s] = nil
				}
			}
			p.flush()
			err = errRecovered
		}
	}()
	return src(func(b []byte) { packets.n++; p.packet(b) },
		func() time.Time { return p.since },
		func() { p.flush(); packets.flush() })
}

func (l *packetListener) closeConns() {
	l.conn.Close()
	for _, d := range l.dups {
		d.Close()
	}
}

// Close closes the sockets, removes the socket file (first: it must go
// even if a reader were to hang) and waits for the readers.
//
// Readers on descriptors of their own (l.raw) are stopped first and read
// what is queued; their descriptors close once they have returned.
func (l *packetListener) Close() {
	l.kdrops.remove(l.inode)
	if l.unlink != "" {
		os.Remove(l.unlink)
	}
	if l.raw == nil {
		l.closeConns()
	}
	if l.stop != nil {
		close(l.stop)
		l.stop = nil
	}
	if l.raw != nil {
		l.raw.wake() // a primary waiting in the netpoller
	}
	l.wg.Wait()
	if l.raw != nil {
		l.raw.close()
		l.raw = nil
	}
}

// maxDatagram is the largest datagram read whole.
const maxDatagram = 65536

// readPacketsPortable reads one datagram at a time, flushing after each.
func readPacketsPortable(c net.PacketConn, packet func([]byte), idle func()) error {
	buf := make([]byte, maxDatagram)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		packet(buf[:n])
		idle()
	}
}
