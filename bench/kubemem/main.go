// Command kubemem measures what kubernetes_status_source holds per watched
// object in the sluice binary, against the real kube-apiserver + etcd
// (internal/testing/kubetest, from make deps):
//
//	go run ./bench/kubemem -objects 2000 -runs 3
//
// It creates -objects realistic Deployments (labels, a 1.5 KB
// last-applied annotation, a pod template with 10 env vars and resources,
// a status with conditions) in namespace "deployments" and as many
// realistic Pods (labels, annotations, an owner reference, two containers
// with env, volumes and probes, a status with conditions and container
// statuses) in namespace "pods". Each run starts the static sluice binary
// three times, in a rotated order: watching an empty namespace (the
// baseline), the Deployments, the Pods (a `watch` block over the
// namespace, exported through a metrics_sink); waits until the component
// holds every object (sluice_kubernetes_watched_objects), scrapes the sink
// -scrapes times in full, waits -settle, and reads VmRSS and the Go heap
// (go_memstats_heap_inuse_bytes). Per object = (reading - baseline) /
// objects. It prints medians with min and max and the load average.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/bench/internal/proc"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/sluicehq/sluice/bench/internal/ports"
	"github.com/sluicehq/sluice/internal/testing/kubetest"
)

var (
	flagObjects = flag.Int("objects", 2000, "Deployments, and as many Pods")
	flagRuns    = flag.Int("runs", 3, "runs, each on fresh processes")
	flagScrapes = flag.Int("scrapes", 3, "full scrapes of the sink before the reading")
	flagSettle  = flag.Duration("settle", 2*time.Second, "wait after the last scrape before reading")
	flagSluice  = flag.String("sluice", "", "a sluice binary (default: CGO_ENABLED=0 go build ./cmd/sluice)")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kubemem:", err)
		os.Exit(1)
	}
}

func run() error {
	tmp, err := os.MkdirTemp("", "kubemem")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := *flagSluice
	if bin == "" {
		bin = filepath.Join(tmp, "sluice")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/sluice")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v\n%s", err, b)
		}
	}
	srv, err := kubetest.New()
	if err != nil {
		return err
	}
	defer srv.Close()
	cs := kubernetes.NewForConfigOrDie(srv.AdminConfig())
	start := time.Now()
	if err := populate(cs, *flagObjects); err != nil {
		return err
	}
	fmt.Printf("created %d Deployments and %d Pods in %v\n", *flagObjects, *flagObjects, time.Since(start).Round(time.Second))
	kc, err := srv.WriteKubeconfig(tmp, kubetest.AdminToken)
	if err != nil {
		return err
	}
	load0 := proc.LoadAvg()
	targets := []struct{ name, ns, kind string }{{"baseline", "empty", "Deployment"}, {"deployments", "deployments", "Deployment"}, {"pods", "pods", "Pod"}}
	readings := map[string][]reading{}
	for r := range *flagRuns {
		for i := range targets {
			t := targets[(i+r)%len(targets)]
			want := *flagObjects
			if t.name == "baseline" {
				want = 0
			}
			rd, err := measure(tmp, bin, kc, t.ns, t.kind, want)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			readings[t.name] = append(readings[t.name], rd)
			fmt.Printf("run %d %-12s RSS %6.1f MiB  heap in use %6.1f MiB  series lines %d\n", r+1, t.name, mib(rd.rss), mib(rd.heap), rd.lines)
		}
	}
	base := readings["baseline"]
	fmt.Printf("\nper object (reading - baseline of the same run) / %d, median [min, max] over %d runs:\n", *flagObjects, *flagRuns)
	for _, name := range []string{"deployments", "pods"} {
		var rss, heap []float64
		for i, rd := range readings[name] {
			rss = append(rss, (rd.rss-base[i].rss)/float64(*flagObjects))
			heap = append(heap, (rd.heap-base[i].heap)/float64(*flagObjects))
		}
		fmt.Printf("  %-12s RSS %7.0f B [%s]   heap in use %6.0f B [%s]\n", name, median(rss), span(rss), median(heap), span(heap))
	}
	fmt.Printf("baseline RSS %.1f MiB [%s]\n", mib(median(field(base, func(r reading) float64 { return r.rss }))),
		spanMiB(field(base, func(r reading) float64 { return r.rss })))
	fmt.Printf("load average before: %s, after: %s\n", load0, proc.LoadAvg())
	return nil
}

type reading struct {
	rss, heap float64
	lines     int
}

func measure(tmp, bin, kc, ns, kind string, want int) (reading, error) {
	var rd reading
	dir, err := os.MkdirTemp(tmp, ns)
	if err != nil {
		return rd, err
	}
	addrs, err := ports.Free(2)
	if err != nil {
		return rd, err
	}
	web, agent := addrs[0], addrs[1]
	cfg := fmt.Sprintf(`kubernetes_status_source "k" {
  kubeconfig = %q
  watch "all" {
    kinds     = [%q]
    namespace = %q
  }
}
metrics_sink "default" {
  inputs = [kubernetes_status_source.k.metrics]
  listen = %q
}
`, kc, kind, ns, web)
	path := filepath.Join(dir, "sluice.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return rd, err
	}
	cmd := exec.Command(bin, "run", "--server.http.listen-addr="+agent, "--storage.path="+filepath.Join(dir, "data"), "--log.level=error", path)
	cmd.Stderr = os.Stderr
	stop, err := proc.Start(cmd) // the agent ends with the bench
	if err != nil {
		return rd, err
	}
	defer stop()
	self := "http://" + agent + "/metrics"
	held := regexp.MustCompile(`sluice_kubernetes_watched_objects\{[^}]*\} (\d+)`)
	synced := regexp.MustCompile(`sluice_kubernetes_informer_synced\{[^}]*\} 1`)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		page, err := scrape(self)
		if err == nil && synced.MatchString(page) {
			if m := held.FindStringSubmatch(page); m != nil {
				if n, _ := strconv.Atoi(m[1]); n >= want {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			return rd, fmt.Errorf("not holding %d objects after 3 minutes (%v)", want, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var page string
	for range *flagScrapes {
		if page, err = scrape("http://" + web + "/metrics"); err != nil {
			return rd, err
		}
	}
	rd.lines = strings.Count(page, "\n")
	time.Sleep(*flagSettle)
	mem, err := proc.ReadMemory(cmd.Process.Pid)
	if rd.rss = mem.RSS; err != nil {
		return rd, err
	}
	page, err = scrape(self)
	if err != nil {
		return rd, err
	}
	m := regexp.MustCompile(`(?m)^go_memstats_heap_inuse_bytes(?:\{[^}]*\})? (\S+)`).FindStringSubmatch(page)
	if m == nil {
		return rd, errors.New("no go_memstats_heap_inuse_bytes on the agent's page")
	}
	rd.heap, err = strconv.ParseFloat(m[1], 64)
	return rd, err
}

// populate creates the Deployments and Pods (8 writers), with statuses.
func populate(cs kubernetes.Interface, n int) error {
	ctx := context.Background()
	for _, ns := range []string{"empty", "deployments", "pods"} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				if err := createDeployment(ctx, cs, i); err != nil {
					errs <- err
					return
				}
				if err := createPod(ctx, cs, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func labels(name string) map[string]string {
	return map[string]string{"app.kubernetes.io/name": name, "app.kubernetes.io/instance": "bench",
		"app.kubernetes.io/part-of": "shop", "app.kubernetes.io/managed-by": "argocd"}
}

func container(name string, port int32) corev1.Container {
	c := corev1.Container{Name: name, Image: "registry.example.invalid/shop/" + name + ":1.24.3",
		Ports: []corev1.ContainerPort{{Name: fmt.Sprintf("p%d", port), ContainerPort: port}},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(port)}}},
		VolumeMounts:   []corev1.VolumeMount{{Name: "config", MountPath: "/etc/app"}}}
	for e := range 10 {
		c.Env = append(c.Env, corev1.EnvVar{Name: fmt.Sprintf("SETTING_%d", e), Value: strings.Repeat("v", 30)})
	}
	return c
}

func podSpec(name string) corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{container(name, 8080), container("sidecar", 9090)},
		Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}}}}}}
}

func createDeployment(ctx context.Context, cs kubernetes.Interface, i int) error {
	name := fmt.Sprintf("app-%04d", i)
	sel := map[string]string{"app.kubernetes.io/name": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "deployments", Labels: labels(name),
			Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 1500)}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3), Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels(name)}, Spec: podSpec(name)}},
	}
	d, err := cs.AppsV1().Deployments("deployments").Create(ctx, d, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 3, AvailableReplicas: 3,
		Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", Message: "Deployment has minimum availability.", LastUpdateTime: now, LastTransitionTime: now},
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable", Message: fmt.Sprintf("ReplicaSet %q has successfully progressed.", name+"-5d8f7c9b4"), LastUpdateTime: now, LastTransitionTime: now}}}
	_, err = cs.AppsV1().Deployments("deployments").UpdateStatus(ctx, d, metav1.UpdateOptions{})
	return err
}

func createPod(ctx context.Context, cs kubernetes.Interface, i int) error {
	name := fmt.Sprintf("app-%04d-5d8f7c9b4-x%04d", i/3, i)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "pods", Labels: labels(name),
			Annotations:     map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "8080"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "app-5d8f7c9b4", UID: "0d7c8f5e-2f1a-4c55-9b1e-2b9c6f0e8a11", Controller: ptr.To(true)}}},
		Spec: podSpec("app"),
	}
	p, err := cs.CoreV1().Pods("pods").Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, HostIP: "10.0.0.12", PodIP: "10.244.1.23", PodIPs: []corev1.PodIP{{IP: "10.244.1.23"}}, StartTime: &now,
		QOSClass: corev1.PodQOSBurstable,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now}}}
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: c.Name, Ready: true, Image: c.Image,
			ImageID: "registry.example.invalid/shop/app@sha256:" + strings.Repeat("ab", 32), ContainerID: "containerd://" + strings.Repeat("cd", 32),
			Started: ptr.To(true), State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}})
	}
	_, err = cs.CoreV1().Pods("pods").UpdateStatus(ctx, p, metav1.UpdateOptions{})
	return err
}

func scrape(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), err
}

func field(rs []reading, f func(reading) float64) []float64 {
	var out []float64
	for _, r := range rs {
		out = append(out, f(r))
	}
	return out
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func span(xs []float64) string {
	return fmt.Sprintf("%.0f, %.0f", slices.Min(xs), slices.Max(xs))
}

func spanMiB(xs []float64) string {
	return fmt.Sprintf("%.1f, %.1f", mib(slices.Min(xs)), mib(slices.Max(xs)))
}

func mib(b float64) float64 { return b / (1 << 20) }
