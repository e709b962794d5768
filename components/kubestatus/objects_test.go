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
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/sluicehq/sluice/internal/testing/kubetest"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// These tests ran against client-go's fake clientsets; they now run
// against the shared real kube-apiserver (realServer), each in its own
// namespace, with the component watching through its own client.

// startReal creates objs in namespace ns of the real API server (spec
// first, then the status subresource, as controllers write it) and runs
// the component from body, given the admin kubeconfig.
func startReal(t *testing.T, ns, body string, objs ...runtime.Object) (*pipelinetest.Harness, kubernetes.Interface) {
	t.Helper()
	srv, cs := realServer(t)
	createNamespace(t, cs, ns)
	for _, o := range objs {
		if err := createWithStatus(cs, ns, o); err != nil {
			t.Fatalf("%T %s: %v", o, o.(metav1.Object).GetName(), err)
		}
	}
	kc, err := srv.WriteKubeconfig(t.TempDir(), kubetest.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	h := pipelinetest.New(t, Name, fmt.Sprintf("kubeconfig = %q\n", kc)+body)
	h.Start()
	return h, cs
}

// createWithStatus creates o in ns and writes its status. The API server
// sets metadata.generation (1 on create): observedGeneration is shifted by
// the same amount so that "generation observed or not" is as the object
// says.
func createWithStatus(cs kubernetes.Interface, ns string, o runtime.Object) error {
	ctx := context.Background()
	o = o.DeepCopyObject()
	m := o.(metav1.Object)
	m.SetNamespace(ns)
	shift := func(observed int64) int64 { return observed - m.GetGeneration() + 1 }
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": m.GetName()}}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel.MatchLabels}, Spec: podSpec()}
	switch x := o.(type) {
	case *appsv1.Deployment:
		x.Spec.Selector, x.Spec.Template = sel, tmpl
		st := x.Status
		st.ObservedGeneration = shift(st.ObservedGeneration)
		x.Status = appsv1.DeploymentStatus{}
		d, err := cs.AppsV1().Deployments(ns).Create(ctx, x, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		d.Status = st
		_, err = cs.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{})
		return err
	case *appsv1.StatefulSet:
		x.Spec.Selector, x.Spec.Template = sel, tmpl
		st := x.Status
		st.ObservedGeneration = shift(st.ObservedGeneration)
		x.Status = appsv1.StatefulSetStatus{}
		s, err := cs.AppsV1().StatefulSets(ns).Create(ctx, x, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		s.Status = st
		_, err = cs.AppsV1().StatefulSets(ns).UpdateStatus(ctx, s, metav1.UpdateOptions{})
		return err
	case *appsv1.DaemonSet:
		x.Spec.Selector, x.Spec.Template = sel, tmpl
		st := x.Status
		st.ObservedGeneration = shift(st.ObservedGeneration)
		x.Status = appsv1.DaemonSetStatus{}
		d, err := cs.AppsV1().DaemonSets(ns).Create(ctx, x, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		d.Status = st
		_, err = cs.AppsV1().DaemonSets(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{})
		return err
	case *corev1.Pod:
		x.Spec = podSpec()
		st := x.Status
		x.Status = corev1.PodStatus{}
		p, err := cs.CoreV1().Pods(ns).Create(ctx, x, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		p.Status = st
		_, err = cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		return err
	}
	return fmt.Errorf("cannot create a %T", o)
}

// deleteObject deletes o's namespace/name of its kind in ns, if it exists.
func deleteObject(t *testing.T, cs kubernetes.Interface, ns string, o runtime.Object) {
	t.Helper()
	ctx, name := context.Background(), o.(metav1.Object).GetName()
	var err error
	switch o.(type) {
	case *appsv1.Deployment:
		err = cs.AppsV1().Deployments(ns).Delete(ctx, name, metav1.DeleteOptions{})
	case *appsv1.StatefulSet:
		err = cs.AppsV1().StatefulSets(ns).Delete(ctx, name, metav1.DeleteOptions{})
	case *appsv1.DaemonSet:
		err = cs.AppsV1().DaemonSets(ns).Delete(ctx, name, metav1.DeleteOptions{})
	case *corev1.Pod:
		err = cs.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	}
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
}

// updateDeployment replaces a Deployment's spec.replicas and status
// (observedGeneration as in createWithStatus).
func updateDeployment(t *testing.T, cs kubernetes.Interface, ns string, want *appsv1.Deployment) {
	t.Helper()
	ctx := context.Background()
	for {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, want.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d.Status = want.Status
		d.Status.ObservedGeneration = want.Status.ObservedGeneration - want.Generation + d.Generation
		_, err = cs.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
}

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

// TestRulesThroughInformers runs every row of the rules table that the
// real API server accepts (it refuses negative counts, for one: those rows
// are covered by TestStatusRules) through the watch and the watch block's
// gauges.
func TestRulesThroughInformers(t *testing.T) {
	_, cs := realServer(t)
	ns := "rules"
	createNamespace(t, cs, ns)
	var accepted []ruleCase
	for _, tc := range ruleCases() {
		err := createWithStatus(cs, ns, tc.obj)
		switch {
		case apierrors.IsInvalid(err):
			t.Logf("%s: the API server refuses the object (%v): table test only", tc.name, err)
			deleteObject(t, cs, ns, tc.obj) // its spec may have been created
			continue
		case err != nil && !apierrors.IsAlreadyExists(err):
			t.Fatalf("%s: %v", tc.name, err)
		}
		accepted = append(accepted, tc)
	}
	if len(accepted) < len(ruleCases())*2/3 {
		t.Fatalf("only %d of %d rows accepted by the API server", len(accepted), len(ruleCases()))
	}
	h, _ := startReal(t, ns, fmt.Sprintf(`
  namespaces = [%q]
  watch "all" {
    kinds = ["Deployment", "StatefulSet", "DaemonSet", "Pod"]
  }
`, ns))
	for _, tc := range accepted {
		m := tc.obj.(metav1.Object)
		labels := map[string]string{"namespace": ns, "kind": kindOf(tc.obj), "name": m.GetName()}
		waitValue(t, h.Gatherer(), "sluice_workload_status", labels, float64(tc.want))
		waitValue(t, h.Gatherer(), "sluice_workload_status_failed", labels, b2f(tc.failed))
	}
	if n := len(gather(t, h.Gatherer(), "sluice_workload_status")); n != len(accepted) {
		t.Errorf("%d series, want one per object (%d)", n, len(accepted))
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
	const pns = "preset"
	h, kube := startReal(t, pns, `
  namespaces = ["preset"]
  preset "argocd" { namespace = "preset" }
`,
		argoSts("argocd-application-controller"),
		argoDeploy("argocd-applicationset-controller", Available),
		argoDeploy("argocd-repo-server", Available),
		argoDeploy("argocd-server", Available),
		argoDeploy("argocd-notifications-controller", Available),
		argoDeploy("argocd-redis", Available),
	)
	ns := map[string]string{"namespace": pns}
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
		if len(mf.GetMetric()) != 1 || labelMap(mf.GetMetric()[0])["namespace"] != pns {
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
	updateDeployment(t, kube, pns, argoDeploy("argocd-server", Running))
	waitValue(t, h.Gatherer(), "argocd_server_status", ns, float64(Running))
	waitValue(t, h.Gatherer(), "argocd_phase", ns, float64(Running))

	// dex installed but Pending now holds the phase down.
	if err := createWithStatus(kube, pns, argoDeploy("argocd-dex-server", Pending)); err != nil {
		t.Fatal(err)
	}
	waitValue(t, h.Gatherer(), "argocd_dex_status", ns, float64(Pending))
	waitValue(t, h.Gatherer(), "argocd_phase", ns, float64(Pending))

	// redis: the HA StatefulSet wins once it exists. The Deployment is
	// Pending, the StatefulSet Available.
	updateDeployment(t, kube, pns, argoDeploy("argocd-redis", Pending))
	waitValue(t, h.Gatherer(), "argocd_redis_status", ns, float64(Pending))
	if err := createWithStatus(kube, pns, argoSts("argocd-redis-ha-server")); err != nil {
		t.Fatal(err)
	}
	waitValue(t, h.Gatherer(), "argocd_redis_status", ns, float64(Available))

	// A failed rollout sets <metric>_failed; the status encoding is unchanged.
	failing := argoDeploy("argocd-repo-server", Running)
	failing.Status.Conditions = append(failing.Status.Conditions, dcond(appsv1.DeploymentProgressing, "False", "ProgressDeadlineExceeded"))
	updateDeployment(t, kube, pns, failing)
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
	h, kube := startReal(t, "deletion", `
  workload "web" {
    kind      = "Deployment"
    namespace = "deletion"
    name      = "argocd-server"
    metric    = "web_status"
  }
  watch "all" {
    kinds     = ["Deployment"]
    namespace = "deletion"
  }
`, argoDeploy("argocd-server", Available), argoDeploy("other", Running))
	ns := map[string]string{"namespace": "deletion"}
	waitValue(t, h.Gatherer(), "web_status", ns, float64(Available))
	waitValue(t, h.Gatherer(), "sluice_workload_status", map[string]string{"name": "other"}, float64(Running))

	ctx := context.Background()
	for _, n := range []string{"argocd-server", "other"} {
		if err := kube.AppsV1().Deployments("deletion").Delete(ctx, n, metav1.DeleteOptions{}); err != nil {
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
  namespaces = ["reload"]
  workload "server" {
    kind      = "Deployment"
    namespace = "reload"
    name      = "argocd-server"
    metric    = "server_status"
  }
`
	h, _ := startReal(t, "reload", server+`
  workload "repo" {
    kind      = "Deployment"
    namespace = "reload"
    name      = "argocd-repo-server"
    metric    = "repo_status"
  }
`, argoDeploy("argocd-server", Available), argoDeploy("argocd-repo-server", Running), argoDeploy("argocd-dex-server", Pending))
	c := h.Component.(*Component)
	ns := map[string]string{"namespace": "reload"}
	waitValue(t, h.Gatherer(), "server_status", ns, float64(Available))
	waitValue(t, h.Gatherer(), "repo_status", ns, float64(Running))
	serverScope := scope{Kind: "Deployment", Namespace: "reload", Name: "argocd-server"}
	before := informerFor(c, serverScope)

	if err := h.Update(fmt.Sprintf("kubeconfig = %q\n", h.Component.(*Component).plan.Load().client.kubeconfig) + server + `
  workload "dex" {
    kind      = "Deployment"
    namespace = "reload"
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
		return informerFor(c, scope{Kind: "Deployment", Namespace: "reload", Name: "argocd-repo-server"}) == nil
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

var appsGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}

// installApplicationCRD installs a minimal Argo CD Application CRD (any
// fields, status not a subresource) and waits until it is served.
func installApplicationCRD(t *testing.T, dc dynamic.Interface, ns string) {
	t.Helper()
	ctx := context.Background()
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "applications.argoproj.io"},
		"spec": map[string]any{
			"group": "argoproj.io", "scope": "Namespaced",
			"names": map[string]any{"plural": "applications", "singular": "application", "kind": "Application", "listKind": "ApplicationList"},
			"versions": []any{map[string]any{"name": "v1alpha1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
		},
	}}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	if _, err := dc.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 30*time.Second, func() bool {
		_, err := dc.Resource(appsGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
		return err == nil
	}, "the Application CRD served")
}

// TestGenericKind: a group/version/resource (Argo CD Applications, a CRD
// on the real API server) with status_path and value_map.
func TestGenericKind(t *testing.T) {
	const ns = "generic"
	srv, cs := realServer(t)
	createNamespace(t, cs, ns)
	dc := dynamic.NewForConfigOrDie(srv.AdminConfig())
	installApplicationCRD(t, dc, ns)
	app := func(name, health, rv string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
			"metadata": map[string]any{"name": name, "namespace": ns, "annotations": map[string]any{"big": strings.Repeat("x", 1000)}},
			"spec":     map[string]any{"project": "default"},
		}}
		if rv != "" {
			u.SetResourceVersion(rv)
		}
		if health != "" {
			_ = unstructured.SetNestedField(u.Object, health, "status", "health", "status")
		}
		return u
	}
	ctx := context.Background()
	res := dc.Resource(appsGVR).Namespace(ns)
	created, err := res.Create(ctx, app("guestbook", "Progressing", ""), metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	_ = created
	h, _ := startReal(t, ns, `
  workload "guestbook" {
    kind          = "argoproj.io/v1alpha1/applications"
    namespace     = "generic"
    name          = "guestbook"
    metric        = "guestbook_health"
    status_path   = "status.health.status"
    value_map     = { Healthy = 3, Progressing = 1, Degraded = 2, Missing = 0 }
    failed_values = ["Degraded"]
  }
`)
	nsl := map[string]string{"namespace": ns}
	waitValue(t, h.Gatherer(), "guestbook_health", nsl, 1)
	for _, tc := range []struct {
		health string
		want   float64
		failed float64
	}{{"Healthy", 3, 0}, {"Degraded", 2, 1}, {"SomethingNew", 0, 0}, {"", 0, 0}} {
		cur, err := res.Get(ctx, "guestbook", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := res.Update(ctx, app("guestbook", tc.health, cur.GetResourceVersion()), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitValue(t, h.Gatherer(), "guestbook_health", nsl, tc.want)
		waitValue(t, h.Gatherer(), "guestbook_health_failed", nsl, tc.failed)
	}
}
