package statsd

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	_ "github.com/sluicehq/sluice/components/sink"
	"github.com/sluicehq/sluice/encoded"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// countingText forwards to the receiver's exported gatherer, counting
// which of its paths a sink takes.
type countingText struct {
	g              prometheus.Gatherer
	gathers, texts atomic.Int64
}

func (c *countingText) Gather() ([]*dto.MetricFamily, error) {
	c.gathers.Add(1)
	return c.g.Gather()
}

func (c *countingText) GatherText() ([]encoded.Family, error) {
	c.texts.Add(1)
	return pipeline.UnwrapGatherer(c.g).(encoded.Gatherer).GatherText()
}

// prometheusAccept is the Accept header of Prometheus 3's default
// scrape_protocols (OpenMetrics first, then the text format).
const prometheusAccept = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"

// A metrics_sink scraping a statsd_receiver is served from the text the
// receiver encodes straight from its store (encoded.Gatherer), and that
// page is byte for byte what the sink serves from the receiver's gather:
// every type (counters, gauges, classic histograms, summaries), label
// values that need escaping, text and gzip. A scraper that takes
// OpenMetrics (Prometheus' default) is served from a gather, unless the
// sink sets openmetrics = false.
func TestSinkServesReceiverEncodedText(t *testing.T) {
	dir := t.TempDir()
	mapping := "mappings:\n- match: \"lat.*\"\n  name: \"lat_${1}\"\n  observer_type: histogram\n  histogram_options:\n    buckets: [0.01, 0.1, 1]\n- match: \"sum.*\"\n  name: \"sum_${1}\"\n  observer_type: summary\n"
	if err := os.WriteFile(filepath.Join(dir, "m.yml"), []byte(mapping), 0o644); err != nil {
		t.Fatal(err)
	}
	h, r := startReceiver(t, "listen_udp = \"\"\nlisten_tcp = \"127.0.0.1:0\"\nmapping_file = \"m.yml\"\n", pipelinetest.WithConfigDir(dir))
	send(t, "tcp", r.addr(t, "tcp"),
		"req:1|c|#path:/a,code:200", "req:2.5|c|#path:/b\\\\x,code:500", `req:1|c|#path:quo"te`,
		"temp:-3.5|g|#room:a", "temp:1e21|g|#room:b", "up:1|g",
		"lat.db:5|ms|#op:get", "lat.db:50|ms|#op:get", "lat.db:2000|ms|#op:put",
		"sum.q:3|ms", "sum.q:7|ms|#shard:1")
	exported := h.Exports().(Exports).Metrics
	if _, ok := pipeline.UnwrapGatherer(exported).(encoded.Gatherer); !ok {
		t.Fatalf("the receiver exports %T, not an encoded.Gatherer", exported)
	}
	pipelinetest.Eventually(t, waitFor, func() bool { return seriesCount(t, exported) == 10 }, "the receiver did not store the 10 series sent")

	for _, tc := range []struct {
		name    string
		body    string
		hdr     map[string]string
		encoded bool
	}{
		{name: "text", encoded: true},
		{name: "gzip", hdr: map[string]string{"Accept-Encoding": "gzip"}, encoded: true},
		{name: "prometheus", hdr: map[string]string{"Accept": prometheusAccept, "Accept-Encoding": "gzip"}},
		{name: "prometheus, openmetrics off", body: "\nopenmetrics = false", hdr: map[string]string{"Accept": prometheusAccept, "Accept-Encoding": "gzip"}, encoded: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			counting := &countingText{g: exported}
			fast := sinkServer(t, "inputs = [test.a]"+tc.body, counting)
			slow := sinkServer(t, "inputs = [test.a]"+tc.body, prometheus.GathererFunc(exported.Gather))
			counting.gathers.Store(0)
			counting.texts.Store(0)
			ctFast, bodyFast := scrapeSink(t, fast, tc.hdr)
			ctSlow, bodySlow := scrapeSink(t, slow, tc.hdr)
			for _, want := range []string{`req{code="500",path="/b\\\\x"} 2.5`, `path="quo\"te"`, "temp{room=\"b\"} 1e+21", `lat_db_bucket{op="get",le="0.1"} 2`, `sum_q{quantile="0.5"}`} {
				if !strings.Contains(bodySlow, want) {
					t.Fatalf("the gathered page lacks %q:\n%s", want, bodySlow)
				}
			}
			if bodyFast != bodySlow || ctFast != ctSlow {
				t.Errorf("from the encoded text (%s):\n%s\nfrom the gather (%s):\n%s", ctFast, bodyFast, ctSlow, bodySlow)
			}
			if got := counting.texts.Load() > 0 && counting.gathers.Load() == 0; got != tc.encoded {
				t.Errorf("served from the encoded text = %v (GatherText %d, Gather %d calls), want %v", got, counting.texts.Load(), counting.gathers.Load(), tc.encoded)
			}
		})
	}
}

// sinkServer starts a metrics_sink with the input test.a = g, serving at
// the returned URL.
func sinkServer(t *testing.T, body string, g prometheus.Gatherer) string {
	t.Helper()
	mux := pipelinetest.NewMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	h := pipelinetest.New(t, "metrics_sink", body, pipelinetest.WithGatherer("a", g), pipelinetest.WithMounter(mux))
	h.Start()
	url := srv.URL + "/metrics/test"
	pipelinetest.Eventually(t, waitFor, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "%s never served", url)
	return url
}

// scrapeSink scrapes url with hdr and returns the Content-Type and the
// body, unzipped.
func scrapeSink(t *testing.T, url string, hdr map[string]string) (string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		if body, err = gzip.NewReader(resp.Body); err != nil {
			t.Fatal(err)
		}
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Get("Content-Type"), string(b)
}
