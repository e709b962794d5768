package store

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/statsd_exporter/pkg/mapper"

	"github.com/sluicehq/sluice/encoded"
)

// The vocabulary of the text tests: values and helps that need escaping,
// names that are not legacy Prometheus names (gathered through dto), and
// every float the text format spells specially.
var (
	textNames  = []string{"a", "a_sum", "b", "b_count", "c_total", "lat", "lat_bucket", "dotted.name", "ünï"}
	textLabels = []string{"env", "host", "zone", "a_b", "dotted.label"}
	textValues = []string{"", "x", "y", `quote"d`, `back\slash`, "new\nline", "ä", "x\xffy", `\"` + "\n", "a,b=c}"}
	textFloats = []float64{0, 1, -1, 2.5, 0.1, 1e-3, 1e6, 1e21, 123456789, -3, math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 5e-324}
	textHelps  = []string{"", "plain help", `help with \ backslash`, "help with\nnewline", `help "quoted"`}
)

// runText decodes data into operations on a store (updates of every kind,
// clock steps, sweeps that empty families) and, at every check and at
// the end, compares AppendText with Gather encoded by expfmt.
func runText(t *testing.T, data []byte, seen map[string]bool) {
	t.Helper()
	defaults := mapper.MapperConfigDefaults{HistogramOptions: mapper.HistogramOptions{Buckets: []float64{0.1, 1, 10}}}
	now := time.Unix(1_700_000_000, 0)
	st := New("default help")
	next := decoder(&data)
	for step := 0; len(data) > 0 && step < 300; step++ {
		switch c := next(); c % 8 {
		case 0:
			now = now.Add(time.Duration(next()%8) * 500 * time.Millisecond)
		case 1:
			st.Sweep(st.Now(now))
		case 2:
			compareText(t, st, seen)
		default:
			name := textNames[next()%len(textNames)]
			kind := Kind(next() % 4)
			labels := map[string]string{}
			for n := next() % 3; n > 0; n-- {
				labels[textLabels[next()%len(textLabels)]] = textValues[next()%len(textValues)]
			}
			sp := Spec{Help: textHelps[next()%len(textHelps)], Mapping: mappings[next()%len(mappings)], Defaults: &defaults}
			v := textFloats[next()%len(textFloats)]
			s, _, _, err := st.Get(name, kind, labels, sp, st.Now(now))
			if err != nil {
				continue // conflicts and invalid UTF-8: the store's own tests cover them
			}
			switch kind {
			case Counter:
				if v >= 0 || math.IsNaN(v) {
					s.Add(v)
				}
			case Gauge:
				if c&8 != 0 {
					s.AddGauge(v)
				} else {
					s.Set(v)
				}
			default:
				s.Observe(v)
			}
		}
	}
	compareText(t, st, seen)
}

// compareText fails unless st's AppendText, sorted by name, is exactly
// what Gather's families give through encoded.Encode: the same names,
// bytes and flags.
func compareText(t *testing.T, st *Store, seen map[string]bool) {
	t.Helper()
	mfs := st.Gather(nil)
	slices.SortFunc(mfs, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	want, err := encoded.Encode(mfs)
	if err != nil {
		t.Fatalf("encoding the gather: %v", err)
	}
	got, err := st.AppendText(nil)
	if err != nil {
		t.Fatalf("AppendText: %v", err)
	}
	slices.SortFunc(got, func(a, b encoded.Family) int { return strings.Compare(a.Name, b.Name) })
	if len(got) != len(want) {
		t.Fatalf("AppendText: %d families, the gather %d:\n%s\n---\n%s", len(got), len(want), join(got), join(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || !bytes.Equal(g.Text, w.Text) || g.Timestamps != w.Timestamps || g.Escaped != w.Escaped {
			t.Fatalf("family %d differs:\n--- gathered and encoded (escaped %v)\n%s--- AppendText %q (escaped %v)\n%s", i, w.Escaped, w.Text, g.Name, g.Escaped, g.Text)
		}
	}
	if seen == nil {
		return
	}
	text := join(got)
	for _, m := range coverage {
		if strings.Contains(text, m) {
			seen[m] = true
		}
	}
	for name, f := range st.families {
		if len(f.series) == 0 && len(f.groups) > 0 {
			seen["a family emptied by a sweep"] = true
		}
		if len(f.series) > 0 && !f.textable(name) {
			seen["a family gathered through dto"] = true
		}
	}
}

// coverage is what the generated stores must reach, so that the
// comparison does not pass vacuously.
var coverage = []string{`\"`, `\\`, `\n`, "NaN", "+Inf", "-Inf", `quantile="`, `le="+Inf"`, "_sum{", "_count{", "# TYPE lat histogram", "# TYPE a summary", "{\"dotted.name\"", `dotted.label`, "1e+21", "5e-324"}

func join(fs []encoded.Family) string {
	var b strings.Builder
	for _, f := range fs {
		b.Write(f.Text)
	}
	return b.String()
}

// TestAppendTextMatchesGatherEncoded compares the text encoded straight
// from the store with the store's gather encoded by expfmt, on generated
// stores: every kind (classic and native histograms, summaries), label
// values and helps that need escaping, NaN, ±Inf and -0, names that are
// not legacy names, and families emptied by TTL sweeps.
func TestAppendTextMatchesGatherEncoded(t *testing.T) {
	for seed := range 200 {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runText(t, textInput(seed), nil) })
	}
}

// The generated stores reach every case TestAppendTextMatchesGatherEncoded
// claims to cover (a generator that never produced, say, an escaped value
// would let it pass vacuously).
func TestAppendTextCoverage(t *testing.T) {
	seen := map[string]bool{}
	for seed := range 200 {
		runText(t, textInput(seed), seen)
	}
	for _, want := range append(coverage, "a family emptied by a sweep", "a family gathered through dto") {
		if !seen[want] {
			t.Errorf("no generated store gave %q", want)
		}
	}
}

func textInput(seed int) []byte { return xorshift(uint32(seed*2654435761+7), 900) }

// FuzzAppendTextMatchesGatherEncoded is TestAppendTextMatchesGatherEncoded
// on fuzzed operations (at most 300 per input, on a vocabulary of 9 names,
// so a store stays small: time and memory per input are bounded). Run it
// with
//
//	go test -run '^$' -fuzz FuzzAppendTextMatchesGatherEncoded -fuzztime 60s ./components/statsd/internal/store/
func FuzzAppendTextMatchesGatherEncoded(f *testing.F) {
	f.Add([]byte{3, 0, 1, 0, 0, 1, 1, 0, 2})
	f.Add(textInput(1)[:200])
	f.Fuzz(func(t *testing.T, data []byte) { runText(t, data, nil) })
}
