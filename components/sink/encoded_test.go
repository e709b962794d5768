package sink_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/encoded"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// textGatherer hands out the families of g, and encoded by GatherText,
// counting the calls of each.
type textGatherer struct {
	g              prometheus.Gatherer
	gathers, texts atomic.Int64
}

func (t *textGatherer) Gather() ([]*dto.MetricFamily, error) {
	t.gathers.Add(1)
	return t.g.Gather()
}

func (t *textGatherer) GatherText() ([]encoded.Family, error) {
	t.texts.Add(1)
	mfs, err := t.g.Gather()
	if err != nil {
		return nil, err
	}
	return encoded.Encode(mfs)
}

func stampedGatherer(name string) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		return []*dto.MetricFamily{{
			Name: proto.String(name), Help: proto.String("T."), Type: dto.MetricType_GAUGE.Enum(),
			Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(1)}, TimestampMs: proto.Int64(1700000000000)}},
		}}, nil
	})
}

// A sink whose inputs hand out encoded families serves, for every request
// and configuration, exactly what it serves from the same inputs gathered;
// it copies the encoded bytes when that is exact, and gathers otherwise.
func TestEncodedInputsServeWhatAGatherServes(t *testing.T) {
	utf8 := prometheus.NewRegistry()
	utf8.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "my.dotted.gauge", Help: "UTF-8 name."}))
	for _, tc := range []struct {
		name    string
		body    string
		a, b    prometheus.Gatherer
		hdr     map[string]string
		query   string
		encoded bool // served from the encoded families
		plainB  bool // b has no encoded families of its own (as agent.metrics)
	}{
		{name: "text", body: "inputs = [test.a, test.b]", a: gauge(t, "g_a", "A.", 1, "x", "1"), b: counterReg(t, "c_b", 2), encoded: true},
		{name: "gzip", body: "inputs = [test.a, test.b]", a: gauge(t, "g_a", "A.", 1, "x", "1"), b: counterReg(t, "c_b", 2),
			hdr: map[string]string{"Accept-Encoding": "gzip"}, encoded: true},
		{name: "gzip with quality values", body: "inputs = [test.a, test.b]", a: gauge(t, "g_a", "A.", 1, "x", "1"), b: counterReg(t, "c_b", 2),
			hdr: map[string]string{"Accept-Encoding": "gzip;q=1.0, identity;q=0.5"}},
		{name: "openmetrics", body: "inputs = [test.a, test.b]", a: gauge(t, "g_a", "A.", 1, "x", "1"), b: counterReg(t, "c_b", 2),
			hdr: map[string]string{"Accept": "application/openmetrics-text;version=1.0.0"}},
		{name: "openmetrics off", body: "inputs = [test.a, test.b]\nopenmetrics = false", a: gauge(t, "g_a", "A.", 1, "x", "1"), b: counterReg(t, "c_b", 2),
			hdr: map[string]string{"Accept": "application/openmetrics-text;version=1.0.0"}, encoded: true},
		{name: "name filter", body: "inputs = [test.a, test.b]", a: gauge(t, "g_a", "A.", 1, "x", "1"), b: counterReg(t, "c_b", 2), query: "?name[]=c_b"},
		{name: "const labels", body: "inputs = [test.a, test.b]\nconst_labels = { node = \"n1\" }", a: gauge(t, "g_a", "A.", 1, "x", "1"), b: counterReg(t, "c_b", 2)},
		{name: "same family in two inputs", body: "inputs = [test.a, test.b]", a: gauge(t, "g", "A.", 1, "x", "1"), b: gauge(t, "g", "A.", 2, "x", "2")},
		{name: "timestamps kept", body: "inputs = [test.a, test.b]", a: stampedGatherer("ts"), b: counterReg(t, "c_b", 2), encoded: true},
		{name: "timestamps stripped", body: "inputs = [test.a, test.b]\nhonor_timestamps = false", a: stampedGatherer("ts"), b: counterReg(t, "c_b", 2)},
		{name: "escaped names", body: "inputs = [test.a, test.b]", a: utf8, b: counterReg(t, "c_b", 2)},
		{name: "one plain input beside an encoded one", body: "inputs = [test.a, test.b]", a: gauge(t, "g_a", "A.", 1, "x", "1"), b: counterReg(t, "c_b", 2),
			plainB: true, encoded: true},
		{name: "unescaped names", body: "inputs = [test.a, test.b]", a: utf8, b: counterReg(t, "c_b", 2),
			hdr: map[string]string{"Accept": "text/plain;version=0.0.4;escaping=allow-utf-8"}, encoded: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ta, tb := &textGatherer{g: tc.a}, &textGatherer{g: tc.b}
			var b prometheus.Gatherer = tb
			if tc.plainB {
				b = tc.b
			}
			_, fast := pathSink(t, tc.body, pipelinetest.WithGatherer("a", ta), pipelinetest.WithGatherer("b", b))
			_, slow := pathSink(t, tc.body, pipelinetest.WithGatherer("a", tc.a), pipelinetest.WithGatherer("b", tc.b))
			url := "/metrics/test" + tc.query
			waitServing(t, slow.URL+"/metrics/test")
			waitServing(t, fast.URL+"/metrics/test")
			ta.gathers.Store(0)
			ta.texts.Store(0)
			respFast, bodyFast := get(t, fast.Client(), fast.URL+url, tc.hdr)
			respSlow, bodySlow := get(t, slow.Client(), slow.URL+url, tc.hdr)
			if bodyFast == "" {
				t.Fatal("empty page")
			}
			if bodyFast != bodySlow {
				t.Errorf("encoded inputs served\n%s\ngathered inputs served\n%s", bodyFast, bodySlow)
			}
			for _, h := range []string{"Content-Type", "Content-Encoding"} {
				if f, s := respFast.Header.Get(h), respSlow.Header.Get(h); f != s {
					t.Errorf("%s: %q from encoded inputs, %q from gathered ones", h, f, s)
				}
			}
			if got := ta.texts.Load() > 0 && ta.gathers.Load() == 0; got != tc.encoded {
				t.Errorf("served from encoded families = %v (GatherText %d, Gather %d calls), want %v", got, ta.texts.Load(), ta.gathers.Load(), tc.encoded)
			}
		})
	}
}

// An input that fails GatherText is gathered: its error is counted by the
// gather as for any input, and the rest is served.
func TestEncodedInputErrorFallsBackToGather(t *testing.T) {
	ta := &textGatherer{g: gauge(t, "g_a", "A.", 1, "x", "1")}
	failing := &failingText{textGatherer{g: counterReg(t, "c_b", 2)}}
	_, srv := pathSink(t, "inputs = [test.a, test.b]", pipelinetest.WithGatherer("a", ta), pipelinetest.WithGatherer("b", failing))
	url := srv.URL + "/metrics/test"
	waitServing(t, url)
	_, body := get(t, srv.Client(), url, nil)
	m := parse(t, body)
	if m["g_a"] == nil || m["c_b"] == nil {
		t.Fatalf("want both families:\n%s", body)
	}
	if ta.gathers.Load() == 0 {
		t.Error("the scrape did not fall back to gathering")
	}
}

type failingText struct{ textGatherer }

func (f *failingText) GatherText() ([]encoded.Family, error) {
	return nil, errors.New("encoding failed")
}

// versionedGatherer is a textGatherer with a version (encoded.Versioned)
// that the test moves when it changes the families.
type versionedGatherer struct {
	textGatherer
	version atomic.Uint64
}

func (v *versionedGatherer) GatherTextVersion() ([]encoded.Family, uint64, error) {
	fams, err := v.GatherText()
	return fams, v.version.Load(), err
}

// A gzip scrape of inputs that are all at the version of the last
// compressed page is answered with that page; a new version, a plain
// input or an Update makes it compress again, and what is served is
// always the current families.
func TestGzipPageReusedWhileInputsUnchanged(t *testing.T) {
	ga := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g_a", Help: "A."})
	rega := prometheus.NewRegistry()
	rega.MustRegister(ga)
	a := &versionedGatherer{textGatherer: textGatherer{g: rega}}
	b := &versionedGatherer{textGatherer: textGatherer{g: counterReg(t, "c_b", 2)}}
	h, srv := pathSink(t, "inputs = [test.a, test.b]", pipelinetest.WithGatherer("a", a), pipelinetest.WithGatherer("b", b), pipelinetest.WithGatherer("plain", counterReg(t, "c_plain", 3)))
	url := srv.URL + "/metrics/test"
	waitServing(t, url)
	gz := map[string]string{"Accept-Encoding": "gzip"}
	reused := func() float64 { return selfValue(t, h, "sluice_metrics_sink_gzip_pages_reused_total", nil) }
	scrape := func() map[string]*dto.MetricFamily {
		t.Helper()
		resp, body := get(t, srv.Client(), url, gz)
		if resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("not gzipped: %v", resp.Header)
		}
		return parse(t, body)
	}

	scrape() // (waitServing may have compressed one already)
	base := reused()
	if m := scrape(); m["g_a"].Metric[0].Gauge.GetValue() != 0 || m["c_b"] == nil {
		t.Fatalf("reused page serves other families: %v", m)
	}
	if got := reused(); got != base+1 {
		t.Fatalf("unchanged inputs: reused %v pages, want 1", got-base)
	}
	// A change (and its new version) is served, compressed anew.
	ga.Set(7)
	a.version.Add(1)
	if m := scrape(); m["g_a"].Metric[0].Gauge.GetValue() != 7 {
		t.Fatalf("the change is not served: %v", m["g_a"])
	}
	if got := reused(); got != base+1 {
		t.Fatal("a page was reused after an input's version changed")
	}
	scrape()
	if got := reused(); got != base+2 {
		t.Fatal("the new page was not reused")
	}
	// An identity scrape is not compressed and does not disturb the page.
	if resp, body := get(t, srv.Client(), url, map[string]string{"Accept-Encoding": "identity"}); resp.Header.Get("Content-Encoding") != "" || !strings.Contains(body, "g_a 7") {
		t.Fatalf("identity scrape: %v\n%s", resp.Header, body)
	}
	// With a plain input beside them, nothing says it did not change:
	// every gzip scrape compresses.
	if err := h.Update("inputs = [test.a, test.b, test.plain]"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if m := scrape(); m["c_plain"] == nil || m["g_a"].Metric[0].Gauge.GetValue() != 7 {
			t.Fatalf("families missing: %v", m)
		}
	}
	if got := reused(); got != base+2 {
		t.Fatalf("a page was reused with an input that has no version: %v", got-base)
	}
	// After an Update back, the page of the earlier state is not served.
	if err := h.Update("inputs = [test.a, test.b]"); err != nil {
		t.Fatal(err)
	}
	if m := scrape(); m["c_plain"] != nil {
		t.Fatal("a page of the earlier inputs was served")
	}
	if got := reused(); got != base+2 {
		t.Fatal("the page of another state was reused")
	}
}
