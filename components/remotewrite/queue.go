package remotewrite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/sluicehq/sluice/ratelog"
)

// item is one series' sample waiting to be sent, and the WAL record it came
// from (nil without a WAL), told when the sample is done with.
type item struct {
	ts   prompb.TimeSeries
	hash uint64 // of the series: picks the shard
	rec  *walRecord
}

// queueConfig is the queue block, resolved.
type queueConfig struct {
	capacity          int // samples per shard
	maxShards         int
	maxSamplesPerSend int
	batchDeadline     time.Duration
	minBackoff        time.Duration
	maxBackoff        time.Duration
	// shardUpdatePeriod is how often the shard count is reconsidered.
	shardUpdatePeriod time.Duration
}

// sendError is a failed send: recoverable ones (network errors, 5xx, 429)
// are retried, the others drop the batch.
type sendError struct {
	err         error
	recoverable bool
	retryAfter  time.Duration
}

func (e *sendError) Error() string { return e.err.Error() }

// client sends one encoded (snappy-compressed) WriteRequest.
type client struct {
	url       string
	http      *http.Client
	timeout   time.Duration
	userAgent string
}

func (c *client) send(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return &sendError{err: err}
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		return &sendError{err: err, recoverable: true}
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	e := &sendError{err: fmt.Errorf("server returned HTTP status %s: %s", resp.Status, bytes.TrimSpace(msg))}
	if resp.StatusCode/100 == 5 || resp.StatusCode == http.StatusTooManyRequests {
		e.recoverable = true
		e.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return e
}

// maxRetryAfter caps what a server may ask us to wait.
const maxRetryAfter = 5 * time.Minute

// parseRetryAfter reads seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.Atoi(v); err == nil {
		if s <= 0 {
			return 0
		}
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d < 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}

// queueManager spreads samples over shards by series, so that the samples
// of one series are sent in order, and sends each shard's batches with
// retries. The number of shards follows the backlog (scaleLoop).
type queueManager struct {
	cfg    queueConfig
	client *client
	m      *endpointMetrics
	log    *slog.Logger
	errLog *slog.Logger

	// mu is held for reading by enqueue and for writing while resharding.
	mu       sync.RWMutex
	shards   []*shard
	wg       sync.WaitGroup
	gen      *sync.WaitGroup // the shards of the current generation
	ctx      context.Context
	pending  atomic.Int64
	retrying atomic.Int64 // shards currently retrying a batch
	busy     atomic.Int64 // nanoseconds spent in sends since the last shard decision
	// failingSince is when the first of the current run of failed send
	// attempts started (Unix nanoseconds; 0 while the last attempt got an
	// answer), and lastErr that run's latest error: what health reads.
	failingSince atomic.Int64
	lastErr      atomic.Pointer[error]
}

// unreachable reports whether every send attempt has failed (no answer
// from the endpoint, or one to retry) for at least threshold, for how
// long, and the last error.
func (q *queueManager) unreachable(now time.Time, threshold time.Duration) (time.Duration, error, bool) {
	since := q.failingSince.Load()
	if since == 0 {
		return 0, nil, false
	}
	d := now.Sub(time.Unix(0, since))
	var err error
	if p := q.lastErr.Load(); p != nil {
		err = *p
	}
	return d, err, d >= threshold
}

type shard struct {
	ch chan item
}

func newQueueManager(cfg queueConfig, c *client, m *endpointMetrics, log *slog.Logger) *queueManager {
	return &queueManager{cfg: cfg, client: c, m: m, log: log, errLog: ratelog.New(log, ratelog.Options{Interval: 10 * time.Second, Burst: 3})}
}

// start runs one shard until ctx ends, and the shard scaler.
func (q *queueManager) start(ctx context.Context) {
	q.ctx = ctx
	q.startShards(1)
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		q.scaleLoop(ctx)
	}()
}

// wait returns when every shard has stopped (ctx of start ended).
func (q *queueManager) wait() { q.wg.Wait() }

func (q *queueManager) startShards(n int) {
	q.shards = make([]*shard, n)
	gen := &sync.WaitGroup{}
	q.gen = gen
	for i := range q.shards {
		s := &shard{ch: make(chan item, q.cfg.capacity)}
		q.shards[i] = s
		q.wg.Add(1)
		gen.Add(1)
		go func() {
			defer q.wg.Done()
			defer gen.Done()
			q.runShard(q.ctx, s)
		}()
	}
	q.m.shards.Set(float64(n))
}

// enqueue hands a sample to its shard. With block, it waits for room
// (the WAL holds what waits); without, a full shard drops the sample and
// enqueue returns false.
func (q *queueManager) enqueue(ctx context.Context, it item, block bool) bool {
	q.mu.RLock()
	defer q.mu.RUnlock()
	s := q.shards[it.hash%uint64(len(q.shards))]
	if block {
		select {
		case s.ch <- it:
		case <-ctx.Done():
			return false
		}
	} else {
		select {
		case s.ch <- it:
		default:
			return false
		}
	}
	q.m.pending.Set(float64(q.pending.Add(1)))
	return true
}

// enqueueAll hands the samples of one WAL record (or gather) to their
// shards, waiting for room; false when ctx ended first. It takes the
// resharding lock once for all of them, and tries a plain send before a
// select for each.
func (q *queueManager) enqueueAll(ctx context.Context, series []prompb.TimeSeries, hashes []uint64, rec *walRecord) bool {
	q.mu.RLock()
	defer q.mu.RUnlock()
	n := uint64(len(q.shards))
	ok := true
	for i, ts := range series {
		it := item{ts: ts, hash: hashes[i], rec: rec}
		s := q.shards[it.hash%n]
		q.pending.Add(1)
		select {
		case s.ch <- it:
			continue
		default:
		}
		select {
		case s.ch <- it:
		case <-ctx.Done():
			q.pending.Add(-1)
			ok = false
		}
		if !ok {
			break
		}
	}
	q.m.pending.Set(float64(q.pending.Load()))
	return ok
}

// scaleLoop reconsiders the shard count every shardUpdatePeriod, from two
// measures over the period: the backlog (queued samples, sampled ten times,
// as a fraction of the shards' capacity) and the shards' utilisation (time
// spent in sends over shards x period). The rule is deliberately simple:
//
//   - backlog above half the capacity: double the shards (up to max_shards);
//   - utilisation under 25% and backlog under 10%: halve them (down to 1).
//
// Resharding lets the old shards send what they hold before the new ones
// start, which keeps each series in order; so it does not happen while a
// batch is being retried (a receiver outage is no reason for more shards,
// and draining would wait for the receiver).
func (q *queueManager) scaleLoop(ctx context.Context) {
	const ticks = 10
	t := time.NewTicker(q.cfg.shardUpdatePeriod / ticks)
	defer t.Stop()
	var backlog float64
	tick := 0
	start := time.Now()
	q.busy.Store(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		backlog += float64(q.pending.Load())
		if tick++; tick < ticks {
			continue
		}
		n := q.numShards()
		fill := backlog / ticks / float64(n*q.cfg.capacity)
		util := float64(q.busy.Load()) / float64(time.Since(start)*time.Duration(n))
		backlog, tick, start = 0, 0, time.Now()
		q.busy.Store(0)
		want := n
		switch {
		case fill > 0.5 && n < q.cfg.maxShards:
			want = min(n*2, q.cfg.maxShards)
		case util < 0.25 && fill < 0.1 && n > 1:
			want = n / 2
		}
		if want == n || q.retrying.Load() > 0 {
			continue
		}
		q.log.Info("resharding", "from", n, "to", want, "queue_fill", fill, "utilisation", util)
		q.reshard(want)
		start = time.Now()
		q.busy.Store(0)
	}
}

func (q *queueManager) numShards() int {
	q.mu.RLock()
	defer q.mu.RUnlock()
	return len(q.shards)
}

// reshard closes the shards' channels, waits for the shards to send what
// they hold, and starts n new ones; enqueue waits meanwhile.
func (q *queueManager) reshard(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ctx.Err() != nil {
		return
	}
	for _, s := range q.shards {
		close(s.ch)
	}
	q.gen.Wait()
	q.startShards(n)
}

func (q *queueManager) runShard(ctx context.Context, s *shard) {
	batch := make([]item, 0, q.cfg.maxSamplesPerSend)
	// The request, its encoding and its compression are reused from send
	// to send.
	var sb sendBuffers
	timer := time.NewTimer(q.cfg.batchDeadline)
	defer timer.Stop()
	flush := func() {
		if len(batch) > 0 {
			q.sendBatch(ctx, batch, &sb)
			clear(batch)
			batch = batch[:0]
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(q.cfg.batchDeadline)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case it, ok := <-s.ch:
			if !ok {
				flush()
				return
			}
			batch = append(batch, it)
			// Take what else is queued without a full select per sample.
			closed := false
		drain:
			for len(batch) < q.cfg.maxSamplesPerSend {
				select {
				case it, ok := <-s.ch:
					if !ok {
						closed = true
						break drain
					}
					batch = append(batch, it)
				default:
					break drain
				}
			}
			if closed {
				flush()
				return
			}
			if len(batch) >= q.cfg.maxSamplesPerSend {
				flush()
			}
		case <-timer.C:
			timer.Reset(q.cfg.batchDeadline)
			if len(batch) > 0 {
				q.sendBatch(ctx, batch, &sb)
				clear(batch)
				batch = batch[:0]
			}
		}
	}
}

// sendBatch sends a batch until it is accepted, refused (a 4xx other than
// 429: dropped and counted as failed) or ctx ends (left unacknowledged: the
// WAL, when there is one, still has it).
func (q *queueManager) sendBatch(ctx context.Context, batch []item, sb *sendBuffers) {
	if cap(sb.series) < len(batch) {
		sb.series = make([]prompb.TimeSeries, len(batch))
	}
	req := prompb.WriteRequest{Timeseries: sb.series[:len(batch)]}
	// Let go of the samples once sent.
	defer clear(req.Timeseries)
	var highest int64
	for i, it := range batch {
		req.Timeseries[i] = it.ts
		for _, s := range it.ts.Samples {
			highest = max(highest, s.Timestamp)
		}
		for _, h := range it.ts.Histograms {
			highest = max(highest, h.Timestamp)
		}
	}
	size := req.Size()
	if cap(sb.raw) < size {
		sb.raw = make([]byte, size)
	}
	buf := sb.raw[:size]
	if _, err := req.MarshalToSizedBuffer(buf); err != nil {
		q.errLog.Error("encoding a batch", "err", err)
		q.done(batch, q.m.failed)
		return
	}
	enc := snappy.Encode(sb.enc[:cap(sb.enc)], buf)
	sb.enc = enc
	n := float64(len(batch))
	backoff := q.cfg.minBackoff
	retrying := false
	defer func() {
		if retrying {
			q.retrying.Add(-1)
		}
	}()
	for {
		start := time.Now()
		err := q.client.send(ctx, enc)
		took := time.Since(start)
		q.busy.Add(int64(took))
		q.m.sendDuration.Observe(took.Seconds())
		if err == nil {
			q.failingSince.Store(0)
			q.m.bytesSent.Add(float64(len(enc)))
			q.m.markSent(float64(highest) / 1000)
			q.done(batch, q.m.sent)
			return
		}
		if ctx.Err() != nil {
			return
		}
		var se *sendError
		if !errors.As(err, &se) || !se.recoverable {
			q.failingSince.Store(0) // the endpoint answered
			q.errLog.Error("remote write refused a batch: dropped", "samples", len(batch), "err", err)
			q.done(batch, q.m.failed)
			return
		}
		q.lastErr.Store(&err)
		q.failingSince.CompareAndSwap(0, start.UnixNano())
		if !retrying {
			retrying = true
			q.retrying.Add(1)
		}
		q.m.retried.Add(n)
		wait := backoff
		if se.retryAfter > 0 {
			wait = se.retryAfter
		}
		q.errLog.Warn("remote write failed: retrying", "samples", len(batch), "in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, q.cfg.maxBackoff)
	}
}

// sendBuffers are a shard's buffers for building, encoding and
// compressing requests.
type sendBuffers struct {
	series []prompb.TimeSeries
	raw    []byte
	enc    []byte
}

// done accounts for a batch that is finished with (sent or dropped).
func (q *queueManager) done(batch []item, result counter) {
	result.Add(float64(len(batch)))
	for _, it := range batch {
		if it.rec != nil {
			it.rec.done()
		}
	}
	q.m.pending.Set(float64(q.pending.Add(-int64(len(batch)))))
}

type counter interface{ Add(float64) }
