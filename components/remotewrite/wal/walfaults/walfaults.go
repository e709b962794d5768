// Package walfaults is a wal.FS that injects faults, for tests of the
// remote_write WAL and of what sits on it: ENOSPC, EIO, EROFS or a short
// write at chosen write, fsync, truncate, create or rename calls, switched
// on and off while the log runs.
package walfaults

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"

	"github.com/sluicehq/sluice/components/remotewrite/wal"
)

// Ops a fault can be put in.
const (
	OpWrite    = "write"
	OpSync     = "fsync"
	OpTruncate = "truncate"
	OpCreate   = "create" // OpenFile
	OpRename   = "rename"
)

// Ops lists every op.
var Ops = []string{OpWrite, OpSync, OpTruncate, OpCreate, OpRename}

// Kinds of fault: the errors, and ErrShort for a short write (half the
// bytes written, then ENOSPC), which at other ops is ENOSPC.
var (
	ErrNoSpace  error = syscall.ENOSPC
	ErrIO       error = syscall.EIO
	ErrReadOnly error = syscall.EROFS
	ErrShort          = errors.New("short write")
)

// Kinds lists every kind of fault.
var Kinds = []error{ErrNoSpace, ErrIO, ErrReadOnly, ErrShort}

// FS passes calls to the OS unless a fault is set for their op.
type FS struct {
	mu     sync.Mutex
	op     string
	kind   error
	skip   int // calls of op to let through before failing
	count  int // calls of op to fail; -1: until Clear
	failed int
}

// Set makes the calls of op fail with kind: after skip calls that pass,
// count calls (-1: every call until Clear).
func (f *FS) Set(op string, kind error, skip, count int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.op, f.kind, f.skip, f.count = op, kind, skip, count
}

// Clear removes the fault.
func (f *FS) Clear() { f.Set("", nil, 0, 0) }

// Failed is the number of calls failed so far.
func (f *FS) Failed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// fault returns the error for this call of op, if it is to fail.
func (f *FS) fault(op string) error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.op != op || f.count == 0 {
		return nil
	}
	if f.skip > 0 {
		f.skip--
		return nil
	}
	if f.count > 0 {
		f.count--
	}
	f.failed++
	return f.kind
}

func pathErr(op, name string, err error) error {
	if errors.Is(err, ErrShort) {
		err = syscall.ENOSPC
	}
	return &os.PathError{Op: op, Path: name, Err: err}
}

// OpenFile opens name through the OS, unless a create fault is due.
func (f *FS) OpenFile(name string, flag int, perm os.FileMode) (wal.File, error) {
	if err := f.fault(OpCreate); err != nil {
		return nil, pathErr("open", name, err)
	}
	of, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &file{File: of, fs: f}, nil
}

// Rename renames through the OS, unless a rename fault is due.
func (f *FS) Rename(oldpath, newpath string) error {
	if err := f.fault(OpRename); err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return os.Rename(oldpath, newpath)
}

type file struct {
	*os.File
	fs *FS
}

// Write writes b unless a write fault is due; a short write writes half
// of b first, as a disk that fills up mid-write does.
func (f *file) Write(b []byte) (int, error) {
	err := f.fs.fault(OpWrite)
	if err == nil {
		return f.File.Write(b)
	}
	if errors.Is(err, ErrShort) {
		n, werr := f.File.Write(b[:len(b)/2])
		if werr != nil {
			return n, werr
		}
		return n, pathErr("write", f.Name(), err)
	}
	return 0, pathErr("write", f.Name(), err)
}

func (f *file) Sync() error {
	if err := f.fs.fault(OpSync); err != nil {
		return pathErr("sync", f.Name(), err)
	}
	return f.File.Sync()
}

func (f *file) Truncate(size int64) error {
	if err := f.fs.fault(OpTruncate); err != nil {
		return pathErr("truncate", f.Name(), err)
	}
	return f.File.Truncate(size)
}

var _ io.Writer = (*file)(nil)
