package sink

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/encoded"
)

func randomFamilies(rng *rand.Rand, n int) []encoded.Family {
	fams := make([]encoded.Family, n)
	for i := range fams {
		var b strings.Builder
		name := fmt.Sprintf("fam_%03d", i)
		fmt.Fprintf(&b, "# HELP %s H.\n# TYPE %s gauge\n", name, name)
		for j := rng.IntN(300); j >= 0; j-- {
			fmt.Fprintf(&b, "%s{pod=\"pod-%d\",code=\"%d\"} %d\n", name, rng.IntN(1000), 200+rng.IntN(5), rng.IntN(1e6))
		}
		fams[i] = encoded.Family{Name: name, Text: []byte(b.String())}
	}
	return fams
}

func gunzip(t *testing.T, b []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	zr.Multistream(false) // one member, as any gzip reader expects
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("the page does not decompress (CRC and size are checked): %v", err)
	}
	return string(out)
}

// The page assembled from per-family chunks is one valid gzip member
// (checked by Go's reader and, when installed, by gzip(1)), equal to the
// families; a family whose bytes did not change keeps its chunk.
func TestGzipChunksMakeOneValidMember(t *testing.T) {
	m, err := newSelfMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	c := &Component{metrics: m}
	st := &state{}
	rng := rand.New(rand.NewPCG(3, 4))
	fams := randomFamilies(rng, 40)
	for round := uint64(1); round <= 20; round++ {
		before := c.gzPage.Load()
		// Change a few families (new bytes, as a producer hands out).
		changed := map[string]bool{}
		for k := rng.IntN(4); k > 0; k-- {
			i := rng.IntN(len(fams))
			fams[i].Text = append(bytes.Clone(fams[i].Text), fmt.Sprintf("%s{pod=\"new-%d\",code=\"1\"} 1\n", fams[i].Name, round)...)
			changed[fams[i].Name] = true
		}
		page := c.gzipped(st, []uint64{round}, fams)
		if got, want := gunzip(t, page), string(joinFamilies(fams)); got != want {
			t.Fatalf("round %d: the page decompresses to other bytes", round)
		}
		if before != nil {
			after := c.gzPage.Load()
			for _, f := range fams {
				same := &before.chunks[f.Name].z[0] == &after.chunks[f.Name].z[0]
				if same == changed[f.Name] {
					t.Fatalf("round %d: family %s changed=%v but its chunk was reused=%v", round, f.Name, changed[f.Name], same)
				}
			}
		}
		if gz, err := exec.LookPath("gzip"); err == nil {
			cmd := exec.Command(gz, "-dc")
			cmd.Stdin = bytes.NewReader(page)
			out, err := cmd.Output()
			if err != nil || string(out) != string(joinFamilies(fams)) {
				t.Fatalf("round %d: gzip(1) does not read the page back (%v)", round, err)
			}
		}
	}
	// The same versions: the same page, counted.
	p := c.gzPage.Load()
	if again := c.gzipped(st, []uint64{20}, fams); &again[0] != &p.body[0] {
		t.Fatal("unchanged versions did not reuse the page")
	}
}

func joinFamilies(fams []encoded.Family) []byte {
	var b []byte
	for _, f := range fams {
		b = append(b, f.Text...)
	}
	return b
}
