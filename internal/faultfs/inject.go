package faultfs

import (
	"io/fs"
	"strings"
	"sync"
	"syscall"
)

// Op names an operation of the seam a fault can be injected at.
type Op string

const (
	OpCreate   Op = "create" // OpenFile with O_CREATE, and CreateTemp
	OpOpen     Op = "open"   // OpenFile without O_CREATE
	OpWrite    Op = "write"
	OpSync     Op = "sync" // File.Sync
	OpTruncate Op = "truncate"
	OpClose    Op = "close"
	OpRename   Op = "rename"
	OpRemove   Op = "remove"
	OpMkdir    Op = "mkdir"
	OpSyncDir  Op = "syncdir"
)

// WriteOps are the operations a durable write path must survive a fault
// at: each write, fsync and rename (and what repairs after them).
func WriteOps() []Op {
	return []Op{OpCreate, OpWrite, OpSync, OpTruncate, OpRename, OpSyncDir}
}

// Errnos are the errors a full, failing or read-only disk gives.
func Errnos() []syscall.Errno { return []syscall.Errno{syscall.ENOSPC, syscall.EIO, syscall.EROFS} }

// Fault is one injected failure.
type Fault struct {
	Op  Op
	Err error // returned, wrapped in an *fs.PathError; syscall.EIO when nil
	// Short (OpWrite only): write the first half of the buffer for real,
	// then fail with Err, leaving a torn tail as a full disk does.
	Short bool
	// Path, when set, limits the fault to paths containing it.
	Path string
	// Skip lets that many matching calls pass before failing; Times is how
	// many calls then fail (0: every one until Clear).
	Skip, Times int
}

// Injector is an FS that fails the operations its faults match and passes
// everything else to the FS it wraps. It is safe for concurrent use.
type Injector struct {
	next FS

	mu     sync.Mutex
	faults []*Fault
	calls  map[Op]int
	hits   map[Op]int
}

var _ FS = (*Injector)(nil)

// NewInjector wraps next (usually OS{}).
func NewInjector(next FS) *Injector {
	return &Injector{next: next, calls: map[Op]int{}, hits: map[Op]int{}}
}

// Inject adds a fault; it applies to calls made from now on.
func (in *Injector) Inject(f Fault) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.faults = append(in.faults, &f)
}

// Clear removes every fault: the disk has space again, is writable again.
func (in *Injector) Clear() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.faults = nil
}

// Calls is how many times op was called (failed or not).
func (in *Injector) Calls(op Op) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.calls[op]
}

// Hits is how many calls of op failed by an injected fault.
func (in *Injector) Hits(op Op) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.hits[op]
}

// check counts a call and returns the fault it must fail with, or nil.
func (in *Injector) check(op Op, path string) *Fault {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.calls[op]++
	for i, f := range in.faults {
		if f.Op != op || (f.Path != "" && !strings.Contains(path, f.Path)) {
			continue
		}
		if f.Skip > 0 {
			f.Skip--
			continue
		}
		if f.Times > 0 {
			if f.Times--; f.Times == 0 {
				in.faults = append(in.faults[:i:i], in.faults[i+1:]...)
			}
		}
		in.hits[op]++
		return f
	}
	return nil
}

func (f *Fault) err(path string) error {
	e := f.Err
	if e == nil {
		e = syscall.EIO
	}
	return &fs.PathError{Op: string(f.Op), Path: path, Err: e}
}

func (in *Injector) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	op := OpOpen
	if flag&syscall.O_CREAT != 0 {
		op = OpCreate
	}
	if f := in.check(op, name); f != nil {
		return nil, f.err(name)
	}
	file, err := in.next.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, in: in}, nil
}

func (in *Injector) CreateTemp(dir, pattern string) (File, error) {
	if f := in.check(OpCreate, dir+"/"+pattern); f != nil {
		return nil, f.err(dir + "/" + pattern)
	}
	file, err := in.next.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, in: in}, nil
}

func (in *Injector) Rename(oldpath, newpath string) error {
	if f := in.check(OpRename, newpath); f != nil {
		return f.err(newpath)
	}
	return in.next.Rename(oldpath, newpath)
}

func (in *Injector) Remove(name string) error {
	if f := in.check(OpRemove, name); f != nil {
		return f.err(name)
	}
	return in.next.Remove(name)
}

func (in *Injector) MkdirAll(path string, perm fs.FileMode) error {
	if f := in.check(OpMkdir, path); f != nil {
		return f.err(path)
	}
	return in.next.MkdirAll(path, perm)
}

func (in *Injector) SyncDir(dir string) error {
	if f := in.check(OpSyncDir, dir); f != nil {
		return f.err(dir)
	}
	return in.next.SyncDir(dir)
}

// faultFile fails the file operations the injector's faults match.
type faultFile struct {
	File
	in *Injector
}

func (f *faultFile) Write(p []byte) (int, error) {
	if ft := f.in.check(OpWrite, f.Name()); ft != nil {
		if !ft.Short || len(p) < 2 {
			return 0, ft.err(f.Name())
		}
		n, err := f.File.Write(p[:len(p)/2])
		if err != nil {
			return n, err
		}
		return n, ft.err(f.Name())
	}
	return f.File.Write(p)
}

func (f *faultFile) Sync() error {
	if ft := f.in.check(OpSync, f.Name()); ft != nil {
		return ft.err(f.Name())
	}
	return f.File.Sync()
}

func (f *faultFile) Truncate(size int64) error {
	if ft := f.in.check(OpTruncate, f.Name()); ft != nil {
		return ft.err(f.Name())
	}
	return f.File.Truncate(size)
}

func (f *faultFile) Close() error {
	if ft := f.in.check(OpClose, f.Name()); ft != nil {
		_ = f.File.Close() // the descriptor is gone either way, as with a real close error
		return ft.err(f.Name())
	}
	return f.File.Close()
}
