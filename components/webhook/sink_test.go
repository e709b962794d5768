package webhook_test

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	_ "github.com/sluicehq/sluice/components/sink"
	"github.com/sluicehq/sluice/encoded"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// A metrics_sink serves the receiver from its pages (the encoded path),
// byte for byte what it serves from a gather of the same receiver, for
// text, gzip (a reused page, and per-family chunks after a push) and
// Prometheus' Accept, with and without openmetrics.
func TestSinkServesReceiverPages(t *testing.T) {
	r := newRig(t, baseConfig)
	exported := r.h.Gatherer()
	if _, ok := pipeline.UnwrapGatherer(exported).(encoded.Versioned); !ok {
		t.Fatalf("the receiver exports %T, not an encoded.Versioned", exported)
	}
	for _, p := range []struct{ path, body string }{
		{"/api/deployment_duration_seconds/observe", "value=18000&labels=coordinator_pipeline,success"},
		{"/api/jobs_total/add", "labels=p\"1&value=3"},
		{"/api/queue/set", "value=-2.5"},
	} {
		if code, body := r.form(p.path, p.body); code != 204 {
			t.Fatalf("%s = %d %s", p.path, code, body)
		}
	}
	const prometheusAccept = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
	for _, tc := range []struct {
		name string
		body string
		hdr  map[string]string
	}{
		{name: "text", hdr: map[string]string{"Accept-Encoding": "identity"}},
		{name: "gzip", hdr: map[string]string{"Accept-Encoding": "gzip"}},
		{name: "prometheus", hdr: map[string]string{"Accept": prometheusAccept, "Accept-Encoding": "gzip"}},
		{name: "prometheus, openmetrics off", body: "\nopenmetrics = false", hdr: map[string]string{"Accept": prometheusAccept, "Accept-Encoding": "gzip"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fastH, fast := sinkAt(t, "inputs = [test.a]"+tc.body, exported)
			_, slow := sinkAt(t, "inputs = [test.a]"+tc.body, prometheus.GathererFunc(exported.Gather))
			for round := 0; round < 3; round++ {
				if round == 2 { // a push between scrapes: one family changes
					if code, _ := r.form("/api/jobs_total/inc", "labels=p2"); code != 204 {
						t.Fatal("push failed")
					}
				}
				ctFast, bodyFast := scrapeAt(t, fast, tc.hdr)
				ctSlow, bodySlow := scrapeAt(t, slow, tc.hdr)
				if !strings.Contains(bodySlow, `jobs_total{project="p\"1"} 3`) {
					t.Fatalf("the gathered page lacks the pushed series:\n%s", bodySlow)
				}
				if bodyFast != bodySlow || ctFast != ctSlow {
					t.Fatalf("round %d: from the pages (%s):\n%s\nfrom the gather (%s):\n%s", round, ctFast, bodyFast, ctSlow, bodySlow)
				}
			}
			if tc.name == "gzip" || tc.name == "prometheus, openmetrics off" {
				mfs, _ := fastH.Registry.Gather()
				reused := 0.0
				for _, mf := range mfs {
					if mf.GetName() == "sluice_metrics_sink_gzip_pages_reused_total" {
						reused = mf.Metric[0].GetCounter().GetValue()
					}
				}
				if reused != 1 {
					t.Errorf("gzip pages reused = %v, want 1 (the second of two scrapes without a push)", reused)
				}
			}
		})
	}
}

func sinkAt(t *testing.T, body string, g prometheus.Gatherer) (*pipelinetest.Harness, string) {
	t.Helper()
	mux := pipelinetest.NewMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	h := pipelinetest.New(t, "metrics_sink", body, pipelinetest.WithGatherer("a", g), pipelinetest.WithMounter(mux))
	h.Start()
	url := srv.URL + "/metrics/test"
	pipelinetest.Eventually(t, 5*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Accept-Encoding", "identity") // compresses nothing: the test counts reused pages
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "the sink never served")
	return h, url
}

func scrapeAt(t *testing.T, url string, hdr map[string]string) (string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rd io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		rd = zr
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Get("Content-Type"), string(b)
}
