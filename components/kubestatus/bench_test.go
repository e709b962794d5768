package kubestatus

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/sluicehq/sluice/pipeline"
)

// benchComponent builds and runs a component directly (admin client).
func benchComponent(b *testing.B, cs kubernetes.Interface, body Arguments) (*Component, func()) {
	b.Helper()
	body.SetDefaults()
	for i := range body.Watches {
		if body.Watches[i].Metric == "" {
			body.Watches[i].Metric = DefaultWatchMetric
		}
	}
	c, err := build(pipeline.Options[Exports]{ID: "bench", Logger: slog.New(slog.DiscardHandler),
		Registerer: prometheus.NewRegistry(), OnExports: func(Exports) {}}, body)
	if err != nil {
		b.Fatal(err)
	}
	cfg := realSrv.AdminConfig()
	c.newClients = func(*plan) (*clients, error) { return clientsFor(cfg) }
	return c, func() {}
}

// BenchmarkEventToGauge: time from a status write on the real API server
// to the event handler having set the new status (what the next scrape
// reads). Reports p50 and p99 over b.N writes.
func BenchmarkEventToGauge(b *testing.B) {
	_, cs := realServer(b)
	ns := "bench-latency"
	createNamespace(b, cs, ns)
	ctx := context.Background()
	name := "latency"
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, newDeployment(ns, name, 2), metav1.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "exists") {
		b.Fatal(err)
	}
	c, _ := benchComponent(b, cs, Arguments{Workloads: []Workload{{Label: "w", Kind: "Deployment", Namespace: ns, Name: name, Metric: "w_status"}}})
	seen := make(chan Status, 16)
	c.onEvent = func(_ scope, _ string, r objResult) {
		if r.name == name {
			select {
			case seen <- r.Status:
			default:
			}
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(30 * time.Second)
	for c.Health().State != pipeline.HealthHealthy && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Alternate Running / Available from whatever the last write left.
		ready, want := int32(2), Available
		if d.Status.ReadyReplicas == 2 {
			ready, want = 1, Running
		}
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: ready, AvailableReplicas: ready,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: "True"}}}
		drain(seen)
		start := time.Now()
		if d, err = cs.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		timeout := time.After(30 * time.Second)
	wait:
		for {
			select {
			case s := <-seen:
				if s == want {
					break wait
				}
			case <-timeout:
				b.Fatalf("no %v event 30s after the write", want)
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99-ms")
}

func drain(ch chan Status) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// benchDeployments is how many Deployments BenchmarkMemoryPerDeployment
// creates (once per API server).
const benchDeployments = 2000

var createOnce sync.Once

// createManyDeployments creates benchDeployments realistic Deployments
// (labels, a last-applied annotation, a pod template with env and
// resources, as `kubectl apply` leaves them) in namespace bench-memory.
func createManyDeployments(b *testing.B, cs kubernetes.Interface) {
	createOnce.Do(func() {
		ns := "bench-memory"
		createNamespace(b, cs, ns)
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := w; i < benchDeployments; i += 8 {
					d := newDeployment(ns, fmt.Sprintf("app-%04d", i), 3)
					d.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 1500)}
					d.Labels["app.kubernetes.io/name"] = d.Name
					d.Labels["app.kubernetes.io/instance"] = "bench"
					c := &d.Spec.Template.Spec.Containers[0]
					for e := 0; e < 10; e++ {
						c.Env = append(c.Env, corev1EnvVar(fmt.Sprintf("SETTING_%d", e), strings.Repeat("v", 30)))
					}
					if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "exists") {
						errs <- err
						return
					}
				}
			}(w)
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	})
}

// heapInUse is the live heap after two GCs.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkMemoryPerDeployment: live heap held per watched Deployment by
// the component's trimmed informer (a watch block over the namespace),
// next to a plain client-go informer without the transform. Reports
// bytes/deployment.
func BenchmarkMemoryPerDeployment(b *testing.B) {
	_, cs := realServer(b)
	createManyDeployments(b, cs)
	ns := "bench-memory"
	b.Run("trimmed", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			before := heapInUse()
			c, _ := benchComponent(b, cs, Arguments{Watches: []Watch{{Label: "all", Kinds: []string{"Deployment"}, Namespace: ns}}})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			deadline := time.Now().Add(2 * time.Minute)
			for {
				c.mu.RLock()
				n := 0
				for _, in := range c.informers {
					if in.synced() {
						n += in.count()
					}
				}
				c.mu.RUnlock()
				if n >= benchDeployments {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("synced %d of %d", n, benchDeployments)
				}
				time.Sleep(20 * time.Millisecond)
			}
			after := heapInUse()
			b.ReportMetric(float64(int64(after)-int64(before))/benchDeployments, "bytes/deployment")
			cancel()
			<-done
			runtime.KeepAlive(c)
		}
	})
	b.Run("untrimmed-client-go", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			before := heapInUse()
			f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
			inf := f.Apps().V1().Deployments().Informer()
			ctx, cancel := context.WithCancel(context.Background())
			f.Start(ctx.Done())
			cache.WaitForCacheSync(ctx.Done(), inf.HasSynced)
			after := heapInUse()
			b.ReportMetric(float64(int64(after)-int64(before))/float64(len(inf.GetStore().ListKeys())), "bytes/deployment")
			cancel()
			f.Shutdown()
			runtime.KeepAlive(inf)
		}
	})
}

func corev1EnvVar(name, value string) corev1.EnvVar { return corev1.EnvVar{Name: name, Value: value} }
