package kubestatus

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// TestBadConfig: every bad argument is a diagnostic naming the problem.
func TestBadConfig(t *testing.T) {
	named := func(extra string) string {
		return `workload "w" {
  kind = "Deployment"
  namespace = "argocd"
  name = "x"
  metric = "w_status"
  ` + extra + `
}`
	}
	for _, tc := range []struct{ name, body, want string }{
		{"empty", ``, "nothing to watch"},
		{"bad kind", `workload "w" {
  kind = "Deploymnet"
  namespace = "a"
  name = "x"
  metric = "m"
}`, "want Deployment, StatefulSet"},
		{"name and selector", named(`label_selector = "a=b"`), "not both"},
		{"neither name nor selector", `workload "w" {
  kind = "Pod"
  metric = "m"
}`, "set name or label_selector"},
		{"bad selector", `watch "w" {
  kinds = ["Pod"]
  label_selector = "a in (("
}`, "bad label selector"},
		{"bad metric", `workload "w" {
  kind = "Pod"
  namespace = "a"
  name = "x"
  metric = "9bad"
}`, "not a valid Prometheus metric name"},
		{"status_path on builtin", named(`status_path = "status.x"`), "only for group/version/resource"},
		{"generic without value_map", `workload "w" {
  kind = "argoproj.io/v1alpha1/applications"
  namespace = "argocd"
  name = "x"
  metric = "m"
  status_path = "status.health.status"
}`, "value_map is required"},
		{"value out of range", `workload "w" {
  kind = "argoproj.io/v1alpha1/applications"
  namespace = "argocd"
  name = "x"
  metric = "m"
  status_path = "status.health.status"
  value_map = { Healthy = 4 }
}`, "statuses are 0 (Unknown) to 3"},
		{"generic in watch", `watch "w" { kinds = ["argoproj.io/v1alpha1/applications"] }`, "watch blocks take"},
		{"namespace outside namespaces", `namespaces = ["a"]
` + named(""), `namespace "argocd" is not in namespaces`},
		{"named without namespace", `workload "w" {
  kind = "Pod"
  name = "x"
  metric = "m"
}`, "set its namespace"},
		{"unknown preset", `preset "flux" { namespace = "flux" }`, `unknown preset "flux"`},
		{"phase unknown workload", named("") + `
phase "p" { workloads = ["nope"] }`, `no workload block "nope"`},
		{"duplicate metric", named("") + `
workload "v" {
  kind = "Pod"
  namespace = "argocd"
  name = "y"
  metric = "w_status"
}`, "already exported"},
		{"preset twice same namespace", `preset "argocd" { namespace = "argocd" }
preset "argocd" { namespace = "argocd" }`, "Duplicate preset"},
		{"bad namespace", `preset "argocd" { namespace = "Not_A_Namespace" }`, "not a valid namespace name"},
		{"max_series", `max_series = 0
` + named(""), "at least 1"},
		{"lease without namespace", named("") + `
leader_election { lease_name = "l" }`, `"lease_namespace" is required`},
		{"lease timings", named("") + `
leader_election {
  lease_name = "l"
  lease_namespace = "n"
  lease_duration = "5s"
  renew_deadline = "10s"
}`, "lease_duration > renew_deadline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := pipelinetest.Decode(t, Name, tc.body)
			if !diags.HasErrors() {
				t.Fatalf("accepted:\n%s", tc.body)
			}
			if !strings.Contains(diags.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", diags.Error(), tc.want)
			}
		})
	}
}
