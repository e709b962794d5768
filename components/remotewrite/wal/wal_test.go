package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// readAll reads every record from pos, counting the skipped segments.
func readAll(t testing.TB, l *Log, pos Position) (recs []string, corrupt int) {
	r := l.NewReader(pos)
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

func TestAppendReadRotateResume(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, 64)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 20 {
		rec := fmt.Sprintf("record-%02d", i)
		want = append(want, rec)
		if err := l.Append([]byte(rec)); err != nil {
			t.Fatal(err)
		}
	}
	segs, _ := Segments(dir)
	if len(segs) < 5 {
		t.Fatalf("%d segments of 64 bytes for 20 records of 17", len(segs))
	}
	got, corrupt := readAll(t, l, Position{})
	if fmt.Sprint(got) != fmt.Sprint(want) || corrupt != 0 {
		t.Fatalf("got %v (%d corrupt)", got, corrupt)
	}
	// Resume after the 7th record, across a reopen.
	r := l.NewReader(Position{})
	var at Position
	for range 7 {
		_, at, _, _ = r.Next()
	}
	r.Close()
	if err := SavePosition(dir, at); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l, err = Open(dir, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	pos, ok := LoadPosition(dir)
	if !ok || pos != at {
		t.Fatalf("position %v %v, want %v", pos, ok, at)
	}
	got, _ = readAll(t, l, pos)
	if fmt.Sprint(got) != fmt.Sprint(want[7:]) {
		t.Fatalf("resumed with %v", got)
	}
	// Removing a read segment is fine for a reader further on.
	if err := l.Remove(segs[0].N); err != nil {
		t.Fatal(err)
	}
	if got, _ := readAll(t, l, Position{}); len(got) >= 20 || len(got) == 0 {
		t.Fatalf("after removing the first segment, read %d records", len(got))
	}
}

func TestCorruptionSkipsRestOfSegment(t *testing.T) {
	for name, damage := range map[string]func([]byte) []byte{
		"torn tail":       func(b []byte) []byte { return b[:len(b)-3] },
		"flipped byte":    func(b []byte) []byte { b[len(b)-2] ^= 0xff; return b },
		"garbage tail":    func(b []byte) []byte { return append(b, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5) },
		"absurd length":   func(b []byte) []byte { return append(b, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0) },
		"zeroed segment":  func(b []byte) []byte { return make([]byte, len(b)) },
		"truncated to 0":  func(b []byte) []byte { return nil },
		"header fragment": func(b []byte) []byte { return append(b, 0, 0) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l, err := Open(dir, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range []string{"a1", "a2", "a3"} {
				_ = l.Append([]byte(r))
			}
			l.Close()
			seg := segmentName(dir, 0)
			b, _ := os.ReadFile(seg)
			if err := os.WriteFile(seg, damage(b), 0o600); err != nil {
				t.Fatal(err)
			}
			l, err = Open(dir, 1<<20) // the next run appends to segment 1
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			_ = l.Append([]byte("b1"))
			got, _ := readAll(t, l, Position{})
			if len(got) == 0 || got[len(got)-1] != "b1" {
				t.Fatalf("the next segment was not read after the damage: %v", got)
			}
			for i, r := range got[:len(got)-1] {
				if r != []string{"a1", "a2", "a3"}[i] {
					t.Fatalf("damaged segment yielded %v", got)
				}
			}
		})
	}
}

func TestPositionFileBad(t *testing.T) {
	dir := t.TempDir()
	for _, content := range []string{"", "x y", "-1 5", "3"} {
		_ = os.WriteFile(filepath.Join(dir, positionFile), []byte(content), 0o600)
		if _, ok := LoadPosition(dir); ok {
			t.Errorf("position %q accepted", content)
		}
	}
}

func record(payload string) []byte {
	dir, _ := os.MkdirTemp("", "walseed")
	defer os.RemoveAll(dir)
	l, _ := Open(dir, 1<<20)
	_ = l.Append([]byte(payload))
	l.Close()
	b, _ := os.ReadFile(segmentName(dir, 0))
	return b
}

// FuzzReadSegment: any segment content yields only records with a valid
// checksum, then a clean end or an error, never a panic or a huge
// allocation.
func FuzzReadSegment(f *testing.F) {
	f.Add(record("hello"))
	f.Add(append(record("a"), record("bc")...))
	f.Add(record("x")[:5])
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		var buf []byte
		total := 0
		for {
			rec, err := ReadRecord(r, buf)
			if err != nil {
				return
			}
			total += len(rec) + headerSize
			if total > len(b) {
				t.Fatalf("read %d bytes of records from %d bytes", total, len(b))
			}
			buf = rec[:0]
		}
	})
}
