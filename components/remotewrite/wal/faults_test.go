package wal_test

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/sluicehq/sluice/components/remotewrite/wal"
	"github.com/sluicehq/sluice/components/remotewrite/wal/walfaults"
)

// readBack reads every record of the log in dir from the start, through a
// fresh Open as a restart would.
func readBack(t *testing.T, dir string) (recs []string, corrupt int) {
	t.Helper()
	l, err := wal.Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r := l.NewReader(wal.Position{})
	defer r.Close()
	r.OnCorrupt = func(int, int64, error) { corrupt++ }
	for {
		rec, _, _, err := r.Next()
		if errors.Is(err, io.EOF) {
			return recs, corrupt
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, string(rec))
	}
}

// TestAppendRecoversFromEveryFault puts each kind of fault at each write,
// fsync, truncate and create of the log (one call, several, or every call
// until cleared), and checks that every append that returned nil is read
// back, in order, nothing else is, and appends succeed again once the
// fault is cleared: a failed write never sticks.
func TestAppendRecoversFromEveryFault(t *testing.T) {
	for _, op := range []string{walfaults.OpWrite, walfaults.OpSync, walfaults.OpTruncate, walfaults.OpCreate} {
		for _, kind := range walfaults.Kinds {
			for _, skip := range []int{0, 2} {
				for _, count := range []int{1, -1} {
					t.Run(fmt.Sprintf("%s/%v/skip%d/count%d", op, kind, skip, count), func(t *testing.T) {
						testAppendRecovers(t, op, kind, skip, count)
					})
				}
			}
		}
	}
}

func testAppendRecovers(t *testing.T, op string, kind error, skip, count int) {
	dir := t.TempDir()
	fsys := &walfaults.FS{}
	var faults []string
	// Segments of 100 bytes hold 4 records of 25: rotations (fsync,
	// create) happen every fourth append.
	l, err := wal.OpenWith(dir, 100, wal.Options{FS: fsys, OnFault: func(op string, err error) { faults = append(faults, op) }})
	if err != nil {
		t.Fatal(err)
	}
	var acked []string
	failed := 0
	appendN := func(from, n int) {
		for i := from; i < from+n; i++ {
			rec := fmt.Sprintf("record-%03d-xxxxxx", i)
			if err := l.Append([]byte(rec)); err != nil {
				failed++
				if op == walfaults.OpWrite && !errors.Is(err, kind) && !errors.Is(kind, walfaults.ErrShort) {
					t.Errorf("append %d: %v, want it to wrap %v", i, err, kind)
				}
				continue
			}
			acked = append(acked, rec)
		}
	}
	appendN(0, 2)
	fsys.Set(op, kind, skip, count)
	// A truncate happens only after a failed write: put one there.
	if op == walfaults.OpTruncate {
		fsys.Set(walfaults.OpWrite, walfaults.ErrShort, 0, 1)
		appendN(2, 1)
		fsys.Set(op, kind, skip, count)
	}
	appendN(3, 20)
	if fsys.Failed() == 0 {
		t.Fatalf("no %s fault was injected", op)
	}
	fsys.Clear()
	before := len(acked)
	appendN(100, 5)
	if got := len(acked) - before; got != 5 {
		t.Fatalf("after the fault cleared, %d of 5 appends succeeded", got)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("closing: %v", err)
	}
	got, corrupt := readBack(t, dir)
	if fmt.Sprint(got) != fmt.Sprint(acked) {
		t.Fatalf("read back %d records, %d acknowledged (%d appends failed):\n got %v\nwant %v", len(got), len(acked), failed, got, acked)
	}
	// Only a partial record that could not be cut off is left for readers
	// to stop at, and that was reported.
	if corrupt > 0 && op != walfaults.OpTruncate {
		t.Errorf("%d torn records read back after %s faults", corrupt, op)
	}
	if op == walfaults.OpSync && len(faults) == 0 {
		t.Errorf("fsync faults not reported")
	}
}

// TestSavePositionFaults: a position that cannot be saved (at its write,
// fsync or rename) leaves the previous one, and saving works again once
// the fault clears.
func TestSavePositionFaults(t *testing.T) {
	for _, op := range []string{walfaults.OpCreate, walfaults.OpWrite, walfaults.OpSync, walfaults.OpRename} {
		for _, kind := range walfaults.Kinds {
			t.Run(fmt.Sprintf("%s/%v", op, kind), func(t *testing.T) {
				dir := t.TempDir()
				fsys := &walfaults.FS{}
				l, err := wal.OpenWith(dir, 1<<20, wal.Options{FS: fsys})
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				old := wal.Position{Segment: 1, Offset: 42}
				if err := l.SavePosition(old); err != nil {
					t.Fatal(err)
				}
				fsys.Set(op, kind, 0, -1)
				if err := l.SavePosition(wal.Position{Segment: 2, Offset: 7}); err == nil {
					t.Fatal("saving succeeded through the fault")
				}
				if p, ok := wal.LoadPosition(dir); !ok || p != old {
					t.Fatalf("position after a failed save: %v %v, want the old %v", p, ok, old)
				}
				fsys.Clear()
				now := wal.Position{Segment: 3, Offset: 9}
				if err := l.SavePosition(now); err != nil {
					t.Fatal(err)
				}
				if p, _ := wal.LoadPosition(dir); p != now {
					t.Fatalf("position %v, want %v", p, now)
				}
			})
		}
	}
}

// TestOpenOnUnwritableDisk: a log opened where no segment can be created
// still opens, fails appends while the fault lasts, and writes once it
// clears; old segments stay readable meanwhile.
func TestOpenOnUnwritableDisk(t *testing.T) {
	dir := t.TempDir()
	l, err := wal.Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append([]byte("old")); err != nil {
		t.Fatal(err)
	}
	l.Close()
	fsys := &walfaults.FS{}
	fsys.Set(walfaults.OpCreate, walfaults.ErrReadOnly, 0, -1)
	var faults int
	l, err = wal.OpenWith(dir, 1<<20, wal.Options{FS: fsys, OnFault: func(string, error) { faults++ }})
	if err != nil {
		t.Fatalf("open on a read-only disk: %v", err)
	}
	if faults != 1 {
		t.Errorf("%d faults reported at open, want 1", faults)
	}
	r := l.NewReader(wal.Position{})
	rec, _, _, err := r.Next()
	if err != nil || string(rec) != "old" {
		t.Fatalf("reading the old segment: %q %v", rec, err)
	}
	if err := l.Append([]byte("lost")); !errors.Is(err, walfaults.ErrReadOnly) {
		t.Fatalf("append on a read-only disk: %v", err)
	}
	fsys.Clear()
	if err := l.Append([]byte("new")); err != nil {
		t.Fatal(err)
	}
	rec, _, _, err = r.Next()
	if err != nil || string(rec) != "new" {
		t.Fatalf("the reader, caught up before the fault, then read %q %v", rec, err)
	}
	r.Close()
	l.Close()
	got, corrupt := readBack(t, dir)
	if fmt.Sprint(got) != "[old new]" || corrupt != 0 {
		t.Fatalf("read back %v (%d corrupt)", got, corrupt)
	}
}
