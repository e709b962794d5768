package cache

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	_ "github.com/sluicehq/sluice/components/sink" // metrics_sink
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// Scrapes share the snapshot's families. metrics_sink must not modify
// what it gathers: with const labels and honor_timestamps = false it
// rewrites labels and timestamps, which it does on copies. Concurrent
// scrapes in every format, through sinks that rewrite and sinks that pass
// through, while refreshes swap snapshots: the race detector sees any
// write to a shared family, and the families are compared afterwards.
func TestSinksDoNotModifyTheSharedSnapshot(t *testing.T) {
	in := newInput()
	g := in.gaugeVec("orders", "status", "node")
	g.WithLabelValues("paid", "").Set(3)
	g.WithLabelValues("open", "own").Set(5)
	ts := stamped{}
	h := pipelinetest.New(t, "cache", `
  input            = test.in
  refresh_interval = "100ms"
`, pipelinetest.WithGatherer("in", gatherers{in, ts}))
	h.Start()
	cached := h.Gatherer()
	pipelinetest.Eventually(t, wait, func() bool { return len(served(t, cached)) == 3 }, "first refresh")

	mux := pipelinetest.NewMux()
	for _, body := range []string{
		"inputs = [test.c]\npath = \"/rewrite\"\nconst_labels = { node = \"n1\" }\nhonor_timestamps = false",
		"inputs = [test.c]\npath = \"/plain\"",
		"inputs = [test.c, test.in]\npath = \"/merged\"",
	} {
		s := pipelinetest.New(t, "metrics_sink", body, pipelinetest.WithGatherer("c", cached),
			pipelinetest.WithGatherer("in", in), pipelinetest.WithMounter(mux), pipelinetest.WithID(strings.Trim(strings.Split(body, "\"")[1], "/")))
		s.Start()
	}
	pipelinetest.Eventually(t, wait, func() bool {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", "/merged", nil))
		return rec.Code == 200
	}, "sinks mounted")

	first, _ := cached.Gather()
	want := make([]*dto.MetricFamily, len(first))
	for i, mf := range first {
		want[i] = proto.Clone(mf).(*dto.MetricFamily)
	}

	accepts := []string{
		"text/plain",
		"application/openmetrics-text;version=1.0.0",
		"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
	}
	var wg sync.WaitGroup
	for _, path := range []string{"/rewrite", "/plain", "/merged"} {
		for _, accept := range accepts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 30 {
					req := httptest.NewRequest("GET", path, nil)
					req.Header.Set("Accept", accept)
					req.Header.Set("Accept-Encoding", "gzip")
					rec := httptest.NewRecorder()
					mux.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						t.Errorf("%s (%s): %d", path, accept, rec.Code)
						return
					}
					_, _ = io.Copy(io.Discard, rec.Body)
				}
			}()
		}
	}
	wg.Wait()
	for i := range first {
		if !proto.Equal(first[i], want[i]) {
			t.Errorf("a scrape modified the shared family:\n got %v\nwant %v", first[i], want[i])
		}
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/rewrite", nil))
	body := rec.Body.String()
	if !strings.Contains(body, `orders{node="n1",status="paid"} 3`) || !strings.Contains(body, "job_last_run{node=\"n1\"} 7\n") {
		t.Errorf("the rewriting sink serves:\n%s", body)
	}
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/plain", nil))
	if !strings.Contains(rec.Body.String(), "job_last_run 7 1700000000123") {
		t.Errorf("the plain sink lost the input's timestamp:\n%s", rec.Body.String())
	}
}

// gatherers merges families of several gatherers without checks.
type gatherers []interface {
	Gather() ([]*dto.MetricFamily, error)
}

func (gs gatherers) Gather() ([]*dto.MetricFamily, error) {
	var out []*dto.MetricFamily
	for _, g := range gs {
		f, err := g.Gather()
		if err != nil {
			return nil, err
		}
		out = append(out, f...)
	}
	return out, nil
}
