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
)

const (
	snapshotName = "snapshot.json"
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
}

func (w *walBuffer) append(o op) {
	b, _ := json.Marshal(o) // op has only strings and finite numbers
	w.buf = append(append(w.buf, b...), '\n')
	if w.batch == nil {
		w.batch = newBatch()
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
// starts) use it.
type persister struct {
	dir      string
	gen      uint64
	wal      *os.File
	walBytes int64
	snapSize int64
	// compactAt is the log size below which it is never compacted
	// (compactMin; tests lower it).
	compactAt int64
	// written counts bytes written to disk; lastDuration is set after each
	// write (self-metrics).
	onWrite func(bytes int, seconds float64)
}

func walName(gen uint64) string { return "wal-" + strconv.FormatUint(gen, 10) + ".log" }

// restore reads the snapshot and replays its log into s (with s's current
// metric definitions: series of metrics no longer declared, or declared
// with other labels, type or buckets, are dropped). It returns how many log
// lines were unreadable (the last one may be torn by a crash).
func (p *persister) restore(s *store) (skipped int, err error) {
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return 0, fmt.Errorf("creating the state directory: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(p.dir, snapshotName))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return 0, fmt.Errorf("reading the state: %w", err)
	default:
		var snap snapshot
		if err := json.Unmarshal(b, &snap); err != nil {
			return 0, fmt.Errorf("state file %s is corrupt (it is only ever replaced whole, by rename): %w", filepath.Join(p.dir, snapshotName), err)
		}
		p.gen = snap.Gen
		s.mu.Lock()
		s.loadSnapshotLocked(&snap)
		s.mu.Unlock()
	}
	f, err := os.Open(filepath.Join(p.dir, walName(p.gen)))
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
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			var o op
			if line[len(line)-1] != '\n' || json.Unmarshal(line, &o) != nil {
				skipped++
			} else {
				_ = s.applyLocked(o) // an op of a metric since removed or changed does not apply
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
			ms.series[seriesKey(ss.Labels)] = sr
		}
	}
}

// snapshotLocked encodes the state. Called with s.mu held.
func (s *store) snapshotLocked(gen uint64) []byte {
	snap := snapshot{Version: 1, Gen: gen}
	for _, ms := range s.metrics {
		d := ms.def
		sm := snapshotMetric{Name: d.name, Type: d.typ, Labels: d.labels, Buckets: d.buckets, Series: make([]snapshotSeries, 0, len(ms.series))}
		for _, sr := range ms.series {
			sm.Series = append(sm.Series, snapshotSeries{Labels: sr.values, Value: sr.value, Counts: sr.counts, Sum: sr.sum, Count: sr.count, Updated: sr.updated})
		}
		snap.Metrics = append(snap.Metrics, sm)
	}
	b, _ := json.Marshal(&snap)
	return b
}

// writeSnapshot makes snap (of generation p.gen+1) the state: a new empty
// log, then the snapshot by rename, then the old log removed. A crash at
// any point leaves a snapshot whose own log holds exactly what followed it.
func (p *persister) writeSnapshot(snap []byte, gen uint64) error {
	wal, err := os.OpenFile(filepath.Join(p.dir, walName(gen)), os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("creating the log: %w", err)
	}
	tmp := filepath.Join(p.dir, snapshotName+".tmp")
	if err := writeFileSync(tmp, snap); err != nil {
		wal.Close()
		return err
	}
	if err := os.Rename(tmp, filepath.Join(p.dir, snapshotName)); err != nil {
		wal.Close()
		return fmt.Errorf("replacing the state: %w", err)
	}
	if err := syncDir(p.dir); err != nil {
		wal.Close()
		return err
	}
	if p.wal != nil {
		p.wal.Close()
	}
	old := p.gen
	p.wal, p.gen, p.walBytes, p.snapSize = wal, gen, 0, int64(len(snap))
	if old != gen {
		_ = os.Remove(filepath.Join(p.dir, walName(old)))
	}
	p.removeStale()
	return nil
}

// removeStale removes logs of other generations (left by a crash between
// rename and remove).
func (p *persister) removeStale() {
	entries, _ := os.ReadDir(p.dir)
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, "wal-") && n != walName(p.gen) {
			_ = os.Remove(filepath.Join(p.dir, n))
		}
	}
}

// appendLog writes a batch to the log and fsyncs it.
func (p *persister) appendLog(b []byte) error {
	if _, err := p.wal.Write(b); err != nil {
		return fmt.Errorf("writing the log: %w", err)
	}
	if err := p.wal.Sync(); err != nil {
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
		p.wal.Close()
		p.wal = nil
	}
}

func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("writing the state: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("writing the state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing the state: %w", err)
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing the state directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing the state directory: %w", err)
	}
	return nil
}

// committer writes batches until stop is closed, then writes what is left
// and a final snapshot.
type committer struct {
	s     *store
	p     *persister
	kick  chan struct{}
	mu    sync.Mutex // serializes run and flush
	spare []byte
}

// flush writes what is buffered: to the log, or as a new snapshot when the
// log has grown too big (or final is set).
func (c *committer) flush(final bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.s
	s.mu.Lock()
	w := s.log
	buf, b := w.buf, w.batch
	w.buf, w.batch = c.spare[:0], nil
	var snap []byte
	compact := final || c.p.wantsCompaction()
	if compact {
		snap = s.snapshotLocked(c.p.gen + 1)
	}
	s.mu.Unlock()
	if b == nil && !compact {
		c.spare = buf
		return
	}
	start := nowFunc()
	var err error
	if compact {
		err = c.p.writeSnapshot(snap, c.p.gen+1)
		if c.p.onWrite != nil {
			c.p.onWrite(len(snap), nowFunc().Sub(start).Seconds())
		}
	} else {
		err = c.p.appendLog(buf)
		if c.p.onWrite != nil {
			c.p.onWrite(len(buf), nowFunc().Sub(start).Seconds())
		}
	}
	c.spare = buf
	if b != nil {
		if err != nil {
			b.err = fmt.Errorf("%w: %v", errNotDurable, err)
		}
		close(b.done)
	}
}
