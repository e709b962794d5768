package cache

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

const persistBody = `
  input            = test.in
  refresh_interval = "100ms"
  max_staleness    = "10m"
  persist          = true
`

// stamped is a gatherer whose one sample carries its own timestamp.
type stamped struct{}

func (stamped) Gather() ([]*dto.MetricFamily, error) {
	return []*dto.MetricFamily{{
		Name: proto.String("job_last_run"), Help: proto.String("h"), Type: dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(7)}, TimestampMs: proto.Int64(1_700_000_000_123)}},
	}}, nil
}

// persisted runs a cache over in until its file holds want series, then
// stops it (as a crash would: nothing is written at stop).
func persisted(t *testing.T, dir string, in prometheus.Gatherer, clk *clock, want int) {
	t.Helper()
	i := build(t, persistBody, dir, in, clk.now)
	i.start()
	pipelinetest.Eventually(t, wait, func() bool { return metric(t, i.reg, "sluice_cache_persisted_series") == float64(want) }, "persisted")
	i.stop()
}

// A restarted cache serves the persisted values at its first scrape, even
// before Run starts and with an input that has nothing yet; timestamps are
// kept as they were, none invented.
func TestRestoreBeforeFirstScrape(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	in := newInput()
	in.gaugeVec("orders", "status").WithLabelValues("paid").Set(3)
	persisted(t, dir, prometheus.Gatherers{in.reg, stamped{}}, clk, 2)

	clk.advance(time.Minute)
	empty := newInput()
	release := empty.hang() // the restarted input does not answer at all
	defer release()
	i := build(t, persistBody, dir, empty, clk.now)
	fams, err := i.c.Gather() // before Run
	if err != nil {
		t.Fatal(err)
	}
	got := served(t, i.c)
	if got["orders,status=paid"] != 3 || got["job_last_run"] != 7 {
		t.Fatalf("first scrape after restart serves %v, want the persisted values", got)
	}
	for _, mf := range fams {
		for _, m := range mf.Metric {
			switch mf.GetName() {
			case "job_last_run":
				if m.GetTimestampMs() != 1_700_000_000_123 {
					t.Errorf("restored timestamp %d, want the persisted 1700000000123", m.GetTimestampMs())
				}
			default:
				if m.TimestampMs != nil {
					t.Errorf("%s: restored sample got a timestamp %d: timestamps must not be invented", mf.GetName(), m.GetTimestampMs())
				}
			}
		}
		if mf.GetHelp() == "" || mf.GetType() != dto.MetricType_GAUGE {
			t.Errorf("family metadata lost: %v", mf)
		}
	}
	if metric(t, i.reg, "sluice_cache_restored") != 1 || metric(t, i.reg, "sluice_cache_series") != 2 {
		t.Error("sluice_cache_restored should be 1 and sluice_cache_series 2 while restored series are served")
	}
	if age := metric(t, i.reg, "sluice_cache_age_seconds"); age < 60 {
		t.Errorf("age after restore = %v, want the age of the persisted refresh (>= 60s)", age)
	}

	// Run: the input hangs, the restored series stay.
	i.start()
	release()
	empty.gaugeVec("orders", "status").WithLabelValues("paid").Set(4)
	pipelinetest.Eventually(t, wait, func() bool { return served(t, i.c)["orders,status=paid"] == 4 }, "fresh value")
	if served(t, i.c)["job_last_run"] != 7 {
		t.Error("restored series missing from the input was dropped before max_staleness")
	}
	if metric(t, i.reg, "sluice_cache_restored") != 1 {
		t.Error("job_last_run is still served from disk: restored should stay 1")
	}
}

// A snapshot older than max_staleness is not served.
func TestRestoreSkipsExpiredSnapshot(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	in := newInput()
	in.gaugeVec("orders", "status").WithLabelValues("paid").Set(3)
	persisted(t, dir, in, clk, 1)
	clk.advance(11 * time.Minute)
	i := build(t, persistBody, dir, newInput(), clk.now)
	if got := served(t, i.c); len(got) != 0 {
		t.Errorf("a snapshot older than max_staleness was served: %v", got)
	}
	if metric(t, i.reg, "sluice_cache_restored") != 0 {
		t.Error("restored = 1 with nothing restored")
	}
}

// A corrupt, truncated or foreign file is reported (log, self-metric) and
// ignored: the cache starts empty, refreshes, and writes a good file.
func TestCorruptSnapshotFileIgnored(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	in := newInput()
	in.gaugeVec("orders", "status").WithLabelValues("paid").Set(3)
	persisted(t, dir, in, clk, 1)
	good, err := os.ReadFile(filepath.Join(dir, fileName))
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x40
	badVersion := bytes.Clone(good)
	badVersion[11] = 9
	for name, data := range map[string][]byte{
		"empty":       {},
		"header only": good[:headerLen],
		"truncated":   good[:len(good)-5],
		"bit flip":    flipped,
		"garbage":     bytes.Repeat([]byte("not a snapshot "), 40),
		"version":     badVersion,
	} {
		t.Run(name, func(t *testing.T) {
			d := t.TempDir()
			if err := os.WriteFile(filepath.Join(d, fileName), data, 0o644); err != nil {
				t.Fatal(err)
			}
			log := &pipelinetest.Buffer{}
			i := build(t, persistBody, d, in, clk.now)
			i.c.opts.Logger = slogTo(log)
			if got := served(t, i.c); len(got) != 0 {
				t.Errorf("served %v from a bad file", got)
			}
			if got := metric(t, i.reg, "sluice_cache_persist_errors_total", "op", "restore"); got != 1 {
				t.Errorf("restore errors = %v, want 1", got)
			}
			if !strings.Contains(log.String(), "snapshot file is unusable") {
				t.Errorf("not logged: %s", log.String())
			}
			i.start()
			pipelinetest.Eventually(t, wait, func() bool { return metric(t, i.reg, "sluice_cache_persisted_series") == 1 }, "rewritten")
			i.stop()
			b, err := os.ReadFile(filepath.Join(d, fileName))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := decodeSnapshot(b); err != nil {
				t.Errorf("the rewritten file does not decode: %v", err)
			}
		})
	}
	if _, err := decodeSnapshot(good); err != nil {
		t.Fatalf("the good file does not decode: %v", err)
	}
}

// A temporary file left by a crash during a write is removed, and the last
// complete file is used.
func TestLeftoverTempFileRemoved(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	in := newInput()
	in.gaugeVec("orders", "status").WithLabelValues("paid").Set(3)
	persisted(t, dir, in, clk, 1)
	tmp := filepath.Join(dir, ".snapshot-123.tmp")
	if err := os.WriteFile(tmp, []byte("half a snap"), 0o644); err != nil {
		t.Fatal(err)
	}
	i := build(t, persistBody, dir, in, clk.now)
	if served(t, i.c)["orders,status=paid"] != 3 {
		t.Error("the complete file was not restored")
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("leftover temp file still there: %v", err)
	}
}

// Encoding round-trips every family type, labels, timestamps and the
// per-series last-seen times.
func TestSnapshotRoundTrip(t *testing.T) {
	s := sampleSnapshot()
	var buf bytes.Buffer
	if err := encodeSnapshot(&buf, s, s.refreshedAt.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	d, err := decodeSnapshot(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !d.refreshedAt.Equal(s.refreshedAt) || !d.persistedAt.Equal(s.refreshedAt.Add(time.Second)) {
		t.Errorf("times: %v %v", d.refreshedAt, d.persistedAt)
	}
	if len(d.fams) != len(s.fams) {
		t.Fatalf("%d families, want %d", len(d.fams), len(s.fams))
	}
	for i := range s.fams {
		if !proto.Equal(d.fams[i], s.fams[i]) {
			t.Errorf("family %d: got %v, want %v", i, d.fams[i], s.fams[i])
		}
		for j := range s.meta[i].seen {
			if d.seen[i][j] != s.meta[i].seen[j] {
				t.Errorf("family %d series %d: seen %d, want %d", i, j, d.seen[i][j], s.meta[i].seen[j])
			}
		}
	}
}

func sampleSnapshot() *snapshot {
	at := time.Unix(1_800_000_000, 5)
	lp := func(n, v string) *dto.LabelPair { return &dto.LabelPair{Name: proto.String(n), Value: proto.String(v)} }
	s := &snapshot{refreshedAt: at, fams: []*dto.MetricFamily{
		{Name: proto.String("a_total"), Help: proto.String("A."), Type: dto.MetricType_COUNTER.Enum(), Metric: []*dto.Metric{
			{Label: []*dto.LabelPair{lp("x", "1")}, Counter: &dto.Counter{Value: proto.Float64(1)}},
			{Label: []*dto.LabelPair{lp("x", "2")}, Counter: &dto.Counter{Value: proto.Float64(2)}, TimestampMs: proto.Int64(42)},
		}},
		{Name: proto.String("h"), Type: dto.MetricType_HISTOGRAM.Enum(), Metric: []*dto.Metric{
			{Histogram: &dto.Histogram{SampleCount: proto.Uint64(3), SampleSum: proto.Float64(1.5),
				Bucket: []*dto.Bucket{{UpperBound: proto.Float64(1), CumulativeCount: proto.Uint64(2)}}}},
		}},
		{Name: proto.String("s"), Type: dto.MetricType_SUMMARY.Enum(), Metric: []*dto.Metric{
			{Summary: &dto.Summary{SampleCount: proto.Uint64(1), SampleSum: proto.Float64(2),
				Quantile: []*dto.Quantile{{Quantile: proto.Float64(0.5), Value: proto.Float64(2)}}}},
		}},
		{Name: proto.String("u"), Type: dto.MetricType_UNTYPED.Enum(), Metric: []*dto.Metric{{Untyped: &dto.Untyped{Value: proto.Float64(-1)}}}},
	}}
	for i, mf := range s.fams {
		seen := filled(len(mf.Metric), at.UnixNano())
		if i == 0 {
			seen[1] = at.Add(-3 * time.Minute).UnixNano()
		}
		s.meta = append(s.meta, famMeta{seen: seen})
	}
	s.count()
	return s
}
