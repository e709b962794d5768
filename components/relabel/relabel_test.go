package relabel_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	_ "github.com/sluicehq/sluice/components/relabel"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// input returns a registry with:
//
//	http_requests_total{code="200",path="/a"} 1
//	http_requests_total{code="500",path="/b"} 2
//	temp_celsius{room="Kitchen"} 20
func input(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_requests_total", Help: "Requests."}, []string{"code", "path"})
	c.WithLabelValues("200", "/a").Add(1)
	c.WithLabelValues("500", "/b").Add(2)
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "temp_celsius", Help: "Temperature."}, []string{"room"})
	g.WithLabelValues("Kitchen").Set(20)
	reg.MustRegister(c, g)
	return reg
}

const (
	headReq  = "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n"
	headTemp = "# HELP temp_celsius Temperature.\n# TYPE temp_celsius gauge\n"
)

func newRelabel(t *testing.T, rules string, g prometheus.Gatherer) *pipelinetest.Harness {
	t.Helper()
	h := pipelinetest.New(t, "relabel", "input = test.up\n"+rules, pipelinetest.WithGatherer("up", g))
	h.Start()
	return h
}

func TestActions(t *testing.T) {
	for _, tc := range []struct {
		name, rules, want string
	}{
		{"no rules pass through", ``,
			headReq + `http_requests_total{code="200",path="/a"} 1
http_requests_total{code="500",path="/b"} 2
` + headTemp + `temp_celsius{room="Kitchen"} 20
`},
		{"replace adds a label", `rule {
  target_label = "team"
  replacement  = "web"
}`, headReq + `http_requests_total{code="200",path="/a",team="web"} 1
http_requests_total{code="500",path="/b",team="web"} 2
` + headTemp + `temp_celsius{room="Kitchen",team="web"} 20
`},
		{"replace with regex groups and separator", `rule {
  source_labels = ["code", "path"]
  separator     = "|"
  regex         = "(5)..\\|/(.*)"
  target_label  = "err_path"
  replacement   = "$${2}-$1"
}`, headReq + `http_requests_total{code="200",path="/a"} 1
http_requests_total{code="500",err_path="b-5",path="/b"} 2
` + headTemp + `temp_celsius{room="Kitchen"} 20
`},
		{"keep", `rule {
  action        = "keep"
  source_labels = ["code"]
  regex         = "5.."
}`, headReq + `http_requests_total{code="500",path="/b"} 2
`},
		{"drop", `rule {
  action        = "drop"
  source_labels = ["path"]
  regex         = "/a"
}`, headReq + `http_requests_total{code="500",path="/b"} 2
` + headTemp + `temp_celsius{room="Kitchen"} 20
`},
		{"hashmod", `rule {
  action        = "hashmod"
  source_labels = ["room"]
  modulus       = 1
  target_label  = "shard"
}
rule {
  action        = "keep"
  source_labels = ["__name__"]
  regex         = "temp_celsius"
}`, headTemp + `temp_celsius{room="Kitchen",shard="0"} 20
`},
		{"labelmap", `rule {
  action      = "labelmap"
  regex       = "(ro)om"
  replacement = "$${1}_copy"
}`, headReq + `http_requests_total{code="200",path="/a"} 1
http_requests_total{code="500",path="/b"} 2
` + headTemp + `temp_celsius{ro_copy="Kitchen",room="Kitchen"} 20
`},
		{"labeldrop", `rule {
  action = "labeldrop"
  regex  = "path|room"
}`, headReq + `http_requests_total{code="200"} 1
http_requests_total{code="500"} 2
` + headTemp + `temp_celsius 20
`},
		{"labelkeep", `rule {
  action = "labelkeep"
  regex  = "__name__|code"
}`, headReq + `http_requests_total{code="200"} 1
http_requests_total{code="500"} 2
` + headTemp + `temp_celsius 20
`},
		{"lowercase", `rule {
  action        = "lowercase"
  source_labels = ["room"]
  target_label  = "room"
}`, headReq + `http_requests_total{code="200",path="/a"} 1
http_requests_total{code="500",path="/b"} 2
` + headTemp + `temp_celsius{room="kitchen"} 20
`},
		{"uppercase", `rule {
  action        = "uppercase"
  source_labels = ["path"]
  target_label  = "p"
}`, headReq + `http_requests_total{code="200",p="/A",path="/a"} 1
http_requests_total{code="500",p="/B",path="/b"} 2
` + headTemp + `temp_celsius{room="Kitchen"} 20
`},
		{"keepequal", `rule {
  target_label  = "copy"
  replacement   = "/a"
}
rule {
  action        = "keepequal"
  source_labels = ["path"]
  target_label  = "copy"
}`, headReq + `http_requests_total{code="200",copy="/a",path="/a"} 1
`},
		{"dropequal", `rule {
  target_label  = "copy"
  replacement   = "/a"
}
rule {
  action        = "dropequal"
  source_labels = ["path"]
  target_label  = "copy"
}`, headReq + `http_requests_total{code="500",copy="/a",path="/b"} 2
` + headTemp + `temp_celsius{copy="/a",room="Kitchen"} 20
`},
		{"action is case-insensitive", `rule {
  action        = "DROP"
  source_labels = ["__name__"]
  regex         = "http_.*"
}`, headTemp + `temp_celsius{room="Kitchen"} 20
`},
		{"temporary __ labels are removed", `rule {
  source_labels = ["room"]
  target_label  = "__tmp_room"
}
rule {
  source_labels = ["__tmp_room"]
  regex         = "K(.*)"
  target_label  = "r"
}`, headReq + `http_requests_total{code="200",path="/a"} 1
http_requests_total{code="500",path="/b"} 2
` + headTemp + `temp_celsius{r="itchen",room="Kitchen"} 20
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newRelabel(t, tc.rules, input(t))
			// Twice: the second gather is served from the cache.
			for i := 0; i < 2; i++ {
				if err := testutil.GatherAndCompare(h.Gatherer(), strings.NewReader(tc.want)); err != nil {
					t.Fatalf("gather %d: %v", i+1, err)
				}
			}
		})
	}
}

func TestRenameMovesSeries(t *testing.T) {
	reg := input(t)
	other := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "requests_total", Help: "Other requests."}, []string{"code", "path"})
	other.WithLabelValues("404", "/c").Add(7)
	reg.MustRegister(other)

	// Only the 500 series of http_requests_total is renamed: it joins the
	// existing requests_total family; the 200 series stays behind.
	h := newRelabel(t, `rule {
  source_labels = ["__name__", "code"]
  regex         = "http_(requests_total);5.."
  target_label  = "__name__"
}`, reg)
	want := headReq + `http_requests_total{code="200",path="/a"} 1
# HELP requests_total Other requests.
# TYPE requests_total counter
requests_total{code="404",path="/c"} 7
requests_total{code="500",path="/b"} 2
` + headTemp + `temp_celsius{room="Kitchen"} 20
`
	if err := testutil.GatherAndCompare(h.Gatherer(), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestRenameWholeFamilyByName(t *testing.T) {
	// Rules on __name__ only: decided per family.
	h := newRelabel(t, `rule {
  source_labels = ["__name__"]
  regex         = "temp_(.*)"
  target_label  = "__name__"
  replacement   = "room_temperature_$1"
}
rule {
  action        = "drop"
  source_labels = ["__name__"]
  regex         = "http_.*"
}`, input(t))
	want := `# HELP room_temperature_celsius Temperature.
# TYPE room_temperature_celsius gauge
room_temperature_celsius{room="Kitchen"} 20
`
	if err := testutil.GatherAndCompare(h.Gatherer(), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if got := dropped(t, h, "rule"); got != 2 {
		t.Errorf("dropped{reason=rule} = %v, want 2", got)
	}
}

func TestEmptyNameDropsSeries(t *testing.T) {
	h := newRelabel(t, `rule {
  source_labels = ["code"]
  regex         = "500"
  target_label  = "__name__"
  replacement   = ""
}`, input(t))
	want := headReq + `http_requests_total{code="200",path="/a"} 1
` + headTemp + `temp_celsius{room="Kitchen"} 20
`
	if err := testutil.GatherAndCompare(h.Gatherer(), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestRenameTypeConflictDropsSeries(t *testing.T) {
	h := newRelabel(t, `rule {
  source_labels = ["__name__"]
  regex         = "temp_celsius"
  target_label  = "__name__"
  replacement   = "http_requests_total"
}`, input(t))
	want := headReq + `http_requests_total{code="200",path="/a"} 1
http_requests_total{code="500",path="/b"} 2
`
	if err := testutil.GatherAndCompare(h.Gatherer(), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if got := dropped(t, h, "type_conflict"); got != 1 {
		t.Errorf("dropped{reason=type_conflict} = %v, want 1", got)
	}
}

func TestDuplicatesAfterLabeldrop(t *testing.T) {
	h := newRelabel(t, `rule {
  action = "labeldrop"
  regex  = "code"
}
rule {
  source_labels = ["path"]
  regex         = ".*"
  target_label  = "path"
  replacement   = "all"
}`, input(t))
	want := headReq + `http_requests_total{path="all"} 1
` + headTemp + `temp_celsius{path="all",room="Kitchen"} 20
`
	if err := testutil.GatherAndCompare(h.Gatherer(), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if got := dropped(t, h, "duplicate"); got != 1 {
		t.Errorf("dropped{reason=duplicate} = %v, want 1", got)
	}
}

func TestHistogramAndSummaryKeepTheirValues(t *testing.T) {
	reg := prometheus.NewRegistry()
	hist := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lat_seconds", Help: "L.", Buckets: []float64{1}})
	hist.Observe(0.5)
	reg.MustRegister(hist)
	h := newRelabel(t, `rule {
  target_label = "x"
  replacement  = "y"
}`, reg)
	want := `# HELP lat_seconds L.
# TYPE lat_seconds histogram
lat_seconds_bucket{x="y",le="1"} 1
lat_seconds_bucket{x="y",le="+Inf"} 1
lat_seconds_sum{x="y"} 0.5
lat_seconds_count{x="y"} 1
`
	if err := testutil.GatherAndCompare(h.Gatherer(), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestInputIsNotModified(t *testing.T) {
	fams := []*dto.MetricFamily{{
		Name: proto.String("a"), Help: proto.String("A."), Type: dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{
			{Label: []*dto.LabelPair{{Name: proto.String("k"), Value: proto.String("v")}}, Gauge: &dto.Gauge{Value: proto.Float64(1)}},
			{Label: []*dto.LabelPair{{Name: proto.String("k"), Value: proto.String("w")}}, Gauge: &dto.Gauge{Value: proto.Float64(2)}},
		},
	}}
	before := proto.Clone(fams[0])
	g := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return fams, nil })
	h := newRelabel(t, `rule {
  source_labels = ["k"]
  regex         = "w"
  target_label  = "k"
  replacement   = "changed"
}
rule {
  action = "labeldrop"
  regex  = "nothing"
}`, g)
	for i := 0; i < 2; i++ {
		got, err := h.Gatherer().Gather()
		if err != nil {
			t.Fatal(err)
		}
		if v := got[0].Metric[1].Label[0].GetValue(); v != "changed" {
			t.Fatalf("output label = %q, want changed", v)
		}
		if got[0].Metric[0] != fams[0].Metric[0] {
			t.Errorf("an unchanged series was copied; want it passed through")
		}
	}
	if !proto.Equal(before, fams[0]) {
		t.Fatalf("input family was modified:\n%v\nwant\n%v", fams[0], before)
	}
}

func TestInputErrorIsPassedOn(t *testing.T) {
	reg := input(t)
	g := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		fams, _ := reg.Gather()
		return fams, errors.New("boom")
	})
	h := newRelabel(t, `rule {
  action        = "keep"
  source_labels = ["__name__"]
  regex         = "temp_.*"
}`, g)
	fams, err := h.Gatherer().Gather()
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v, want the input's error", err)
	}
	if len(fams) != 1 || fams[0].GetName() != "temp_celsius" {
		t.Fatalf("families = %v, want temp_celsius relabelled despite the error", fams)
	}
	if got := seriesValue(t, h, "sluice_relabel_input_errors_total", nil); got != 1 {
		t.Errorf("input errors = %v, want 1", got)
	}
}

func TestCacheEvictsVanishedSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "g", Help: "G."}, []string{"i"})
	reg.MustRegister(g)
	for i := 0; i < 10; i++ {
		g.WithLabelValues(fmt.Sprint(i)).Set(1)
	}
	h := newRelabel(t, `rule {
  target_label = "x"
  replacement  = "y"
}`, reg)
	entries := func() float64 {
		return gaugeValue(t, h, "sluice_relabel_cache_entries")
	}
	if _, err := h.Gatherer().Gather(); err != nil {
		t.Fatal(err)
	}
	if got := entries(); got != 10 {
		t.Fatalf("cache entries = %v, want 10", got)
	}
	misses := seriesValue(t, h, "sluice_relabel_cache_misses_total", nil)
	for i := 0; i < 7; i++ {
		g.DeleteLabelValues(fmt.Sprint(i))
	}
	if _, err := h.Gatherer().Gather(); err != nil {
		t.Fatal(err)
	}
	if got := entries(); got != 3 {
		t.Fatalf("cache entries after 7 series vanished = %v, want 3", got)
	}
	if got := seriesValue(t, h, "sluice_relabel_cache_misses_total", nil); got != misses {
		t.Fatalf("cache misses went from %v to %v on a gather of known series", misses, got)
	}
}

func TestUpdateSwapsRulesAndInput(t *testing.T) {
	h := newRelabel(t, `rule {
  action        = "keep"
  source_labels = ["__name__"]
  regex         = "temp_.*"
}`, input(t))
	if err := testutil.GatherAndCompare(h.Gatherer(), strings.NewReader(headTemp+"temp_celsius{room=\"Kitchen\"} 20\n")); err != nil {
		t.Fatal(err)
	}
	exported := h.Gatherer()

	other := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "other_total", Help: "O."})
	c.Add(3)
	other.MustRegister(c)
	if err := h.UpdateArgs(mustDecode(t, `input = test.other
rule {
  target_label = "v"
  replacement  = "2"
}`, other)); err != nil {
		t.Fatal(err)
	}
	if h.Gatherer() != exported {
		t.Fatalf("Update changed the exported gatherer")
	}
	want := "# HELP other_total O.\n# TYPE other_total counter\nother_total{v=\"2\"} 3\n"
	if err := testutil.GatherAndCompare(exported, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentGathersAndUpdates(t *testing.T) {
	reg := input(t)
	h := newRelabel(t, `rule {
  target_label = "gen"
  replacement  = "a"
}`, reg)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				fams, err := h.Gatherer().Gather()
				if err != nil {
					errs <- err
					return
				}
				// Every series of one gather carries the same generation.
				gen := ""
				for _, mf := range fams {
					for _, m := range mf.Metric {
						for _, lp := range m.Label {
							if lp.GetName() != "gen" {
								continue
							}
							if gen == "" {
								gen = lp.GetValue()
							} else if gen != lp.GetValue() {
								errs <- fmt.Errorf("one gather mixes rule generations %s and %s", gen, lp.GetValue())
								return
							}
						}
					}
				}
				if gen == "" {
					errs <- errors.New("a gather without the gen label")
					return
				}
			}
		}()
	}
	for i := 0; i < 200; i++ {
		v := string(rune('a' + i%26))
		if err := h.Update(fmt.Sprintf("input = test.up\nrule {\n target_label = \"gen\"\n replacement = %q\n}\n", v)); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestBadConfig(t *testing.T) {
	for _, tc := range []struct{ name, rule, want string }{
		{"invalid regex", `regex = "a(b"`, `invalid regex "a(b"`},
		{"unknown action", `action = "explode"`, `unknown action "explode"`},
		{"replace needs target_label", `action = "replace"`, `requires 'target_label'`},
		{"hashmod needs modulus", "action = \"hashmod\"\ntarget_label = \"s\"", "non-zero modulus"},
		{"lowercase needs target_label", `action = "lowercase"`, `requires 'target_label'`},
		{"labeldrop takes only regex", "action = \"labeldrop\"\ntarget_label = \"x\"", "requires only 'regex'"},
		{"keepequal takes no regex", "action = \"keepequal\"\ntarget_label = \"x\"\nregex = \"a\"", "requires only 'source_labels'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := pipelinetest.Decode(t, "relabel", "input = test.up\nrule {\n"+tc.rule+"\n}\n",
				pipelinetest.WithGatherer("up", prometheus.NewRegistry()))
			if !diags.HasErrors() {
				t.Fatal("no diagnostics")
			}
			if !strings.Contains(diags.Error(), tc.want) {
				t.Fatalf("diagnostics %q do not mention %q", diags.Error(), tc.want)
			}
			if d := diags[0]; d.Subject == nil || d.Subject.Start.Line < 2 {
				t.Errorf("diagnostic is not located inside the rule block: %v", d.Subject)
			}
		})
	}
}

func TestBadConfigPointsAtAttribute(t *testing.T) {
	_, diags := pipelinetest.Decode(t, "relabel", "input = test.up\nrule {\n  action = \"keep\"\n  regex = \"a(b\"\n}\n",
		pipelinetest.WithGatherer("up", prometheus.NewRegistry()))
	if !diags.HasErrors() {
		t.Fatal("no diagnostics")
	}
	if got := diags[0].Subject.Start.Line; got != 4 {
		t.Fatalf("diagnostic at line %d, want 4 (the regex attribute)", got)
	}
}

// helpers

func mustDecode(t *testing.T, body string, other prometheus.Gatherer) any {
	t.Helper()
	args, diags := pipelinetest.Decode(t, "relabel", body, pipelinetest.WithGatherer("other", other))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return args
}

func dropped(t *testing.T, h *pipelinetest.Harness, reason string) float64 {
	t.Helper()
	return seriesValue(t, h, "sluice_relabel_series_dropped_total", map[string]string{"reason": reason})
}

func gaugeValue(t *testing.T, h *pipelinetest.Harness, name string) float64 {
	t.Helper()
	return seriesValue(t, h, name, nil)
}

func seriesValue(t *testing.T, h *pipelinetest.Harness, name string, lbls map[string]string) float64 {
	t.Helper()
	fams, err := h.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range fams {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.Metric {
			for _, lp := range m.Label {
				if lbls[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("self-metric %s%v not found", name, lbls)
	return 0
}
