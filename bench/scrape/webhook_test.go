package scrape

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	_ "github.com/sluicehq/sluice/components/webhook"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

const pushToken = "bench-token"

// webhookRig is a running webhook_receiver holding the 100k series of
// registry() (same names, labels and values), pushed through its API
// in-process. Its state is durable as in production (group commit and
// fsync in a temporary directory); pushes run concurrently so that
// they share commits.
type webhookRig struct {
	h        *pipelinetest.Harness
	mux      *pipelinetest.Mux
	gatherer prometheus.Gatherer
}

func webhookConfig() string {
	var b strings.Builder
	b.WriteString("auth { tokens = [\"" + pushToken + "\"] }\n")
	for f := 0; f < families; f++ {
		fmt.Fprintf(&b, "metric %q {\n  type = %q\n  help = %q\n  labels = [\"instance\", \"pod\", \"code\"]\n  max_series = %d\n}\n",
			famName(f), map[bool]string{true: "counter", false: "gauge"}[f%2 == 0], map[bool]string{true: "Requests.", false: "In flight."}[f%2 == 0], seriesPerFam)
	}
	return b.String()
}

func famName(f int) string {
	if f%2 == 0 {
		return fmt.Sprintf("app_requests_%d_total", f)
	}
	return fmt.Sprintf("app_inflight_%d", f)
}

// newWebhookRig builds the receiver with owner's resources (its data
// directory, its stop at owner's end) and reports failures to b.
func newWebhookRig(owner, b *testing.B) *webhookRig {
	b.Helper()
	mux := pipelinetest.NewMux()
	h := pipelinetest.New(owner, "webhook_receiver", webhookConfig(), pipelinetest.WithMounter(mux), pipelinetest.WithID("w"))
	h.Start()
	owner.Cleanup(func() { _ = h.Stop() })
	r := &webhookRig{h: h, mux: mux, gatherer: h.Gatherer()}
	pipelinetest.Eventually(b, time.Minute, func() bool {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/push/w/metrics", nil))
		return w.Code == http.StatusOK
	}, "the receiver serving")
	start := time.Now()
	var wg sync.WaitGroup
	const workers = 64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for n := w; n < families*seriesPerFam; n += workers {
				i := n % seriesPerFam
				r.push(b, n/seriesPerFam, i, float64(i))
			}
		}(w)
	}
	wg.Wait()
	mfs, err := r.gatherer.Gather()
	if err != nil || len(mfs) != families {
		b.Fatalf("webhook_receiver holds %d families after the pushes (%v)", len(mfs), err)
	}
	for _, mf := range mfs {
		if len(mf.Metric) != seriesPerFam {
			b.Fatalf("%s has %d series, want %d", mf.GetName(), len(mf.Metric), seriesPerFam)
		}
	}
	b.Logf("pushed %d series in %v", families*seriesPerFam, time.Since(start).Round(time.Millisecond))
	return r
}

// push sets series i of family f (as registry() labels it) to v: add for
// a counter (so it grows by v), set for a gauge.
func (r *webhookRig) push(b *testing.B, f, i int, v float64) {
	verb := "set"
	if f%2 == 0 {
		verb = "add"
	}
	body := fmt.Sprintf("labels=10.0.%d.%d:8080,pod-%d,%d&value=%g", i/250, i%250, i%97, 200+i%5, v)
	req := httptest.NewRequest(http.MethodPost, "/push/w/api/"+famName(f)+"/"+verb, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Private-Token", pushToken)
	w := httptest.NewRecorder()
	r.mux.ServeHTTP(w, req)
	if w.Code != http.StatusNoContent {
		b.Errorf("push %s: %d %s", body, w.Code, w.Body.String())
	}
}
