package statsd

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// differentialConfig exercises what the fast path remembers per
// signature: mapping labels merged with tags (and honor_labels), scale,
// drop, summaries, a regex mapping, unmapped names, and a TTL.
const differentialConfig = `
listen_udp = "127.0.0.1:0"
max_series = 5000
mapping_defaults {
  observer_type = "histogram"
  ttl           = "1h"
}
mapping {
  match         = "sum.*"
  name          = "sum_$1"
  observer_type = "summary"
}
mapping {
  match  = "h.*"
  name   = "h_$1"
  labels = { le_x = "$1" }
}
mapping {
  match  = "shop.*.orders"
  name   = "orders_total"
  labels = { shop = "$1" }
  honor_labels = true
}
mapping {
  match  = "app.*.req"
  name   = "app_requests_total"
  labels = { app = "$1", env = "default" }
}
mapping {
  match  = "noisy.*"
  action = "drop"
  name   = "dropped"
}
mapping {
  match = "scaled.*"
  name  = "scaled_$1"
  scale = 0.001
}
mapping {
  match = "^rx_(.*)$"
  match_type = "regex"
  name  = "rx_$${1}"
  scale = 1e300
}
`

// differentialLines are lines of every shape the fast path takes or must
// leave to the full path.
var differentialLines = []string{
	"a:1|c", "a:2|c|@0.5", "a:1|c|@1.0|#env:prod,region:eu", "a:1|c|#region:eu,env:prod",
	"a:-1|c", "a:NaN|c", "a:+Inf|c", "a:1e400|c", "a:-0|c", "a:0x1p-2|c",
	"lat:12.5|ms", "lat:12.5|ms|@0.25", "lat:1|ms|@0.3|#env:prod", "lat:1|ms|#env:prod|@0.5",
	"lat:1|ms|@0.00001", "lat:1|h|#le:0.5", "lat:1|h", "lat:1|d|@0.5", "lat:Inf|h",
	"g:4|g", "g:+3|g", "g:-2|g", "g:5|g|@0.5", "g:1|g|#a:b",
	"sum.x:1|ms|#quantile:1", "sum.x:2|ms", "sum.y:3|h|@0.5",
	"h.x:1|h", "h.x:1|h|#le:2", "h.y:1|ms|#k:v",
	"shop.x.orders:2|c|#shop:y", "shop.x.orders:2|c", "shop.z.orders:1|c|#other:1",
	"app.web.req:1|c", "app.web.req:1|c|#env:prod", "app.api.req:1|c|#env:,x:1",
	"noisy.x:1|c", "noisy.y:1|ms|@0.5", "scaled.x:2000|ms", "scaled.y:-5|c", "rx_a:1|c", "rx_b:1e10|c",
	"t:1|c|#bad,ok:1", "t:1|c|#:x", "t:1|c|#a.b-c:d", "t:1|c|#__name__:x", "t:1|c|#", "t:1|c|##a:b",
	"t:1|c|#0a:b", "t:1|c|#a:b,a:c", "t:1|c|#a:b|#c:d", "t:1|c|@0.5|@0.5", "t:1|c|", "t:1|c||#a:b",
	"t:1|c|T1656581400", "t:1|c|c:abc", "t:1|c|@x", "t:1|c|@0", "t:1|c|@2", "t:1|c|@-1",
	"t:1:2|c", "t:1|c:2|c", "t:1:2:3|ms|#a:b", "t:1|s", "t:1|x", "t:|c", "t: 1|c", ":1|c",
	"t", "t:1", "t.x,host=a:1|c", "t.y#host=a:1|c", "t.z[host=a]:1|c", "t.w[host=a:1|c",
	"t.x,host=a:1|c|#b:c", "ä:1|c", "t:1|c|#k:ä", "1abc:1|c", "t_count:1|c", "t:1|ms",
	"t-dash:1|c", "t:1|ms|@1e-320", "t:1|c|#k:v\r",
}

// differentialPair is two receivers with the same configuration, one
// with the fast path off, and a processor of each kept across inputs.
type differentialPair struct {
	fast, full   *Receiver
	hFast, hFull *pipelinetest.Harness
	pFast, pFull *processor
}

func newDifferentialPair(tb testing.TB) *differentialPair {
	d := &differentialPair{}
	d.hFast = pipelinetest.New(tb, "statsd_receiver", differentialConfig)
	d.hFull = pipelinetest.New(tb, "statsd_receiver", differentialConfig)
	d.fast, d.full = d.hFast.Component.(*Receiver), d.hFull.Component.(*Receiver)
	d.full.hooks.fullPathOnly = true
	d.pFast, d.pFull = d.fast.newProcessor(), d.full.newProcessor()
	return d
}

func (d *differentialPair) packet(b []byte) {
	d.pFast.packet(b)
	d.pFull.packet(b)
}

func (d *differentialPair) flush() {
	d.pFast.flush()
	d.pFull.flush()
}

// compare fails unless both receivers hold the same series and counted
// the same in every self-metric.
func (d *differentialPair) compare(t *testing.T, input string) {
	t.Helper()
	for _, g := range []struct {
		what       string
		fast, full prometheus.Gatherer
	}{
		{"series", d.fast.series(), d.full.series()},
		{"self-metrics", d.hFast.Registry, d.hFull.Registry},
	} {
		a, b := exposition(t, g.fast), exposition(t, g.full)
		if a != b {
			if dir := os.Getenv("SLUICE_DIFF_DIR"); dir != "" {
				os.WriteFile(dir+"/fast.txt", []byte(a), 0o644)
				os.WriteFile(dir+"/full.txt", []byte(b), 0o644)
			}
			t.Fatalf("after %q the fast path's %s differ from the full path's:\n%s", input, g.what, diffLines(b, a))
		}
	}
}

// exposition is g's families in the text format, without created
// timestamps (the two receivers create their series at different times),
// its lines sorted.
func exposition(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "statsd_metric_mapper_cache_") {
			// The length is set by a goroutine upstream starts after each
			// miss. Gets and hits: a fast-path line counts as a hit, as a
			// memo hit does; the full path alone, once its memo was
			// emptied (full), asks upstream's LRU, which may have evicted
			// the name meanwhile. The mapping is the same either way.
			continue
		}
		for _, m := range mf.Metric {
			clearCreated(m)
		}
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatalf("encode %s: %v", mf.GetName(), err)
		}
	}
	// A family's series come from map iterations, in no fixed order.
	lines := strings.Split(buf.String(), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func clearCreated(m *dto.Metric) {
	if m.Counter != nil {
		m.Counter.CreatedTimestamp = nil
	}
	if m.Histogram != nil {
		m.Histogram.CreatedTimestamp = nil
	}
	if m.Summary != nil {
		m.Summary.CreatedTimestamp = nil
	}
}

// diffLines lists the lines only in want (-) or only in got (+).
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out []string
	for _, l := range w {
		if !slices.Contains(g, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// TestFastPathMatchesFullPath sends every line shape several times (the
// fast path remembers a signature at its second sighting and applies it
// from the third) and checks that the series and self-metrics are those
// of the full path alone, and that the fast path did take lines.
func TestFastPathMatchesFullPath(t *testing.T) {
	d := newDifferentialPair(t)
	for round := range 4 {
		for i, l := range differentialLines {
			d.packet([]byte(l))
			if i%7 == round {
				d.flush()
			}
		}
		d.flush()
		d.compare(t, fmt.Sprintf("round %d", round))
	}
	// Several lines in one datagram, interleaved.
	d.packet([]byte(strings.Join(differentialLines, "\n")))
	d.flush()
	d.compare(t, "all lines in one datagram")
	if n := d.fast.fastLines.Load(); n < int64(len(differentialLines)) {
		t.Fatalf("the fast path applied %d lines; want at least %d", n, len(differentialLines))
	}
	if n := d.full.fastLines.Load(); n != 0 {
		t.Fatalf("with the fast path off, %d lines took it", n)
	}
}

// TestFastPathAfterReload checks that a remembered signature follows a
// reload that maps it differently.
func TestFastPathAfterReload(t *testing.T) {
	h := pipelinetest.New(t, "statsd_receiver", "listen_udp = \"127.0.0.1:0\"\nmapping {\n  match = \"x.*\"\n  name = \"old_$1\"\n}\n")
	r := h.Component.(*Receiver)
	p := r.newProcessor()
	for range 5 {
		p.packet([]byte("x.a:1|c|#k:v"))
		p.flush()
	}
	if got := value(t, r.series(), "old_a", map[string]string{"k": "v"}); got != 5 {
		t.Fatalf("old_a = %v, want 5", got)
	}
	if r.fastLines.Load() == 0 {
		t.Fatal("the fast path took no line")
	}
	h.Update("listen_udp = \"127.0.0.1:0\"\nmapping {\n  match = \"x.*\"\n  name = \"new_$1\"\n}\n")
	for range 5 {
		p.packet([]byte("x.a:1|c|#k:v"))
		p.flush()
	}
	if got := value(t, r.series(), "new_a", map[string]string{"k": "v"}); got != 5 {
		t.Fatalf("new_a = %v after the reload, want 5", got)
	}
}

// TestFastPathAfterSweep checks that a remembered series removed by its
// TTL is created again, not updated in the void.
func TestFastPathAfterSweep(t *testing.T) {
	h := pipelinetest.New(t, "statsd_receiver", "listen_udp = \"127.0.0.1:0\"\nmapping_defaults {\n  ttl = \"1ms\"\n}\n")
	r := h.Component.(*Receiver)
	p := r.newProcessor()
	for range 4 {
		p.packet([]byte("swept:1|c|#k:v"))
		p.flush()
	}
	if r.fastLines.Load() == 0 {
		t.Fatal("the fast path took no line")
	}
	s := r.shards[r.shardOf("swept")]
	for seriesCount(t, r.series()) != 0 {
		s.lockedSweep()
	}
	p.packet([]byte("swept:1|c|#k:v"))
	p.flush()
	if got := value(t, r.series(), "swept", map[string]string{"k": "v"}); got != 1 {
		t.Fatalf("swept = %v after the sweep, want 1 (a new series)", got)
	}
}

// FuzzFastPathMatchesFullPath feeds each input three times to a receiver
// with the fast path and to one without, and checks that they hold the
// same series and counted the same. Run it with
//
//	go test -run '^$' -fuzz FuzzFastPathMatchesFullPath -fuzztime 60s ./components/statsd/
func FuzzFastPathMatchesFullPath(f *testing.F) {
	for _, l := range differentialLines {
		f.Add(l)
	}
	f.Add("a:1|c\na:1|c|#x:y\nlat:1|ms|@0.5")
	d := newDifferentialPair(f)
	f.Fuzz(func(t *testing.T, packet string) {
		for range 3 {
			d.packet([]byte(packet))
			d.flush()
		}
		d.compare(t, packet)
	})
}
