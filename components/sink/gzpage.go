package sink

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
	"slices"

	"github.com/sluicehq/sluice/encoded"
)

// Compressing the page was most of a gzip scrape once the families came
// encoded (0.73 µs per series of 100k). When every input says its
// version (encoded.Versioned), a gzip scrape reuses what it can:
//
//   - every input at the version of the last compressed page: that page,
//     as it is;
//   - otherwise each family whose bytes are those of the last gzip scrape
//     (the same slice: a Gatherer never modifies bytes it handed out)
//     keeps its compressed chunk, and only the others are compressed.
//
// A chunk is a family compressed on its own and ended by a sync flush
// (byte-aligned, not final), so chunks concatenate into one valid deflate
// stream, which a final empty block ends; the gzip member around it is
// written here (header, CRC-32 of the page, its size). Back-references do
// not cross families: the page is a little larger than one compressed as a
// whole (a few per cent for families of hundreds of series).
//
// Memory, per sink: one compressed page, and the chunks of its families
// with the family bytes they were made from (until the next gzip scrape
// replaces them; dropped at an Update). Inputs without versions are
// compressed at every scrape, streaming, and nothing is kept.

// gzPage is a compressed page and what it was compressed from: the
// state's inputs at these versions. The bytes do not depend on the text
// format variant negotiated (serveEncoded serves only bytes that every
// variant it accepts writes alike), so one page serves every scraper.
type gzPage struct {
	st       *state
	versions []uint64
	body     []byte
	chunks   map[string]gzChunk // by family name
}

// gzChunk is one family compressed, and the bytes it was compressed from.
type gzChunk struct {
	text []byte
	z    []byte
}

// gzHeader is a gzip member header: deflate, no flags, no time, unknown OS.
var gzHeader = [10]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

// finalBlock is an empty final deflate block (fixed Huffman, end of block).
var finalBlock = [2]byte{0x03, 0x00}

// gzipped returns fams compressed (see above). Concurrent scrapes that
// find no page compress once (gzMu).
func (c *Component) gzipped(st *state, versions []uint64, fams []encoded.Family) []byte {
	if p := c.gzPage.Load(); p != nil && p.st == st && slices.Equal(p.versions, versions) {
		c.metrics.gzipReused.Inc()
		return p.body
	}
	c.gzMu.Lock()
	defer c.gzMu.Unlock()
	old := c.gzPage.Load()
	if old != nil && old.st == st && slices.Equal(old.versions, versions) {
		c.metrics.gzipReused.Inc()
		return old.body
	}
	var oldChunks map[string]gzChunk
	if old != nil {
		oldChunks = old.chunks
	}
	chunks := make(map[string]gzChunk, len(fams))
	size := len(gzHeader) + len(finalBlock) + 8
	var crc uint32
	var total uint32
	for _, f := range fams {
		ch, ok := oldChunks[f.Name]
		if !ok || !sameBytes(ch.text, f.Text) {
			ch = c.compressChunk(f.Text)
		}
		chunks[f.Name] = ch
		size += len(ch.z)
		crc = crc32.Update(crc, crc32.IEEETable, f.Text) // GB/s: a millisecond for 100k series
		total += uint32(len(f.Text))
	}
	body := make([]byte, 0, size)
	body = append(body, gzHeader[:]...)
	for _, f := range fams {
		body = append(body, chunks[f.Name].z...)
	}
	body = append(body, finalBlock[:]...)
	body = binary.LittleEndian.AppendUint32(body, crc)
	body = binary.LittleEndian.AppendUint32(body, total) // ISIZE: the size mod 2^32
	c.gzPage.Store(&gzPage{st: st, versions: versions, body: body, chunks: chunks})
	return body
}

// compressChunk compresses one family's bytes into a sync-flushed deflate
// chunk. Called with gzMu held.
func (c *Component) compressChunk(text []byte) gzChunk {
	var buf bytes.Buffer
	if c.flate == nil {
		c.flate, _ = flate.NewWriter(&buf, flate.DefaultCompression) // the level is valid
	} else {
		c.flate.Reset(&buf)
	}
	_, _ = c.flate.Write(text) // writes to memory do not fail
	_ = c.flate.Flush()
	return gzChunk{text: text, z: buf.Bytes()}
}

// sameBytes reports whether a and b are the same slice of memory. The
// chunk holds a, so its memory cannot have been reused for b.
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
