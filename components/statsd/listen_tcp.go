package statsd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// TCP: one goroutine per connection, at most max_connections of them. At
// the limit the accept loop stops calling Accept until a connection
// closes, so new connections wait in the kernel's listen backlog (their
// clients see a slow connect, or a full backlog, never a reset from us)
// and memory stays bounded: under churn, an unbounded accept loop made a
// goroutine, a 64 KiB reader and a processor with full-size batches per
// connection faster than they finished (~12,900 goroutines, 3 GB).
//
// Each connection reads into a buffer from a pool, 4 KiB at first, grown
// (doubling) only while one line does not fit, up to max_line_length+1,
// and returned to the pool when the connection closes.

// tcpInitialBuf is a connection's first read buffer size.
const tcpInitialBuf = 4096

// maxPooledBuf is the largest buffer returned to the pool: a larger one
// (max_line_length above 64 KiB) is left to the GC.
const maxPooledBuf = DefaultMaxLineLength + 1

type tcpListener struct {
	rep *reporter
	// newProcessor makes a connection's processor, watched under name.
	newProcessor func(name string) (*processor, func())
	cfg          *atomic.Pointer[runtimeConfig]
	bufs         *sync.Pool // read buffers (*[]byte)
	spec         string
	ln           net.Listener
	wg           sync.WaitGroup
	lim          *limiter

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func newTCPListener(rep *reporter, newProcessor func(string) (*processor, func()), cfg *atomic.Pointer[runtimeConfig], bufs *sync.Pool, spec string, ln net.Listener, args Arguments) *tcpListener {
	return &tcpListener{rep: rep, newProcessor: newProcessor, cfg: cfg, bufs: bufs, spec: spec, ln: ln, lim: newLimiter(args.MaxConnections), conns: map[net.Conn]struct{}{}}
}

func (l *tcpListener) Spec() string { return l.spec }
func (l *tcpListener) Addr() string { return l.ln.Addr().String() }

// Adjust applies a new max_connections to the open listener; a new
// max_line_length applies to connections accepted from then on.
func (l *tcpListener) Adjust(args Arguments, _ *slog.Logger) { l.lim.setMax(args.MaxConnections) }

func (l *tcpListener) Start() {
	l.wg.Add(1)
	go l.accept()
}

func (l *tcpListener) accept() {
	defer l.wg.Done()
	defer func() {
		if v := recover(); v != nil {
			// Not restarted: a panic here is a bug in this loop itself.
			l.rep.recovered("tcp accept", v, "address", l.spec)
		}
	}()
	for {
		if !l.lim.acquire(l.rep.m.tcpAcceptPaused.Inc) {
			return // closed
		}
		c, err := l.ln.Accept()
		if err != nil {
			l.lim.release()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: count, log, back off, carry on.
			l.rep.m.readErrors.Inc()
			l.rep.badLog.Warn("accepting a TCP connection failed", "address", l.spec, "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			l.lim.release()
			return
		}
		l.conns[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.serve(c)
	}
}

func (l *tcpListener) serve(c net.Conn) {
	m := l.rep.m
	m.tcpConnections.Inc()
	m.tcpOpen.Inc()
	remote := c.RemoteAddr().String()
	p, unwatch := l.newProcessor("TCP connection from " + remote)
	defer func() {
		if v := recover(); v != nil {
			l.rep.recovered("tcp connection", v, "remote", remote)
		}
		p.flush()
		unwatch()
		l.mu.Lock()
		delete(l.conns, c)
		l.mu.Unlock()
		c.Close()
		m.tcpOpen.Dec()
		l.lim.release()
		l.wg.Done()
	}()
	maxLine := l.cfg.Load().args.MaxLineLength
	bp := l.bufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledBuf {
			l.bufs.Put(bp)
		}
	}()
	lr := lineReader{buf: (*bp)[:cap(*bp)], max: maxLine}
	err := lr.run(c, p.line, func() {
		m.tcpLineTooLong.Inc()
		l.rep.eventError(reasonLineTooLong, "TCP line too long, skipped", "remote", remote, "max_line_length", maxLine)
	}, p.flush)
	*bp = lr.buf[:0] // keep the grown buffer for the pool
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		m.tcpErrors.Inc()
		l.rep.badLog.Warn("reading from a TCP connection failed", "remote", remote, "err", err)
	}
}

// lineReader splits a stream into lines of at most max bytes (without the
// newline) in one buffer that grows only as a line needs. A longer line is
// reported (tooLong) and skipped up to its newline. At EOF an unterminated
// last line is handed over too, as statsd_exporter does.
type lineReader struct {
	buf        []byte
	start, end int // unconsumed bytes: buf[start:end]
	max        int
	discarding bool // skipping the rest of a line that was too long
}

// run reads r until it fails, calling line for each line and flush after
// each read's lines (before blocking on the next read). It returns the
// read error (io.EOF at the end).
func (lr *lineReader) run(r io.Reader, line func([]byte), tooLong func(), flush func()) error {
	for {
		lr.makeRoom()
		n, err := r.Read(lr.buf[lr.end:])
		lr.end += n
		lr.scan(lr.end-n, line, tooLong)
		if err != nil {
			if !lr.discarding && lr.end > lr.start {
				line(lr.buf[lr.start:lr.end])
			}
			lr.start, lr.end = 0, 0
			flush()
			return err
		}
		flush()
	}
}

// scan hands over the complete lines in buf[start:end], searching for
// newlines from `from` (the bytes before it have none).
func (lr *lineReader) scan(from int, line func([]byte), tooLong func()) {
	for {
		i := bytes.IndexByte(lr.buf[from:lr.end], '\n')
		if i < 0 {
			break
		}
		nl := from + i
		switch {
		case lr.discarding:
			lr.discarding = false
		case nl-lr.start > lr.max:
			tooLong()
		default:
			line(lr.buf[lr.start:nl])
		}
		lr.start = nl + 1
		from = lr.start
	}
	if lr.discarding {
		lr.start, lr.end = 0, 0
	} else if lr.end-lr.start > lr.max {
		// Too long already, and no newline yet: count it now and skip
		// the rest as it comes.
		tooLong()
		lr.discarding = true
		lr.start, lr.end = 0, 0
	}
	if lr.start == lr.end {
		lr.start, lr.end = 0, 0
	}
}

// makeRoom makes space to read into: it moves a partial line to the front,
// or grows the buffer (doubling, up to max+1) when the partial line fills
// it.
func (lr *lineReader) makeRoom() {
	if lr.end < len(lr.buf) {
		return
	}
	if lr.start > 0 {
		n := copy(lr.buf, lr.buf[lr.start:lr.end])
		lr.start, lr.end = 0, n
		return
	}
	// A partial line of at most max bytes fills the buffer, so the buffer
	// is smaller than max+1 (scan would have discarded a longer one).
	nb := make([]byte, min(max(2*len(lr.buf), tcpInitialBuf), lr.max+1))
	copy(nb, lr.buf[:lr.end])
	lr.buf = nb
}

func (l *tcpListener) Close() {
	l.ln.Close()
	l.lim.close()
	l.mu.Lock()
	l.closed = true
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// limiter is a counting semaphore whose limit can change, and which can be
// closed to release its waiters.
type limiter struct {
	mu     sync.Mutex
	cond   *sync.Cond
	n, max int
	closed bool
}

func newLimiter(max int) *limiter {
	l := &limiter{max: max}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// acquire takes a slot, waiting while all are taken (calling paused once
// per wait); false if the limiter was closed.
func (l *limiter) acquire(paused func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n >= l.max && !l.closed {
		paused()
	}
	for l.n >= l.max && !l.closed {
		l.cond.Wait()
	}
	if l.closed {
		return false
	}
	l.n++
	return true
}

func (l *limiter) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n--
	l.cond.Broadcast()
}

func (l *limiter) setMax(max int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.max = max
	l.cond.Broadcast()
}

func (l *limiter) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.cond.Broadcast()
}

// String is for logs and tests.
func (l *limiter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("%d/%d", l.n, l.max)
}
