// Package wal is remote_write's write-ahead log: numbered segment files of
// records, each record framed as a 4-byte big-endian length, a 4-byte
// CRC-32 (Castagnoli) of the payload, and the payload. One writer appends;
// readers follow it from a saved position. A torn or corrupt record (a
// crash mid-write, a bad disk) ends what is read of its segment: the reader
// reports it and carries on with the next segment, never failing.
package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/internal/faultfs"
)

const (
	headerSize = 8
	// MaxRecordSize bounds a record: a length above it is corruption, not
	// a reason to allocate.
	MaxRecordSize = 64 << 20
	segmentSuffix = ".seg"
	positionFile  = "position"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is returned by ReadRecord for a record whose length is out of
// bounds or whose checksum does not match.
var ErrCorrupt = errors.New("corrupt record")

// Position is a place in the log: a segment number and a byte offset in it.
type Position struct {
	Segment int
	Offset  int64
}

// Less orders positions.
func (p Position) Less(q Position) bool {
	return p.Segment < q.Segment || (p.Segment == q.Segment && p.Offset < q.Offset)
}

// Log is a segmented log in one directory.
//
// A failed write never sticks: the log remembers that the current segment
// may hold a partial record past its last good offset and cuts it off
// before the next append (or, when even that fails, leaves the segment to
// the readers, which stop at the torn record, and goes on in a new one).
// So once the fault clears (space is freed, the disk is writable again),
// the next Append succeeds.
type Log struct {
	dir         string
	segmentSize int64
	fs          faultfs.FS
	onFault     func(op string, err error)

	mu sync.Mutex
	// f is the segment being written, opened for appending (so a write
	// after a truncate lands at the new end); nil when none is open
	// (creating one failed): the next Append tries again.
	f faultfs.File
	// dirty: a write to f failed, so f may hold a partial record after
	// end.Offset.
	dirty bool
	// next is the number of the next segment to create.
	next   int
	end    Position
	notify chan struct{}
	closed bool
}

// Options of OpenWith.
type Options struct {
	// FS is what the log writes through (faultfs.OS when nil): tests
	// inject faults in it.
	FS faultfs.FS
	// OnFault is told of faults that fail no Append (a segment's fsync
	// or close at rotation, a partial record that could not be cut off),
	// so that they are counted and logged. It is called with the log's
	// lock held and must not call the log.
	OnFault func(op string, err error)
}

// Open opens (creating it if needed) the log in dir. Appends always go to a
// new segment, so a torn tail left by a crash is only ever read, never
// written after.
func Open(dir string, segmentSize int64) (*Log, error) {
	return OpenWith(dir, segmentSize, Options{})
}

// OpenWith is Open with options. Only a directory that cannot be created
// or listed fails it: a first segment that cannot be created (a full or
// read-only disk) is created by the first Append that can.
func OpenWith(dir string, segmentSize int64, opts Options) (*Log, error) {
	if opts.FS == nil {
		opts.FS = faultfs.OS{}
	}
	if err := opts.FS.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating WAL directory: %w", err)
	}
	segs, err := Segments(dir)
	if err != nil {
		return nil, err
	}
	if opts.OnFault == nil {
		opts.OnFault = func(string, error) {}
	}
	l := &Log{dir: dir, segmentSize: segmentSize, fs: opts.FS, onFault: opts.OnFault, notify: make(chan struct{})}
	// Until a new segment exists, the end is the end of the last old one
	// (or before segment 0), so that readers stop there and go on into
	// the new segment once it is created.
	l.end = Position{Segment: -1}
	if len(segs) > 0 {
		last := segs[len(segs)-1]
		l.next = last.N + 1
		l.end = Position{Segment: last.N, Offset: last.Size}
	}
	// Temporary position files a crash left behind.
	if tmps, _ := filepath.Glob(faultfs.TempPattern(filepath.Join(dir, positionFile))); len(tmps) > 0 {
		for _, tmp := range tmps {
			_ = opts.FS.Remove(tmp)
		}
	}
	if err := l.startSegment(); err != nil {
		l.onFault("create", err)
	}
	return l, nil
}

// Dir is the log's directory.
func (l *Log) Dir() string { return l.dir }

func segmentName(dir string, n int) string {
	return filepath.Join(dir, fmt.Sprintf("%08d%s", n, segmentSuffix))
}

// startSegment creates segment l.next and makes it the current one.
func (l *Log) startSegment() error {
	f, err := l.fs.OpenFile(segmentName(l.dir, l.next), os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("creating WAL segment %d: %w", l.next, err)
	}
	l.f, l.dirty, l.end = f, false, Position{Segment: l.next}
	l.next++
	return nil
}

// Append writes one record to the file (not fsynced: the log survives a
// crash of the process, not of the machine; segments are fsynced when
// they are finished). A failed Append wrote nothing that a reader will
// return, and does not fail the next one.
func (l *Log) Append(rec []byte) error {
	if len(rec) == 0 || len(rec) > MaxRecordSize {
		return fmt.Errorf("WAL record of %d bytes: want 1 to %d", len(rec), MaxRecordSize)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("WAL closed")
	}
	if err := l.prepare(len(rec)); err != nil {
		return err
	}
	var hdr [headerSize]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(rec)))
	binary.BigEndian.PutUint32(hdr[4:], crc32.Checksum(rec, castagnoli))
	for _, b := range [][]byte{hdr[:], rec} {
		if err := writeAll(l.f, b); err != nil {
			l.dirty = true
			return fmt.Errorf("writing WAL segment %d: %w", l.end.Segment, err)
		}
	}
	l.end.Offset += int64(len(rec) + headerSize)
	close(l.notify)
	l.notify = make(chan struct{})
	return nil
}

// writeAll writes b, turning a short write without an error into one.
func writeAll(w io.Writer, b []byte) error {
	n, err := w.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	return err
}

// prepare makes the current segment ready for a record of n bytes: it
// cuts off what a failed write left, rotates a full segment and creates
// a segment when none is open.
func (l *Log) prepare(n int) error {
	if l.f != nil && l.dirty {
		if err := l.cutPartial(); err != nil {
			// The segment keeps a torn tail that readers stop at (after
			// every good record); go on in a new one.
			l.onFault("truncate", err)
			l.closeSegment()
		}
	}
	if l.f != nil && l.end.Offset > 0 && l.end.Offset+int64(n+headerSize) > l.segmentSize {
		l.closeSegment()
	}
	if l.f == nil {
		return l.startSegment()
	}
	return nil
}

// cutPartial truncates the current segment back to its last good record
// (the file is in append mode: the next write goes there).
func (l *Log) cutPartial() error {
	if err := l.f.Truncate(l.end.Offset); err != nil {
		return fmt.Errorf("cutting a partial record off WAL segment %d: %w", l.end.Segment, err)
	}
	l.dirty = false
	return nil
}

// closeSegment fsyncs and closes the current segment. Its faults are
// reported, not returned: what was written stays readable by this
// process, and no append depends on it.
func (l *Log) closeSegment() {
	if l.f == nil {
		return
	}
	if err := l.f.Sync(); err != nil {
		l.onFault("sync", fmt.Errorf("syncing WAL segment %d: %w", l.end.Segment, err))
	}
	if err := l.f.Close(); err != nil {
		l.onFault("close", fmt.Errorf("closing WAL segment %d: %w", l.end.Segment, err))
	}
	l.f = nil
}

// End is the position after the last record written, and a channel closed
// at the next Append.
func (l *Log) End() (Position, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.end, l.notify
}

// Close cuts off a partial record if a write failed, then fsyncs and
// closes the current segment.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	close(l.notify)
	var err error
	if l.f != nil && l.dirty {
		err = l.cutPartial()
	}
	l.closeSegment()
	return err
}

// Segment describes one segment file.
type Segment struct {
	N       int
	Size    int64
	ModTime time.Time
}

// Segments lists the segment files of dir, oldest first.
func Segments(dir string) ([]Segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing WAL: %w", err)
	}
	var segs []Segment
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, segmentSuffix) {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSuffix(name, segmentSuffix))
		if err != nil || n < 0 {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		segs = append(segs, Segment{N: n, Size: info.Size(), ModTime: info.ModTime()})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].N < segs[j].N })
	return segs, nil
}

// Remove deletes segment n unless it is the one being written.
func (l *Log) Remove(n int) error {
	l.mu.Lock()
	cur := l.end.Segment
	l.mu.Unlock()
	if n >= cur {
		return nil
	}
	if err := l.fs.Remove(segmentName(l.dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing WAL segment: %w", err)
	}
	return nil
}

// ReadRecord reads one record. It returns io.EOF at a clean end,
// io.ErrUnexpectedEOF for a torn record, and ErrCorrupt for a bad length or
// checksum.
func ReadRecord(r io.Reader, buf []byte) ([]byte, error) {
	var hdr [headerSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	// Records are never empty: a zero length is a zeroed (preallocated or
	// torn) region, whose checksum of nothing would otherwise match.
	if n == 0 || n > MaxRecordSize {
		return nil, fmt.Errorf("%w: length %d", ErrCorrupt, n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if crc32.Checksum(buf, castagnoli) != binary.BigEndian.Uint32(hdr[4:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	return buf, nil
}

// Reader follows a log from a position.
type Reader struct {
	log *Log
	pos Position
	f   *os.File
	r   *bufio.Reader
	buf []byte
	// OnCorrupt is called when the rest of a segment is skipped.
	OnCorrupt func(segment int, offset int64, err error)
}

// NewReader reads log from pos on. A position in a segment that no longer
// exists continues at the next one.
func (l *Log) NewReader(pos Position) *Reader { return &Reader{log: l, pos: pos} }

// Position is where the next record starts.
func (r *Reader) Position() Position { return r.pos }

// SkipTo moves the reader to pos (a record boundary), e.g. past records
// whose content the caller already has.
func (r *Reader) SkipTo(pos Position) {
	if pos == r.pos {
		return
	}
	r.Close()
	r.pos = pos
}

// Close releases the reader's file.
func (r *Reader) Close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// Next returns the next record and the position after it, or io.EOF (with
// a channel closed at the next Append) when it has read all there is. The
// record is valid until the next call.
func (r *Reader) Next() ([]byte, Position, <-chan struct{}, error) {
	for {
		end, more := r.log.End()
		if !r.pos.Less(end) {
			return nil, r.pos, more, io.EOF
		}
		if r.f == nil {
			if err := r.open(end); err != nil {
				return nil, r.pos, more, err
			}
			continue
		}
		limit := int64(-1)
		if r.pos.Segment == end.Segment {
			limit = end.Offset
		}
		if limit >= 0 && r.pos.Offset >= limit {
			return nil, r.pos, more, io.EOF
		}
		rec, err := ReadRecord(r.r, r.buf)
		if err == nil {
			r.buf = rec[:0]
			r.pos.Offset += int64(len(rec) + headerSize)
			return rec, r.pos, more, nil
		}
		if err != io.EOF && r.OnCorrupt != nil {
			r.OnCorrupt(r.pos.Segment, r.pos.Offset, err)
		}
		// The end of a finished segment, or a bad record: go on with the
		// next segment.
		r.Close()
		r.pos = Position{Segment: r.pos.Segment + 1}
	}
}

// open opens the segment of r.pos, or the next existing one.
func (r *Reader) open(end Position) error {
	for r.pos.Segment <= end.Segment {
		f, err := os.Open(segmentName(r.log.dir, r.pos.Segment))
		if errors.Is(err, os.ErrNotExist) {
			r.pos = Position{Segment: r.pos.Segment + 1}
			continue
		}
		if err != nil {
			return fmt.Errorf("opening WAL segment: %w", err)
		}
		if _, err := f.Seek(r.pos.Offset, io.SeekStart); err != nil {
			f.Close()
			return fmt.Errorf("seeking in WAL segment: %w", err)
		}
		r.f, r.r = f, bufio.NewReaderSize(f, 64<<10)
		return nil
	}
	return nil
}

// SavePosition records pos in dir atomically, through the log's FS.
func (l *Log) SavePosition(pos Position) error { return savePosition(l.fs, l.dir, pos) }

// SavePosition records pos in dir atomically.
func SavePosition(dir string, pos Position) error { return savePosition(faultfs.OS{}, dir, pos) }

// savePosition replaces the position file atomically (faultfs.ReplaceFile:
// temporary file, fsync, rename, directory fsync): a crash leaves the old
// position or the new one, and a failure before the rename leaves the old
// one (a position behind only resends).
func savePosition(fsys faultfs.FS, dir string, pos Position) error {
	err := faultfs.ReplaceFile(fsys, filepath.Join(dir, positionFile), func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "%d %d\n", pos.Segment, pos.Offset)
		return err
	})
	if err != nil {
		return fmt.Errorf("saving WAL position: %w", err)
	}
	return nil
}

// LoadPosition reads the position saved in dir; a missing or unreadable
// file means "from the start" (the zero Position) and ok=false.
func LoadPosition(dir string) (pos Position, ok bool) {
	b, err := os.ReadFile(filepath.Join(dir, positionFile))
	if err != nil {
		return Position{}, false
	}
	if _, err := fmt.Sscanf(string(b), "%d %d", &pos.Segment, &pos.Offset); err != nil || pos.Segment < 0 || pos.Offset < 0 {
		return Position{}, false
	}
	return pos, true
}
