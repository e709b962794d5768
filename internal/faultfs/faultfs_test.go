package faultfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A fault at any step of ReplaceFile leaves the old file whole and no
// temporary file; after Clear the replacement succeeds.
func TestReplaceFileFaults(t *testing.T) {
	for _, op := range []Op{OpCreate, OpWrite, OpSync, OpClose, OpRename} {
		for _, errno := range Errnos() {
			for _, short := range []bool{false, true} {
				if short && op != OpWrite {
					continue
				}
				t.Run(string(op)+"/"+errno.Error(), func(t *testing.T) {
					dir := t.TempDir()
					path := filepath.Join(dir, "state")
					if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
						t.Fatal(err)
					}
					in := NewInjector(OS{})
					in.Inject(Fault{Op: op, Err: errno, Short: short})
					err := ReplaceFile(in, path, func(w io.Writer) error { _, err := w.Write([]byte("new content")); return err })
					if !errors.Is(err, errno) {
						t.Fatalf("ReplaceFile = %v, want %v", err, errno)
					}
					if in.Hits(op) != 1 {
						t.Errorf("fault at %s hit %d times", op, in.Hits(op))
					}
					if b, _ := os.ReadFile(path); string(b) != "old" {
						t.Errorf("after a failed replace the file holds %q", b)
					}
					if m, _ := filepath.Glob(TempPattern(path)); len(m) != 0 {
						t.Errorf("temporary files left: %v", m)
					}
					in.Clear()
					if err := ReplaceFile(in, path, func(w io.Writer) error { _, err := w.Write([]byte("new")); return err }); err != nil {
						t.Fatal(err)
					}
					if b, _ := os.ReadFile(path); string(b) != "new" {
						t.Errorf("after the fault cleared the file holds %q", b)
					}
				})
			}
		}
	}
}

// A failed directory sync after the rename is reported as ErrNotDurable.
func TestReplaceFileSyncDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	in := NewInjector(OS{})
	in.Inject(Fault{Op: OpSyncDir, Err: syscall.EIO, Times: 1})
	err := ReplaceFile(in, path, func(w io.Writer) error { _, err := w.Write([]byte("x")); return err })
	if !errors.Is(err, ErrNotDurable) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("ReplaceFile = %v, want ErrNotDurable wrapping EIO", err)
	}
	if err := in.SyncDir(filepath.Dir(path)); err != nil {
		t.Fatalf("Times: 1 fault still failing: %v", err)
	}
}

// An encoding error aborts the replacement: no empty file.
func TestReplaceFileEncodeError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	boom := errors.New("cannot encode")
	if err := ReplaceFile(OS{}, path, func(io.Writer) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("ReplaceFile = %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a file was created despite the encoding error: %v", err)
	}
}

// A short write writes half for real, then fails; Skip and Path select
// which call fails.
func TestInjectorShortSkipPath(t *testing.T) {
	dir := t.TempDir()
	in := NewInjector(OS{})
	in.Inject(Fault{Op: OpWrite, Err: syscall.ENOSPC, Short: true, Skip: 1, Path: "log"})
	f, err := in.OpenFile(filepath.Join(dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("first\n")); err != nil {
		t.Fatalf("skipped call failed: %v", err)
	}
	n, err := f.Write([]byte("second\n"))
	if n != 3 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("short write = %d, %v", n, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "log")); string(b) != "first\nsec" {
		t.Errorf("file holds %q", b)
	}
	g, err := in.OpenFile(filepath.Join(dir, "other"), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.Write([]byte("x")); err != nil {
		t.Errorf("a fault limited to %q hit another path: %v", "log", err)
	}
	if in.Calls(OpWrite) != 3 || in.Hits(OpWrite) != 1 {
		t.Errorf("calls %d hits %d", in.Calls(OpWrite), in.Hits(OpWrite))
	}
}
