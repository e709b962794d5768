package kubestatus

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// TestPhaseNamespace: a phase block's series carries the namespace of its
// workloads (it was always namespace="", beside the preset's own
// argocd_phase{namespace="argocd"}); across namespaces it is "".
func TestPhaseNamespace(t *testing.T) {
	h, _ := startReal(t, "phase", `
  workload "server" {
    kind      = "Deployment"
    namespace = "phase"
    name      = "argocd-server"
    metric    = "argocd_server_status"
  }
  workload "repo" {
    kind      = "Deployment"
    namespace = "phase"
    name      = "argocd-repo-server"
    metric    = "argocd_repo_server_status"
  }
  workload "other" {
    kind      = "Deployment"
    namespace = "tools"
    name      = "tool"
    metric    = "tool_status"
  }
  phase "argocd_core_phase" { workloads = ["server", "repo"] }
  phase "mixed_phase" { workloads = ["server", "other"] }
`, argoDeploy("argocd-server", Available), argoDeploy("argocd-repo-server", Running))
	waitValue(t, h.Gatherer(), "argocd_core_phase", map[string]string{"namespace": "phase"}, float64(Running))
	if got := gather(t, h.Gatherer(), "argocd_core_phase"); len(got) != 1 {
		t.Fatalf("argocd_core_phase series: %v", got)
	}
	if got := gather(t, h.Gatherer(), "mixed_phase"); len(got) != 1 || got[0].labels["namespace"] != "" {
		t.Fatalf("a phase across namespaces: %v", got)
	}
}

// TestPhaseClashesWithPreset: a phase block named like the preset's phase
// in the preset's namespace is the same series: a config error, not two
// series of which one lies about its namespace.
func TestPhaseClashesWithPreset(t *testing.T) {
	_, diags := pipelinetest.Decode(t, Name, `
  workload "server" {
    kind      = "Deployment"
    namespace = "argocd"
    name      = "argocd-server"
    metric    = "my_server_status"
  }
  phase "argocd_phase" { workloads = ["server"] }
  preset "argocd" { namespace = "argocd" }
`)
	if !diags.HasErrors() || !strings.Contains(diags.Error(), `argocd_phase{namespace="argocd"} is already exported`) {
		t.Fatalf("diagnostics: %v", diags)
	}
}

// selfValue is the value of the component's self-metric name (0 when
// absent).
func selfValue(t *testing.T, h *pipelinetest.Harness, name string) float64 {
	v, _ := value(t, h.Registry, name, nil)
	return v
}

// TestProbeMarksUnreachable: probes that fail for longer than
// unreachableAfter make the component unhealthy, log it once, count each
// failure and set api_up to 0; the first answer heals it. (The real API
// server version of this is TestRealAPIServerLoss.)
func TestProbeMarksUnreachable(t *testing.T) {
	var down atomic.Bool
	var logs pipelinetest.Buffer
	h := pipelinetest.New(t, Name, `watch "all" { kinds = ["Deployment"] }`,
		pipelinetest.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	c := h.Component.(*Component)
	c.probeEvery, c.unreachableAfter = 20*time.Millisecond, 200*time.Millisecond
	srv, _ := realServer(t)
	c.newClients = func(*plan) (*clients, error) {
		cl, err := clientsFor(srv.AdminConfig())
		if err != nil {
			return nil, err
		}
		// The probe is replaced; the watches use the real API server.
		return &clients{kw: cl.kw, probe: func(context.Context) error {
			if down.Load() {
				return errors.New("connect: connection refused")
			}
			return nil
		}}, nil
	}
	h.Start()
	self := func(name string) float64 { return selfValue(t, h, name) }
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return c.Health().State == pipeline.HealthHealthy && self("sluice_kubernetes_api_up") == 1
	}, "healthy: %+v", c.Health())
	down.Store(true)
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		hl := c.Health()
		return hl.State == pipeline.HealthUnhealthy && strings.Contains(hl.Message, "connection refused")
	}, "unhealthy: %+v", c.Health())
	if self("sluice_kubernetes_api_up") != 0 || self("sluice_kubernetes_api_probe_failures_total") < 2 ||
		self("sluice_kubernetes_api_contact_age_seconds") < 0.1 {
		t.Errorf("self-metrics while down: up=%v failures=%v age=%v", self("sluice_kubernetes_api_up"),
			self("sluice_kubernetes_api_probe_failures_total"), self("sluice_kubernetes_api_contact_age_seconds"))
	}
	if n := strings.Count(logs.String(), "API server unreachable"); n != 1 {
		t.Errorf("the outage logged %d times, want once: %s", n, logs.String())
	}
	down.Store(false)
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return c.Health().State == pipeline.HealthHealthy && self("sluice_kubernetes_api_up") == 1
	}, "healthy again: %+v", c.Health())
	if !strings.Contains(logs.String(), "API server reachable again") {
		t.Errorf("recovery not logged: %s", logs.String())
	}
}
