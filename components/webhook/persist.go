package webhook

// Durability.
//
// The state lives in DataPath as a snapshot (snapshot.json) and a
// write-ahead log (wal-GEN.log, one JSON op per line) of the changes since
// that snapshot; the snapshot names its generation GEN. A request's changes
// are applied in memory and appended to an in-memory buffer under the store
// mutex; the committer goroutine writes the buffer to the log and fsyncs
// it, then releases every request of that batch: so a 2xx is sent only
// after the change is on disk, and concurrent requests share one fsync
// (group commit). When the log outgrows the state, the committer writes a
// new snapshot instead (temp file, fsync, rename, fsync of the directory)
// with the next generation and an empty log, then removes the old log.
// At start, the snapshot is read and its log replayed (a torn last line,
// from a crash mid-write, was never acknowledged and is ignored), then
// compacted into a fresh snapshot.
//
// Faults (a full disk, EIO, a read-only directory). Every file operation
// goes through a faultfs.FS, so tests fail each one. The rules:
//   - A batch is acknowledged only after its bytes are written and fsynced
//     at the log's last good offset (the end of its last whole line).
//   - After a failed write or fsync the log is cut back to that offset
//     before anything else is written: a torn line never swallows the next
//     batch. The failed batch's ops were applied in memory; they stay
//     pending and are written first once the disk accepts them again.
//   - While a write is failing, the store refuses changes (503) rather than
//     applying them in memory only, the component is unhealthy and
//     sluice_webhook_persist_failing is 1; the committer retries with
//     backoff and accepts changes again as soon as a write succeeds.
//   - A snapshot that cannot be encoded or written is an error that keeps
//     the previous snapshot and its log (the batch then goes to that log).
//     A log is removed only once the snapshot replacing it is durable
//     (file and directory fsynced); if the directory sync fails after the
//     rename, nothing more is acknowledged until it succeeds.
//   - Starting on a full or read-only disk is the same fault: the
//     receiver serves reads, refuses changes and retries.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/internal/faultfs"
)

const (
	snapshotName = "snapshot.json"
	// snapshotVersion is the format version this code reads and writes.
	snapshotVersion = 1
	// compactMin is the log size below which the committer never compacts.
	compactMin = 8 << 20
)

// batch is one group commit: every request whose ops are in it waits on done.
type batch struct {
	done chan struct{}
	err  error
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

// wait blocks until the batch is durable.
func (b *batch) wait() error {
	if b == nil {
		return nil
	}
	<-b.done
	return b.err
}

// walBuffer is the log's tail not yet written; guarded by store.mu.
type walBuffer struct {
	buf   []byte
	batch *batch
	kick  chan struct{}
	// encodeErr: an op of this batch could not be encoded (not expected:
	// applyLocked admits only finite values), so the batch is not durable.
	encodeErr error
}

func (w *walBuffer) append(o op) {
	if w.batch == nil {
		w.batch = newBatch()
	}
	b, err := json.Marshal(o)
	if err != nil {
		w.encodeErr = fmt.Errorf("encoding a log entry: %w", err)
	} else {
		w.buf = append(append(w.buf, b...), '\n')
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// current is the batch the ops just appended belong to.
func (w *walBuffer) current() *batch { return w.batch }

// snapshot is the file format of snapshot.json.
type snapshot struct {
	Version int              `json:"version"`
	Gen     uint64           `json:"gen"`
	Metrics []snapshotMetric `json:"metrics"`
}

type snapshotMetric struct {
	Name    string           `json:"name"`
	Type    string           `json:"type"`
	Labels  []string         `json:"labels"`
	Buckets []float64        `json:"buckets,omitempty"`
	Series  []snapshotSeries `json:"series"`
}

type snapshotSeries struct {
	Labels  []string `json:"l"`
	Value   float64  `json:"v,omitempty"`
	Counts  []uint64 `json:"c,omitempty"`
	Sum     float64  `json:"s,omitempty"`
	Count   uint64   `json:"n,omitempty"`
	Updated int64    `json:"t"`
}

// persister owns the files; only the committer (and restore, before it
// starts) use it. It lives as long as the component, across Runs.
type persister struct {
	fs  faultfs.FS
	dir string
	gen uint64
	// wal is the open log of generation gen; nil until opened (at start,
	// or after the open failed on a full or read-only disk).
	wal faultfs.File
	// walBytes is the log's last good offset: everything before it is
	// whole lines, written and fsynced.
	walBytes int64
	// dirty: the log may hold bytes past walBytes (a failed write or
	// fsync, or a torn line found at restore); cut back before writing.
	dirty bool
	// dirUnsynced: a snapshot was renamed into place but the directory
	// sync failed; sync it before acknowledging anything else, and only
	// then remove the logs of older generations.
	dirUnsynced bool
	// pending holds ops applied in memory whose log write failed: they
	// are written before anything newer.
	pending  []byte
	snapSize int64
	// emptySnapshot: restore found a 0-byte snapshot.json.
	emptySnapshot bool
	// compactAt is the log size below which it is never compacted
	// (compactMin; tests lower it).
	compactAt int64
	// onWrite is told the bytes and seconds of each successful write
	// (self-metrics).
	onWrite func(bytes int, seconds float64)
}

func walName(gen uint64) string { return "wal-" + strconv.FormatUint(gen, 10) + ".log" }

func (p *persister) path(name string) string { return filepath.Join(p.dir, name) }

// restore reads the snapshot and replays its log into s (with s's current
// metric definitions: series of metrics no longer declared, or declared
// with other labels, type or buckets, are dropped). It returns how many log
// lines were unreadable (the last one may be torn by a crash). Nothing is
// written: a directory that cannot be created is reported by the first
// write, as a fault the receiver recovers from.
func (p *persister) restore(s *store) (skipped int, err error) {
	_ = p.fs.MkdirAll(p.dir, 0o700)
	b, err := os.ReadFile(p.path(snapshotName))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return 0, fmt.Errorf("reading the state: %w", err)
	case len(b) == 0:
		// Only written by versions that dropped an encoding error (issue
		// 19): nothing in it to restore, and refusing to start would not
		// bring it back. Reported by the caller; replaced by the first
		// snapshot.
		p.emptySnapshot = true
	default:
		var snap snapshot
		if err := json.Unmarshal(b, &snap); err != nil {
			return 0, fmt.Errorf("state file %s is corrupt (it is only ever replaced whole, by rename): %w", p.path(snapshotName), err)
		}
		if snap.Version != snapshotVersion {
			return 0, fmt.Errorf("state file %s has format version %d, this agent reads version %d (written by another Sluice version?): not loaded, and left as it is", p.path(snapshotName), snap.Version, snapshotVersion)
		}
		p.gen = snap.Gen
		s.mu.Lock()
		s.loadSnapshotLocked(&snap)
		s.mu.Unlock()
	}
	f, err := os.Open(p.path(walName(p.gen)))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading the log: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<16)
	s.mu.Lock()
	defer s.mu.Unlock()
	var offset int64
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			offset += int64(len(line))
			var o op
			if line[len(line)-1] != '\n' {
				skipped++ // torn: the log is cut back before the next write
				p.dirty = true
			} else {
				p.walBytes = offset
				if json.Unmarshal(line, &o) != nil {
					skipped++
				} else {
					_ = s.applyLocked(o) // an op of a metric since removed or changed does not apply
				}
			}
		}
		if err == io.EOF {
			return skipped, nil
		}
		if err != nil {
			return skipped, fmt.Errorf("reading the log: %w", err)
		}
	}
}

// loadSnapshotLocked puts a snapshot's series into the store.
func (s *store) loadSnapshotLocked(snap *snapshot) {
	for _, sm := range snap.Metrics {
		ms := s.metrics[sm.Name]
		if ms == nil || ms.def.typ != sm.Type || !equalStrings(ms.def.labels, sm.Labels) || !equalFloats(ms.def.buckets, sm.Buckets) {
			continue // no longer declared, or declared differently
		}
		for _, ss := range sm.Series {
			if len(ss.Labels) != len(ms.def.labels) || (sm.Type == "histogram" && len(ss.Counts) != len(sm.Buckets)+1) {
				continue
			}
			sr := &series{values: ss.Labels, value: ss.Value, counts: ss.Counts, sum: ss.Sum, count: ss.Count, updated: ss.Updated}
			ms.put(seriesKey(ss.Labels), sr)
			ms.touch(sr)
		}
	}
}

// snapshotLocked encodes the state. Called with s.mu held. An error (a
// value that cannot be encoded) means no snapshot: the caller keeps the
// previous one and its log.
func (s *store) snapshotLocked(gen uint64) ([]byte, error) {
	snap := snapshot{Version: snapshotVersion, Gen: gen}
	for _, ms := range s.metrics {
		d := ms.def
		sm := snapshotMetric{Name: d.name, Type: d.typ, Labels: d.labels, Buckets: d.buckets, Series: make([]snapshotSeries, 0, len(ms.series))}
		for _, sr := range ms.series {
			sm.Series = append(sm.Series, snapshotSeries{Labels: sr.values, Value: sr.value, Counts: sr.counts, Sum: sr.sum, Count: sr.count, Updated: sr.updated})
		}
		snap.Metrics = append(snap.Metrics, sm)
	}
	b, err := json.Marshal(&snap)
	if err != nil {
		return nil, fmt.Errorf("encoding the state: %w", err)
	}
	return b, nil
}

// writeSnapshot makes snap (of generation gen) the state: a new empty log,
// then the snapshot by rename and a directory sync, then the old logs
// removed. A crash at any point leaves a snapshot whose own log holds
// exactly what followed it. On an error before the rename nothing changed
// (the new log is removed); after it (faultfs.ErrNotDurable) the new
// generation is current but the old log is kept until the directory sync
// succeeds (see ready).
func (p *persister) writeSnapshot(snap []byte, gen uint64) error {
	wal, err := p.fs.OpenFile(p.path(walName(gen)), os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("creating the log: %w", err)
	}
	err = faultfs.ReplaceFile(p.fs, p.path(snapshotName), func(w io.Writer) error {
		_, err := w.Write(snap)
		return err
	})
	if err != nil && !errors.Is(err, faultfs.ErrNotDurable) {
		_ = wal.Close()
		_ = p.fs.Remove(p.path(walName(gen)))
		return fmt.Errorf("writing the state: %w", err)
	}
	if p.wal != nil {
		_ = p.wal.Close()
	}
	p.wal, p.gen, p.walBytes, p.dirty, p.snapSize = wal, gen, 0, false, int64(len(snap))
	if err != nil {
		p.dirUnsynced = true
		return fmt.Errorf("writing the state: %w", err)
	}
	p.removeStale()
	return nil
}

// removeStale removes logs of other generations (the one a snapshot just
// replaced, or left by a crash between rename and remove) and temporary
// snapshot files. Only called once the current snapshot is durable.
func (p *persister) removeStale() {
	entries, _ := os.ReadDir(p.dir)
	for _, e := range entries {
		n := e.Name()
		if (strings.HasPrefix(n, "wal-") && n != walName(p.gen)) || n == snapshotName+".tmp" {
			_ = p.fs.Remove(p.path(n))
		}
	}
	if tmps, _ := filepath.Glob(faultfs.TempPattern(p.path(snapshotName))); len(tmps) > 0 {
		for _, t := range tmps {
			_ = p.fs.Remove(t)
		}
	}
}

// ready makes the log writable at its last good offset: opened, cut back
// after a failed write, the directory synced after a failed sync.
func (p *persister) ready() error {
	if p.dirUnsynced {
		if err := p.fs.SyncDir(p.dir); err != nil {
			return fmt.Errorf("syncing the state directory: %w", err)
		}
		p.dirUnsynced = false
		p.removeStale()
	}
	if p.wal == nil {
		f, err := p.fs.OpenFile(p.path(walName(p.gen)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("opening the log: %w", err)
		}
		if st, err := f.Stat(); err != nil || st.Size() != p.walBytes {
			p.dirty = true
		}
		p.wal = f
	}
	if p.dirty {
		if err := p.wal.Truncate(p.walBytes); err != nil {
			return fmt.Errorf("cutting the log back to its last whole line (offset %d) after a failed write: %w", p.walBytes, err)
		}
		p.dirty = false // the next write's fsync makes the cut durable with it
	}
	return nil
}

// appendLog writes b (whole lines) at the log's last good offset and
// fsyncs it. On failure the log is cut back at once if possible, else
// before the next write.
func (p *persister) appendLog(b []byte) error {
	if err := p.ready(); err != nil {
		return err
	}
	if len(b) == 0 {
		return nil
	}
	if _, err := p.wal.Write(b); err != nil {
		p.dirty = true
		_ = p.ready()
		return fmt.Errorf("writing the log: %w", err)
	}
	if err := p.wal.Sync(); err != nil {
		// After a failed fsync the written pages are in an unknown
		// state: cut them off and write them again.
		p.dirty = true
		_ = p.ready()
		return fmt.Errorf("syncing the log: %w", err)
	}
	p.walBytes += int64(len(b))
	return nil
}

// wantsCompaction: the log is bigger than the state it describes would be.
func (p *persister) wantsCompaction() bool {
	min := p.compactAt
	if min == 0 {
		min = compactMin
	}
	return p.walBytes > min && p.walBytes > 2*p.snapSize
}

func (p *persister) close() {
	if p.wal != nil {
		_ = p.wal.Close()
		p.wal = nil
	}
}

// Backoff of the committer's retries while writes fail.
const (
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
	// compactRetry: after a failed compaction the log is used for this
	// long before the next attempt (each encodes the whole state).
	compactRetry = 10 * time.Second
)

// committer writes batches until stop is closed, then writes what is left
// and a final snapshot.
type committer struct {
	s     *store
	p     *persister
	kick  chan struct{}
	mu    sync.Mutex // serializes run and flush
	spare []byte
	// fault is the last write error, nil when the last write succeeded;
	// retry is when the committer retries on its own.
	fault        error
	retry        time.Duration
	compactAfter time.Time
	// onFault is called after every flush that failed (what: "log" or
	// "snapshot"), onRecover when a write succeeds after a fault.
	onFault   func(what string, err error)
	onRecover func()
}

// faulted reports whether writes are failing and, if so, how long to wait
// before retrying.
func (c *committer) faulted() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.retry, c.fault != nil
}

// flush writes what is buffered (after what is pending from a failed
// write): to the log, or as a new snapshot when the log has grown too big
// (or final is set). It returns the write error, if any; the batch's
// requests get it too.
func (c *committer) flush(final bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, p := c.s, c.p
	s.mu.Lock()
	w := s.log
	buf, b, encodeErr := w.buf, w.batch, w.encodeErr
	w.buf, w.batch, w.encodeErr = c.spare[:0], nil, nil
	compact := final || (p.wantsCompaction() && !nowFunc().Before(c.compactAfter))
	var snap []byte
	var encErr error
	if compact {
		snap, encErr = s.snapshotLocked(p.gen + 1)
	}
	s.mu.Unlock()
	data := buf
	if len(p.pending) > 0 {
		data = append(p.pending, buf...)
	}
	if b == nil && !compact && len(data) == 0 && c.fault == nil {
		c.spare = buf
		return nil
	}
	start := nowFunc()
	var err error
	inSnapshot := false // data is in the snapshot written (or renamed)
	if compact {
		err = encErr
		if err == nil {
			err = p.writeSnapshot(snap, p.gen+1)
		}
		switch {
		case err == nil:
			inSnapshot = true
			c.report(len(snap), start)
		case errors.Is(err, faultfs.ErrNotDurable):
			// The ops are in the renamed snapshot; the fault holds
			// everything back until the directory sync succeeds.
			inSnapshot = true
			c.failed("snapshot", err)
		default:
			// The previous snapshot and its log are intact: the batch
			// goes to that log, compaction is tried again later.
			c.failed("snapshot", err)
			c.compactAfter = nowFunc().Add(compactRetry)
			err = nil
		}
	}
	if !inSnapshot {
		if err = p.appendLog(data); err == nil {
			c.report(len(data), start)
		} else {
			c.failed("log", err)
		}
	}
	if err == nil || inSnapshot {
		p.pending = p.pending[:0]
	} else {
		p.pending = append(p.pending[:0:0], data...) // data may alias buf, reused below
	}
	c.spare = buf
	c.setFault(err)
	if b != nil {
		if err == nil {
			err = encodeErr // the others of the batch are written; its requests all get it
		}
		if err != nil {
			b.err = fmt.Errorf("%w: %v", errNotDurable, err)
		}
		close(b.done)
	}
	return err
}

func (c *committer) failed(what string, err error) {
	if c.onFault != nil {
		c.onFault(what, err)
	}
}

func (c *committer) report(n int, start time.Time) {
	if c.p.onWrite != nil && n > 0 {
		c.p.onWrite(n, nowFunc().Sub(start).Seconds())
	}
}

// setFault records the outcome of a write: while it failed the store
// refuses changes and the committer retries with backoff.
func (c *committer) setFault(err error) {
	was := c.fault
	c.fault = err
	c.s.mu.Lock()
	c.s.fault = err
	c.s.mu.Unlock()
	switch {
	case err == nil:
		c.retry = 0
		if was != nil && c.onRecover != nil {
			c.onRecover()
		}
	case c.retry == 0:
		c.retry = retryMin
	default:
		c.retry = min(2*c.retry, retryMax)
	}
}
