package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sluicehq/sluice/internal/faultfs"
)

// openStoreFS restores dir into a fresh store through fsys and compacts,
// as Run does; the compaction's error is returned, not fatal.
func openStoreFS(t *testing.T, dir string, fsys faultfs.FS) (*store, *committer, error) {
	t.Helper()
	s := newStore()
	s.durable = true
	s.setDefsLocked(testDefs(), 0)
	p := &persister{fs: fsys, dir: dir, compactAt: 1 << 30}
	if _, err := p.restore(s); err != nil {
		t.Fatal(err)
	}
	kick := make(chan struct{}, 1)
	s.log = &walBuffer{kick: kick}
	cm := &committer{s: s, p: p, kick: kick}
	return s, cm, cm.flush(true)
}

// push applies one inc of c{a} and flushes (as a snapshot when compact);
// applied tells whether the store took it (in memory), err whether it was
// made durable.
func push(s *store, cm *committer, compact bool) (applied bool, err error) {
	errs, b := s.apply([]op{{Verb: "inc", Metric: "c", Labels: []string{"a"}, Value: 1, Time: 1}})
	if errs[0] != nil {
		return false, errs[0]
	}
	done := make(chan error, 1)
	go func() { done <- cm.flush(compact) }()
	err = b.wait()
	<-done
	return true, err
}

// restoredValue is c{a} after a crash (no final snapshot) and a restart
// on the real filesystem.
func restoredValue(t *testing.T, dir string) float64 {
	t.Helper()
	s := newStore()
	s.setDefsLocked(testDefs(), 0)
	if _, err := (&persister{fs: faultfs.OS{}, dir: dir}).restore(s); err != nil {
		t.Fatalf("restore after the fault: %v", err)
	}
	v, _ := value(s, "c", "a")
	return v
}

// Every write, fsync, truncate, create, rename and directory sync of the
// log and the snapshot fails with ENOSPC, EIO and EROFS (and writes also
// short, leaving a torn tail): the failed batch is not acknowledged,
// changes are refused while the fault lasts, the committer recovers by
// itself once it clears, and after a crash the restored state holds every
// acknowledged change — exactly the state that was in memory.
func TestPersistFaultAtEachOperation(t *testing.T) {
	type scenario struct {
		name    string
		compact bool // the faulted flush writes a snapshot
		faults  []faultfs.Fault
	}
	var scens []scenario
	for _, errno := range faultfs.Errnos() {
		f := func(op faultfs.Op, short bool) faultfs.Fault {
			return faultfs.Fault{Op: op, Err: errno, Short: short}
		}
		scens = append(scens,
			scenario{"log/write/" + errno.Error(), false, []faultfs.Fault{f(faultfs.OpWrite, false)}},
			scenario{"log/shortwrite/" + errno.Error(), false, []faultfs.Fault{f(faultfs.OpWrite, true)}},
			scenario{"log/sync/" + errno.Error(), false, []faultfs.Fault{f(faultfs.OpSync, false)}},
			scenario{"log/shortwrite+truncate/" + errno.Error(), false, []faultfs.Fault{f(faultfs.OpWrite, true), f(faultfs.OpTruncate, false)}},
			scenario{"snapshot/create/" + errno.Error(), true, []faultfs.Fault{f(faultfs.OpCreate, false)}},
			scenario{"snapshot/write/" + errno.Error(), true, []faultfs.Fault{f(faultfs.OpWrite, false)}},
			scenario{"snapshot/shortwrite/" + errno.Error(), true, []faultfs.Fault{f(faultfs.OpWrite, true)}},
			scenario{"snapshot/sync/" + errno.Error(), true, []faultfs.Fault{f(faultfs.OpSync, false)}},
			scenario{"snapshot/rename/" + errno.Error(), true, []faultfs.Fault{f(faultfs.OpRename, false)}},
			scenario{"snapshot/syncdir/" + errno.Error(), true, []faultfs.Fault{f(faultfs.OpSyncDir, false)}},
			// The snapshot fails once, the log append it falls back to works:
			// acknowledged, not a fault of writes.
			scenario{"snapshot-once/rename/" + errno.Error(), true, []faultfs.Fault{{Op: faultfs.OpRename, Err: errno, Times: 1}}},
		)
	}
	for _, sc := range scens {
		t.Run(sc.name, func(t *testing.T) {
			dir := t.TempDir()
			in := faultfs.NewInjector(faultfs.OS{})
			s, cm, err := openStoreFS(t, dir, in)
			if err != nil {
				t.Fatal(err)
			}
			reported := map[string]int{}
			cm.onFault = func(what string, _ error) { reported[what]++ }
			applied := 0.0
			for range 3 {
				if _, err := push(s, cm, false); err != nil {
					t.Fatal(err)
				}
				applied++
			}
			for _, f := range sc.faults {
				in.Inject(f)
			}
			ok, err := push(s, cm, sc.compact)
			if !ok {
				t.Fatalf("push refused before the fault: %v", err)
			}
			applied++
			hits := 0
			for _, f := range sc.faults {
				hits += in.Hits(f.Op)
			}
			if hits == 0 {
				t.Fatalf("no fault was hit: the scenario tests nothing")
			}
			if err == nil {
				// Only a failed snapshot may fall back to the log.
				if !sc.compact || reported["snapshot"] == 0 {
					t.Fatalf("push acknowledged although the write failed (reported %v)", reported)
				}
				if _, bad := cm.faulted(); bad {
					t.Fatalf("faulted although the log took the batch")
				}
				in.Clear()
				if err := cm.flush(true); err != nil {
					t.Fatalf("compaction after the fault cleared: %v", err)
				}
			} else {
				if reported["log"]+reported["snapshot"] == 0 {
					t.Errorf("the fault was not reported")
				}
				if !errors.Is(err, errNotDurable) {
					t.Fatalf("push error %v, want errNotDurable", err)
				}
				// While the fault lasts: refused (503), nothing applied,
				// and retries keep failing.
				_, perr := push(s, cm, false)
				var he *httpError
				if !errors.As(perr, &he) || he.code != 503 {
					t.Fatalf("push during the fault = %v, want a 503 refusal", perr)
				}
				if err := cm.flush(false); err == nil {
					t.Fatalf("retry succeeded while the fault lasts")
				}
				if _, bad := cm.faulted(); !bad {
					t.Fatalf("not faulted")
				}
				in.Clear()
				if err := cm.flush(false); err != nil {
					t.Fatalf("retry after the fault cleared: %v", err)
				}
			}
			if _, bad := cm.faulted(); bad {
				t.Fatalf("still faulted after a successful write")
			}
			// Recovered: the next batch is acknowledged and survives.
			for range 2 {
				if _, err := push(s, cm, false); err != nil {
					t.Fatalf("push after recovery: %v", err)
				}
				applied++
			}
			mem, _ := value(s, "c", "a")
			if mem != applied {
				t.Fatalf("in memory %v, want %v", mem, applied)
			}
			cm.p.close() // kill -9: no final snapshot
			if got := restoredValue(t, dir); got != applied {
				t.Errorf("restored c{a} = %v, want %v (every acknowledged push, and the failed one written once the disk recovered)", got, applied)
			}
			if m, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(m) != 0 {
				t.Errorf("temporary files left: %v", m)
			}
		})
	}
}

// Starting on a full or read-only disk (the compaction at start and the
// log's open fail): changes are refused, retries fail until the disk is
// writable, then changes are accepted and durable without a restart.
func TestPersistStartOnFailingDisk(t *testing.T) {
	for _, errno := range faultfs.Errnos() {
		t.Run(errno.Error(), func(t *testing.T) {
			dir := t.TempDir()
			// Some state first, so the start-up compaction has a log to keep.
			s, cm, err := openStoreFS(t, dir, faultfs.OS{})
			if err != nil {
				t.Fatal(err)
			}
			push(s, cm, false)
			cm.p.close()
			in := faultfs.NewInjector(faultfs.OS{})
			in.Inject(faultfs.Fault{Op: faultfs.OpCreate, Err: errno})
			s, cm, err = openStoreFS(t, dir, in)
			if !errors.Is(err, errno) {
				t.Fatalf("start on a failing disk: %v, want %v", err, errno)
			}
			if _, err := push(s, cm, false); err == nil {
				t.Fatalf("push accepted while nothing can be written")
			}
			if err := cm.flush(false); err == nil {
				t.Fatalf("retry succeeded while the disk fails")
			}
			in.Clear()
			if err := cm.flush(false); err != nil {
				t.Fatalf("retry after the disk recovered: %v", err)
			}
			if _, err := push(s, cm, false); err != nil {
				t.Fatalf("push after recovery: %v", err)
			}
			cm.p.close()
			if got := restoredValue(t, dir); got != 2 {
				t.Errorf("restored c{a} = %v, want 2", got)
			}
		})
	}
}

// Item 3's reproduction: a write fails half-way (ENOSPC), space comes
// back, the next batch is acknowledged; after a crash it is there, not
// swallowed by the torn line the failed write left.
func TestPersistTornWriteDoesNotSwallowNextBatch(t *testing.T) {
	dir := t.TempDir()
	in := faultfs.NewInjector(faultfs.OS{})
	s, cm, err := openStoreFS(t, dir, in)
	if err != nil {
		t.Fatal(err)
	}
	in.Inject(faultfs.Fault{Op: faultfs.OpWrite, Err: syscall.ENOSPC, Short: true, Times: 1})
	in.Inject(faultfs.Fault{Op: faultfs.OpTruncate, Err: syscall.ENOSPC, Times: 1}) // the immediate cut-back fails too
	if _, err := push(s, cm, false); err == nil {
		t.Fatal("short write acknowledged")
	}
	log := filepath.Join(dir, walName(cm.p.gen))
	if b, _ := os.ReadFile(log); len(b) == 0 || b[len(b)-1] == '\n' {
		t.Fatalf("the fault left no torn tail (%q): the test tests nothing", b)
	}
	if err := cm.flush(false); err != nil { // the retry cuts back and writes the pending op
		t.Fatal(err)
	}
	for range 20 {
		if _, err := push(s, cm, false); err != nil {
			t.Fatal(err)
		}
	}
	cm.p.close()
	b, _ := os.ReadFile(log)
	if n := strings.Count(string(b), "\n"); n != 21 {
		t.Errorf("log has %d lines, want 21 whole ones:\n%s", n, b)
	}
	if got := restoredValue(t, dir); got != 21 {
		t.Errorf("restored c{a} = %v, want 21", got)
	}
}

// Item 1: a result that overflows to ±Inf is refused and counted; the
// state stays encodable, so snapshots keep working.
func TestPersistOverflowRefused(t *testing.T) {
	dir := t.TempDir()
	s, cm, err := openStoreFS(t, dir, faultfs.OS{})
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	s.onNonFinite = func(string) { refused++ }
	defs := testDefs()
	defs["g"] = &metricDef{name: "g", typ: "gauge", labels: []string{}, maxSeries: 10}
	defs["g2"] = &metricDef{name: "g2", typ: "gauge", labels: []string{}, maxSeries: 10}
	s.mu.Lock()
	s.setDefsLocked(defs, 0)
	s.mu.Unlock()
	for _, tc := range []struct{ verb, metric string }{{"add", "c"}, {"add", "g"}, {"dec", "g2"}, {"observe", "h"}} {
		labels := []string{}
		if tc.metric == "c" {
			labels = []string{"a"}
		}
		v := 1.7e308
		var codes []string
		for range 2 {
			errs, b := s.apply([]op{{Verb: tc.verb, Metric: tc.metric, Labels: labels, Value: v, Time: 1}})
			if errs[0] == nil {
				go cm.flush(false)
				if err := b.wait(); err != nil {
					t.Fatal(err)
				}
				codes = append(codes, "ok")
				continue
			}
			var he *httpError
			if !errors.As(errs[0], &he) {
				t.Fatalf("%s %s: %v", tc.verb, tc.metric, errs[0])
			}
			codes = append(codes, fmt.Sprint(he.code))
		}
		if strings.Join(codes, ",") != "ok,400" {
			t.Errorf("%s %s 1.7e308 twice: %v, want ok then 400", tc.verb, tc.metric, codes)
		}
	}
	if refused != 4 {
		t.Errorf("counted %d non-finite refusals, want 4", refused)
	}
	for _, ms := range s.metrics {
		for _, sr := range ms.series {
			if math.IsInf(sr.value, 0) || math.IsInf(sr.sum, 0) {
				t.Errorf("%s holds a non-finite value", ms.def.name)
			}
		}
	}
	if err := cm.flush(true); err != nil {
		t.Fatalf("snapshot after refused overflows: %v", err)
	}
	cm.p.close()
	if got := restoredValue(t, dir); got != 1.7e308 {
		t.Errorf("restored c{a} = %v", got)
	}
}

// A snapshot that cannot be encoded is an error that writes nothing:
// the previous snapshot and the log stay, and the batch goes to the log.
func TestPersistEncodeErrorKeepsState(t *testing.T) {
	dir := t.TempDir()
	s, cm, err := openStoreFS(t, dir, faultfs.OS{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := push(s, cm, false); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, snapshotName))
	gen := cm.p.gen
	// A value no code path accepts any more, planted to make encoding fail.
	s.mu.Lock()
	s.metrics["c"].series[seriesKey([]string{"a"})].value = math.Inf(1)
	s.mu.Unlock()
	if err := cm.flush(true); err != nil {
		t.Fatalf("a failed compaction must fall back to the log, got %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, snapshotName))
	if string(after) != string(before) || cm.p.gen != gen {
		t.Errorf("the snapshot changed on an encoding error")
	}
	if _, err := os.Stat(filepath.Join(dir, walName(gen))); err != nil {
		t.Errorf("the log was removed: %v", err)
	}
	s.mu.Lock()
	s.metrics["c"].series[seriesKey([]string{"a"})].value = 1
	s.mu.Unlock()
	cm.p.close()
	if got := restoredValue(t, dir); got != 1 {
		t.Errorf("restored c{a} = %v, want 1", got)
	}
}

// Item 18: a snapshot of another format version is a clear error at
// start, and the file is left as it is.
func TestPersistUnknownVersion(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, snapshotName)
	content := `{"version":99,"gen":3,"metrics":[]}`
	os.WriteFile(path, []byte(content), 0o600)
	s := newStore()
	s.setDefsLocked(testDefs(), 0)
	_, err := (&persister{fs: faultfs.OS{}, dir: dir}).restore(s)
	if err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Fatalf("restore of a version-99 snapshot: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != content {
		t.Errorf("the file was changed: %q", b)
	}
}

// An empty snapshot (left by versions that dropped an encoding error) is
// reported and replaced, not a start that fails forever.
func TestPersistEmptySnapshotTolerated(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, snapshotName), nil, 0o600)
	s, cm, err := openStoreFS(t, dir, faultfs.OS{})
	if err != nil {
		t.Fatal(err)
	}
	if !cm.p.emptySnapshot {
		t.Errorf("the empty snapshot was not reported")
	}
	if _, err := push(s, cm, true); err != nil {
		t.Fatal(err)
	}
	cm.p.close()
	if got := restoredValue(t, dir); got != 1 {
		t.Errorf("restored c{a} = %v, want 1", got)
	}
}

// FuzzRestore: any snapshot.json and log content restores or is an error
// at start, never a panic; what restores is finite and can be written as
// a snapshot again (a state that cannot be encoded is how item 1 lost
// everything).
func FuzzRestore(f *testing.F) {
	f.Add(`{"version":1,"gen":1,"metrics":[{"name":"c","type":"counter","labels":["k"],"series":[{"l":["a"],"v":1.7e308,"t":1}]}]}`,
		`{"o":"add","m":"c","l":["a"],"v":1.7e308,"t":2}`+"\n")
	f.Add(`{"version":1,"gen":0,"metrics":[{"name":"h","type":"histogram","labels":[],"buckets":[1,2],"series":[{"l":[],"c":[1,0,0],"s":1e308,"n":1,"t":1}]}]}`,
		`{"o":"observe","m":"h","l":[],"v":1e308,"t":2}`+"\n"+`{"o":"inc","m":"c","l":["a"`)
	f.Add(``, `{"o":"dec","m":"c","l":["a"],"v":1,"t":1}`+"\n")
	f.Add(`{"version":2}`, ``)
	f.Fuzz(func(t *testing.T, snap, log string) {
		dir := t.TempDir()
		if snap != "" {
			os.WriteFile(filepath.Join(dir, snapshotName), []byte(snap), 0o600)
		}
		var gen uint64
		var hdr struct{ Gen uint64 }
		if json.Unmarshal([]byte(snap), &hdr) == nil {
			gen = hdr.Gen
		}
		os.WriteFile(filepath.Join(dir, walName(gen)), []byte(log), 0o600)
		s := newStore()
		s.setDefsLocked(testDefs(), 0)
		if _, err := (&persister{fs: faultfs.OS{}, dir: dir}).restore(s); err != nil {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, ms := range s.metrics {
			for _, sr := range ms.series {
				if math.IsInf(sr.value, 0) || math.IsNaN(sr.value) || math.IsInf(sr.sum, 0) || math.IsNaN(sr.sum) {
					t.Fatalf("restored a non-finite value in %s", ms.def.name)
				}
			}
		}
		if _, err := s.snapshotLocked(gen + 1); err != nil {
			t.Fatalf("a restored state cannot be written again: %v", err)
		}
	})
}
