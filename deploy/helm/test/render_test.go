// Package test renders the Helm chart deploy/helm/sluice with Helm's own
// engine (helm.sh/helm/v3: loader, chartutil, engine, lint) for each values
// profile, decodes every rendered object strictly into its typed Go object
// (client-go's scheme for Kubernetes kinds, prometheus-operator's types for
// ServiceMonitor, PodMonitor and PrometheusRule), and validates every Sluice
// config the chart embeds with Sluice's own loader. It is a module of its
// own so that Helm and the Kubernetes libraries stay out of Sluice's go.mod.
package test

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"go.yaml.in/yaml/v2"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/scheme"

	_ "github.com/sluicehq/sluice/components/all"
	sluiceruntime "github.com/sluicehq/sluice/runtime"
)

const (
	chartDir  = "../sluice"
	namespace = "monitoring"
	release   = "sluice"
	rulesFile = "../../prometheus/sluice-rules.yml"
)

// decoder decodes strictly (unknown or duplicate fields are errors) into
// client-go's types and prometheus-operator's monitoring.coreos.com/v1.
var decoder = func() runtime.Decoder {
	s := runtime.NewScheme()
	if err := scheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := monitoringv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
}()

// rendered is a chart rendered with one values profile.
type rendered struct {
	objects []runtime.Object
	docs    []string                  // each object's YAML, as rendered (docs[i] is objects[i])
	sources map[runtime.Object]string // template each object came from
	notes   string
}

// TestMain drops Helm's notice that files/sluice-rules.yml is a symlink
// (to deploy/prometheus/sluice-rules.yml, on purpose: one rules file), and
// keeps any other log line.
func TestMain(m *testing.M) {
	log.SetOutput(dropLines{w: os.Stderr, containing: "found symbolic link in path"})
	code := m.Run()
	if apiSrv != nil {
		apiSrv.Close()
	}
	os.Exit(code)
}

type dropLines struct {
	w          io.Writer
	containing string
}

func (d dropLines) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(d.containing)) {
		return len(p), nil
	}
	return d.w.Write(p)
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// render renders the chart as `helm template` does, with the
// prometheus-operator APIs available.
func render(t *testing.T, values string) (*rendered, error) {
	t.Helper()
	vals, err := chartutil.ReadValues([]byte(values))
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	return renderValues(t, release, vals)
}

// renderValues renders the chart for release rel with parsed values.
func renderValues(t *testing.T, rel string, vals chartutil.Values) (*rendered, error) {
	t.Helper()
	ch := loadChart(t)
	caps := chartutil.DefaultCapabilities.Copy()
	caps.APIVersions = append(caps.APIVersions, "monitoring.coreos.com/v1")
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: rel, Namespace: namespace, Revision: 1, IsInstall: true}, caps)
	if err != nil {
		return nil, err
	}
	out, err := engine.Render(ch, rv)
	if err != nil {
		return nil, err
	}
	r := &rendered{sources: map[runtime.Object]string{}}
	names := make([]string, 0, len(out))
	for name := range out {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") {
			r.notes = out[name]
			continue
		}
		docs := releaseutil.SplitManifests(out[name])
		keys := make([]string, 0, len(docs))
		for k := range docs {
			keys = append(keys, k)
		}
		sort.Sort(releaseutil.BySplitManifestsOrder(keys))
		for _, k := range keys {
			doc := docs[k]
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			obj, gvk, err := decoder.Decode([]byte(doc), nil, nil)
			if err != nil {
				t.Fatalf("%s: strict decoding: %v\n%s", name, err, doc)
			}
			if gvk.Kind == "" {
				t.Fatalf("%s: object without kind:\n%s", name, doc)
			}
			r.objects = append(r.objects, obj)
			r.docs = append(r.docs, doc)
			r.sources[obj] = name
		}
	}
	return r, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func mustRender(t *testing.T, values string) *rendered {
	t.Helper()
	r, err := render(t, values)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	validateConfigs(t, r)
	checkCommon(t, r)
	return r
}

// kinds lists the rendered kinds, sorted, e.g. "ConfigMap", "DaemonSet".
func (r *rendered) kinds() []string {
	var ks []string
	for _, o := range r.objects {
		ks = append(ks, kindOf(o))
	}
	sort.Strings(ks)
	return ks
}

func kindOf(o runtime.Object) string {
	t := fmt.Sprintf("%T", o)
	return t[strings.LastIndex(t, ".")+1:]
}

// only returns the single object of type T, failing unless there is exactly one.
func only[T runtime.Object](t *testing.T, r *rendered) T {
	t.Helper()
	all := every[T](r)
	if len(all) != 1 {
		var zero T
		t.Fatalf("%d objects of type %T rendered, want 1 (rendered: %v)", len(all), zero, r.kinds())
	}
	return all[0]
}

func every[T runtime.Object](r *rendered) []T {
	var out []T
	for _, o := range r.objects {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// validateConfigs validates every Sluice config in a rendered ConfigMap with
// Sluice's loader, the ConfigMap mounted as the pod sees it: each key a file
// of one directory.
func validateConfigs(t *testing.T, r *rendered) {
	t.Helper()
	for _, cm := range every[*corev1.ConfigMap](r) {
		if isDashboard(cm) {
			continue
		}
		hcl, ok := cm.Data["sluice.hcl"]
		if !ok {
			t.Errorf("ConfigMap %s has no sluice.hcl", cm.Name)
			continue
		}
		dir := t.TempDir()
		for k, v := range cm.Data {
			if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		podEnv := func(name string) (string, bool) { return podEnv(name), true }
		if err := sluiceruntime.Validate(filepath.Join(dir, "sluice.hcl"), []byte(hcl), podEnv); err != nil {
			t.Errorf("ConfigMap %s: sluice.hcl does not validate:\n%v\n%s", cm.Name, err, hcl)
		}
	}
}

// podEnv stands for the pod's environment (NODE_NAME, DATABASE_URL from a
// Secret, ...): a DSN-looking value for *_URL and *_DSN, "x" otherwise.
func podEnv(name string) string {
	if strings.HasSuffix(name, "_URL") || strings.HasSuffix(name, "_DSN") {
		return "postgres://sluice@db.example:5432/app"
	}
	return "x"
}

// checkCommon holds for every profile: labels, namespaces, the pod's
// security context, probes, the config mount, and Services, monitors and
// policies that select the pods.
func checkCommon(t *testing.T, r *rendered) {
	t.Helper()
	for _, o := range r.objects {
		m, ok := o.(interface {
			GetName() string
			GetNamespace() string
			GetLabels() map[string]string
		})
		if !ok {
			t.Fatalf("%T has no metadata", o)
		}
		if m.GetLabels()["app.kubernetes.io/name"] != "sluice" || m.GetLabels()["app.kubernetes.io/instance"] != release {
			t.Errorf("%s %s: labels %v", kindOf(o), m.GetName(), m.GetLabels())
		}
		switch o.(type) {
		case *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding:
			if m.GetNamespace() != "" {
				t.Errorf("%s %s: namespaced", kindOf(o), m.GetName())
			}
		case *rbacv1.Role, *rbacv1.RoleBinding:
		case *corev1.ConfigMap:
			// Dashboards may go to Grafana's namespace (TestDashboards).
			if m.GetNamespace() != namespace && !isDashboard(o.(*corev1.ConfigMap)) {
				t.Errorf("%s %s: namespace %q, want %q", kindOf(o), m.GetName(), m.GetNamespace(), namespace)
			}
		default:
			if m.GetNamespace() != namespace {
				t.Errorf("%s %s: namespace %q, want %q", kindOf(o), m.GetName(), m.GetNamespace(), namespace)
			}
		}
	}
	for _, spec := range podSpecs(r) {
		psc := spec.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
			t.Errorf("pod security context %+v: want non-root", psc)
		}
		c := sluiceContainer(t, spec)
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("container security context %+v: want read-only root, no privilege escalation, all capabilities dropped", sc)
		}
		if c.Args[0] != "run" || c.Args[len(c.Args)-1] != "/etc/sluice/sluice.hcl" {
			t.Errorf("args %v", c.Args)
		}
		if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/-/healthy" ||
			c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/-/ready" {
			t.Errorf("probes: liveness %+v readiness %+v", c.LivenessProbe, c.ReadinessProbe)
		}
		// Every port a probe names is a container port.
		for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
			if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == p.HTTPGet.Port.StrVal }) {
				t.Errorf("probe port %q is not a container port", p.HTTPGet.Port.StrVal)
			}
		}
		mount := mountAt(c, "/etc/sluice")
		if mount == nil || mount.SubPath != "" {
			t.Errorf("config mount %+v: want /etc/sluice, no subPath (a subPath never updates)", mount)
		}
		// Every mount has its volume; the config volume is the ConfigMap.
		for _, vm := range c.VolumeMounts {
			if volume(spec, vm.Name) == nil {
				t.Errorf("mount %s has no volume", vm.Name)
			}
		}
		if v := volume(spec, "config"); v == nil || v.ConfigMap == nil || v.ConfigMap.Name != release {
			t.Errorf("config volume %+v", v)
		}
		if spec.ServiceAccountName != release {
			t.Errorf("serviceAccountName %q", spec.ServiceAccountName)
		}
	}
	if svcs := every[*corev1.Service](r); len(svcs) == 1 {
		for _, p := range svcs[0].Spec.Ports {
			if p.TargetPort.StrVal == "" {
				continue
			}
			found := false
			for _, spec := range podSpecs(r) {
				found = found || slices.ContainsFunc(sluiceContainer(t, spec).Ports, func(cp corev1.ContainerPort) bool {
					return cp.Name == p.TargetPort.StrVal && cp.Protocol == p.Protocol
				})
			}
			if !found {
				t.Errorf("Service port %s: targetPort %s/%s is not a container port", p.Name, p.TargetPort.StrVal, p.Protocol)
			}
		}
	}
}

func podSpecs(r *rendered) []corev1.PodSpec {
	var out []corev1.PodSpec
	for _, ds := range every[*appsv1.DaemonSet](r) {
		out = append(out, ds.Spec.Template.Spec)
	}
	for _, d := range every[*appsv1.Deployment](r) {
		out = append(out, d.Spec.Template.Spec)
	}
	return out
}

func sluiceContainer(t *testing.T, spec corev1.PodSpec) corev1.Container {
	t.Helper()
	for _, c := range spec.Containers {
		if c.Name == "sluice" {
			return c
		}
	}
	t.Fatalf("no sluice container in %+v", spec.Containers)
	return corev1.Container{}
}

func mountAt(c corev1.Container, path string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].MountPath == path {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

func volume(spec corev1.PodSpec, name string) *corev1.Volume {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	return nil
}

func port(c corev1.Container, name string) *corev1.ContainerPort {
	for i := range c.Ports {
		if c.Ports[i].Name == name {
			return &c.Ports[i]
		}
	}
	return nil
}

func hasArg(c corev1.Container, arg string) bool { return slices.Contains(c.Args, arg) }

func TestLint(t *testing.T) {
	vals, err := chartutil.ReadValuesFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	res := lint.AllWithKubeVersion(chartDir, vals, namespace, nil)
	for _, m := range res.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint: %s", m)
		}
	}
}

func TestDaemonSetDefault(t *testing.T) {
	r := mustRender(t, ``)
	if want := []string{"ConfigMap", "DaemonSet", "Service", "ServiceAccount"}; !slices.Equal(r.kinds(), want) {
		t.Fatalf("kinds %v, want %v", r.kinds(), want)
	}
	ds := only[*appsv1.DaemonSet](t, r)
	spec := ds.Spec.Template.Spec
	c := sluiceContainer(t, spec)
	if c.Image != "ghcr.io/sluicehq/sluice:"+loadChart(t).Metadata.AppVersion {
		t.Errorf("image %s", c.Image)
	}
	for _, a := range []string{"--server.http.listen-addr=:9470", "--storage.path=/var/lib/sluice"} {
		if !hasArg(c, a) {
			t.Errorf("args %v lack %s", c.Args, a)
		}
	}
	if slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--web.") }) {
		t.Errorf("web flags without webConfig: %v", c.Args)
	}
	// statsd on the node's IP: UDP host port 9125.
	if p := port(c, "statsd-udp"); p == nil || p.HostPort != 9125 || p.Protocol != corev1.ProtocolUDP {
		t.Errorf("statsd port %+v", p)
	}
	if v := volume(spec, "data"); v == nil || v.EmptyDir == nil {
		t.Errorf("data volume %+v, want emptyDir", v)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the API token is mounted without RBAC")
	}
	if got := only[*corev1.Service](t, r); got.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("DaemonSet Service clusterIP %q, want headless", got.Spec.ClusterIP)
	}
	// The environment the config may use.
	for _, e := range []string{"NODE_NAME", "POD_NAME", "POD_NAMESPACE", "HOST_IP"} {
		if !slices.ContainsFunc(c.Env, func(ev corev1.EnvVar) bool { return ev.Name == e && ev.ValueFrom != nil }) {
			t.Errorf("env lacks %s", e)
		}
	}
	if !strings.Contains(r.notes, "port-forward ds/sluice") {
		t.Errorf("NOTES: %s", r.notes)
	}
}

func TestDeployment(t *testing.T) {
	r := mustRender(t, `
kind: Deployment
replicas: 2
podDisruptionBudget: {enabled: true}
config:
  content: |
    statsd_receiver "app" {
      listen_udp   = ":9125"
      mapping_file = "gunicorn-mapping.yml"
    }
    metrics_sink "default" {
      inputs = [statsd_receiver.app.metrics]
    }
  files:
    gunicorn-mapping.yml: |
      mappings:
        - match: gunicorn.request.status.*
          name: gunicorn_responses_total
          labels: {status: "$1"}
`)
	if want := []string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"}; !slices.Equal(r.kinds(), want) {
		t.Fatalf("kinds %v, want %v", r.kinds(), want)
	}
	d := only[*appsv1.Deployment](t, r)
	if *d.Spec.Replicas != 2 {
		t.Errorf("replicas %d", *d.Spec.Replicas)
	}
	c := sluiceContainer(t, d.Spec.Template.Spec)
	if p := port(c, "statsd-udp"); p == nil || p.HostPort != 0 {
		t.Errorf("a Deployment's statsd port %+v: want no hostPort", p)
	}
	svc := only[*corev1.Service](t, r)
	if svc.Spec.ClusterIP == corev1.ClusterIPNone || !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "statsd-udp" && p.Protocol == corev1.ProtocolUDP }) {
		t.Errorf("Deployment Service %+v: want a ClusterIP with statsd-udp", svc.Spec)
	}
	cm := only[*corev1.ConfigMap](t, r)
	if !strings.Contains(cm.Data["gunicorn-mapping.yml"], "gunicorn_responses_total") {
		t.Errorf("mapping file missing from the ConfigMap: %v", cm.Data)
	}
	pdb := only[*policyv1.PodDisruptionBudget](t, r)
	if pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.Selector.MatchLabels["app.kubernetes.io/instance"] != release {
		t.Errorf("PDB %+v", pdb.Spec)
	}
}

func TestRBACClusterWide(t *testing.T) {
	r := mustRender(t, `rbac: {create: true}`)
	cr := only[*rbacv1.ClusterRole](t, r)
	checkStatusRules(t, cr.Rules)
	crb := only[*rbacv1.ClusterRoleBinding](t, r)
	if crb.RoleRef.Kind != "ClusterRole" || crb.RoleRef.Name != cr.Name ||
		len(crb.Subjects) != 1 || crb.Subjects[0].Kind != "ServiceAccount" || crb.Subjects[0].Name != release || crb.Subjects[0].Namespace != namespace {
		t.Errorf("ClusterRoleBinding %+v", crb)
	}
	if len(every[*rbacv1.Role](r)) != 0 {
		t.Error("Role rendered for cluster-wide RBAC")
	}
	sa := only[*corev1.ServiceAccount](t, r)
	if sa.AutomountServiceAccountToken == nil || !*sa.AutomountServiceAccountToken {
		t.Error("ServiceAccount token not mounted with RBAC on")
	}
	if spec := podSpecs(r)[0]; spec.AutomountServiceAccountToken == nil || !*spec.AutomountServiceAccountToken {
		t.Error("pod does not mount the API token with RBAC on")
	}
}

func TestRBACNamespaced(t *testing.T) {
	r := mustRender(t, `
rbac:
  create: true
  namespaced: true
  namespaces: [apps, monitoring]
`)
	if len(every[*rbacv1.ClusterRole](r)) != 0 || len(every[*rbacv1.ClusterRoleBinding](r)) != 0 {
		t.Error("cluster-wide RBAC rendered for namespaced RBAC")
	}
	roles, bindings := every[*rbacv1.Role](r), every[*rbacv1.RoleBinding](r)
	var nss []string
	for _, role := range roles {
		checkStatusRules(t, role.Rules)
		nss = append(nss, role.Namespace)
	}
	if !slices.Equal(nss, []string{"apps", "monitoring"}) {
		t.Errorf("Roles in %v, want apps and monitoring", nss)
	}
	if len(bindings) != 2 {
		t.Fatalf("%d RoleBindings", len(bindings))
	}
	for _, b := range bindings {
		if b.RoleRef.Kind != "Role" || b.Subjects[0].Namespace != namespace || b.Subjects[0].Name != release {
			t.Errorf("RoleBinding %s/%s %+v", b.Namespace, b.Name, b)
		}
	}
	// Without namespaces: the release's namespace.
	r = mustRender(t, `rbac: {create: true, namespaced: true}`)
	if role := only[*rbacv1.Role](t, r); role.Namespace != namespace {
		t.Errorf("Role in %s", role.Namespace)
	}
}

// checkStatusRules: what kubernetes_status_source needs, and nothing that writes.
func checkStatusRules(t *testing.T, rules []rbacv1.PolicyRule) {
	t.Helper()
	need := map[string][]string{"apps": {"deployments", "statefulsets", "daemonsets"}, "": {"pods"}}
	for group, resources := range need {
		for _, res := range resources {
			ok := slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool {
				return slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, res) &&
					slices.Contains(r.Verbs, "get") && slices.Contains(r.Verbs, "list") && slices.Contains(r.Verbs, "watch")
			})
			if !ok {
				t.Errorf("rules %+v do not allow get/list/watch of %s.%s", rules, res, group)
			}
		}
	}
	for _, r := range rules {
		for _, v := range r.Verbs {
			if !slices.Contains([]string{"get", "list", "watch"}, v) {
				t.Errorf("rule %+v grants %s", r, v)
			}
		}
	}
}

func TestMonitorsAndRules(t *testing.T) {
	r := mustRender(t, `
serviceMonitor: {enabled: true, labels: {release: kube-prometheus-stack}}
podMonitor: {enabled: true}
prometheusRule: {enabled: true, labels: {release: kube-prometheus-stack}}
`)
	sm := only[*monitoringv1.ServiceMonitor](t, r)
	if sm.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("ServiceMonitor labels %v", sm.Labels)
	}
	var paths []string
	for _, e := range sm.Spec.Endpoints {
		paths = append(paths, e.Path)
		if e.Port != "http" || string(e.Interval) != "30s" {
			t.Errorf("endpoint %+v", e)
		}
	}
	if !slices.Equal(paths, []string{"/metrics", "/metrics/default"}) {
		t.Errorf("ServiceMonitor paths %v", paths)
	}
	svc := only[*corev1.Service](t, r)
	for k, v := range sm.Spec.Selector.MatchLabels {
		if svc.Labels[k] != v {
			t.Errorf("ServiceMonitor selects %s=%s, the Service has %v", k, v, svc.Labels)
		}
	}
	pm := only[*monitoringv1.PodMonitor](t, r)
	if len(pm.Spec.PodMetricsEndpoints) != 2 || *pm.Spec.PodMetricsEndpoints[0].Port != "http" {
		t.Errorf("PodMonitor endpoints %+v", pm.Spec.PodMetricsEndpoints)
	}
	podLabels := podSpecsLabels(r)
	for k, v := range pm.Spec.Selector.MatchLabels {
		if podLabels[k] != v {
			t.Errorf("PodMonitor selects %s=%s, the pods have %v", k, v, podLabels)
		}
	}

	// The PrometheusRule holds exactly deploy/prometheus/sluice-rules.yml.
	pr := only[*monitoringv1.PrometheusRule](t, r)
	src, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.UnmarshalStrict(src, &file); err != nil {
		t.Fatal(err)
	}
	if len(pr.Spec.Groups) != len(file.Groups) {
		t.Fatalf("PrometheusRule has %d groups, the rules file %d", len(pr.Spec.Groups), len(file.Groups))
	}
	alerts := 0
	for i, g := range file.Groups {
		pg := pr.Spec.Groups[i]
		if pg.Name != g.Name || len(pg.Rules) != len(g.Rules) {
			t.Fatalf("group %d: %s with %d rules, want %s with %d", i, pg.Name, len(pg.Rules), g.Name, len(g.Rules))
		}
		for j, rule := range g.Rules {
			pr := pg.Rules[j]
			forStr := ""
			if pr.For != nil {
				forStr = string(*pr.For)
			}
			if pr.Alert != rule.Alert || pr.Expr.String() != rule.Expr || forStr != rule.For ||
				fmt.Sprint(pr.Labels) != fmt.Sprint(rule.Labels) || fmt.Sprint(pr.Annotations) != fmt.Sprint(rule.Annotations) {
				t.Errorf("rule %s differs from the rules file:\n%+v\n%+v", rule.Alert, pr, rule)
			}
			alerts++
		}
	}
	if alerts < 10 || !strings.Contains(fmt.Sprint(pr.Spec.Groups), "SluiceWatchdog") {
		t.Errorf("%d alerts, or no SluiceWatchdog", alerts)
	}
}

func podSpecsLabels(r *rendered) map[string]string {
	for _, ds := range every[*appsv1.DaemonSet](r) {
		return ds.Spec.Template.Labels
	}
	for _, d := range every[*appsv1.Deployment](r) {
		return d.Spec.Template.Labels
	}
	return nil
}

func TestStoragePVC(t *testing.T) {
	r := mustRender(t, `
kind: Deployment
storage:
  type: pvc
  pvc: {size: 5Gi, storageClassName: fast}
`)
	pvc := only[*corev1.PersistentVolumeClaim](t, r)
	if q := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; q.String() != "5Gi" || *pvc.Spec.StorageClassName != "fast" {
		t.Errorf("PVC %+v", pvc.Spec)
	}
	if pvc.Annotations["helm.sh/resource-policy"] != "keep" {
		t.Error("the PVC would be deleted with the release")
	}
	d := only[*appsv1.Deployment](t, r)
	if v := volume(d.Spec.Template.Spec, "data"); v == nil || v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != pvc.Name {
		t.Errorf("data volume %+v", v)
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy %q: a ReadWriteOnce claim needs Recreate", d.Spec.Strategy.Type)
	}
	if c := sluiceContainer(t, d.Spec.Template.Spec); mountAt(c, "/var/lib/sluice") == nil {
		t.Error("no mount at the storage path")
	}

	// An existing claim: no PVC rendered.
	r = mustRender(t, `{kind: Deployment, storage: {type: pvc, pvc: {existingClaim: mine}}}`)
	if len(every[*corev1.PersistentVolumeClaim](r)) != 0 {
		t.Error("PVC rendered with existingClaim")
	}
	if v := volume(podSpecs(r)[0], "data"); v.PersistentVolumeClaim.ClaimName != "mine" {
		t.Errorf("claim %s", v.PersistentVolumeClaim.ClaimName)
	}
}

func TestStorageHostPath(t *testing.T) {
	r := mustRender(t, `storage: {type: hostPath}`)
	spec := only[*appsv1.DaemonSet](t, r).Spec.Template.Spec
	v := volume(spec, "data")
	if v == nil || v.HostPath == nil || v.HostPath.Path != "/var/lib/sluice/"+release || *v.HostPath.Type != corev1.HostPathDirectoryOrCreate {
		t.Fatalf("data volume %+v", v)
	}
	if len(spec.InitContainers) != 1 {
		t.Fatalf("init containers %+v", spec.InitContainers)
	}
	ic := spec.InitContainers[0]
	if !slices.Equal(ic.Command, []string{"chown", "65532:65532", "/var/lib/sluice"}) ||
		!slices.Equal(ic.SecurityContext.Capabilities.Add, []corev1.Capability{"CHOWN"}) || !slices.Contains(ic.SecurityContext.Capabilities.Drop, "ALL") {
		t.Errorf("init container %+v", ic)
	}
}

func TestWebConfig(t *testing.T) {
	const webConfig = `tls_server_config:
  cert_file: /etc/sluice-web/tls.crt
  key_file: /etc/sluice-web/tls.key
basic_auth_users:
  prometheus: $2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG
`
	values, err := yaml.Marshal(map[string]any{
		"webConfig":      map[string]any{"enabled": true, "content": webConfig},
		"serviceMonitor": map[string]any{"enabled": true, "scheme": "https", "tlsConfig": map[string]any{"insecureSkipVerify": true}},
		"networkPolicy":  map[string]any{"enabled": true},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := mustRender(t, string(values))
	sec := only[*corev1.Secret](t, r)
	if strings.TrimSpace(sec.StringData["web-config.yml"]) != strings.TrimSpace(webConfig) {
		t.Errorf("Secret %q", sec.StringData)
	}
	spec := only[*appsv1.DaemonSet](t, r).Spec.Template.Spec
	c := sluiceContainer(t, spec)
	if !hasArg(c, "--web.config.file=/etc/sluice-web/web-config.yml") || !hasArg(c, "--web.probe-listen-address=:9471") {
		t.Errorf("args %v", c.Args)
	}
	if v := volume(spec, "web-config"); v == nil || v.Secret == nil || v.Secret.SecretName != sec.Name {
		t.Errorf("web-config volume %+v", v)
	}
	if m := mountAt(c, "/etc/sluice-web"); m == nil || !m.ReadOnly {
		t.Errorf("web-config mount %+v", m)
	}
	if c.ReadinessProbe.HTTPGet.Port.StrVal != "probe" || c.LivenessProbe.HTTPGet.Port.StrVal != "probe" {
		t.Errorf("probes on %s/%s, want the plain probe port", c.ReadinessProbe.HTTPGet.Port.StrVal, c.LivenessProbe.HTTPGet.Port.StrVal)
	}
	if p := port(c, "probe"); p == nil || p.ContainerPort != 9471 {
		t.Errorf("probe port %+v", p)
	}
	sm := only[*monitoringv1.ServiceMonitor](t, r)
	if e := sm.Spec.Endpoints[0]; e.Scheme == nil || e.Scheme.String() != "https" || e.TLSConfig == nil || e.TLSConfig.InsecureSkipVerify == nil || !*e.TLSConfig.InsecureSkipVerify {
		t.Errorf("ServiceMonitor endpoint %+v", e)
	}
	np := only[*networkingv1.NetworkPolicy](t, r)
	if !strings.Contains(fmt.Sprint(np.Spec.Ingress), "probe") {
		t.Errorf("NetworkPolicy does not let the probes in: %+v", np.Spec.Ingress)
	}

	// An existing Secret: none rendered, that one mounted.
	r = mustRender(t, `webConfig: {enabled: true, existingSecret: my-web-config}`)
	if len(every[*corev1.Secret](r)) != 0 {
		t.Error("Secret rendered with existingSecret")
	}
	if v := volume(podSpecs(r)[0], "web-config"); v.Secret.SecretName != "my-web-config" {
		t.Errorf("secret %s", v.Secret.SecretName)
	}
}

func TestNetworkPolicy(t *testing.T) {
	r := mustRender(t, `
networkPolicy:
  enabled: true
  metricsFrom:
    - namespaceSelector:
        matchLabels: {kubernetes.io/metadata.name: monitoring}
  egress: []
statsd: {tcp: true}
extraPorts:
  - {name: sink-app, containerPort: 9102, protocol: TCP}
`)
	np := only[*networkingv1.NetworkPolicy](t, r)
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{"Ingress", "Egress"}) || len(np.Spec.Egress) != 0 {
		t.Errorf("policy types %v egress %v: egress: [] must deny all egress", np.Spec.PolicyTypes, np.Spec.Egress)
	}
	if len(np.Spec.Ingress) != 3 {
		t.Fatalf("ingress %+v", np.Spec.Ingress)
	}
	metrics, statsd, extra := np.Spec.Ingress[0], np.Spec.Ingress[1], np.Spec.Ingress[2]
	if metrics.Ports[0].Port.StrVal != "http" || len(metrics.From) != 1 || metrics.From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
		t.Errorf("metrics rule %+v", metrics)
	}
	if len(statsd.Ports) != 2 || statsd.Ports[0].Port.IntValue() != 9125 || *statsd.Ports[0].Protocol != corev1.ProtocolUDP || *statsd.Ports[1].Protocol != corev1.ProtocolTCP || len(statsd.From) != 0 {
		t.Errorf("statsd rule %+v", statsd)
	}
	if extra.Ports[0].Port.IntValue() != 9102 {
		t.Errorf("extra ports rule %+v", extra)
	}
	svc := only[*corev1.Service](t, r)
	if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "sink-app" && p.Port == 9102 }) {
		t.Errorf("Service ports %+v lack sink-app", svc.Spec.Ports)
	}
	// Default: egress open.
	r = mustRender(t, `networkPolicy: {enabled: true}`)
	if np := only[*networkingv1.NetworkPolicy](t, r); !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{"Ingress"}) {
		t.Errorf("policy types %v", np.Spec.PolicyTypes)
	}
}

// TestSidecarConfigOnly: kind None renders the config (and monitors) for a
// Sluice container in the application's own pod, and no workload.
func TestSidecarConfigOnly(t *testing.T) {
	r := mustRender(t, `
kind: None
config:
  content: |
    statsd_receiver "app" {
      listen_udp = "127.0.0.1:9125"
    }
    metrics_sink "app" {
      inputs = [statsd_receiver.app.metrics, agent.metrics]
      listen = ":9102"
    }
podMonitor:
  enabled: true
  selector: {matchLabels: {app: web}}
  port: metrics
  paths: [/metrics]
`)
	if want := []string{"ConfigMap", "PodMonitor", "ServiceAccount"}; !slices.Equal(r.kinds(), want) {
		t.Fatalf("kinds %v, want %v", r.kinds(), want)
	}
	pm := only[*monitoringv1.PodMonitor](t, r)
	if pm.Spec.Selector.MatchLabels["app"] != "web" || *pm.Spec.PodMetricsEndpoints[0].Port != "metrics" {
		t.Errorf("PodMonitor %+v", pm.Spec)
	}
	if !strings.Contains(r.notes, "No workload") {
		t.Errorf("NOTES: %s", r.notes)
	}
	// The sidecar's image is the lite distribution.
	if want := "image ghcr.io/sluicehq/sluice:" + loadChart(t).Metadata.AppVersion + "-lite,\nthe lite distribution"; !strings.Contains(r.notes, want) {
		t.Errorf("NOTES lack %q: %s", want, r.notes)
	}
}

// TestImageDistribution: image.distribution picks the full or the lite
// image for a workload; a digest pins whatever it names.
func TestImageDistribution(t *testing.T) {
	app := loadChart(t).Metadata.AppVersion
	for _, tc := range []struct{ values, want string }{
		{``, "ghcr.io/sluicehq/sluice:" + app},
		{`image: {distribution: lite}`, "ghcr.io/sluicehq/sluice:" + app + "-lite"},
		{`{kind: Deployment, image: {distribution: lite, tag: "1.2.3"}}`, "ghcr.io/sluicehq/sluice:1.2.3-lite"},
		{`{kind: Deployment, image: {distribution: full}}`, "ghcr.io/sluicehq/sluice:" + app},
		{`image: {distribution: lite, digest: "sha256:0123"}`, "ghcr.io/sluicehq/sluice@sha256:0123"},
	} {
		r := mustRender(t, tc.values)
		var spec corev1.PodSpec
		if strings.Contains(tc.values, "Deployment") {
			spec = only[*appsv1.Deployment](t, r).Spec.Template.Spec
		} else {
			spec = only[*appsv1.DaemonSet](t, r).Spec.Template.Spec
		}
		if c := sluiceContainer(t, spec); c.Image != tc.want {
			t.Errorf("%s: image %s, want %s", tc.values, c.Image, tc.want)
		}
	}
	if _, err := render(t, `image: {distribution: tiny}`); err == nil {
		t.Error("image.distribution tiny rendered")
	}
}

// TestRejectedValues: combinations that cannot work fail the render with a
// message, as `helm install` would.
func TestRejectedValues(t *testing.T) {
	for _, tc := range []struct{ values, want string }{
		{`kind: StatefulSet`, "kind"},
		{`storage: {type: nfs}`, "storage"},
		{`webConfig: {enabled: true}`, "webConfig.enabled needs"},
		{`storage: {type: pvc}`, "share one claim"},
		{`{kind: Deployment, replicas: 2, storage: {type: pvc}}`, "more than one replica"},
		{`{serviceMonitor: {enabled: true}, service: {enabled: false}}`, "needs service.enabled"},
		{`config: {files: {sluice.hcl: x}}`, "cannot hold sluice.hcl"},
		{`agent: {logFormat: xml}`, "logFormat"},
		// Values the chart would otherwise ignore.
		{`{kind: None, serviceMonitor: {enabled: true}}`, "set serviceMonitor.selector"},
		{`{kind: None, serviceMonitor: {enabled: true, selector: {matchLabels: {app: web}}}}`, "serviceMonitor.port"},
		{`serviceMonitor: {enabled: true, selector: {matchLabels: {app: web}}}`, "serviceMonitor.selector is for kind=None"},
		{`serviceMonitor: {enabled: true, namespaceSelectr: {any: true}}`, "namespaceSelectr"},
		{`serviceMonitor: {selector: {matchLabel: {app: web}}}`, "matchLabel"},
		{`podMonitor: {prot: metrics}`, "prot"},
		{`dashboards: {folder: Sluice}`, "only with dashboards.enabled=true"},
		{`dashboards: {enabled: true, lable: x}`, "lable"},
		{`dashboards: {enabled: true, labelValue: 1}`, "labelValue"},
		{`dashboards: {enabled: true, label: "not a label"}`, "label"},
	} {
		_, err := render(t, tc.values)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("values %s: error %v, want one mentioning %q", tc.values, err, tc.want)
		}
	}
}

// TestInvalidConfigIsCaught: the validation of embedded configs is real.
func TestInvalidConfigIsCaught(t *testing.T) {
	r, err := render(t, `config: {content: "statsd_receiver \"x\" { listen_udpp = \":9125\" }"}`)
	if err != nil {
		t.Fatal(err)
	}
	cm := only[*corev1.ConfigMap](t, r)
	dir := t.TempDir()
	err = sluiceruntime.Validate(filepath.Join(dir, "sluice.hcl"), []byte(cm.Data["sluice.hcl"]), func(string) (string, bool) { return "", false })
	if err == nil || !strings.Contains(err.Error(), "listen_udpp") {
		t.Errorf("a misspelt argument validated: %v", err)
	}
}

// TestDocumentedValues renders every values example of the documentation
// (YAML blocks whose first line is "# helm values: NAME"), so the examples
// in docs/operations.md and the chart's README stay installable.
func TestDocumentedValues(t *testing.T) {
	found := map[string]*rendered{}
	for _, doc := range []string{"../../../docs/operations.md", "../sluice/README.md"} {
		src, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		blocks := strings.Split(string(src), "```yaml\n# helm values: ")
		for _, b := range blocks[1:] {
			name, body, _ := strings.Cut(b, "\n")
			body, _, ok := strings.Cut(body, "```")
			if !ok {
				t.Fatalf("%s: unterminated block %s", doc, name)
			}
			t.Run(name, func(t *testing.T) { found[name] = mustRender(t, body) })
		}
	}
	for _, name := range []string{"node-agent.yaml", "central.yaml", "web-sluice.yaml"} {
		if found[name] == nil {
			t.Errorf("documented values %s not found", name)
		}
	}
	if r := found["central.yaml"]; r != nil {
		if want := []string{"ConfigMap", "Deployment", "NetworkPolicy", "PersistentVolumeClaim", "Role", "Role", "RoleBinding", "RoleBinding", "Service", "ServiceAccount", "ServiceMonitor"}; !slices.Equal(r.kinds(), want) {
			t.Errorf("central.yaml renders %v, want %v", r.kinds(), want)
		}
	}
	if r := found["cluster-status.yaml"]; r != nil {
		if want := []string{"ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "PodDisruptionBudget", "Role", "RoleBinding", "Service", "ServiceAccount", "ServiceMonitor"}; !slices.Equal(r.kinds(), want) {
			t.Errorf("cluster-status.yaml renders %v, want %v", r.kinds(), want)
		}
	} else {
		t.Error("documented values cluster-status.yaml not found")
	}
	if r := found["node-agent.yaml"]; r != nil {
		if want := []string{"ConfigMap", "DaemonSet", "PodDisruptionBudget", "PrometheusRule", "Service", "ServiceAccount", "ServiceMonitor"}; !slices.Equal(r.kinds(), want) {
			t.Errorf("node-agent.yaml renders %v, want %v", r.kinds(), want)
		}
	}
}

// TestPlainManifestsDecodeStrictly decodes every object of the plain
// manifests in deploy/kubernetes as the chart's (the configs they embed are
// validated by deploy/manifests_test.go).
func TestPlainManifestsDecodeStrictly(t *testing.T) {
	files, err := filepath.Glob("../../kubernetes/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(src), "\n---\n") {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			if _, _, err := decoder.Decode([]byte(doc), nil, nil); err != nil {
				t.Errorf("%s: %v", f, err)
			}
			n++
		}
	}
	if n < 5 {
		t.Errorf("only %d objects in deploy/kubernetes", n)
	}
}

// TestSidecarSnippetDecodesStrictly: the container the chart's README tells
// users to paste into their pod spec is a valid PodSpec fragment.
func TestSidecarSnippetDecodesStrictly(t *testing.T) {
	src, err := os.ReadFile("../sluice/README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(src), "```yaml\n# in the application's pod spec\n")
	if !ok {
		t.Fatal("no pod spec snippet in the chart's README")
	}
	snippet, _, _ := strings.Cut(rest, "```")
	pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n" + indent(snippet, "  ")
	obj, _, err := decoder.Decode([]byte(pod), nil, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, pod)
	}
	spec := obj.(*corev1.Pod).Spec
	c := sluiceContainer(t, spec)
	if !strings.HasSuffix(c.Image, "-lite") {
		t.Errorf("the sidecar snippet's image %s is not the lite distribution", c.Image)
	}
	if v := volume(spec, "sluice-config"); v == nil || v.ConfigMap == nil || mountAt(c, "/etc/sluice") == nil {
		t.Errorf("config volume %+v", v)
	}
	if sc := c.SecurityContext; sc == nil || !*sc.ReadOnlyRootFilesystem || mountAt(c, "/tmp") == nil {
		t.Errorf("sidecar: read-only root needs a writable /tmp for --storage.path=/tmp/sluice: %+v", sc)
	}
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

// isDashboard: a dashboard ConfigMap holds JSON files only.
func isDashboard(cm *corev1.ConfigMap) bool {
	if len(cm.Data) == 0 {
		return false
	}
	for k := range cm.Data {
		if !strings.HasSuffix(k, ".json") {
			return false
		}
	}
	return true
}

// dashboardFiles are the dashboards of deploy/grafana, by file name.
func dashboardFiles(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("../../grafana/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in deploy/grafana: %v", err)
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = string(b)
	}
	return out
}

// TestDashboards: off by default; on, one ConfigMap per dashboard of
// deploy/grafana, holding it byte for byte, with the sidecar's label and
// the folder annotation as configured.
func TestDashboards(t *testing.T) {
	for _, cm := range every[*corev1.ConfigMap](mustRender(t, ``)) {
		if isDashboard(cm) {
			t.Errorf("dashboard ConfigMap %s rendered by default", cm.Name)
		}
	}
	want := dashboardFiles(t)
	for _, tc := range []struct {
		name, values                     string
		label, value, annotation, folder string
		ns                               string
	}{
		{"defaults", `dashboards: {enabled: true}`, "grafana_dashboard", "1", "", "", namespace},
		{"configured", `
dashboards:
  enabled: true
  label: example.com/dashboard
  labelValue: sluice
  folder: Platform / Sluice
  folderAnnotation: k8s-sidecar-target-directory
  labels: {team: platform}
  namespace: grafana
`, "example.com/dashboard", "sluice", "k8s-sidecar-target-directory", "Platform / Sluice", "grafana"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRender(t, tc.values)
			got := map[string]string{}
			for _, cm := range every[*corev1.ConfigMap](r) {
				if !isDashboard(cm) {
					continue
				}
				if len(cm.Data) != 1 {
					t.Errorf("%s holds %d dashboards, want 1", cm.Name, len(cm.Data))
				}
				for k, v := range cm.Data {
					got[k] = v
				}
				if cm.Labels[tc.label] != tc.value || cm.Namespace != tc.ns {
					t.Errorf("%s in %s labels %v: want %s=%s in %s", cm.Name, cm.Namespace, cm.Labels, tc.label, tc.value, tc.ns)
				}
				if tc.annotation != "" && cm.Annotations[tc.annotation] != tc.folder {
					t.Errorf("%s annotations %v: want %s=%q", cm.Name, cm.Annotations, tc.annotation, tc.folder)
				}
				if tc.annotation == "" && len(cm.Annotations) != 0 {
					t.Errorf("%s annotations %v without a folder", cm.Name, cm.Annotations)
				}
				if tc.name == "configured" && cm.Labels["team"] != "platform" {
					t.Errorf("%s lacks the extra labels: %v", cm.Name, cm.Labels)
				}
				if !strings.HasPrefix(cm.Name, release+"-dashboard-") {
					t.Errorf("ConfigMap name %s", cm.Name)
				}
			}
			if len(got) != len(want) {
				t.Errorf("dashboards rendered %d, deploy/grafana has %d", len(got), len(want))
			}
			for name, content := range want {
				// Helm trims each rendered document, so the file's final
				// newline goes; the JSON is the same.
				if got[name] != strings.TrimRight(content, "\n") {
					t.Errorf("%s: the ConfigMap does not hold deploy/grafana/%s as it is (%d bytes, want %d)", name, name, len(got[name]), len(content))
				}
			}
		})
	}
}

// TestSidecarServiceMonitor: with kind None the ServiceMonitor selects the
// application's Service, on its port, in the namespaces asked for; the
// PodMonitor stays off unless enabled.
func TestSidecarServiceMonitor(t *testing.T) {
	r := mustRender(t, `
kind: None
serviceMonitor:
  enabled: true
  selector: {matchLabels: {app: web}}
  port: sluice-metrics
  paths: [/metrics]
  namespaceSelector: {matchNames: [shop, shop-staging]}
`)
	if want := []string{"ConfigMap", "ServiceAccount", "ServiceMonitor"}; !slices.Equal(r.kinds(), want) {
		t.Fatalf("kinds %v, want %v", r.kinds(), want)
	}
	sm := only[*monitoringv1.ServiceMonitor](t, r)
	if sm.Spec.Selector.MatchLabels["app"] != "web" || len(sm.Spec.Selector.MatchLabels) != 1 {
		t.Errorf("selector %+v, want the application's Service", sm.Spec.Selector)
	}
	if !slices.Equal(sm.Spec.NamespaceSelector.MatchNames, []string{"shop", "shop-staging"}) {
		t.Errorf("namespaceSelector %+v", sm.Spec.NamespaceSelector)
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "sluice-metrics" || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("endpoints %+v", sm.Spec.Endpoints)
	}
	// Without namespaceSelector: the release's namespace.
	r = mustRender(t, `{kind: None, serviceMonitor: {enabled: true, selector: {matchLabels: {app: web}}, port: m}}`)
	if sm := only[*monitoringv1.ServiceMonitor](t, r); !slices.Equal(sm.Spec.NamespaceSelector.MatchNames, []string{namespace}) {
		t.Errorf("default namespaceSelector %+v", sm.Spec.NamespaceSelector)
	}
}

const gunicornExample = "../examples/gunicorn-sidecar"

// gunicornExampleValues reads the example's values with the mapping file
// set as its install command does (--set-file config.files.gunicorn-mapping\.yml=...).
func gunicornExampleValues(t *testing.T) chartutil.Values {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(gunicornExample, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), `--set-file 'config.files.gunicorn-mapping\.yml=config/examples/gunicorn-mapping.yml'`) {
		t.Fatal("the example's install command changed: update this test")
	}
	vals, err := chartutil.ReadValues(src)
	if err != nil {
		t.Fatal(err)
	}
	mapping, err := os.ReadFile("../../../config/examples/gunicorn-mapping.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := vals["config"].(map[string]any)
	cfg["files"] = map[string]any{"gunicorn-mapping.yml": string(mapping)}
	return vals
}

// readExampleApp decodes the example's app.yaml strictly.
func readExampleApp(t *testing.T) (*appsv1.Deployment, *corev1.Service) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(gunicornExample, "app.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var dep *appsv1.Deployment
	var svc *corev1.Service
	for _, doc := range strings.Split(string(src), "\n---\n") {
		obj, _, err := decoder.Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("app.yaml: %v", err)
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			dep = o
		case *corev1.Service:
			svc = o
		}
	}
	if dep == nil || svc == nil {
		t.Fatal("app.yaml needs a Deployment and a Service")
	}
	return dep, svc
}

// TestGunicornSidecarExample renders deploy/helm/examples/gunicorn-sidecar
// and checks that its parts fit: the ServiceMonitor selects app.yaml's
// Service on a port that reaches the sidecar's metrics_sink, the pod mounts
// the rendered ConfigMap, the dashboards are there.
func TestGunicornSidecarExample(t *testing.T) {
	r, err := renderValues(t, "web-sluice", gunicornExampleValues(t))
	if err != nil {
		t.Fatal(err)
	}
	validateConfigs(t, r)
	var cfg *corev1.ConfigMap
	dashboards := 0
	for _, cm := range every[*corev1.ConfigMap](r) {
		if isDashboard(cm) {
			dashboards++
			if cm.Labels["grafana_dashboard"] != "1" || cm.Annotations["grafana_folder"] != "Shop" {
				t.Errorf("dashboard %s: labels %v annotations %v", cm.Name, cm.Labels, cm.Annotations)
			}
		} else {
			cfg = cm
		}
	}
	if dashboards != len(dashboardFiles(t)) || cfg == nil {
		t.Fatalf("rendered %v: want the config and %d dashboards", r.kinds(), len(dashboardFiles(t)))
	}
	if !strings.Contains(cfg.Data["gunicorn-mapping.yml"], "gunicorn_requests_total") {
		t.Error("the mapping file is not in the ConfigMap")
	}
	dep, svc := readExampleApp(t)
	sm := only[*monitoringv1.ServiceMonitor](t, r)
	for k, v := range sm.Spec.Selector.MatchLabels {
		if svc.Labels[k] != v {
			t.Errorf("the ServiceMonitor selects %s=%s; the app's Service has %v", k, v, svc.Labels)
		}
	}
	var target string
	for _, p := range svc.Spec.Ports {
		if p.Name == sm.Spec.Endpoints[0].Port {
			target = p.TargetPort.String()
		}
	}
	podSpec := dep.Spec.Template.Spec
	c := sluiceContainer(t, podSpec)
	if cp := port(c, target); target == "" || cp == nil || cp.ContainerPort != 9102 || !strings.Contains(cfg.Data["sluice.hcl"], `listen = ":9102"`) {
		t.Errorf("the ServiceMonitor's port %q does not reach the sidecar's metrics_sink on 9102 (target %q)", sm.Spec.Endpoints[0].Port, target)
	}
	for k, v := range svc.Spec.Selector {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("the Service selects %s=%s; the pods have %v", k, v, dep.Spec.Template.Labels)
		}
	}
	if v := volume(podSpec, "sluice-config"); v == nil || v.ConfigMap == nil || v.ConfigMap.Name != cfg.Name || mountAt(c, "/etc/sluice") == nil {
		t.Errorf("the pod does not mount ConfigMap %s at /etc/sluice: %+v", cfg.Name, v)
	}
}

// TestLeaderElectionRBAC: rbac.leaderElection grants exactly what
// client-go's Lease lock uses, in the lease's namespace, to the agent's
// ServiceAccount; a DaemonSet with cluster-wide RBAC is warned about.
func TestLeaderElectionRBAC(t *testing.T) {
	r := mustRender(t, `{kind: Deployment, rbac: {leaderElection: {enabled: true, namespace: ops}}}`)
	role := only[*rbacv1.Role](t, r)
	rb := only[*rbacv1.RoleBinding](t, r)
	if role.Namespace != "ops" || rb.Namespace != "ops" || rb.RoleRef.Name != role.Name {
		t.Errorf("Role %s/%s, RoleBinding %s/%s -> %s", role.Namespace, role.Name, rb.Namespace, rb.Name, rb.RoleRef.Name)
	}
	if len(role.Rules) != 1 || fmt.Sprint(role.Rules[0].APIGroups, role.Rules[0].Resources, role.Rules[0].Verbs) != "[coordination.k8s.io] [leases] [get create update]" {
		t.Errorf("rules %+v", role.Rules)
	}
	if len(rb.Subjects) != 1 || rb.Subjects[0].Name != release || rb.Subjects[0].Namespace != namespace {
		t.Errorf("subjects %+v", rb.Subjects)
	}
	if strings.Contains(r.notes, "WARNING") {
		t.Errorf("a Deployment is warned about:\n%s", r.notes)
	}
	if r := mustRender(t, `rbac: {create: true}`); !strings.Contains(r.notes, "WARNING: a DaemonSet with cluster-wide RBAC") {
		t.Errorf("no warning for a DaemonSet watching the cluster:\n%s", r.notes)
	}
	if r := mustRender(t, `rbac: {create: true, namespaced: true}`); strings.Contains(r.notes, "WARNING") {
		t.Errorf("a namespaced DaemonSet is warned about:\n%s", r.notes)
	}
}
