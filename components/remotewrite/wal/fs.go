package wal

import (
	"io"
	"os"
)

// FS is what the log writes through: the operating system by default.
// It is a seam for tests, which put faults (ENOSPC, EIO, EROFS, short
// writes) in each write, fsync, truncate and rename. Reads go straight to
// the OS: a failing read is already handled as a torn segment.
type FS interface {
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	Rename(oldpath, newpath string) error
}

// File is the part of *os.File the log writes with.
type File interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Seek(offset int64, whence int) (int64, error)
	Close() error
}

// OSFS is the operating system's file system.
type OSFS struct{}

// OpenFile is os.OpenFile.
func (OSFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	return os.OpenFile(name, flag, perm)
}

// Rename is os.Rename.
func (OSFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }
