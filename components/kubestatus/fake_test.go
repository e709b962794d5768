package kubestatus

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// startFake runs the component from body against fake clientsets holding
// objs (typed ones in the kube fake, unstructured ones in the dynamic fake).
func startFake(t *testing.T, body string, objs ...runtime.Object) (*pipelinetest.Harness, *fake.Clientset, *dynfake.FakeDynamicClient) {
	t.Helper()
	var typed, dyn []runtime.Object
	for _, o := range objs {
		if _, ok := o.(*unstructured.Unstructured); ok {
			dyn = append(dyn, o)
		} else {
			typed = append(typed, o)
		}
	}
	kube := fake.NewClientset(typed...)
	dc := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{appsGVR: "ApplicationList"}, dyn...)
	h := pipelinetest.New(t, Name, body)
	h.Component.(*Component).newClients = func(*plan) (*clients, error) { return &clients{kube: kube, dyn: dc}, nil }
	h.Start()
	return h, kube, dc
}

var appsGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}

// sample is one gathered series.
type sample struct {
	labels map[string]string
	value  float64
}

// gather returns the series of metric name.
func gather(t testing.TB, g prometheus.Gatherer, name string) []sample {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []sample
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			out = append(out, sample{labelMap(m), m.GetGauge().GetValue() + m.GetCounter().GetValue()})
		}
	}
	return out
}

func labelMap(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, lp := range m.GetLabel() {
		l[lp.GetName()] = lp.GetValue()
	}
	return l
}

// value returns the value of the series of name whose labels include want;
// ok is false when there is none.
func value(t testing.TB, g prometheus.Gatherer, name string, want map[string]string) (float64, bool) {
	t.Helper()
	for _, s := range gather(t, g, name) {
		match := true
		for k, v := range want {
			if s.labels[k] != v {
				match = false
			}
		}
		if match {
			return s.value, true
		}
	}
	return 0, false
}

// waitValue waits until the series has value v.
func waitValue(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string, v float64) {
	t.Helper()
	var last float64
	var ok bool
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if last, ok = value(t, g, name, labels); ok && last == v {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s%v: want %v, have %v (present=%v)", name, labels, v, last, ok)
}

// TestRulesThroughInformers runs every row of the rules table through a
// fake clientset, the trimmed informers and the watch block's gauges.
func TestRulesThroughInformers(t *testing.T) {
	var objs []runtime.Object
	for _, tc := range ruleCases() {
		objs = append(objs, tc.obj.DeepCopyObject())
	}
	h, _, _ := startFake(t, `
  watch "all" {
    kinds = ["Deployment", "StatefulSet", "DaemonSet", "Pod"]
  }
`, objs...)
	for _, tc := range ruleCases() {
		m := tc.obj.(metav1.Object)
		labels := map[string]string{"namespace": "ns", "kind": kindOf(tc.obj), "name": m.GetName()}
		waitValue(t, h.Gatherer(), "sluice_workload_status", labels, float64(tc.want))
		waitValue(t, h.Gatherer(), "sluice_workload_status_failed", labels, b2f(tc.failed))
	}
	if n := len(gather(t, h.Gatherer(), "sluice_workload_status")); n != len(ruleCases()) {
		t.Errorf("%d series, want one per object (%d)", n, len(ruleCases()))
	}
}

func kindOf(o runtime.Object) string {
	s := fmt.Sprintf("%T", o)
	return s[strings.LastIndex(s, ".")+1:]
}

func argoDeploy(name string, st Status) *appsv1.Deployment {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "argocd", Generation: 1}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1)}}
	d.Status = statusFor(st)
	return d
}

// statusFor is a Deployment status the rules decide as st.
func statusFor(st Status) appsv1.DeploymentStatus {
	switch st {
	case Available:
		return dstatus(1, 1, 1, 1, 1, availableTrue)
	case Running:
		return dstatus(1, 2, 0, 1, 1, availableTrue) // a rollout: updated lags
	}
	return dstatus(1, 1, 1, 0, 0)
}

func argoSts(name string) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "argocd", Generation: 1},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](1)},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 1, Replicas: 1, ReadyReplicas: 1, AvailableReplicas: 1,
			CurrentRevision: "r1", UpdateRevision: "r1"}}
}

var argoMetrics = []string{
	"argocd_application_controller_status",
	"argocd_applicationset_controller_status",
	"argocd_repo_server_status",
	"argocd_server_status",
	"argocd_notifications_controller_status",
	"argocd_dex_status",
	"argocd_redis_status",
	"argocd_phase",
}

func TestArgoCDPreset(t *testing.T) {
	// dex is not installed; redis is the plain Deployment at first.
	h, kube, _ := startFake(t, `
  namespaces = ["argocd"]
  preset "argocd" { namespace = "argocd" }
`,
		argoSts("argocd-application-controller"),
		argoDeploy("argocd-applicationset-controller", Available),
		argoDeploy("argocd-repo-server", Available),
		argoDeploy("argocd-server", Available),
		argoDeploy("argocd-notifications-controller", Available),
		argoDeploy("argocd-redis", Available),
	)
	ns := map[string]string{"namespace": "argocd"}
	waitValue(t, h.Gatherer(), "argocd_phase", ns, float64(Available))

	// Exactly the eight status metrics (and the seven workloads' _failed),
	// each labelled namespace.
	mfs, err := h.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		if strings.HasSuffix(mf.GetName(), "_failed") {
			continue
		}
		names = append(names, mf.GetName())
		if len(mf.GetMetric()) != 1 || labelMap(mf.GetMetric()[0])["namespace"] != "argocd" {
			t.Errorf("%s: want one series labelled namespace=argocd, got %v", mf.GetName(), mf.GetMetric())
		}
	}
	if fmt.Sprint(sortStrings(names)) != fmt.Sprint(sortStrings(argoMetrics)) {
		t.Errorf("metrics %v, want exactly %v", names, argoMetrics)
	}
	// dex absent: Unknown, and the phase is still Available.
	if v, _ := value(t, h.Gatherer(), "argocd_dex_status", ns); v != float64(Unknown) {
		t.Errorf("dex (not installed) = %v, want Unknown", v)
	}

	// The server rolls out: the phase follows the lowest status.
	ctx := context.Background()
	srv := argoDeploy("argocd-server", Running)
	if _, err := kube.AppsV1().Deployments("argocd").Update(ctx, srv, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitValue(t, h.Gatherer(), "argocd_server_status", ns, float64(Running))
	waitValue(t, h.Gatherer(), "argocd_phase", ns, float64(Running))

	// dex installed but Pending now holds the phase down.
	if _, err := kube.AppsV1().Deployments("argocd").Create(ctx, argoDeploy("argocd-dex-server", Pending), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitValue(t, h.Gatherer(), "argocd_dex_status", ns, float64(Pending))
	waitValue(t, h.Gatherer(), "argocd_phase", ns, float64(Pending))

	// redis: the HA StatefulSet wins once it exists. The Deployment is
	// Pending, the StatefulSet Available.
	if _, err := kube.AppsV1().Deployments("argocd").Update(ctx, argoDeploy("argocd-redis", Pending), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitValue(t, h.Gatherer(), "argocd_redis_status", ns, float64(Pending))
	if _, err := kube.AppsV1().StatefulSets("argocd").Create(ctx, argoSts("argocd-redis-ha-server"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitValue(t, h.Gatherer(), "argocd_redis_status", ns, float64(Available))

	// A failed rollout sets <metric>_failed; the status encoding is unchanged.
	failing := argoDeploy("argocd-repo-server", Running)
	failing.Status.Conditions = append(failing.Status.Conditions, dcond(appsv1.DeploymentProgressing, "False", "ProgressDeadlineExceeded"))
	if _, err := kube.AppsV1().Deployments("argocd").Update(ctx, failing, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitValue(t, h.Gatherer(), "argocd_repo_server_status_failed", ns, 1)
	waitValue(t, h.Gatherer(), "argocd_repo_server_status", ns, float64(Running))
}

func sortStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestDeletion(t *testing.T) {
	h, kube, _ := startFake(t, `
  workload "web" {
    kind      = "Deployment"
    namespace = "argocd"
    name      = "argocd-server"
    metric    = "web_status"
  }
  watch "all" { kinds = ["Deployment"] }
`, argoDeploy("argocd-server", Available), argoDeploy("other", Running))
	ns := map[string]string{"namespace": "argocd"}
	waitValue(t, h.Gatherer(), "web_status", ns, float64(Available))
	waitValue(t, h.Gatherer(), "sluice_workload_status", map[string]string{"name": "other"}, float64(Running))

	ctx := context.Background()
	for _, n := range []string{"argocd-server", "other"} {
		if err := kube.AppsV1().Deployments("argocd").Delete(ctx, n, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The named workload returns to Unknown; the watch series disappear.
	waitValue(t, h.Gatherer(), "web_status", ns, float64(Unknown))
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return len(gather(t, h.Gatherer(), "sluice_workload_status")) == 0
	}, "watch series gone after deletion")
	if v, ok := value(t, h.Gatherer(), "sluice_kubernetes_events_total", nil); ok && v == 0 {
		t.Error("no events counted")
	}
}

// TestReloadKeepsInformers: a reload that adds a workload keeps the
// running informer of an unchanged scope (same instance, same statuses),
// so the metric is never Unknown during the reload; a removed scope's
// informer stops.
func TestReloadKeepsInformers(t *testing.T) {
	server := `
  workload "server" {
    kind      = "Deployment"
    namespace = "argocd"
    name      = "argocd-server"
    metric    = "server_status"
  }
`
	h, _, _ := startFake(t, server+`
  workload "repo" {
    kind      = "Deployment"
    namespace = "argocd"
    name      = "argocd-repo-server"
    metric    = "repo_status"
  }
`, argoDeploy("argocd-server", Available), argoDeploy("argocd-repo-server", Running), argoDeploy("argocd-dex-server", Pending))
	c := h.Component.(*Component)
	ns := map[string]string{"namespace": "argocd"}
	waitValue(t, h.Gatherer(), "server_status", ns, float64(Available))
	waitValue(t, h.Gatherer(), "repo_status", ns, float64(Running))
	serverScope := scope{Kind: "Deployment", Namespace: "argocd", Name: "argocd-server"}
	before := informerFor(c, serverScope)

	if err := h.Update(server + `
  workload "dex" {
    kind      = "Deployment"
    namespace = "argocd"
    name      = "argocd-dex-server"
    metric    = "dex_status"
  }
`); err != nil {
		t.Fatal(err)
	}
	// Right after Commit, before Run has reconciled: still Available.
	if v, _ := value(t, h.Gatherer(), "server_status", ns); v != float64(Available) {
		t.Fatalf("server_status = %v right after the reload, want Available (kept)", v)
	}
	waitValue(t, h.Gatherer(), "dex_status", ns, float64(Pending))
	if after := informerFor(c, serverScope); after != before {
		t.Error("the unchanged scope's informer was replaced")
	}
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return informerFor(c, scope{Kind: "Deployment", Namespace: "argocd", Name: "argocd-repo-server"}) == nil
	}, "the removed scope's informer stopped")
	if _, ok := value(t, h.Gatherer(), "repo_status", ns); ok {
		t.Error("repo_status still exported after its block was removed")
	}
}

func informerFor(c *Component, s scope) *informer {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.informers[s]
}

// TestGenericKind: a group/version/resource (Argo CD Applications) through
// the dynamic client, with status_path and value_map.
func TestGenericKind(t *testing.T) {
	app := func(name, health string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
			"metadata": map[string]any{"name": name, "namespace": "argocd", "annotations": map[string]any{"big": strings.Repeat("x", 1000)}},
			"spec":     map[string]any{"project": "default"},
		}}
		if health != "" {
			_ = unstructured.SetNestedField(u.Object, health, "status", "health", "status")
		}
		return u
	}
	h, _, dc := startFake(t, `
  workload "guestbook" {
    kind          = "argoproj.io/v1alpha1/applications"
    namespace     = "argocd"
    name          = "guestbook"
    metric        = "guestbook_health"
    status_path   = "status.health.status"
    value_map     = { Healthy = 3, Progressing = 1, Degraded = 2, Missing = 0 }
    failed_values = ["Degraded"]
  }
`, app("guestbook", "Progressing"))
	ns := map[string]string{"namespace": "argocd"}
	waitValue(t, h.Gatherer(), "guestbook_health", ns, 1)
	ctx := context.Background()
	res := dc.Resource(appsGVR).Namespace("argocd")
	for _, tc := range []struct {
		health string
		want   float64
		failed float64
	}{{"Healthy", 3, 0}, {"Degraded", 2, 1}, {"SomethingNew", 0, 0}, {"", 0, 0}} {
		if _, err := res.Update(ctx, app("guestbook", tc.health), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitValue(t, h.Gatherer(), "guestbook_health", ns, tc.want)
		waitValue(t, h.Gatherer(), "guestbook_health_failed", ns, tc.failed)
	}
}
