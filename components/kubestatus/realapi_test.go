package kubestatus

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/sluicehq/sluice/internal/testing/kubetest"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// One API server for the package's real tests, started on first use.
var (
	realOnce sync.Once
	realSrv  *kubetest.Server
	realErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if realSrv != nil {
		realSrv.Close()
	}
	os.Exit(code)
}

func realServer(t testing.TB) (*kubetest.Server, kubernetes.Interface) {
	t.Helper()
	kubetest.SkipShort(t)
	realOnce.Do(func() { realSrv, realErr = kubetest.New() })
	kubetest.Check(t, realErr)
	return realSrv, kubernetes.NewForConfigOrDie(realSrv.AdminConfig())
}

// readManifests decodes deploy/kubernetes/*.yaml strictly.
func readManifests(t testing.TB) (*rbacv1.ClusterRole, *rbacv1.Role) {
	t.Helper()
	var cr rbacv1.ClusterRole
	var role rbacv1.Role
	for file, into := range map[string]any{"clusterrole.yaml": &cr, "role.yaml": &role} {
		b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "kubernetes", file))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.UnmarshalStrict(b, into); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	return &cr, &role
}

// TestRBACManifests: the shipped roles decode strictly and grant exactly
// get/list/watch on the four built-in kinds.
func TestRBACManifests(t *testing.T) {
	cr, role := readManifests(t)
	if cr.Kind != "ClusterRole" || role.Kind != "Role" || role.Namespace == "" {
		t.Fatalf("kinds %q %q, role namespace %q", cr.Kind, role.Kind, role.Namespace)
	}
	for _, rules := range [][]rbacv1.PolicyRule{cr.Rules, role.Rules} {
		granted := map[string]bool{}
		for _, r := range rules {
			if fmt.Sprint(r.Verbs) != "[get list watch]" {
				t.Errorf("verbs %v: want exactly get, list, watch", r.Verbs)
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					granted[g+"/"+res] = true
				}
			}
		}
		for _, want := range []string{"apps/deployments", "apps/statefulsets", "apps/daemonsets", "/pods"} {
			if !granted[want] {
				t.Errorf("%s not granted", want)
			}
		}
		if len(granted) != 4 {
			t.Errorf("granted %v: want exactly the four kinds", granted)
		}
	}
}

// applyRBAC creates the shipped roles (the Role in ns) and binds the
// restricted user to the Role, and to the ClusterRole when cluster is set.
func applyRBAC(t testing.TB, cs kubernetes.Interface, ns string, cluster bool) {
	t.Helper()
	ctx := context.Background()
	cr, role := readManifests(t)
	role.Namespace = ns
	subj := []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: kubetest.RestrictedUser}}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "sluice", Namespace: ns}, Subjects: subj,
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name}}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if cluster {
		if _, err := cs.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "sluice"}, Subjects: subj,
			RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: cr.Name}}
		if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}

func createNamespace(t testing.TB, cs kubernetes.Interface, ns string) {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// podSpec returns a fresh minimal pod spec (callers may modify it).
func podSpec() corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app:1"}}}
}

func newDeployment(ns, name string, replicas int32) *appsv1.Deployment {
	sel := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app.kubernetes.io/part-of": "argocd"}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas), Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel}, Spec: podSpec()}},
	}
}

// setDeploymentStatus writes the status subresource as the deployment
// controller would: observed the current generation, ready replicas.
func setDeploymentStatus(t testing.TB, cs kubernetes.Interface, ns, name string, ready int32) {
	t.Helper()
	ctx := context.Background()
	for {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := replicasOf(d.Spec.Replicas)
		avail := corev1.ConditionFalse
		if ready == want {
			avail = corev1.ConditionTrue
		}
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: want, UpdatedReplicas: want,
			ReadyReplicas: ready, AvailableReplicas: ready,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: avail, Reason: "MinimumReplicasAvailable",
				LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()}}}
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

// restrictedIn creates namespace ns on the shared real API server, binds
// the restricted user to the shipped Role there, and writes a kubeconfig
// with its token.
func restrictedIn(t *testing.T, ns string) (*kubetest.Server, kubernetes.Interface, string) {
	t.Helper()
	srv, cs := realServer(t)
	createNamespace(t, cs, ns)
	applyRBAC(t, cs, ns, false)
	kc, err := srv.WriteKubeconfig(t.TempDir(), kubetest.RestrictedToken)
	if err != nil {
		t.Fatal(err)
	}
	return srv, cs, kc
}

// TestRealAPIServer drives the component with the restricted token bound
// to the shipped Role, against a real API server: create, status patches,
// scale, delete, an API server restart mid-stream.
func TestRealAPIServer(t *testing.T) {
	ns := "argocd"
	srv, cs, kc := restrictedIn(t, ns)
	ctx := context.Background()
	h := pipelinetest.New(t, Name, fmt.Sprintf(`
  kubeconfig = %q
  namespaces = [%q]
  workload "server" {
    kind      = "Deployment"
    namespace = %q
    name      = "argocd-server"
    metric    = "argocd_server_status"
  }
  watch "all" {
    kinds          = ["Deployment", "StatefulSet", "DaemonSet", "Pod"]
  }
`, kc, ns, ns))
	h.Start()
	g := h.Gatherer()
	nsl := map[string]string{"namespace": ns}
	series := func(kind, name string) map[string]string {
		return map[string]string{"namespace": ns, "kind": kind, "name": name}
	}
	// Synced, no object yet: Unknown.
	pipelinetest.Eventually(t, 30*time.Second, func() bool {
		return h.Component.(*Component).Health().State == pipeline.HealthHealthy
	}, "healthy (synced) with the Role: %+v", h.Component.(*Component).Health())
	waitValue(t, g, "argocd_server_status", nsl, float64(Unknown))

	// Deployment: created (no ready replica) -> Pending; ready -> Available.
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, newDeployment(ns, "argocd-server", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitValue(t, g, "argocd_server_status", nsl, float64(Pending))
	setDeploymentStatus(t, cs, ns, "argocd-server", 1)
	waitValue(t, g, "argocd_server_status", nsl, float64(Running))
	setDeploymentStatus(t, cs, ns, "argocd-server", 2)
	waitValue(t, g, "argocd_server_status", nsl, float64(Available))

	// Scale to 3: the new generation is not observed yet -> Pending; the
	// controller catches up -> Available.
	scale, err := cs.AppsV1().Deployments(ns).GetScale(ctx, "argocd-server", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = 3
	if _, err := cs.AppsV1().Deployments(ns).UpdateScale(ctx, "argocd-server", scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitValue(t, g, "argocd_server_status", nsl, float64(Pending))
	setDeploymentStatus(t, cs, ns, "argocd-server", 3)
	waitValue(t, g, "argocd_server_status", nsl, float64(Available))
	waitValue(t, g, "sluice_workload_status", series("Deployment", "argocd-server"), float64(Available))

	// StatefulSet, DaemonSet, Pod with their status subresources.
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}}, Spec: podSpec()}
	sts, err := cs.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "argocd-application-controller", Namespace: ns},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](1), Selector: sel, Template: tmpl}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitValue(t, g, "sluice_workload_status", series("StatefulSet", sts.Name), float64(Pending))
	sts.Status = appsv1.StatefulSetStatus{ObservedGeneration: sts.Generation, Replicas: 1, ReadyReplicas: 1, AvailableReplicas: 1, CurrentReplicas: 1,
		UpdatedReplicas: 1, CurrentRevision: "r1", UpdateRevision: "r1"}
	if _, err := cs.AppsV1().StatefulSets(ns).UpdateStatus(ctx, sts, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitValue(t, g, "sluice_workload_status", series("StatefulSet", sts.Name), float64(Available))

	dset, err := cs.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "node-agent", Namespace: ns},
		Spec: appsv1.DaemonSetSpec{Selector: sel, Template: tmpl}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dset.Status = appsv1.DaemonSetStatus{ObservedGeneration: dset.Generation, DesiredNumberScheduled: 3, CurrentNumberScheduled: 3, NumberReady: 1, NumberAvailable: 1, UpdatedNumberScheduled: 3}
	if dset, err = cs.AppsV1().DaemonSets(ns).UpdateStatus(ctx, dset, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitValue(t, g, "sluice_workload_status", series("DaemonSet", "node-agent"), float64(Running))

	p, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "job-1", Namespace: ns}, Spec: podSpec()}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitValue(t, g, "sluice_workload_status", series("Pod", "job-1"), float64(Pending))
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitValue(t, g, "sluice_workload_status", series("Pod", "job-1"), float64(Available))

	// The API server restarts (SIGKILL); objects change right after it is
	// back, before the informers have re-established their watches.
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	setDeploymentStatus(t, cs, ns, "argocd-server", 1)
	dset.Status.NumberAvailable, dset.Status.NumberReady = 3, 3
	if _, err := cs.AppsV1().DaemonSets(ns).UpdateStatus(ctx, dset, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitValue(t, g, "argocd_server_status", nsl, float64(Running))
	waitValue(t, g, "sluice_workload_status", series("DaemonSet", "node-agent"), float64(Available))
	setDeploymentStatus(t, cs, ns, "argocd-server", 3)
	waitValue(t, g, "argocd_server_status", nsl, float64(Available))

	// Delete: the named workload returns to Unknown, watch series go away.
	if err := cs.AppsV1().Deployments(ns).Delete(ctx, "argocd-server", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "job-1", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	waitValue(t, g, "argocd_server_status", nsl, float64(Unknown))
	pipelinetest.Eventually(t, 30*time.Second, func() bool {
		_, dep := value(t, g, "sluice_workload_status", series("Deployment", "argocd-server"))
		_, pod := value(t, g, "sluice_workload_status", series("Pod", "job-1"))
		return !dep && !pod
	}, "deleted objects' series gone")
	if _, ok := value(t, g, "sluice_workload_status", series("StatefulSet", "argocd-application-controller")); !ok {
		t.Error("the StatefulSet's series went away too")
	}
}

// TestRealForbidden: a token whose Role covers one namespace, used to
// watch all namespaces, gets a clear error in health and logs; binding the
// shipped ClusterRole heals it.
func TestRealForbidden(t *testing.T) {
	_, cs, kc := restrictedIn(t, "team-a")
	var logs pipelinetest.Buffer
	h := pipelinetest.New(t, Name, fmt.Sprintf(`
  kubeconfig = %q
  watch "all" { kinds = ["Deployment"] }
`, kc), pipelinetest.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	h.Start()
	c := h.Component.(*Component)
	pipelinetest.Eventually(t, 30*time.Second, func() bool {
		hl := c.Health()
		return hl.State == pipeline.HealthUnhealthy && strings.Contains(hl.Message, "forbidden") &&
			strings.Contains(hl.Message, `User "sluice" cannot list resource "deployments"`) &&
			strings.Contains(hl.Message, "Deployment in all namespaces")
	}, "unhealthy with the forbidden error: %+v", c.Health())
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(logs.String(), "forbidden") && strings.Contains(logs.String(), "list/watch failed")
	}, "forbidden logged: %s", logs.String())
	if strings.Contains(logs.String(), kubetest.RestrictedToken) || strings.Contains(c.Health().Message, kubetest.RestrictedToken) {
		t.Fatal("the token leaked into logs or health")
	}

	applyRBAC(t, cs, "team-a", true)
	pipelinetest.Eventually(t, 60*time.Second, func() bool {
		return c.Health().State == pipeline.HealthHealthy
	}, "healthy once the ClusterRole is bound: %+v", c.Health())
}

// TestRealAPIServerLoss: with the real API server killed, the component
// turns unhealthy within 30s (with the default probe timing: 5s probes,
// unhealthy at the second that fails), logs it, counts the failed
// probes and says through sluice_kubernetes_api_up and
// sluice_kubernetes_api_contact_age_seconds that the statuses, still
// exported, are stale; it is healthy again once the server is back.
// (Before the probe: healthy throughout, 0 watch errors, nothing logged.)
func TestRealAPIServerLoss(t *testing.T) {
	ns := "loss"
	srv, cs, kc := restrictedIn(t, ns)
	var logs pipelinetest.Buffer
	h := pipelinetest.New(t, Name, fmt.Sprintf(`
  kubeconfig = %q
  namespaces = [%q]
  workload "server" {
    kind   = "Deployment"
    name   = "argocd-server"
    metric = "argocd_server_status"
  }
`, kc, ns), pipelinetest.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	h.Start()
	c := h.Component.(*Component)
	g := h.Gatherer()
	nsl := map[string]string{"namespace": ns}
	if _, err := cs.AppsV1().Deployments(ns).Create(context.Background(), newDeployment(ns, "argocd-server", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	setDeploymentStatus(t, cs, ns, "argocd-server", 1)
	waitValue(t, g, "argocd_server_status", nsl, float64(Available))
	self := func(name string) float64 { return selfValue(t, h, name) }
	pipelinetest.Eventually(t, 30*time.Second, func() bool {
		return c.Health().State == pipeline.HealthHealthy && self("sluice_kubernetes_api_up") == 1
	}, "healthy, the API server up: %+v", c.Health())

	killed := time.Now()
	srv.Stop()
	restarted := false
	t.Cleanup(func() {
		if !restarted { // leave the shared server running for the other tests
			_ = srv.StartAgain()
		}
	})
	pipelinetest.Eventually(t, 30*time.Second, func() bool {
		hl := c.Health()
		return hl.State == pipeline.HealthUnhealthy && strings.Contains(hl.Message, "API server unreachable")
	}, "unhealthy within 30s of the kill: %+v", c.Health())
	t.Logf("unhealthy %v after the API server was killed: %s", time.Since(killed).Round(100*time.Millisecond), c.Health().Message)
	if self("sluice_kubernetes_api_up") != 0 || self("sluice_kubernetes_api_probe_failures_total") < 1 ||
		self("sluice_kubernetes_api_contact_age_seconds") < 5 {
		t.Errorf("self-metrics while down: up=%v failures=%v age=%v", self("sluice_kubernetes_api_up"),
			self("sluice_kubernetes_api_probe_failures_total"), self("sluice_kubernetes_api_contact_age_seconds"))
	}
	if !strings.Contains(logs.String(), "API server unreachable") {
		t.Errorf("not logged: %s", logs.String())
	}
	if v, ok := value(t, g, "argocd_server_status", nsl); !ok || v != float64(Available) {
		t.Errorf("the last status is no longer exported while the server is down: %v %v", v, ok)
	}

	restarted = true
	if err := srv.StartAgain(); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 60*time.Second, func() bool {
		return c.Health().State == pipeline.HealthHealthy && self("sluice_kubernetes_api_up") == 1
	}, "healthy again once the API server is back: %+v", c.Health())
	if !strings.Contains(logs.String(), "API server reachable again") {
		t.Errorf("recovery not logged: %s", logs.String())
	}
}
