package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testing/kubetest"
)

// TestKubernetesStatusLeaderElection runs two agents with the same
// kubernetes_status_source and leader_election block against a real
// kube-apiserver, as two replicas of the cluster-scoped Deployment: one
// leads and exports, the other is a standby that exports nothing; both say
// which they are in sluice_kubernetes_leader. The leader is killed
// (SIGKILL: it cannot release the Lease) and the standby takes over within
// the lease duration (plus up to two jittered retry periods).
func TestKubernetesStatusLeaderElection(t *testing.T) {
	srv := kubetest.Start(t)
	kc, err := srv.WriteKubeconfig(t.TempDir(), kubetest.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	const leaseDuration, retryPeriod = 4 * time.Second, 500 * time.Millisecond
	cfg := fmt.Sprintf(`
kubernetes_status_source "cluster" {
  kubeconfig = %q
  workload "web" {
    kind      = "Deployment"
    namespace = "default"
    name      = "web"
    metric    = "web_status"
  }
  leader_election {
    lease_name      = "sluice-cluster-status"
    lease_namespace = "default"
    lease_duration  = %q
    renew_deadline  = "3s"
    retry_period    = %q
  }
}
metrics_sink "ks" {
  inputs = [kubernetes_status_source.cluster.metrics]
  path   = "/metrics/ks"
}
`, kc, leaseDuration, retryPeriod)
	agents := map[string]*agent{
		"replica-a": launch(t, cfg, launchOpts{env: []string{"POD_NAME=replica-a"}}).waitReady(),
		"replica-b": launch(t, cfg, launchOpts{env: []string{"POD_NAME=replica-b"}}).waitReady(),
	}
	role := func(id string) string {
		_, m := agents[id].get("/metrics")
		_, ks := agents[id].get("/metrics/ks")
		exporting := strings.Contains(ks, "web_status{")
		switch {
		case strings.Contains(m, fmt.Sprintf(`sluice_kubernetes_leader{component_id="kubernetes_status_source.cluster",identity=%q,lease="default/sluice-cluster-status"} 1`, id)) && exporting:
			return "leader"
		case strings.Contains(m, fmt.Sprintf(`sluice_kubernetes_leader{component_id="kubernetes_status_source.cluster",identity=%q,lease="default/sluice-cluster-status"} 0`, id)) && !exporting:
			return "standby"
		}
		return "?"
	}
	var leader, standby string
	agents["replica-a"].waitFor("one leader and one standby", func() bool {
		ra, rb := role("replica-a"), role("replica-b")
		switch {
		case ra == "leader" && rb == "standby":
			leader, standby = "replica-a", "replica-b"
		case rb == "leader" && ra == "standby":
			leader, standby = "replica-b", "replica-a"
		default:
			return false
		}
		return true
	})

	// The status UI's page of the component shows its part too.
	for id, want := range map[string]string{leader: "1", standby: "0"} {
		_, page := agents[id].get("/component/kubernetes_status_source.cluster")
		if !strings.Contains(page, "sluice_kubernetes_leader") || !strings.Contains(page, id) {
			t.Errorf("%s's status UI page does not show sluice_kubernetes_leader (%s)", id, want)
		}
	}

	killed := time.Now()
	a := agents[leader]
	_ = a.cmd.Process.Kill()
	<-a.exited
	a.exited <- nil // for the cleanup
	agents[standby].waitFor("the standby to take over", func() bool { return role(standby) == "leader" })
	took := time.Since(killed)
	t.Logf("%s killed; %s leads and exports %v later (lease_duration %v, retry_period %v)", leader, standby, took, leaseDuration, retryPeriod)
	// The standby sees the lease expire lease_duration after it last saw
	// it renewed; it polls every retry_period with client-go's jitter (up
	// to 2.2x), so it may see the last renewal and the expiry each up to
	// one jittered retry late.
	if limit := leaseDuration + 2*retryPeriod*22/10; took > limit {
		t.Errorf("takeover took %v, want within the lease duration plus two jittered retries (%v)", took, limit)
	}
}
