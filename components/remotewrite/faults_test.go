package remotewrite

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/internal/faultfs"
	"github.com/sluicehq/sluice/internal/gathermerge/gathermergetest"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

func health(h *pipelinetest.Harness) pipeline.Health {
	return h.Component.(pipeline.HealthReporter).Health()
}

// TestWALRecoversFromDiskFaults: with every WAL write failing (ENOSPC,
// EIO, EROFS, short writes), gathers are dropped, counted and the
// component is unhealthy; once the fault clears, without a restart, the
// WAL is written again, what was appended before the fault and after it
// is sent, and the component is healthy. (Before the fix, one ENOSPC made
// every later append fail until a restart: bufio.Writer's sticky error.)
func TestWALRecoversFromDiskFaults(t *testing.T) {
	var faults []faultfs.Fault
	for _, e := range faultfs.Errnos() {
		faults = append(faults, faultfs.Fault{Op: faultfs.OpWrite, Err: e})
	}
	faults = append(faults, faultfs.Fault{Op: faultfs.OpWrite, Err: faultfs.Errnos()[0], Short: true})
	for _, fault := range faults {
		t.Run(fmt.Sprintf("%v/short=%v", fault.Err, fault.Short), func(t *testing.T) {
			rc := newReceiver(t, false)
			reg := prometheus.NewRegistry()
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "level", Help: "h"})
			reg.MustRegister(g)
			fsys := faultfs.NewInjector(faultfs.OS{})
			h := pipelinetest.New(t, "remote_write", walBody(rc.url(), ""), pipelinetest.WithGatherer("app", reg), pipelinetest.WithDataPath(t.TempDir()))
			h.Component.(*Component).walFS = fsys
			g.Set(1)
			h.Start()
			has := func(v float64) bool {
				for _, s := range rc.samples(`level{}`) {
					if s.Value == v {
						return true
					}
				}
				return false
			}
			pipelinetest.Eventually(t, 10*time.Second, func() bool { return has(1) }, "the value gathered before the fault")

			fsys.Inject(fault)
			g.Set(2)
			pipelinetest.Eventually(t, 10*time.Second, func() bool {
				return selfMetric(t, h, "sluice_remote_write_wal_dropped_samples_total", nil) >= 2 &&
					health(h).State == pipeline.HealthUnhealthy
			}, "gathers dropped, counted, and the component unhealthy")
			if msg := health(h).Message; !strings.Contains(msg, "WAL not writable") {
				t.Errorf("health message %q", msg)
			}
			if n := selfMetric(t, h, "sluice_remote_write_wal_faults_total", map[string]string{"op": "write"}); n < 2 {
				t.Errorf("%v write faults counted", n)
			}

			fsys.Clear()
			g.Set(3)
			pipelinetest.Eventually(t, 10*time.Second, func() bool { return has(3) }, "a value gathered after the fault cleared")
			pipelinetest.Eventually(t, 10*time.Second, func() bool { return health(h).State == pipeline.HealthHealthy }, "healthy again")
			if err := h.Stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// newReceiverAt is newReceiver listening on addr.
func newReceiverAt(t *testing.T, addr string) *receiver {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{t: t}
	rc.srv = httptest.NewUnstartedServer(http.HandlerFunc(rc.serve))
	rc.srv.Listener.Close()
	rc.srv.Listener = l
	rc.srv.Start()
	t.Cleanup(rc.srv.Close)
	return rc
}

// TestUnreachableEndpointIsUnhealthy: an endpoint that refuses every
// connection for longer than the threshold, with samples pending, makes
// the component unhealthy (it was healthy throughout before); it is
// healthy again once the endpoint is back and the samples are sent.
func TestUnreachableEndpointIsUnhealthy(t *testing.T) {
	addr := pipelinetest.FreeTCPAddr(t) // nothing listens: connections are refused
	reg, _ := testInputs(t)
	h := pipelinetest.New(t, "remote_write", fmt.Sprintf(`
  inputs          = [test.app]
  scrape_interval = "100ms"
  endpoint {
    url = "http://%s/api/v1/write"
  }
  queue {
    batch_send_deadline = "20ms"
    min_backoff         = "10ms"
    max_backoff         = "50ms"
  }
`, addr), pipelinetest.WithGatherer("app", reg))
	h.Component.(*Component).unreachableAfter = 500 * time.Millisecond
	h.Start()
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return health(h).State == pipeline.HealthUnhealthy }, "unhealthy while connections are refused")
	if msg := health(h).Message; !strings.Contains(msg, "every send failed") || !strings.Contains(msg, "refused") {
		t.Errorf("health message %q", msg)
	}
	rc := newReceiverAt(t, addr)
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return len(rc.samples(`app_requests_total{}`)) > 0 && health(h).State == pipeline.HealthHealthy
	}, "samples sent and healthy again once the endpoint is back")
}

// oneInputBody is a remote_write of input to url, gathering every 100ms.
func oneInputBody(input, url string) string {
	return fmt.Sprintf(`
  inputs          = [%s]
  scrape_interval = "100ms"
  endpoint {
    url = %q
  }
  queue {
    batch_send_deadline = "20ms"
  }
`, input, url)
}

// TestPartialGatherIsSent: an input whose Gather returns good families
// together with an error has the good ones sent; each error is counted
// (reason "partial").
func TestPartialGatherIsSent(t *testing.T) {
	rc := newReceiver(t, false)
	h := pipelinetest.New(t, "remote_write", oneInputBody("test.partial", rc.url()), pipelinetest.WithGatherer("partial", gathermergetest.PartialRegistry()))
	h.Start()
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return len(rc.samples(gathermergetest.GoodFamily+`{}`)) > 0
	}, "the good family sent")
	if n := selfMetric(t, h, "sluice_remote_write_gather_errors_total", map[string]string{"reason": "partial"}); n < 1 {
		t.Errorf("gather_errors_total{reason=partial} = %v", n)
	}
}

// TestInvalidUTF8SeriesDropped: a series whose label value is not valid
// UTF-8, from an input that reports no error, is left out and counted;
// the other series of the gather are sent (a receiver would have refused
// the whole request, valid series included).
func TestInvalidUTF8SeriesDropped(t *testing.T) {
	rc := newReceiver(t, false)
	in := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		gauge := func(name, value string) *dto.MetricFamily {
			return &dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{{
				Label: []*dto.LabelPair{{Name: proto.String("l"), Value: proto.String(value)}},
				Gauge: &dto.Gauge{Value: proto.Float64(1)},
			}}}
		}
		return []*dto.MetricFamily{gauge("bad", "\xff"), gauge("good", "ok")}, nil
	})
	h := pipelinetest.New(t, "remote_write", oneInputBody("test.in", rc.url()), pipelinetest.WithGatherer("in", in))
	h.Start()
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return len(rc.samples(`good{l="ok"}`)) >= 2
	}, "the valid series sent")
	if n := selfMetric(t, h, "sluice_remote_write_invalid_series_total", nil); n < 2 {
		t.Errorf("invalid series counted %v times, want once per gather", n)
	}
	if n := selfMetric(t, h, "sluice_remote_write_samples_total", result("failed")); n != 0 {
		t.Errorf("%v samples refused by the receiver", n)
	}
}
