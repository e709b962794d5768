package webhook

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/faultfs"
)

func testDefs() map[string]*metricDef {
	return map[string]*metricDef{
		"c": {name: "c", typ: "counter", labels: []string{"k"}, maxSeries: 100},
		"h": {name: "h", typ: "histogram", labels: []string{}, buckets: []float64{1, 2}, maxSeries: 100},
	}
}

// openStore restores dir into a fresh store, as Run does.
func openStore(t *testing.T, dir string) (*store, *committer, int) {
	t.Helper()
	s := newStore()
	s.durable = true
	s.setDefsLocked(testDefs(), 0)
	p := &persister{fs: faultfs.OS{}, dir: dir, compactAt: 200}
	skipped, err := p.restore(s)
	if err != nil {
		t.Fatal(err)
	}
	kick := make(chan struct{}, 1)
	s.log = &walBuffer{kick: kick}
	cm := &committer{s: s, p: p, kick: kick}
	cm.flush(true)
	return s, cm, skipped
}

func value(s *store, metric, key string) (float64, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sr := s.metrics[metric].series[key]
	if sr == nil {
		return -1, 0
	}
	return sr.value, sr.count
}

// Changes survive through the log, through compaction, and a torn last
// line is skipped; stale logs are removed.
func TestPersistLogCompactionAndTornLine(t *testing.T) {
	dir := t.TempDir()
	s, cm, _ := openStore(t, dir)
	gen0 := cm.p.gen
	for i := 0; i < 5; i++ {
		_, b := s.apply([]op{{Verb: "inc", Metric: "c", Labels: []string{"a"}, Value: 1, Time: 1}})
		go cm.flush(false)
		if err := b.wait(); err != nil {
			t.Fatal(err)
		}
	}
	if cm.p.gen != gen0 {
		t.Fatalf("compacted too early")
	}
	// Grow the log past compactAt (200 bytes) and twice the snapshot.
	for i := 0; i < 20; i++ {
		_, b := s.apply([]op{{Verb: "observe", Metric: "h", Labels: []string{}, Value: 1.5, Time: 1}})
		cm.flush(false)
		if err := b.wait(); err != nil {
			t.Fatal(err)
		}
	}
	if cm.p.gen == gen0 {
		t.Fatalf("never compacted: log %d bytes, snapshot %d", cm.p.walBytes, cm.p.snapSize)
	}
	if _, err := os.Stat(filepath.Join(dir, walName(gen0))); !os.IsNotExist(err) {
		t.Errorf("old log %s not removed: %v", walName(gen0), err)
	}
	_, b := s.apply([]op{{Verb: "add", Metric: "c", Labels: []string{"b"}, Value: 2, Time: 1}})
	cm.flush(false)
	if err := b.wait(); err != nil {
		t.Fatal(err)
	}
	cm.p.close()
	// A crash mid-write: a torn last line.
	wal := filepath.Join(dir, walName(cm.p.gen))
	f, err := os.OpenFile(wal, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"o":"inc","m":"c","l":["a"],"v":100`)
	f.Close()
	// A stale log of another generation is ignored and removed.
	os.WriteFile(filepath.Join(dir, walName(999)), []byte(`{"o":"inc","m":"c","l":["a"],"v":100,"t":1}`+"\n"), 0o600)

	s2, cm2, skipped := openStore(t, dir)
	defer cm2.p.close()
	if skipped != 1 {
		t.Errorf("skipped %d lines, want 1 (the torn one)", skipped)
	}
	if v, _ := value(s2, "c", "a"); v != 5 {
		t.Errorf("c{a} = %v, want 5", v)
	}
	if v, _ := value(s2, "c", "b"); v != 2 {
		t.Errorf("c{b} = %v, want 2", v)
	}
	if _, n := value(s2, "h", ""); n != 20 {
		t.Errorf("h count = %v, want 20", n)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 2 || !strings.Contains(strings.Join(names, " "), snapshotName) {
		t.Errorf("state directory holds %v, want the snapshot and one log", names)
	}
}

// A corrupt snapshot is an error at start, not a silently empty state.
func TestPersistCorruptSnapshot(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, snapshotName), []byte(`{"version":1,"gen":`), 0o600)
	s := newStore()
	s.setDefsLocked(testDefs(), 0)
	if _, err := (&persister{fs: faultfs.OS{}, dir: dir}).restore(s); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("restore of a corrupt snapshot: %v", err)
	}
}

// Restore drops series of metrics whose shape changed since.
func TestPersistShapeChange(t *testing.T) {
	dir := t.TempDir()
	s, cm, _ := openStore(t, dir)
	_, b := s.apply([]op{{Verb: "inc", Metric: "c", Labels: []string{"a"}, Value: 1, Time: 1}, {Verb: "observe", Metric: "h", Labels: []string{}, Value: 1, Time: 1}})
	cm.flush(true)
	b.wait()
	cm.p.close()
	s2 := newStore()
	defs := testDefs()
	defs["h"].buckets = []float64{5}
	s2.setDefsLocked(defs, 0)
	if _, err := (&persister{fs: faultfs.OS{}, dir: dir}).restore(s2); err != nil {
		t.Fatal(err)
	}
	if v, _ := value(s2, "c", "a"); v != 1 {
		t.Errorf("c{a} = %v, want 1", v)
	}
	if len(s2.metrics["h"].series) != 0 {
		t.Errorf("h with other buckets kept its series")
	}
}
