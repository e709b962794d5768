package webhook_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/components/webhook"
	"github.com/sluicehq/sluice/internal/faultfs"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// A receiver whose state cannot be written (here: from the start, as on a
// read-only data directory) reports it — unhealthy, persist_failing 1,
// errors counted — refuses pushes with 503 instead of 500s it cannot keep,
// and recovers without a restart once the directory is writable again.
func TestStateFaultReportedAndRecovered(t *testing.T) {
	for _, errno := range faultfs.Errnos() {
		t.Run(errno.Error(), func(t *testing.T) {
			mux := pipelinetest.NewMux()
			h := pipelinetest.New(t, "webhook_receiver", baseConfig, pipelinetest.WithMounter(mux), pipelinetest.WithID("d"))
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			c := h.Component.(*webhook.Component)
			in := faultfs.NewInjector(faultfs.OS{})
			in.Inject(faultfs.Fault{Op: faultfs.OpCreate, Err: errno})
			webhook.SetFS(c, in)
			h.Start()
			r := &rig{t: t, h: h, url: srv.URL + "/push/d"}
			pipelinetest.Eventually(t, 5*time.Second, func() bool {
				code, _ := r.do("GET", "/metrics", "", "", nil)
				return code == 200
			}, "receiver never served")
			if hl := c.Health(); hl.State != pipeline.HealthUnhealthy || !strings.Contains(hl.Message, errno.Error()) {
				t.Errorf("health on a failing disk = %+v", hl)
			}
			if v := metricValue(t, h.Registry, "sluice_webhook_persist_failing"); v != 1 {
				t.Errorf("persist_failing = %v, want 1", v)
			}
			if code, body := r.form("/api/jobs_total/inc", "labels=a"); code != 503 || !strings.Contains(body, errno.Error()) {
				t.Errorf("push on a failing disk = %d %q, want 503 naming the error", code, body)
			}
			pipelinetest.Eventually(t, 5*time.Second, func() bool {
				return metricValue(t, h.Registry, "sluice_webhook_persist_errors_total", "what", "log") >= 2
			}, "the receiver does not retry by itself")
			in.Clear()
			pipelinetest.Eventually(t, 10*time.Second, func() bool {
				code, _ := r.form("/api/jobs_total/inc", "labels=a")
				return code == 204
			}, "pushes not accepted again after the disk recovered")
			if hl := c.Health(); hl.State != pipeline.HealthHealthy {
				t.Errorf("health after recovery = %+v", hl)
			}
			if v := metricValue(t, h.Registry, "sluice_webhook_persist_failing"); v != 0 {
				t.Errorf("persist_failing after recovery = %v", v)
			}
			r.mustHave(`jobs_total{project="a"} 1`)
		})
	}
}

// Two pushes of 1.7e308 to a counter: the second is refused (400) and
// counted, and the receiver keeps working (item 1).
func TestOverflowRefusedOverHTTP(t *testing.T) {
	r := newRig(t, baseConfig)
	if code, body := r.form("/api/jobs_total/add", "labels=a&value=1.7e308"); code != 204 {
		t.Fatalf("first add = %d %s", code, body)
	}
	if code, body := r.form("/api/jobs_total/add", "labels=a&value=1.7e308"); code != 400 || !strings.Contains(body, "finite") {
		t.Errorf("overflowing add = %d %q, want 400", code, body)
	}
	if v := metricValue(t, r.h.Registry, "sluice_webhook_nonfinite_refused_total", "metric", "jobs_total"); v != 1 {
		t.Errorf("nonfinite_refused_total = %v, want 1", v)
	}
	r.mustHave(`jobs_total{project="a"} 1.7e+308`)
	// A stop writes the final snapshot; a start reads it back.
	if err := r.h.Stop(); err != nil {
		t.Fatal(err)
	}
	r.h.Start()
	pipelinetest.Eventually(t, 5*time.Second, func() bool { return strings.Contains(r.scrape(), `jobs_total{project="a"} 1.7e+308`) }, "state lost across a restart")
}
