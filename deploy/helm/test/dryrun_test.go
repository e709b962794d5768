package test

// The API server itself validates what we ship: every object the chart
// renders for each values profile, and every object of the plain manifests
// in deploy/kubernetes, is created on a real kube-apiserver (internal/testing/kubetest)
// with server-side dry-run (dryRun=All) and strict field validation. Schema,
// defaulting, validation and admission run; nothing is stored.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	"github.com/sluicehq/sluice/internal/testing/kubetest"
)

// crdModule ships the prometheus-operator CRDs (example/prometheus-operator-crd)
// that ServiceMonitor, PodMonitor and PrometheusRule need. The types module
// this test decodes with (pkg/apis/monitoring) ships no CRD YAML; this is the
// newest version of the full module available to `make deps` here, and
// scripts/ensure-deps.sh downloads it into the module cache.
const crdModule = "github.com/prometheus-operator/prometheus-operator@v0.85.0"

var crdFiles = []string{
	"monitoring.coreos.com_servicemonitors.yaml",
	"monitoring.coreos.com_podmonitors.yaml",
	"monitoring.coreos.com_prometheusrules.yaml",
}

// hostPortOnly is what the default DaemonSet breaks of the restricted Pod
// Security level (and of baseline): the statsd hostPort that lets
// applications send to their node's IP. statsd.hostPort=false lifts it.
var hostPortOnly = []string{"hostPort: sluice"}

// dryRunProfiles are the values profiles applied to the API server. Together
// they render every template of the chart (TestDryRunChart checks that).
// podSecurity lists the checks of the Pod Security Standards' restricted
// level that the profile's pod template is expected to fail, exactly.
var dryRunProfiles = []struct {
	name, values string
	podSecurity  []string
}{
	{"daemonset-default", ``, hostPortOnly},
	{"daemonset-no-hostport", `statsd: {hostPort: false}`, nil},
	{"deployment-pdb", `{kind: Deployment, replicas: 2, podDisruptionBudget: {enabled: true}}`, nil},
	{"deployment-pvc", `
kind: Deployment
storage:
  type: pvc
  pvc: {size: 5Gi, storageClassName: fast}
`, nil},
	{"deployment-existing-claim", `{kind: Deployment, storage: {type: pvc, pvc: {existingClaim: mine}}}`, nil},
	// The documented trade-off of a hostPath: a root init container with
	// CAP_CHOWN hands the root-owned directory to the agent's user.
	{"hostpath", `storage: {type: hostPath}`, []string{"hostPort: sluice", "restricted volume types",
		"unrestricted capabilities: volume-permissions", "runAsNonRoot != true: volume-permissions", "runAsUser=0: volume-permissions"}},
	{"rbac-cluster", `rbac: {create: true}`, hostPortOnly},
	{"rbac-namespaced", `
rbac:
  create: true
  namespaced: true
  namespaces: [apps, monitoring]
`, hostPortOnly},
	{"monitoring-tls-networkpolicy", `
serviceMonitor: {enabled: true, labels: {release: kube-prometheus-stack}, scheme: https, tlsConfig: {insecureSkipVerify: true}}
podMonitor: {enabled: true}
prometheusRule: {enabled: true, labels: {release: kube-prometheus-stack}}
webConfig:
  enabled: true
  content: |
    tls_server_config:
      cert_file: /etc/sluice-web/tls.crt
      key_file: /etc/sluice-web/tls.key
    basic_auth_users:
      prometheus: $2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG
networkPolicy:
  enabled: true
  metricsFrom:
    - namespaceSelector:
        matchLabels: {kubernetes.io/metadata.name: monitoring}
statsd: {tcp: true}
extraPorts:
  - {name: sink-app, containerPort: 9102, protocol: TCP}
`, hostPortOnly},
	{"web-config-existing-secret", `webConfig: {enabled: true, existingSecret: my-web-config}`, hostPortOnly},
	{"sidecar", `
kind: None
podMonitor: {enabled: true}
`, nil},
	{"cluster-status-leader-election", `
kind: Deployment
replicas: 2
statsd: {enabled: false}
rbac: {create: true, leaderElection: {enabled: true}}
podDisruptionBudget: {enabled: true}
`, nil},
	{"sidecar-servicemonitor-dashboards", `
kind: None
serviceMonitor:
  enabled: true
  selector: {matchLabels: {app: web}}
  port: sluice-metrics
  namespaceSelector: {any: true}
dashboards: {enabled: true, folder: Sluice, labels: {team: platform}}
`, nil},
}

var (
	apiOnce sync.Once
	apiSrv  *kubetest.Server
	apiErr  error
)

// cluster is the package's one API server, with the namespaces and CRDs the
// shipped objects need installed for real.
type cluster struct {
	warnings *warnings
	dyn      dynamic.Interface
	mapper   meta.RESTMapper
	// monitoringSkipped says why the monitoring.coreos.com kinds are not
	// dry-run ("" when their CRDs are installed).
	monitoringSkipped string
}

var (
	clusterOnce sync.Once
	theCluster  *cluster
	clusterErr  error
)

func dryRunCluster(t *testing.T) *cluster {
	t.Helper()
	kubetest.SkipShort(t)
	apiOnce.Do(func() { apiSrv, apiErr = kubetest.New() })
	kubetest.Check(t, apiErr)
	clusterOnce.Do(func() { theCluster, clusterErr = setUpCluster(apiSrv) })
	if clusterErr != nil {
		t.Fatal(clusterErr)
	}
	return theCluster
}

func setUpCluster(srv *kubetest.Server) (*cluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := srv.AdminConfig()
	ws := &warnings{}
	cfg.WarningHandler = ws
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	// The chart's release namespace, the namespaces its namespaced-RBAC
	// profile grants access to, and those the plain manifests name.
	// The release namespace enforces the Pod Security Standards' restricted
	// level and warns about workloads' pod templates that break it (the
	// PodSecurity admission plugin checks templates only in warn mode), so
	// the chart's securityContext claims are checked by the API server.
	for _, ns := range []string{namespace, "apps", "argocd"} {
		labels := map[string]string{}
		if ns == namespace {
			for _, mode := range []string{"enforce", "warn"} {
				labels["pod-security.kubernetes.io/"+mode] = "restricted"
			}
		}
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create namespace %s: %w", ns, err)
		}
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cs.Discovery()))
	c := &cluster{warnings: ws, dyn: dyn, mapper: mapper}

	dir, err := moduleDir(crdModule)
	if err != nil {
		if os.Getenv("CI") == "true" {
			return nil, fmt.Errorf("prometheus-operator CRDs: %w", err)
		}
		c.monitoringSkipped = fmt.Sprintf("CRDs not available (%v); run `make deps`", err)
		return c, nil
	}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	var names []string
	for _, f := range crdFiles {
		objs, err := readObjects(filepath.Join(dir, "example", "prometheus-operator-crd", f))
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			if _, err := dyn.Resource(crdGVR).Create(ctx, o, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return nil, fmt.Errorf("install CRD %s: %w", o.GetName(), err)
			}
			names = append(names, o.GetName())
		}
	}
	// Wait until each CRD is established and its kind is in discovery.
	for _, name := range names {
		if err := poll(ctx, func() (bool, error) {
			u, err := dyn.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			for _, cond := range conds {
				m, _ := cond.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		}); err != nil {
			return nil, fmt.Errorf("CRD %s not established: %w", name, err)
		}
	}
	for _, kind := range []string{"ServiceMonitor", "PodMonitor", "PrometheusRule"} {
		if err := poll(ctx, func() (bool, error) {
			mapper.Reset()
			_, err := mapper.RESTMapping(schema.GroupKind{Group: "monitoring.coreos.com", Kind: kind}, "v1")
			return err == nil, nil
		}); err != nil {
			return nil, fmt.Errorf("%s not in discovery: %w", kind, err)
		}
	}
	return c, nil
}

// moduleDir finds a module in the module cache (without the network when it
// is there; scripts/ensure-deps.sh puts it there).
func moduleDir(mod string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", mod)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	runErr := cmd.Run()
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out.Bytes(), &info); err != nil {
		return "", fmt.Errorf("go mod download %s: %v %v %s", mod, runErr, err, stderr.String())
	}
	if info.Error != "" || info.Dir == "" {
		return "", fmt.Errorf("go mod download %s: %s", mod, info.Error)
	}
	return info.Dir, nil
}

func poll(ctx context.Context, cond func() (bool, error)) error {
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// readObjects reads every non-empty YAML document of a file.
func readObjects(path string) ([]*unstructured.Unstructured, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(src)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		u, err := parseObject(string(doc))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if u != nil {
			objs = append(objs, u)
		}
	}
}

// parseObject parses one YAML document; nil for an empty one.
func parseObject(doc string) (*unstructured.Unstructured, error) {
	if strings.TrimSpace(stripComments(doc)) == "" {
		return nil, nil
	}
	u := &unstructured.Unstructured{}
	if err := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(doc), 4096).Decode(&u.Object); err != nil {
		return nil, err
	}
	if len(u.Object) == 0 {
		return nil, nil
	}
	if u.GetKind() == "" || u.GetAPIVersion() == "" {
		return nil, fmt.Errorf("object without apiVersion/kind:\n%s", doc)
	}
	return u, nil
}

// errSkipped marks an object whose kind's CRD is not installed.
var errSkipped = errors.New("skipped")

// warnings collects the API server's warnings (deprecated APIs or fields,
// duplicate ports, ...): a shipped object must draw none.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.msgs
	w.msgs = nil
	return m
}

// dryRun creates o with dryRun=All and strict field validation, in
// defaultNS when it is namespaced and names none. It returns the
// restricted Pod Security checks o's pod template fails (sorted); any other
// warning from the API server is an error.
func (c *cluster) dryRun(ctx context.Context, o *unstructured.Unstructured, defaultNS string) ([]string, error) {
	c.warnings.take()
	err := c.create(ctx, o, defaultNS)
	var podSecurity, other []string
	for _, w := range c.warnings.take() {
		if v, ok := podSecurityViolations(w); ok {
			podSecurity = append(podSecurity, v...)
		} else {
			other = append(other, w)
		}
	}
	sort.Strings(podSecurity)
	if err == nil && len(other) > 0 {
		err = fmt.Errorf("warnings: %s", strings.Join(other, "; "))
	}
	return podSecurity, err
}

// podSecurityViolations parses the PodSecurity admission warning
//
//	would violate PodSecurity "restricted:latest": hostPort (container "sluice" uses hostPort 9125), runAsUser=0 (...)
//
// into the failed checks, each with the containers it names:
// "hostPort: sluice", "runAsUser=0: wal-owner"; a check about the pod
// alone ("restricted volume types") has no container.
func podSecurityViolations(warning string) ([]string, bool) {
	const prefix = `would violate PodSecurity "`
	if !strings.HasPrefix(warning, prefix) {
		return nil, false
	}
	_, list, ok := strings.Cut(warning, `": `)
	if !ok {
		return nil, false
	}
	var names []string
	depth, start := 0, 0
	for i := 0; i <= len(list); i++ {
		if i < len(list) {
			switch list[i] {
			case '(':
				depth++
				continue
			case ')':
				depth--
				continue
			case ',':
				if depth > 0 {
					continue
				}
			default:
				continue
			}
		}
		part := strings.TrimSpace(list[start:i])
		name, detail, _ := strings.Cut(part, " (")
		if name != "" {
			if cs := containersNamed(detail); len(cs) > 0 {
				name += ": " + strings.Join(cs, ",")
			}
			names = append(names, name)
		}
		start = i + 1
	}
	return names, len(names) > 0
}

func (c *cluster) create(ctx context.Context, o *unstructured.Unstructured, defaultNS string) error {
	gvk := o.GroupVersionKind()
	if gvk.Group == "monitoring.coreos.com" && c.monitoringSkipped != "" {
		return errSkipped
	}
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("no API for %s: %w", gvk, err)
	}
	var ri dynamic.ResourceInterface = c.dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := o.GetNamespace()
		if ns == "" {
			ns = defaultNS
		}
		ri = c.dyn.Resource(m.Resource).Namespace(ns)
	}
	_, err = ri.Create(ctx, o, metav1.CreateOptions{
		DryRun:          []string{metav1.DryRunAll},
		FieldValidation: metav1.FieldValidationStrict,
	})
	return err
}

// tally counts the kinds that passed dry-run and those skipped.
type tally struct{ passed, skipped map[string]int }

func newTally() *tally { return &tally{passed: map[string]int{}, skipped: map[string]int{}} }

func (ty *tally) String() string {
	f := func(m map[string]int) string {
		var ks []string
		for k, n := range m {
			ks = append(ks, fmt.Sprintf("%s×%d", k, n))
		}
		sort.Strings(ks)
		return strings.Join(ks, " ")
	}
	return fmt.Sprintf("passed: %s; skipped: %s", f(ty.passed), f(ty.skipped))
}

// containersNamed returns the containers a check's detail names, sorted:
// `containers "wal-owner", "sluice" must set ...` gives [sluice wal-owner].
func containersNamed(detail string) []string {
	i := strings.Index(detail, "container")
	if i < 0 {
		return nil
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(detail[i:], "containers"), "container")
	if j := strings.Index(rest, " must"); j >= 0 {
		rest = rest[:j]
	} else if j := strings.Index(rest, " uses"); j >= 0 {
		rest = rest[:j]
	}
	var names []string
	for _, f := range strings.Split(rest, ",") {
		if n := strings.Trim(strings.TrimSpace(f), `"`); n != "" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// record checks one dry-run: accepted, with exactly the expected Pod
// Security violations when o has a pod template.
func (ty *tally) record(t *testing.T, c *cluster, what string, o *unstructured.Unstructured, wantPodSecurity []string, podSecurity []string, err error) {
	t.Helper()
	if err == nil && hasPodTemplate(o) {
		want := slices.Clone(wantPodSecurity)
		sort.Strings(want)
		if !slices.Equal(podSecurity, want) {
			err = fmt.Errorf("fails the restricted Pod Security checks %q, want %q", podSecurity, want)
		}
	}
	switch {
	case errors.Is(err, errSkipped):
		ty.skipped[o.GetKind()]++
		t.Logf("%s: %s %s skipped: %s", what, o.GetKind(), o.GetName(), c.monitoringSkipped)
	case err != nil:
		t.Errorf("%s: the API server rejects %s %s: %v", what, o.GetKind(), o.GetName(), err)
	default:
		ty.passed[o.GetKind()]++
	}
}

func hasPodTemplate(o *unstructured.Unstructured) bool {
	_, ok, _ := unstructured.NestedMap(o.Object, "spec", "template", "spec")
	return ok
}

// TestDryRunChart applies every object each profile renders.
func TestDryRunChart(t *testing.T) {
	c := dryRunCluster(t)
	ctx := t.Context()
	total := newTally()
	templates := map[string]bool{}
	for _, p := range dryRunProfiles {
		t.Run(p.name, func(t *testing.T) {
			r := mustRender(t, p.values)
			if len(r.docs) == 0 {
				t.Fatal("nothing rendered")
			}
			for i, doc := range r.docs {
				templates[filepath.Base(r.sources[r.objects[i]])] = true
				o, err := parseObject(doc)
				if err != nil || o == nil {
					t.Fatalf("%s: %v", r.sources[r.objects[i]], err)
				}
				ps, err := c.dryRun(ctx, o, namespace)
				total.record(t, c, p.name, o, p.podSecurity, ps, err)
			}
		})
	}
	t.Log(total)
	// Every object-producing template was rendered by some profile.
	files, err := filepath.Glob(filepath.Join(chartDir, "templates", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !templates[filepath.Base(f)] {
			t.Errorf("no profile renders %s", filepath.Base(f))
		}
	}
	if c.monitoringSkipped == "" {
		for _, k := range []string{"ServiceMonitor", "PodMonitor", "PrometheusRule"} {
			if total.passed[k] == 0 {
				t.Errorf("no %s dry-run", k)
			}
		}
	}
}

// TestDryRunGunicornSidecarExample applies what the gunicorn sidecar
// example installs: the chart's objects for its values, and its app.yaml.
func TestDryRunGunicornSidecarExample(t *testing.T) {
	c := dryRunCluster(t)
	r, err := renderValues(t, "web-sluice", gunicornExampleValues(t))
	if err != nil {
		t.Fatal(err)
	}
	app, err := readObjects(filepath.Join(gunicornExample, "app.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	total := newTally()
	for i, doc := range r.docs {
		o, err := parseObject(doc)
		if err != nil || o == nil {
			t.Fatalf("%s: %v", r.sources[r.objects[i]], err)
		}
		ps, err := c.dryRun(t.Context(), o, namespace)
		total.record(t, c, "gunicorn-sidecar chart", o, nil, ps, err)
	}
	for _, o := range app {
		// The whole pod, application included, meets the restricted level.
		ps, err := c.dryRun(t.Context(), o, namespace)
		total.record(t, c, "gunicorn-sidecar app.yaml", o, nil, ps, err)
	}
	t.Log(total)
	want := map[string]int{"ConfigMap": 1 + len(dashboardFiles(t)), "Deployment": 1, "Service": 1}
	if c.monitoringSkipped == "" {
		want["ServiceMonitor"] = 1
	}
	for k, n := range want {
		if total.passed[k] != n {
			t.Errorf("%d %s passed dry-run, want %d", total.passed[k], k, n)
		}
	}
}

// TestDryRunPlainManifests applies every object of deploy/kubernetes/*.yaml.
func TestDryRunPlainManifests(t *testing.T) {
	c := dryRunCluster(t)
	files, err := filepath.Glob("../../kubernetes/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The restricted Pod Security checks each file's workloads fail: the
	// DaemonSets' statsd hostPort, and the remote-write DaemonSet's WAL on a
	// hostPath, handed to the agent by a root init container with CAP_CHOWN.
	podSecurity := map[string][]string{
		"daemonset.yaml": hostPortOnly,
		"daemonset-remote-write.yaml": {"hostPort: sluice", "restricted volume types",
			"unrestricted capabilities: wal-owner", "runAsNonRoot != true: wal-owner", "runAsUser=0: wal-owner"},
		// The example application's own container is the user's; the
		// Sluice sidecar next to it must not add any violation.
		"sidecar.yaml": {"allowPrivilegeEscalation != false: web", "runAsNonRoot != true: web",
			"seccompProfile: web", "unrestricted capabilities: web"},
	}
	total := newTally()
	for _, f := range files {
		objs, err := readObjects(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) == 0 {
			t.Errorf("%s: no objects", f)
		}
		for _, o := range objs {
			// Objects that name no namespace (the sidecar example's
			// application) go to the restricted release namespace too.
			ps, err := c.dryRun(t.Context(), o, namespace)
			total.record(t, c, filepath.Base(f), o, podSecurity[filepath.Base(f)], ps, err)
		}
	}
	t.Log(total)
	if n := len(total.passed); n < 5 {
		t.Errorf("only %d kinds passed dry-run", n)
	}
}

// TestDryRunRejectsInvalid: the dry-run really validates (a broken object
// is refused, an unknown field is refused), so the tests above are not
// passing on a server that accepts anything.
func TestDryRunRejectsInvalid(t *testing.T) {
	c := dryRunCluster(t)
	for name, doc := range map[string]string{
		"bad port":                     `{apiVersion: v1, kind: Service, metadata: {name: x}, spec: {ports: [{port: 70000}]}}`,
		"unknown field":                `{apiVersion: v1, kind: ConfigMap, metadata: {name: x}, dataa: {a: b}}`,
		"missing namespace":            `{apiVersion: v1, kind: ConfigMap, metadata: {name: x, namespace: nowhere}}`,
		"container port name too long": `{apiVersion: v1, kind: Pod, metadata: {name: x}, spec: {containers: [{name: a, image: a, ports: [{name: sixteen-chars-xx, containerPort: 80}]}]}}`,
		"warning: duplicate port":      `{apiVersion: v1, kind: Pod, metadata: {name: x}, spec: {containers: [{name: a, image: a, ports: [{containerPort: 80}, {containerPort: 80}]}]}}`,
	} {
		o, err := parseObject(doc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.dryRun(t.Context(), o, "default"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if c.monitoringSkipped == "" {
		o, err := parseObject(`{apiVersion: monitoring.coreos.com/v1, kind: ServiceMonitor, metadata: {name: x}, spec: {endpoints: [{port: 1}]}}`)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.dryRun(t.Context(), o, namespace); err == nil {
			t.Error("ServiceMonitor with an integer port accepted: the CRD schema is not applied")
		}
	}
}

func TestPodSecurityViolations(t *testing.T) {
	for warning, want := range map[string][]string{
		`would violate PodSecurity "restricted:latest": hostPort (container "sluice" uses hostPort 9125), unrestricted capabilities (containers "wal-owner", "sluice" must set securityContext.capabilities.drop=["ALL"]), restricted volume types (volume "data" uses restricted volume type "hostPath"), seccompProfile (pod or containers "wal-owner", "sluice" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`: {
			"hostPort: sluice", "unrestricted capabilities: sluice,wal-owner", "restricted volume types", "seccompProfile: sluice,wal-owner"},
		`would violate PodSecurity "baseline:v1.37": runAsUser=0 (container "a" must not set runAsUser=0)`: {"runAsUser=0: a"},
	} {
		got, ok := podSecurityViolations(warning)
		if !ok || !slices.Equal(got, want) {
			t.Errorf("%s:\ngot %q, want %q", warning, got, want)
		}
	}
	for _, other := range []string{"", "spec.template.spec.containers[0].ports[1]: duplicate port definition", `would violate PodSecurity "restricted:latest"`} {
		if got, ok := podSecurityViolations(other); ok {
			t.Errorf("%q parsed as %q", other, got)
		}
	}
}
