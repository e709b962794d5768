package cache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protodelim"

	"github.com/sluicehq/sluice/internal/faultfs"
	"github.com/sluicehq/sluice/internal/gathermerge"
)

// The snapshot file, written after every successful refresh:
//
//	header   magic "SLUCACHE", version u32, persisted-at i64, refreshed-at i64,
//	         number of families u32, reserved u32 (big endian; times in Unix ns)
//	body     per family: the dto.MetricFamily, length-delimited protobuf
//	         (protodelim: uvarint length, then the message), then a uvarint
//	         count of its metrics and, per metric, a varint: refreshed-at
//	         minus the time the series was last seen
//	trailer  CRC-32C (Castagnoli) of header and body, u32
//
// Protobuf keeps every sample exactly as the input produced it (value,
// timestamp, exemplars, native histograms). A file that is truncated, has
// a bad checksum or does not decode is reported and ignored as a whole.
//
// Writes go through a faultfs.FS (tests inject ENOSPC, EIO, EROFS and
// short writes at each create, write, fsync, rename and directory sync).
// A failed write leaves the previous file whole (faultfs.ReplaceFile), is
// counted, logged at most every 30s and makes the cache unhealthy; the
// next refresh writes again, so the cache recovers by itself when the
// disk does.
const (
	fileName = "snapshot.bin"
	// oldTempPattern: temporary files of versions before faultfs.
	oldTempPattern = ".snapshot-*.tmp"
	fileMagic      = "SLUCACHE"
	fileVersion    = 1
	headerLen      = 8 + 4 + 8 + 8 + 4 + 4
	trailerLen     = 4
	maxFileSize    = 1 << 30 // refuse to read more than 1 GiB back
	opWrite        = "write"
	opRestore      = "restore"
)

// checksum is CRC-32C. The table is made on first use (MakeTable keeps it
// after that), not at init: a package-level table cost every binary with
// the cache 12 KB and 0.2 ms at start, persisting or not.
func checksum(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

// persister writes the snapshot file; it is used by Run only.
type persister struct {
	fs  faultfs.FS
	dir string
	buf bytes.Buffer // reused between writes
}

// encodeSnapshot writes s in the file format to w.
func encodeSnapshot(w *bytes.Buffer, s *snapshot, persistedAt time.Time) error {
	w.Reset()
	var h [headerLen]byte
	copy(h[:], fileMagic)
	binary.BigEndian.PutUint32(h[8:], fileVersion)
	binary.BigEndian.PutUint64(h[12:], uint64(persistedAt.UnixNano()))
	binary.BigEndian.PutUint64(h[20:], uint64(s.refreshedAt.UnixNano()))
	binary.BigEndian.PutUint32(h[28:], uint32(len(s.fams)))
	w.Write(h[:])
	ref := s.refreshedAt.UnixNano()
	var vb [binary.MaxVarintLen64]byte
	for i, mf := range s.fams {
		if _, err := protodelim.MarshalTo(w, mf); err != nil {
			return fmt.Errorf("family %q: %w", mf.GetName(), err)
		}
		w.Write(vb[:binary.PutUvarint(vb[:], uint64(len(mf.Metric)))])
		for _, seen := range s.meta[i].seen {
			w.Write(vb[:binary.PutVarint(vb[:], ref-seen)])
		}
	}
	var t [trailerLen]byte
	binary.BigEndian.PutUint32(t[:], checksum(w.Bytes()))
	w.Write(t[:])
	return nil
}

// decoded is a snapshot file read back.
type decoded struct {
	persistedAt, refreshedAt time.Time
	fams                     []*dto.MetricFamily
	seen                     [][]int64
}

// decodeSnapshot parses a snapshot file. Any inconsistency is an error:
// nothing of a bad file is used.
func decodeSnapshot(data []byte) (*decoded, error) {
	if len(data) < headerLen+trailerLen {
		return nil, fmt.Errorf("truncated: %d bytes, a snapshot file has at least %d", len(data), headerLen+trailerLen)
	}
	if string(data[:8]) != fileMagic {
		return nil, errors.New("not a cache snapshot file (bad magic)")
	}
	if v := binary.BigEndian.Uint32(data[8:]); v != fileVersion {
		return nil, fmt.Errorf("snapshot file version %d, this agent reads version %d", v, fileVersion)
	}
	body, trailer := data[:len(data)-trailerLen], data[len(data)-trailerLen:]
	if got, want := checksum(body), binary.BigEndian.Uint32(trailer); got != want {
		return nil, fmt.Errorf("checksum mismatch (file truncated or corrupt): computed %08x, stored %08x", got, want)
	}
	d := &decoded{
		persistedAt: time.Unix(0, int64(binary.BigEndian.Uint64(data[12:]))),
		refreshedAt: time.Unix(0, int64(binary.BigEndian.Uint64(data[20:]))),
	}
	n := binary.BigEndian.Uint32(data[28:])
	r := bytes.NewReader(body[headerLen:])
	if uint64(n) > uint64(r.Len()) {
		return nil, fmt.Errorf("header claims %d families in %d bytes", n, r.Len())
	}
	ref := d.refreshedAt.UnixNano()
	for i := range n {
		mf := &dto.MetricFamily{}
		if err := (protodelim.UnmarshalOptions{MaxSize: int64(r.Len())}).UnmarshalFrom(r, mf); err != nil {
			return nil, fmt.Errorf("family %d: %w", i, err)
		}
		if err := checkFamily(mf); err != nil {
			return nil, fmt.Errorf("family %d: %w", i, err)
		}
		count, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, fmt.Errorf("family %q: series count: %w", mf.GetName(), err)
		}
		if count != uint64(len(mf.Metric)) {
			return nil, fmt.Errorf("family %q: %d last-seen times for %d series", mf.GetName(), count, len(mf.Metric))
		}
		seen := make([]int64, count)
		for j := range seen {
			delta, err := binary.ReadVarint(r)
			if err != nil {
				return nil, fmt.Errorf("family %q: last-seen time %d: %w", mf.GetName(), j, err)
			}
			seen[j] = ref - delta
		}
		d.fams = append(d.fams, mf)
		d.seen = append(d.seen, seen)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%d bytes after the last family", r.Len())
	}
	return d, nil
}

// checkFamily rejects a family that could not be served: no name, an
// unknown type, a metric missing or without the value its type calls for.
func checkFamily(mf *dto.MetricFamily) error {
	if mf.GetName() == "" {
		return errors.New("family without a name")
	}
	if _, ok := dto.MetricType_name[int32(mf.GetType())]; !ok {
		return fmt.Errorf("family %q: unknown type %d", mf.GetName(), mf.GetType())
	}
	for j, m := range mf.Metric {
		if !gathermerge.HasValue(mf.GetType(), m) {
			return fmt.Errorf("family %q: series %d has no %s value", mf.GetName(), j, mf.GetType())
		}
	}
	return nil
}

// write replaces the snapshot file atomically: a temporary file in the
// same directory, fsync, rename over the old file, fsync of the directory.
// A crash at any point leaves either the old file or the new one.
func (p *persister) write(s *snapshot, now time.Time) error {
	if p.dir == "" {
		return errors.New("no storage directory")
	}
	if err := encodeSnapshot(&p.buf, s, now); err != nil {
		return err
	}
	if err := p.fs.MkdirAll(p.dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", p.dir, err)
	}
	return faultfs.ReplaceFile(p.fs, filepath.Join(p.dir, fileName), func(w io.Writer) error {
		_, err := w.Write(p.buf.Bytes())
		return err
	})
}

// read reads the snapshot file back; (nil, nil) when there is none. It
// removes temporary files a crash left behind.
func (p *persister) read() (*decoded, error) {
	if p.dir == "" {
		return nil, nil
	}
	for _, pattern := range []string{faultfs.TempPattern(filepath.Join(p.dir, fileName)), filepath.Join(p.dir, oldTempPattern)} {
		tmps, _ := filepath.Glob(pattern)
		for _, t := range tmps {
			_ = p.fs.Remove(t)
		}
	}
	f, err := os.Open(filepath.Join(p.dir, fileName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxFileSize)
	}
	return decodeSnapshot(data)
}

// startRestore starts the restore once; c.restored is closed when it is
// over (at once when persist is off).
func (c *Component) startRestore() {
	c.restoreOnce.Do(func() {
		cfg := c.cfg.Load()
		if !cfg.persist {
			close(c.restored)
			return
		}
		go func() {
			defer close(c.restored)
			c.restore(cfg)
		}()
	})
}

// restore reads the snapshot file into the snapshot. A series counts as
// last seen when it was last seen before it was persisted, so one older
// than max_staleness is not served; samples keep their own timestamps,
// or none, exactly as persisted.
func (c *Component) restore(cfg *config) {
	d, err := c.persist.read()
	if err != nil {
		c.metrics.persistErrors.WithLabelValues(opRestore).Inc()
		c.opts.Logger.Error("the cache's snapshot file is unusable: ignored, starting empty",
			"file", filepath.Join(c.persist.dir, fileName), "err", err)
		return
	}
	if d == nil {
		return
	}
	s := &snapshot{fams: d.fams, refreshedAt: d.refreshedAt, meta: make([]famMeta, len(d.fams))}
	for i, mf := range d.fams {
		restored := make([]bool, len(mf.Metric))
		for j := range restored {
			restored[j] = true
		}
		s.meta[i] = famMeta{seen: d.seen[i], restored: restored}
	}
	s.count()
	total := s.series
	s, expired := expire(s, c.now(), cfg.maxStaleness)
	s.count()
	c.storeSnapshot(s)
	c.opts.Logger.Info("snapshot restored", "series", s.series, "expired", expired, "of", total,
		"persisted_at", d.persistedAt.UTC().Format(time.RFC3339), "refreshed_at", d.refreshedAt.UTC().Format(time.RFC3339))
}
