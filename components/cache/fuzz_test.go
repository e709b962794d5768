package cache

import (
	"bytes"
	"testing"
	"time"
)

// FuzzDecodeSnapshot feeds arbitrary bytes to the snapshot file decoder:
// it must return an error or families that can be served, never panic.
// Seeds: a good file, and the checksum recomputed over mutated bodies so
// that the fuzzer reaches the parser behind the checksum.
func FuzzDecodeSnapshot(f *testing.F) {
	var buf bytes.Buffer
	if err := encodeSnapshot(&buf, sampleSnapshot(), time.Unix(1_800_000_001, 0)); err != nil {
		f.Fatal(err)
	}
	good := bytes.Clone(buf.Bytes())
	f.Add(good, false)
	f.Add(good[:len(good)/2], true)
	f.Add(good[:headerLen], true)
	f.Add([]byte{}, false)
	f.Add([]byte(fileMagic+"\x00\x00\x00\x01"), true)
	f.Fuzz(func(t *testing.T, data []byte, fixChecksum bool) {
		if fixChecksum {
			data = withChecksum(data)
		}
		d, err := decodeSnapshot(data)
		if err != nil {
			return
		}
		if len(d.fams) != len(d.seen) {
			t.Fatalf("%d families, %d last-seen lists", len(d.fams), len(d.seen))
		}
		for i, mf := range d.fams {
			if err := checkFamily(mf); err != nil {
				t.Fatalf("decoded a family that cannot be served: %v", err)
			}
			if len(d.seen[i]) != len(mf.Metric) {
				t.Fatalf("family %d: %d series, %d last-seen times", i, len(mf.Metric), len(d.seen[i]))
			}
		}
		// What decodes, encodes and decodes to the same.
		s := &snapshot{fams: d.fams, refreshedAt: d.refreshedAt}
		for _, seen := range d.seen {
			s.meta = append(s.meta, famMeta{seen: seen})
		}
		var out bytes.Buffer
		if err := encodeSnapshot(&out, s, d.persistedAt); err != nil {
			t.Fatal(err)
		}
		if _, err := decodeSnapshot(out.Bytes()); err != nil {
			t.Fatalf("re-encoded file does not decode: %v", err)
		}
	})
}

// withChecksum replaces the last 4 bytes of data with the checksum of the
// rest (appending them if data is too short to have a trailer).
func withChecksum(data []byte) []byte {
	body := data
	if len(data) >= headerLen+trailerLen {
		body = data[:len(data)-trailerLen]
	}
	var buf bytes.Buffer
	buf.Write(body)
	s := checksum(body)
	buf.Write([]byte{byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)})
	return buf.Bytes()
}
