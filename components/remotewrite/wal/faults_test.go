package wal

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/sluicehq/sluice/internal/faultfs"
)

// readBack reads every record of the log in dir from the start, through a
// fresh Open as a restart would.
func readBack(t *testing.T, dir string) (recs []string, corrupt int) {
	t.Helper()
	l, err := Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return readAll(t, l, Position{})
}

// kinds are the faults each op gets: every errno of a full, failing or
// read-only disk, and (at writes) a short write that leaves half a record.
func kinds(op faultfs.Op) []faultfs.Fault {
	var out []faultfs.Fault
	for _, e := range faultfs.Errnos() {
		out = append(out, faultfs.Fault{Op: op, Err: e})
	}
	if op == faultfs.OpWrite {
		out = append(out, faultfs.Fault{Op: op, Err: faultfs.Errnos()[0], Short: true})
	}
	return out
}

func faultName(f faultfs.Fault) string {
	if f.Short {
		return "short_write"
	}
	return fmt.Sprint(f.Err)
}

// TestAppendRecoversFromEveryFault puts each kind of fault at each write,
// fsync, truncate and create of the log (one call, or every call until
// cleared, after 0 or 2 calls that pass), and checks that every append
// that returned nil is read back, in order, nothing else is, and appends
// succeed again once the fault is cleared: a failed write never sticks.
func TestAppendRecoversFromEveryFault(t *testing.T) {
	for _, op := range []faultfs.Op{faultfs.OpWrite, faultfs.OpSync, faultfs.OpTruncate, faultfs.OpCreate} {
		for _, f := range kinds(op) {
			for _, skip := range []int{0, 2} {
				for _, times := range []int{1, 0} {
					f.Skip, f.Times = skip, times
					t.Run(fmt.Sprintf("%s/%s/skip%d/times%d", op, faultName(f), skip, times), func(t *testing.T) {
						testAppendRecovers(t, f)
					})
				}
			}
		}
	}
}

func testAppendRecovers(t *testing.T, fault faultfs.Fault) {
	op := fault.Op
	dir := t.TempDir()
	fsys := faultfs.NewInjector(faultfs.OS{})
	var faults []string
	// Segments of 100 bytes hold 4 records of 25: rotations (fsync,
	// create) happen every fourth append.
	l, err := OpenWith(dir, 100, Options{FS: fsys, OnFault: func(op string, err error) { faults = append(faults, op) }})
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
				if op == faultfs.OpWrite && !errors.Is(err, fault.Err) {
					t.Errorf("append %d: %v, want it to wrap %v", i, err, fault.Err)
				}
				continue
			}
			acked = append(acked, rec)
		}
	}
	appendN(0, 2)
	// A truncate happens only after a failed write: put four there, so
	// that the truncates before the next appends meet the fault.
	if op == faultfs.OpTruncate {
		fsys.Inject(faultfs.Fault{Op: faultfs.OpWrite, Err: faultfs.Errnos()[0], Short: true, Times: 4})
	}
	fsys.Inject(fault)
	appendN(2, 21)
	if fsys.Hits(op) == 0 {
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
	if corrupt > 0 && op != faultfs.OpTruncate {
		t.Errorf("%d torn records read back after %s faults", corrupt, op)
	}
	if op == faultfs.OpSync && len(faults) == 0 {
		t.Errorf("fsync faults not reported")
	}
}

// TestSavePositionFaults: a position that cannot be saved (at its
// create, write, fsync or rename) leaves the previous one, and saving
// works again once the fault clears. (A directory fsync that fails after
// the rename reports an error with the new position in place.)
func TestSavePositionFaults(t *testing.T) {
	for _, op := range []faultfs.Op{faultfs.OpCreate, faultfs.OpWrite, faultfs.OpSync, faultfs.OpRename} {
		for _, fault := range kinds(op) {
			t.Run(fmt.Sprintf("%s/%s", op, faultName(fault)), func(t *testing.T) {
				dir := t.TempDir()
				fsys := faultfs.NewInjector(faultfs.OS{})
				l, err := OpenWith(dir, 1<<20, Options{FS: fsys})
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				old := Position{Segment: 1, Offset: 42}
				if err := l.SavePosition(old); err != nil {
					t.Fatal(err)
				}
				fsys.Inject(fault)
				if err := l.SavePosition(Position{Segment: 2, Offset: 7}); err == nil {
					t.Fatal("saving succeeded through the fault")
				}
				if p, ok := LoadPosition(dir); !ok || p != old {
					t.Fatalf("position after a failed save: %v %v, want the old %v", p, ok, old)
				}
				fsys.Clear()
				now := Position{Segment: 3, Offset: 9}
				if err := l.SavePosition(now); err != nil {
					t.Fatal(err)
				}
				if p, _ := LoadPosition(dir); p != now {
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
	l, err := Open(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append([]byte("old")); err != nil {
		t.Fatal(err)
	}
	l.Close()
	fsys := faultfs.NewInjector(faultfs.OS{})
	fsys.Inject(faultfs.Fault{Op: faultfs.OpCreate, Err: syscall.EROFS})
	var faults int
	l, err = OpenWith(dir, 1<<20, Options{FS: fsys, OnFault: func(string, error) { faults++ }})
	if err != nil {
		t.Fatalf("open on a read-only disk: %v", err)
	}
	if faults != 1 {
		t.Errorf("%d faults reported at open, want 1", faults)
	}
	r := l.NewReader(Position{})
	rec, _, _, err := r.Next()
	if err != nil || string(rec) != "old" {
		t.Fatalf("reading the old segment: %q %v", rec, err)
	}
	if err := l.Append([]byte("lost")); !errors.Is(err, syscall.EROFS) {
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
