package sink_test

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/components/sink"
	"github.com/sluicehq/sluice/internal/gathermerge/gathermergetest"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func gauge(t *testing.T, name, help string, value float64, lv ...string) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	var names []string
	for i := 0; i < len(lv); i += 2 {
		names = append(names, lv[i])
	}
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, names)
	var values []string
	for i := 1; i < len(lv); i += 2 {
		values = append(values, lv[i])
	}
	g.WithLabelValues(values...).Set(value)
	reg.MustRegister(g)
	return reg
}

func counterReg(t *testing.T, name string, value float64) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: "C."})
	c.Add(value)
	reg.MustRegister(c)
	return reg
}

// pathSink starts a path-mode sink on a harness Mux served over loopback.
func pathSink(t *testing.T, body string, opts ...pipelinetest.Option) (*pipelinetest.Harness, *httptest.Server) {
	t.Helper()
	mux := pipelinetest.NewMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	h := pipelinetest.New(t, "metrics_sink", body, append(opts, pipelinetest.WithMounter(mux))...)
	h.Start()
	t.Cleanup(func() { srv.Client().CloseIdleConnections() })
	return h, srv
}

func get(t *testing.T, client *http.Client, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func parse(t *testing.T, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, body)
	}
	return fams
}

// waitServing waits until url answers 200.
func waitServing(t *testing.T, url string) {
	t.Helper()
	pipelinetest.Eventually(t, 5*time.Second, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "%s never served", url)
	http.DefaultClient.CloseIdleConnections()
}

func selfValue(t *testing.T, h *pipelinetest.Harness, name string, lbls map[string]string) float64 {
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
				if v, ok := lbls[lp.GetName()]; ok && v != lp.GetValue() {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

func TestDefaultPathMergesInputs(t *testing.T) {
	a := gauge(t, "a_value", "A.", 1, "k", "x")
	b := counterReg(t, "b_total", 2)
	h, srv := pathSink(t, `inputs = [test.a, test.b]`, pipelinetest.WithGatherer("a", a), pipelinetest.WithGatherer("b", b))
	url := srv.URL + "/metrics/test"
	waitServing(t, url)
	want := `# HELP a_value A.
# TYPE a_value gauge
a_value{k="x"} 1
# HELP b_total C.
# TYPE b_total counter
b_total 2
`
	if err := testutil.ScrapeAndCompare(url, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if got := selfValue(t, h, "sluice_metrics_sink_scrapes_total", map[string]string{"code": "200"}); got < 1 {
		t.Errorf("scrapes_total{code=200} = %v, want >= 1", got)
	}
	if got := selfValue(t, h, "sluice_metrics_sink_scrape_duration_seconds", nil); got < 1 {
		t.Errorf("scrape_duration_seconds count = %v, want >= 1", got)
	}
	if sink.DefaultPath("metrics_sink.default") != "/metrics/default" {
		t.Errorf("DefaultPath = %q", sink.DefaultPath("metrics_sink.default"))
	}
}

func TestContentNegotiationAndGzip(t *testing.T) {
	a := counterReg(t, "requests_total", 5)
	_, srv := pathSink(t, `
inputs = [test.a]
path   = "/m"`, pipelinetest.WithGatherer("a", a))
	url := srv.URL + "/m"
	waitServing(t, url)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()

	resp, body := get(t, client, url, nil)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("default Content-Type = %q, want text/plain", ct)
	}
	if strings.Contains(body, "# EOF") {
		t.Errorf("text format body has an OpenMetrics EOF marker")
	}
	if v := parse(t, body)["requests_total"].Metric[0].Counter.GetValue(); v != 5 {
		t.Errorf("requests_total = %v, want 5", v)
	}

	resp, body = get(t, client, url, map[string]string{"Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"})
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Errorf("OpenMetrics Content-Type = %q", ct)
	}
	if !strings.HasSuffix(body, "# EOF\n") || !strings.Contains(body, "# TYPE requests counter\nrequests_total 5") {
		t.Errorf("OpenMetrics body:\n%s", body)
	}

	resp, body = get(t, client, url, map[string]string{"Accept-Encoding": "gzip"})
	if ce := resp.Header.Get("Content-Encoding"); ce != "gzip" {
		t.Fatalf("Content-Encoding = %q, want gzip", ce)
	}
	if v := parse(t, body)["requests_total"].Metric[0].Counter.GetValue(); v != 5 {
		t.Errorf("gzip: requests_total = %v, want 5", v)
	}
}

// openmetrics = false serves the text format even to scrapers that prefer
// OpenMetrics, and an Update switches it back.
func TestOpenMetricsOff(t *testing.T) {
	a := counterReg(t, "app_errors", 2) // no _total: "unknown" in OpenMetrics
	h, srv := pathSink(t, `
inputs      = [test.a]
path        = "/m"
openmetrics = false`, pipelinetest.WithGatherer("a", a))
	url := srv.URL + "/m"
	waitServing(t, url)
	client := &http.Client{}
	defer client.CloseIdleConnections()
	accept := map[string]string{"Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"}

	resp, body := get(t, client, url, accept)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || !strings.Contains(body, "# TYPE app_errors counter") {
		t.Errorf("openmetrics = false: Content-Type %q, body:\n%s", ct, body)
	}
	if err := h.Update(`
inputs = [test.a]
path   = "/m"`); err != nil {
		t.Fatal(err)
	}
	resp, body = get(t, client, url, accept)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") || !strings.Contains(body, "# TYPE app_errors unknown") {
		t.Errorf("after Update to the default: Content-Type %q, body:\n%s", ct, body)
	}
}

func TestInconsistentFamilyIsSkipped(t *testing.T) {
	// Both inputs export "shared", as a gauge and as a counter: the
	// second one is reported and skipped; everything else is served.
	a := gauge(t, "shared", "S.", 1)
	a.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "a_only", Help: "A."}, func() float64 { return 3 }))
	b := counterReg(t, "shared", 2)
	b.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "b_only", Help: "B."}, func() float64 { return 4 }))
	h, srv := pathSink(t, `inputs = [test.a, test.b]`, pipelinetest.WithGatherer("a", a), pipelinetest.WithGatherer("b", b))
	url := srv.URL + "/metrics/test"
	want := `# HELP a_only A.
# TYPE a_only gauge
a_only 3
# HELP b_only B.
# TYPE b_only gauge
b_only 4
# HELP shared S.
# TYPE shared gauge
shared 1
`
	waitServing(t, url)
	if err := testutil.ScrapeAndCompare(url, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if got := selfValue(t, h, "sluice_metrics_sink_gather_errors_total", map[string]string{"input": "1", "reason": "inconsistent"}); got < 1 {
		t.Errorf("gather_errors_total{input=1,reason=inconsistent} = %v, want >= 1", got)
	}
	if got := selfValue(t, h, "sluice_metrics_sink_gather_errors_total", map[string]string{"input": "0", "reason": "inconsistent"}); got != 0 {
		t.Errorf("input 0 blamed: %v", got)
	}
}

func TestMalformedFamilyAndDuplicatesAcrossInputs(t *testing.T) {
	bad := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		return []*dto.MetricFamily{
			{Name: proto.String("broken"), Type: dto.MetricType_COUNTER.Enum(), Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(1)}}}},
			{Name: proto.String("fine"), Help: proto.String("F."), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{
				{Label: []*dto.LabelPair{{Name: proto.String("k"), Value: proto.String("1")}}, Gauge: &dto.Gauge{Value: proto.Float64(10)}},
				{Label: []*dto.LabelPair{{Name: proto.String("k"), Value: proto.String("2")}}, Gauge: &dto.Gauge{Value: proto.Float64(20)}},
			}},
		}, nil
	})
	a := gauge(t, "fine", "F.", 1, "k", "1")
	h, srv := pathSink(t, `inputs = [test.a, test.bad]`, pipelinetest.WithGatherer("a", a), pipelinetest.WithGatherer("bad", bad))
	url := srv.URL + "/metrics/test"
	waitServing(t, url)
	// fine{k="1"} comes from input 0; input 1's copy is a duplicate.
	want := `# HELP fine F.
# TYPE fine gauge
fine{k="1"} 1
fine{k="2"} 20
`
	if err := testutil.ScrapeAndCompare(url, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if got := selfValue(t, h, "sluice_metrics_sink_gather_errors_total", map[string]string{"input": "1", "reason": "inconsistent"}); got < 2 {
		t.Errorf("gather_errors_total{input=1,reason=inconsistent} = %v, want >= 2 (broken family, duplicate)", got)
	}
}

func TestInputErrorsAreCountedAndTheRestServed(t *testing.T) {
	a := counterReg(t, "ok_total", 1)
	failing := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return nil, errors.New("boom") })
	h, srv := pathSink(t, `inputs = [test.failing, test.a]`, pipelinetest.WithGatherer("a", a), pipelinetest.WithGatherer("failing", failing))
	url := srv.URL + "/metrics/test"
	waitServing(t, url)
	if err := testutil.ScrapeAndCompare(url, strings.NewReader("# HELP ok_total C.\n# TYPE ok_total counter\nok_total 1\n")); err != nil {
		t.Fatal(err)
	}
	if got := selfValue(t, h, "sluice_metrics_sink_gather_errors_total", map[string]string{"input": "0", "reason": "gather"}); got < 1 {
		t.Errorf("gather_errors_total{input=0,reason=gather} = %v", got)
	}

	// Nothing gathered at all: the scrape fails, visibly.
	if err := h.Update(`inputs = [test.failing]`); err != nil {
		t.Fatal(err)
	}
	resp, _ := get(t, srv.Client(), url, nil)
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status with every input failing = %d, want 500", resp.StatusCode)
	}
}

func TestConstLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "g", Help: "G."}, []string{"node", "z"})
	g.WithLabelValues("own", "1").Set(1)
	g.WithLabelValues("", "2").Set(2) // no node label: gets the const one
	reg.MustRegister(g)
	_, srv := pathSink(t, `
inputs       = [test.a]
const_labels = { node = "n1", az = "eu-1" }`, pipelinetest.WithGatherer("a", reg))
	url := srv.URL + "/metrics/test"
	waitServing(t, url)
	want := `# HELP g G.
# TYPE g gauge
g{az="eu-1",node="own",z="1"} 1
g{az="eu-1",node="n1",z="2"} 2
`
	if err := testutil.ScrapeAndCompare(url, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestConstLabelClashKeepsFirst(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "g", Help: "G."}, []string{"node"})
	g.WithLabelValues("n1").Set(1)
	g.WithLabelValues("").Set(2) // would become node="n1" too
	reg.MustRegister(g)
	_, srv := pathSink(t, `
inputs       = [test.a]
const_labels = { node = "n1" }`, pipelinetest.WithGatherer("a", reg))
	url := srv.URL + "/metrics/test"
	waitServing(t, url)
	_, body := get(t, srv.Client(), url, nil)
	if n := len(parse(t, body)["g"].Metric); n != 1 {
		t.Fatalf("%d series of g served, want 1 (the duplicate dropped):\n%s", n, body)
	}
}

func TestHonorTimestamps(t *testing.T) {
	stamped := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		return []*dto.MetricFamily{{
			Name: proto.String("ts"), Help: proto.String("T."), Type: dto.MetricType_GAUGE.Enum(),
			Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(1)}, TimestampMs: proto.Int64(1700000000000)}},
		}}, nil
	})
	for _, tc := range []struct {
		body string
		want bool
	}{
		{`inputs = [test.a]`, true},
		{"inputs = [test.a]\nhonor_timestamps = true", true},
		{"inputs = [test.a]\nhonor_timestamps = false", false},
	} {
		t.Run(tc.body, func(t *testing.T) {
			_, srv := pathSink(t, tc.body, pipelinetest.WithGatherer("a", stamped))
			url := srv.URL + "/metrics/test"
			waitServing(t, url)
			_, body := get(t, srv.Client(), url, nil)
			m := parse(t, body)["ts"].Metric[0]
			if has := m.TimestampMs != nil; has != tc.want {
				t.Fatalf("timestamp present = %v, want %v:\n%s", has, tc.want, body)
			}
			if tc.want && m.GetTimestampMs() != 1700000000000 {
				t.Fatalf("timestamp = %d", m.GetTimestampMs())
			}
		})
	}
}

func TestUpdateSwapsInputsAndPath(t *testing.T) {
	a := counterReg(t, "a_total", 1)
	b := counterReg(t, "b_total", 2)
	opts := []pipelinetest.Option{pipelinetest.WithGatherer("a", a), pipelinetest.WithGatherer("b", b)}
	h, srv := pathSink(t, "inputs = [test.a]\npath = \"/one\"", opts...)
	waitServing(t, srv.URL+"/one")
	if err := h.Update("inputs = [test.b]\npath = \"/one\""); err != nil {
		t.Fatal(err)
	}
	// The very next scrape sees the new input.
	if err := testutil.ScrapeAndCompare(srv.URL+"/one", strings.NewReader("# HELP b_total C.\n# TYPE b_total counter\nb_total 2\n")); err != nil {
		t.Fatal(err)
	}
	if err := h.Update("inputs = [test.a, test.b]\npath = \"/two\""); err != nil {
		t.Fatal(err)
	}
	resp, _ := get(t, srv.Client(), srv.URL+"/one", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("old path after re-mount: status %d, want 404", resp.StatusCode)
	}
	if err := testutil.ScrapeAndCompare(srv.URL+"/two", strings.NewReader("# HELP a_total C.\n# TYPE a_total counter\na_total 1\n# HELP b_total C.\n# TYPE b_total counter\nb_total 2\n")); err != nil {
		t.Fatal(err)
	}
}

func TestUpdateToATakenPathChangesNothing(t *testing.T) {
	a := counterReg(t, "a_total", 1)
	b := counterReg(t, "b_total", 2)
	mux := pipelinetest.NewMux()
	unmount, err := mux.Mount("/taken", http.NotFoundHandler())
	if err != nil {
		t.Fatal(err)
	}
	defer unmount()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	h := pipelinetest.New(t, "metrics_sink", "inputs = [test.a]\npath = \"/mine\"",
		pipelinetest.WithMounter(mux), pipelinetest.WithGatherer("a", a), pipelinetest.WithGatherer("b", b))
	h.Start()
	waitServing(t, srv.URL+"/mine")
	if err := h.Update("inputs = [test.b]\npath = \"/taken\""); err == nil {
		t.Fatal("Update to a mounted path succeeded")
	}
	if err := testutil.ScrapeAndCompare(srv.URL+"/mine", strings.NewReader("# HELP a_total C.\n# TYPE a_total counter\na_total 1\n")); err != nil {
		t.Fatalf("after a failed Update: %v", err)
	}
	srv.Client().CloseIdleConnections()
}

func TestConcurrentScrapesDuringUpdates(t *testing.T) {
	a := counterReg(t, "a_total", 1)
	b := counterReg(t, "b_total", 2)
	h, srv := pathSink(t, `inputs = [test.a]`, pipelinetest.WithGatherer("a", a), pipelinetest.WithGatherer("b", b))
	url := srv.URL + "/metrics/test"
	waitServing(t, url)

	stop := make(chan struct{})
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(url)
				if err != nil {
					errs <- err
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("status %d, err %v", resp.StatusCode, err)
					return
				}
				p := expfmt.NewTextParser(model.UTF8Validation)
				fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
				if err != nil {
					errs <- err
					return
				}
				if fams["a_total"] == nil && fams["b_total"] == nil {
					errs <- fmt.Errorf("a scrape served neither input:\n%s", body)
					return
				}
			}
		}()
	}
	bodies := []string{`inputs = [test.b]`, `inputs = [test.a, test.b]`, "inputs = [test.a]\nconst_labels = { x = \"y\" }", `inputs = [test.a]`}
	for i := 0; i < 200; i++ {
		if err := h.Update(bodies[i%len(bodies)]); err != nil {
			t.Fatal(err)
		}
		if i%20 == 0 {
			time.Sleep(time.Millisecond) // let scrapes interleave with updates
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestListenMode(t *testing.T) {
	a := counterReg(t, "a_total", 1)
	h := pipelinetest.New(t, "metrics_sink", "inputs = [test.a]\nlisten = \"127.0.0.1:0\"", pipelinetest.WithGatherer("a", a))
	h.Start()
	c := h.Component.(*sink.Component)
	var addr string
	pipelinetest.Eventually(t, 5*time.Second, func() bool { addr = c.Addr(); return addr != "" }, "never listened")
	url := "http://" + addr + sink.ListenPath
	if err := testutil.ScrapeAndCompare(url, strings.NewReader("# HELP a_total C.\n# TYPE a_total counter\na_total 1\n")); err != nil {
		t.Fatal(err)
	}

	// Unchanged address: the socket is kept.
	if err := h.Update("inputs = [test.a]\nlisten = \"127.0.0.1:0\"\nconst_labels = { x = \"1\" }"); err != nil {
		t.Fatal(err)
	}
	if c.Addr() != addr {
		t.Fatalf("unchanged listen rebound: %s -> %s", addr, c.Addr())
	}
	if err := testutil.ScrapeAndCompare(url, strings.NewReader("# HELP a_total C.\n# TYPE a_total counter\na_total{x=\"1\"} 1\n")); err != nil {
		t.Fatal(err)
	}

	// A changed address rebinds; the old socket is released.
	if err := h.Update("inputs = [test.a]\nlisten = \"localhost:0\""); err != nil {
		t.Fatal(err)
	}
	newAddr := c.Addr()
	if newAddr == addr || newAddr == "" {
		t.Fatalf("changed listen did not rebind: %s -> %s", addr, newAddr)
	}
	if err := testutil.ScrapeAndCompare("http://"+newAddr+sink.ListenPath, strings.NewReader("# HELP a_total C.\n# TYPE a_total counter\na_total 1\n")); err != nil {
		t.Fatal(err)
	}
	if ln, err := net.Listen("tcp", addr); err != nil {
		t.Fatalf("old address %s still bound after rebind: %v", addr, err)
	} else {
		ln.Close()
	}

	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", newAddr)
	if err != nil {
		t.Fatalf("address %s still bound after stop: %v", newAddr, err)
	}
	ln.Close()
	http.DefaultClient.CloseIdleConnections()
}

func TestListenAddressInUseFailsRun(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h := pipelinetest.New(t, "metrics_sink", fmt.Sprintf("inputs = []\nlisten = %q", ln.Addr().String()))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = h.Component.(*sink.Component).Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Run = %v, want address in use", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Run did not fail at once on a taken address")
	}
}

func TestBadConfig(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"both listen and path", "inputs = []\nlisten = \":9102\"\npath = \"/x\"", "not both"},
		{"agent metrics path", "inputs = []\npath = \"/metrics\"", "built-in paths are refused"},
		{"ready path", "inputs = []\npath = \"/-/ready\"", "built-in paths are refused"},
		{"reload path", "inputs = []\npath = \"/-/reload\"", "built-in paths are refused"},
		{"api path", "inputs = []\npath = \"/api/v0/components\"", "built-in paths are refused"},
		{"relative path", "inputs = []\npath = \"metrics\"", "must start with /"},
		{"unclean path", "inputs = []\npath = \"/a/../b\"", "not a clean URL path"},
		{"bad listen", "inputs = []\nlisten = \"nope\"", "invalid address"},
		{"reserved const label", "inputs = []\nconst_labels = { __x = \"1\" }", "reserved"},
		{"le const label", "inputs = []\nconst_labels = { le = \"1\" }", "reserved"},
		{"zero max_concurrent_scrapes", "inputs = []\nmax_concurrent_scrapes = 0", "must be at least 1, got 0"},
		{"negative max_concurrent_scrapes", "inputs = []\nmax_concurrent_scrapes = -3", "must be at least 1, got -3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := pipelinetest.Decode(t, "metrics_sink", tc.body)
			if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.want) {
				t.Fatalf("diagnostics %v, want one mentioning %q", diags, tc.want)
			}
			if d := diags[0]; d.Subject == nil || d.Subject.Start.Line != 2 && tc.name != "both listen and path" {
				t.Errorf("diagnostic not at the attribute: %v", d.Subject)
			}
		})
	}
}

// TestPartialGatherServesTheGoodFamilies: an input whose Gather returns
// good families together with an error (a registry that dropped a bad
// one) still has its good families served; each error is counted as
// reason "partial".
func TestPartialGatherServesTheGoodFamilies(t *testing.T) {
	h, srv := pathSink(t, `inputs = [test.partial]`, pipelinetest.WithGatherer("partial", gathermergetest.PartialRegistry()))
	url := srv.URL + "/metrics/test"
	waitServing(t, url)
	if err := testutil.ScrapeAndCompare(url, strings.NewReader("# HELP good_total A good family.\n# TYPE good_total counter\ngood_total 1\n")); err != nil {
		t.Fatal(err)
	}
	if got := selfValue(t, h, "sluice_metrics_sink_gather_errors_total", map[string]string{"input": "0", "reason": "partial"}); got < 1 {
		t.Errorf("gather_errors_total{input=0,reason=partial} = %v, want >= 1", got)
	}
}
