package remotewrite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"

	"github.com/sluicehq/sluice/components/remotewrite/wal"
	"github.com/sluicehq/sluice/internal/faultfs"
	"github.com/sluicehq/sluice/ratelog"
)

// endpointConfig is everything one endpoint's sending depends on.
type endpointConfig struct {
	name     string // the endpoint label of self-metrics
	external map[string]string
	native   bool
	queue    queueConfig
	client   *client
	// walDir is empty without a WAL.
	walDir      string
	maxWALSize  int64
	maxWALAge   time.Duration
	segmentSize int64
	// walFS is what the WAL writes through (the OS when nil): a seam for
	// fault-injection tests.
	walFS faultfs.FS
}

// endpoint converts each gather for one receiver and sends it: through its
// own WAL when there is one (so one slow receiver never holds back another),
// straight into the queue otherwise.
type endpoint struct {
	cfg    endpointConfig
	m      *endpointMetrics
	log    *slog.Logger
	errLog *slog.Logger
	conv   *converter
	q      *queueManager

	wal     *wal.Log
	tracker *tracker
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	// readerMu serialises the WAL reader and the WAL size/age bound.
	readerMu sync.Mutex
	reader   *wal.Reader
	recentMu sync.Mutex
	recent   []recentRecord
	// walBuf holds the encoding of a WAL record, reused (append is only
	// called from the component's Run goroutine).
	walBuf []byte
	// savedPos is the position last saved, if posSaved (maintain's own:
	// it runs from start, maintainLoop, then stop, one after the other).
	savedPos wal.Position
	posSaved bool
	// walFault is the state of WAL appends, read by health.
	walFaultMu sync.Mutex
	walFault   walFault
}

// walFault is a run of failed WAL appends: from the first failure to the
// next append that succeeds.
type walFault struct {
	since   time.Time // zero: the last append succeeded
	err     error     // the last failure
	gathers int       // gathers dropped in this run of failures
	samples int       // series (one sample each) dropped in it
}

func newEndpoint(cfg endpointConfig, m *endpointMetrics, log *slog.Logger) *endpoint {
	log = log.With("endpoint", cfg.name)
	return &endpoint{
		cfg: cfg, m: m, log: log,
		errLog: ratelog.New(log, ratelog.Options{Interval: 10 * time.Second, Burst: 3}),
		conv:   newConverter(cfg.external, cfg.native),
		q:      newQueueManager(cfg.queue, cfg.client, m, log),
	}
}

// start opens the WAL (if any) and starts sending.
func (e *endpoint) start(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	e.cancel = cancel
	if e.cfg.walDir == "" {
		e.q.start(ctx)
		return nil
	}
	{
		l, err := wal.OpenWith(e.cfg.walDir, e.cfg.segmentSize, wal.Options{FS: e.cfg.walFS, OnFault: func(op string, err error) {
			e.m.walFaults.WithLabelValues(op).Inc()
			e.errLog.Warn("WAL fault", "op", op, "err", err)
		}})
		if err != nil {
			cancel()
			return err
		}
		e.wal = l
		pos, _ := wal.LoadPosition(e.cfg.walDir)
		e.tracker = &tracker{acked: pos}
		e.reader = l.NewReader(pos)
		e.reader.OnCorrupt = func(seg int, off int64, err error) {
			e.m.walCorrupt.Inc()
			e.log.Warn("WAL: skipping the rest of a segment after a torn or corrupt record", "segment", seg, "offset", off, "err", err)
		}
		// Apply the WAL bounds to what an earlier run left before reading it.
		e.maintain(false)
		e.q.start(ctx)
		e.wg.Add(2)
		go func() { defer e.wg.Done(); e.readLoop(ctx) }()
		go func() { defer e.wg.Done(); e.maintainLoop(ctx) }()
	}
	return nil
}

// stop stops sending; with a WAL, what was not acknowledged stays on disk.
func (e *endpoint) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.q.wait()
	e.wg.Wait()
	if e.wal != nil {
		e.maintain(true)
		e.reader.Close()
		if err := e.wal.Close(); err != nil {
			e.log.Warn("closing WAL", "err", err)
		}
	}
}

// append converts one gather and queues it (through the WAL if any).
func (e *endpoint) append(ctx context.Context, fams []*dto.MetricFamily, nowMs int64) {
	series := e.conv.convert(fams, nowMs)
	if n := e.conv.invalid; n > 0 {
		e.m.invalid.Add(float64(n))
		e.m.dropped.Add(float64(n))
		e.errLog.Warn("series with a label that is not valid UTF-8: dropped (a receiver would refuse the whole request)", "series", n)
	}
	if len(series) == 0 {
		return
	}
	if e.wal != nil {
		e.appendWAL(series)
		return
	}
	dropped := 0
	for i, ts := range series {
		if !e.q.enqueue(ctx, item{ts: ts, hash: e.conv.hashes[i]}, false) {
			dropped++
		}
	}
	if dropped > 0 {
		e.m.dropped.Add(float64(dropped))
		e.errLog.Warn("queue full: samples dropped", "samples", dropped)
	}
}

// appendWAL writes a gather to the WAL and keeps it in memory for the
// reader too (the last few gathers): reading back what was just written
// would cost a decode per sample for nothing. The reader still takes the
// records in WAL order, and reads from disk what is no longer in memory (a
// backlog: an outage, a restart).
func (e *endpoint) appendWAL(series []prompb.TimeSeries) {
	req := prompb.WriteRequest{Timeseries: series}
	size := req.Size()
	if cap(e.walBuf) < size {
		e.walBuf = make([]byte, size)
	}
	b := e.walBuf[:size]
	_, err := req.MarshalToSizedBuffer(b)
	if err == nil {
		e.recentMu.Lock()
		before, _ := e.wal.End()
		if err = e.wal.Append(b); err == nil {
			after, _ := e.wal.End()
			if len(e.recent) == maxRecent {
				e.recent = e.recent[1:]
			}
			e.recent = append(e.recent, recentRecord{start: before, end: after, series: series, hashes: slices.Clone(e.conv.hashes)})
		}
		e.recentMu.Unlock()
	}
	e.noteWALAppend(len(series), err)
}

// noteWALAppend counts a failed append (its gather is dropped: there is
// nowhere to keep it) and logs the first of a run of failures, then at
// most a few a minute; the append that succeeds after a run of failures
// logs what the run dropped.
func (e *endpoint) noteWALAppend(samples int, err error) {
	e.walFaultMu.Lock()
	defer e.walFaultMu.Unlock()
	f := &e.walFault
	if err == nil {
		if !f.since.IsZero() {
			e.log.Info("WAL writable again", "failing_for", time.Since(f.since).Round(time.Millisecond),
				"gathers_dropped", f.gathers, "samples_dropped", f.samples)
			*f = walFault{}
		}
		return
	}
	e.m.walFaults.WithLabelValues("write").Inc()
	e.m.walDropped.Add(float64(samples))
	e.m.dropped.Add(float64(samples))
	if f.since.IsZero() {
		f.since = time.Now()
		e.log.Error("writing WAL failed: dropping gathers until it can be written", "samples", samples, "err", err)
	} else {
		e.errLog.Error("writing WAL: samples dropped", "samples", samples, "err", err)
	}
	f.err = err
	f.gathers++
	f.samples += samples
}

// walHealth describes a run of failed WAL appends, if one is going on.
func (e *endpoint) walHealth() (failing bool, msg string) {
	e.walFaultMu.Lock()
	defer e.walFaultMu.Unlock()
	f := e.walFault
	if f.since.IsZero() {
		return false, ""
	}
	return true, fmt.Sprintf("endpoint %s: WAL not writable for %v (%d gathers, %d samples dropped): %v",
		e.cfg.name, time.Since(f.since).Round(time.Second), f.gathers, f.samples, f.err)
}

// maxRecent bounds the gathers kept in memory for the WAL reader.
const maxRecent = 4

// recentRecord is a WAL record still in memory.
type recentRecord struct {
	start, end wal.Position
	series     []prompb.TimeSeries
	hashes     []uint64
}

// takeRecent returns the in-memory copy of the record at pos, if any,
// forgetting older ones.
func (e *endpoint) takeRecent(pos wal.Position) (recentRecord, bool) {
	e.recentMu.Lock()
	defer e.recentMu.Unlock()
	for len(e.recent) > 0 && e.recent[0].start.Less(pos) {
		e.recent = e.recent[1:]
	}
	if len(e.recent) > 0 && e.recent[0].start == pos {
		r := e.recent[0]
		e.recent = e.recent[1:]
		return r, true
	}
	return recentRecord{}, false
}

// readLoop feeds the queue from the WAL, oldest first, waiting for room.
func (e *endpoint) readLoop(ctx context.Context) {
	var req prompb.WriteRequest
	d := xxhash.New()
	for ctx.Err() == nil {
		e.readerMu.Lock()
		if rr, ok := e.takeRecent(e.reader.Position()); ok {
			e.reader.SkipTo(rr.end)
			e.readerMu.Unlock()
			r := e.tracker.add(rr.end, len(rr.series))
			if !e.q.enqueueAll(ctx, rr.series, rr.hashes, r) {
				return
			}
			r.done()
			continue
		}
		rec, end, more, err := e.reader.Next()
		if err == nil {
			req.Reset()
			err = req.Unmarshal(rec)
			if err != nil {
				e.m.walCorrupt.Inc()
				e.log.Warn("WAL: skipping an undecodable record", "segment", end.Segment, "err", err)
				req.Timeseries = nil
			}
			err = nil
		}
		e.readerMu.Unlock()
		if errors.Is(err, io.EOF) {
			select {
			case <-ctx.Done():
				return
			case <-more:
			}
			continue
		}
		if err != nil {
			e.errLog.Error("reading WAL", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		r := e.tracker.add(end, len(req.Timeseries))
		oldest := time.Now().Add(-e.cfg.maxWALAge).UnixMilli()
		for _, ts := range req.Timeseries {
			if seriesTime(ts) < oldest {
				e.m.dropped.Add(1)
				r.done()
				continue
			}
			if !e.q.enqueue(ctx, item{ts: ts, hash: hashLabels(d, ts.Labels), rec: r}, true) {
				return
			}
		}
		r.done() // the reader's own hold on the record
	}
}

func seriesTime(ts prompb.TimeSeries) int64 {
	if len(ts.Samples) > 0 {
		return ts.Samples[0].Timestamp
	}
	if len(ts.Histograms) > 0 {
		return ts.Histograms[0].Timestamp
	}
	return 0
}

// maintainLoop saves the acknowledged position, removes acknowledged
// segments and applies max_wal_size and max_wal_age, every second.
func (e *endpoint) maintainLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.maintain(false)
		}
	}
}

func (e *endpoint) maintain(final bool) {
	acked := e.tracker.position()
	// Saving costs two fsyncs: only when the position moved (or the last
	// save failed).
	if !e.posSaved || acked != e.savedPos {
		if err := e.wal.SavePosition(acked); err != nil {
			e.posSaved = false
			e.m.walFaults.WithLabelValues("position").Inc()
			e.errLog.Warn("saving WAL position", "err", err)
		} else {
			e.savedPos, e.posSaved = acked, true
		}
	}
	segs, err := wal.Segments(e.cfg.walDir)
	if err != nil {
		e.errLog.Warn("listing WAL", "err", err)
		return
	}
	var total int64
	for _, s := range segs {
		total += s.Size
	}
	cur, _ := e.wal.End()
	oldest := time.Now().Add(-e.cfg.maxWALAge)
	for _, s := range segs {
		if s.N >= cur.Segment {
			break
		}
		switch {
		case s.N < acked.Segment:
			// Fully acknowledged.
		case !final && (total > e.cfg.maxWALSize || s.ModTime.Before(oldest)):
			e.dropSegment(s.N)
		default:
			continue
		}
		if err := e.wal.Remove(s.N); err != nil {
			e.errLog.Warn("removing WAL segment", "err", err)
			continue
		}
		total -= s.Size
	}
	e.m.walSize.Set(float64(total))
}

// dropSegment counts the samples of segment n the reader has not read yet
// as dropped, and moves the reader past it.
func (e *endpoint) dropSegment(n int) {
	e.readerMu.Lock()
	defer e.readerMu.Unlock()
	pos := e.reader.Position()
	if pos.Segment > n {
		return // read already: the queue holds it and will send it
	}
	r := e.wal.NewReader(pos)
	defer r.Close()
	var req prompb.WriteRequest
	samples := 0
	for {
		rec, at, _, err := r.Next()
		if err != nil || at.Segment > n || (at.Segment == n && at.Offset == 0) {
			break
		}
		if req.Unmarshal(rec) == nil {
			samples += len(req.Timeseries)
		}
		req.Reset()
	}
	e.m.dropped.Add(float64(samples))
	e.log.Warn("WAL over max_wal_size or max_wal_age: oldest segment dropped", "segment", n, "samples", samples)
	e.reader.Close()
	*e.reader = *e.wal.NewReader(wal.Position{Segment: n + 1})
	e.reader.OnCorrupt = func(seg int, off int64, err error) {
		e.m.walCorrupt.Inc()
		e.log.Warn("WAL: skipping the rest of a segment after a torn or corrupt record", "segment", seg, "offset", off, "err", err)
	}
}

// tracker knows which WAL records are fully sent: the position after the
// last of a run of finished records, oldest first, is what a restart
// resumes from.
type tracker struct {
	mu      sync.Mutex
	records []*walRecord
	acked   wal.Position
}

// walRecord counts the samples of one WAL record still to be sent, plus
// one for the reader until it has queued them all.
type walRecord struct {
	remaining atomic.Int64
	end       wal.Position
	t         *tracker
}

func (t *tracker) add(end wal.Position, n int) *walRecord {
	r := &walRecord{end: end, t: t}
	r.remaining.Store(int64(n) + 1)
	t.mu.Lock()
	t.records = append(t.records, r)
	t.mu.Unlock()
	return r
}

func (r *walRecord) done() {
	if r.remaining.Add(-1) == 0 {
		r.t.advance()
	}
}

func (t *tracker) advance() {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := 0
	for ; i < len(t.records) && t.records[i].remaining.Load() == 0; i++ {
		t.acked = t.records[i].end
	}
	t.records = t.records[i:]
}

func (t *tracker) position() wal.Position {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.acked
}
