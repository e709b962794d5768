// Package faultfs is the filesystem seam of Sluice's durable write paths
// (the webhook receiver's log and snapshot, the cache's snapshot file, the
// remote_write WAL): they create, write, fsync, truncate, rename and
// remove through an FS instead of calling package os directly, so that
// tests can make any one of those operations fail (ENOSPC, EIO, EROFS, a
// short write) and check that nothing acknowledged is lost and that the
// component recovers by itself once the fault clears.
//
// Production code uses OS{}, a thin pass-through to package os. Tests wrap
// it in an Injector (see inject.go). Reads are not part of the seam: a
// fault there is an error at start or restore, which is tested with bad
// files rather than injected errors.
//
// ReplaceFile is the atomic whole-file replacement (temporary file, write,
// fsync, rename, fsync of the directory) both snapshot writers use.
package faultfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// File is the part of *os.File a durable writer uses.
type File interface {
	io.Writer
	Name() string
	Sync() error
	Truncate(size int64) error
	Stat() (fs.FileInfo, error)
	Close() error
}

// FS is the set of filesystem operations a durable write path may fail in.
// Every method behaves as its namesake in package os.
type FS interface {
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	CreateTemp(dir, pattern string) (File, error)
	Rename(oldpath, newpath string) error
	Remove(name string) error
	MkdirAll(path string, perm fs.FileMode) error
	// SyncDir fsyncs a directory, making the creations, renames and
	// removals in it durable.
	SyncDir(dir string) error
}

// OS is the real filesystem.
type OS struct{}

var _ FS = OS{}

func (OS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // a nil *os.File must not become a non-nil File
	}
	return f, nil
}

func (OS) CreateTemp(dir, pattern string) (File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (OS) Rename(oldpath, newpath string) error         { return os.Rename(oldpath, newpath) }
func (OS) Remove(name string) error                     { return os.Remove(name) }
func (OS) MkdirAll(path string, perm fs.FileMode) error { return os.MkdirAll(path, perm) }

func (OS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return &fs.PathError{Op: "fsync", Path: dir, Err: unwrapPath(err)}
	}
	return nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ErrNotDurable marks a ReplaceFile error after the rename: the new file
// may be what the directory holds (now or after a crash), but the rename is
// not known to be durable. A caller that ties other files to the old one
// (a log that follows the snapshot) must treat both as possible until a
// later SyncDir succeeds.
var ErrNotDurable = errors.New("renamed, but the directory could not be synced")

// ReplaceFile atomically replaces path with what write produces: a
// temporary file (mode 0600) in the same directory (so the rename cannot cross
// filesystems), write, fsync, close, rename over path, fsync of the
// directory. A crash or error at any point leaves either the old file or
// the new one, never a mix or an empty file; on error before the rename
// the temporary file is removed and the old file is untouched.
//
// write is called first into the temporary file; an error from it (an
// encoding error) aborts the replacement.
func ReplaceFile(fsys FS, path string, write func(io.Writer) error) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := fsys.CreateTemp(dir, "."+base+"-*.tmp")
	if err != nil {
		return fmt.Errorf("creating a temporary file for %s: %w", path, err)
	}
	tmp := f.Name()
	renamed, closed := false, false
	defer func() {
		if !closed {
			_ = f.Close()
		}
		if !renamed {
			_ = fsys.Remove(tmp)
		}
	}()
	if err := write(f); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	closed = true // a failed close has released the descriptor too
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp, err)
	}
	if err := fsys.Rename(tmp, path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	renamed = true
	if err := fsys.SyncDir(dir); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotDurable, path, err)
	}
	return nil
}

// TempPattern is the glob of the temporary files ReplaceFile creates for
// path, for removing those a crash left behind.
func TempPattern(path string) string {
	dir, base := filepath.Split(path)
	return filepath.Join(dir, "."+base+"-*.tmp")
}
