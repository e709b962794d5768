// Command kubestate measures kubernetes_status_source and metrics_sink side
// by side with kube-state-metrics v2.20.0 on the same real kube-apiserver
// (see README.md):
//
//	go run ./bench/kubestate
//
// Each of -runs runs starts a fresh kube-apiserver + etcd
// (internal/testing/kubetest), then Sluice (a kubernetes_status_source
// watching the Deployments and Pods of one namespace, and a metrics_sink) and
// kube-state-metrics (--resources=deployments,pods, the same namespace), in
// an order alternated each run. It creates -objects realistic Deployments
// (status written through the status subresource: no controller runs),
// waits until both expose every one, scrapes each page -scrapes times and
// reads each process's RSS; then the same with -objects Pods; then, -changes
// times for each target, patches one Deployment's status to unavailable and
// times how long that target's page takes to show it. It prints, with medians and
// min-max over the runs: RSS per Deployment and per Pod and the ratio
// Sluice/KSM, scrape time per series, change-to-metric latency, and the load
// average before and after.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/sluicehq/sluice/bench/internal/proc"
	"github.com/sluicehq/sluice/internal/testing/kubetest"
)

const ksmVersion = "v2.20.0" // scripts/ensure-deps.sh installs it

var (
	flagRuns    = flag.Int("runs", 3, "runs, each on a fresh kube-apiserver and fresh targets")
	flagObjects = flag.Int("objects", 2000, "Deployments, then as many Pods")
	flagScrapes = flag.Int("scrapes", 3, "full scrapes of each page before each memory reading")
	flagChanges = flag.Int("changes", 10, "Deployments turned unavailable for each target, one at a time, for the change-to-metric latency")
	flagWorkers = flag.Int("workers", 8, "concurrent create requests")
	flagSettle  = flag.Duration("settle", 2*time.Second, "wait after the last scrape before reading RSS")
	flagWait    = flag.Duration("wait", 5*time.Minute, "longest wait for a target to show every object")
	flagTimeout = flag.Duration("timeout", 45*time.Minute, "bound on the whole bench")
	flagNS      = flag.String("namespace", "bench", "namespace of the objects (both targets watch only it, unless -all-namespaces)")
	flagAllNS   = flag.Bool("all-namespaces", false, "both targets watch every namespace (a cluster-wide list and watch) instead of -namespace")
	flagSluice  = flag.String("sluice", "", "a sluice binary (default: CGO_ENABLED=0 go build ./cmd/sluice, stripped)")
	flagKSM     = flag.String("kube-state-metrics", filepath.Join(cacheDir(), "kube-state-metrics-"+ksmVersion, "kube-state-metrics"),
		"the kube-state-metrics binary (make deps installs it)")
)

func cacheDir() string {
	if c := os.Getenv("SLUICE_CACHE"); c != "" {
		return c
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "sluice")
}

func main() {
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, *flagTimeout)
	err := run(ctx)
	cancel()
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubestate:", err)
		os.Exit(1)
	}
}

// scrapeReading is one target's scrapes at a stage.
type scrapeReading struct {
	took   time.Duration // median of the full scrapes
	series int
}

// result is one target's figures of one run.
type result struct {
	idle, afterDeployments, afterPods proc.Memory
	scrapeD, scrapeP                  scrapeReading
	// latency: patch to the end of the first scrape showing the change;
	// latencyLow: to the start of the last scrape not showing it.
	latency, latencyLow []time.Duration
}

func run(ctx context.Context) error {
	if *flagObjects < 1 || *flagRuns < 1 || *flagScrapes < 1 {
		return errors.New("-objects, -runs and -scrapes must be at least 1")
	}
	if *flagChanges < 1 || 2**flagChanges > *flagObjects {
		// Each change turns a Deployment that is still available.
		return errors.New("-changes must be at least 1 and at most half -objects")
	}
	if _, err := os.Stat(*flagKSM); err != nil {
		return fmt.Errorf("kube-state-metrics (make deps installs it, or set -kube-state-metrics): %w", err)
	}
	if _, err := os.Stat(kubetest.APIServerPath()); err != nil {
		return fmt.Errorf("kube-apiserver (make deps installs it): %w", err)
	}
	tmp, err := os.MkdirTemp("", "kubestate-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	sluiceBin := *flagSluice
	if sluiceBin == "" {
		if sluiceBin, err = proc.BuildStatic(tmp, "sluice", "./cmd/sluice"); err != nil {
			return err
		}
	}
	bins := map[string]string{"sluice": sluiceBin, "kube-state-metrics": *flagKSM}
	watchNS := *flagNS
	if *flagAllNS {
		watchNS = ""
	}
	targets := []target{sluiceTarget(watchNS), ksmTarget(watchNS)}

	load0 := proc.LoadAvg()
	results := map[string][]result{}
	for r := range *flagRuns {
		order := slices.Clone(targets)
		if r%2 == 1 { // alternate which target starts, scrapes and is read first
			slices.Reverse(order)
		}
		dir, err := os.MkdirTemp(tmp, fmt.Sprintf("run%d-", r+1))
		if err != nil {
			return err
		}
		res, err := measure(ctx, dir, bins, order)
		if err != nil {
			return fmt.Errorf("run %d: %w", r+1, err)
		}
		for name, rs := range res {
			results[name] = append(results[name], rs)
		}
	}
	load1 := proc.LoadAvg()
	report(results, load0, load1)
	return nil
}

// measure is one run: a fresh API server, both targets, the objects.
func measure(ctx context.Context, dir string, bins map[string]string, order []target) (map[string]result, error) {
	srv, err := kubetest.New()
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	cfg := srv.AdminConfig()
	// client-go's rate limiter, not the API server, would bound the
	// creation rate at kubetest's QPS (two requests an object).
	cfg.QPS, cfg.Burst = 2000, 4000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	ns := *flagNS
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("namespace: %w", err)
	}
	// Deployment 0 is there before the targets start: once both show it,
	// both have listed and watch, and the idle reading is taken.
	if err := createDeployment(cs, ns)(ctx, 0); err != nil {
		return nil, err
	}
	kubeconfig, err := srv.WriteKubeconfig(dir, kubetest.AdminToken)
	if err != nil {
		return nil, err
	}
	procs := make([]*process, 0, len(order))
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	for _, t := range order {
		p, err := start(dir, bins[t.name], kubeconfig, t)
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
	}
	res := map[string]result{}
	for _, p := range procs {
		if err := p.waitFor(ctx, p.deployments, 1, *flagWait); err != nil {
			return nil, err
		}
	}
	idle, _, err := readings(ctx, procs)
	if err != nil {
		return nil, err
	}

	n := *flagObjects
	t0 := time.Now()
	if err := createAll(ctx, 1, n+1, *flagWorkers, createDeployment(cs, ns)); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "%d Deployments created in %s\n", n, time.Since(t0).Round(time.Millisecond))
	for _, p := range procs {
		if err := p.waitFor(ctx, p.deployments, n+1, *flagWait); err != nil {
			return nil, err
		}
	}
	afterD, scrD, err := readings(ctx, procs)
	if err != nil {
		return nil, err
	}

	t0 = time.Now()
	if err := createAll(ctx, 0, n, *flagWorkers, createPod(cs, ns)); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "%d Pods created in %s\n", n, time.Since(t0).Round(time.Millisecond))
	for _, p := range procs {
		if err := p.waitFor(ctx, p.pods, n, *flagWait); err != nil {
			return nil, err
		}
	}
	afterP, scrP, err := readings(ctx, procs)
	if err != nil {
		return nil, err
	}

	lat, latLow, err := latencies(ctx, cs, ns, procs)
	if err != nil {
		return nil, err
	}
	for _, p := range procs {
		r := result{idle: idle[p.name], afterDeployments: afterD[p.name], afterPods: afterP[p.name],
			scrapeD: scrD[p.name], scrapeP: scrP[p.name], latency: lat[p.name], latencyLow: latLow[p.name]}
		res[p.name] = r
		perD := r.afterDeployments.Sub(r.idle).RSS / float64(n)
		perP := r.afterPods.Sub(r.afterDeployments).RSS / float64(n)
		fmt.Fprintf(os.Stderr, "%-18s idle %.1f MiB; per Deployment %.2f KiB, per Pod %.2f KiB; scrape %d series in %s / %d in %s; latency median %s (lower bound %s)\n",
			p.name, mib(r.idle.RSS), perD/1024, perP/1024, r.scrapeD.series, r.scrapeD.took.Round(time.Microsecond),
			r.scrapeP.series, r.scrapeP.took.Round(time.Microsecond), medianDur(r.latency).Round(time.Microsecond), medianDur(r.latencyLow).Round(time.Microsecond))
	}
	return res, nil
}

// readings scrapes every process's page -scrapes times in full (in
// order), waits -settle and reads every process's memory.
func readings(ctx context.Context, procs []*process) (map[string]proc.Memory, map[string]scrapeReading, error) {
	scr := map[string]scrapeReading{}
	for _, p := range procs {
		var took []time.Duration
		var page string
		for range *flagScrapes {
			pg, d, err := p.scrape(ctx)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", p.name, err)
			}
			page = pg
			took = append(took, d)
		}
		scr[p.name] = scrapeReading{took: medianDur(took), series: series(page)}
	}
	select {
	case <-time.After(*flagSettle):
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	ms := map[string]proc.Memory{}
	for _, p := range procs {
		m, err := p.memory()
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p.name, err)
		}
		ms[p.name] = m
	}
	return ms, scr, nil
}

// latencies turns Deployments unavailable, one at a time, -changes times
// for each process, and times from the start of the status patch to the end
// of the first scrape whose page shows it (what a scraper waits), and to the
// start of the last scrape that did not show it (a lower bound: the change
// was not yet visible when that scrape began). Only the process measured is
// scraped meanwhile (a 5 ms pause between scrapes); which one goes first
// alternates. The upper bound includes up to a scrape's time: the scrape
// times are printed beside it.
func latencies(ctx context.Context, cs kubernetes.Interface, ns string, procs []*process) (upper, lower map[string][]time.Duration, err error) {
	upper, lower = map[string][]time.Duration{}, map[string][]time.Duration{}
	n := *flagObjects
	step := max(1, n/(*flagChanges*len(procs)))
	next := 0
	for k := range *flagChanges {
		for j := range procs {
			p := procs[(j+k)%len(procs)]
			i := 1 + (next*step)%n
			next++
			m := p.unavailable(i)
			t0 := time.Now()
			if _, err := cs.AppsV1().Deployments(ns).Patch(ctx, appName(i), types.MergePatchType, unavailablePatch(i), metav1.PatchOptions{}, "status"); err != nil {
				return nil, nil, fmt.Errorf("patch deployment %d: %w", i, err)
			}
			var lastMiss time.Duration // start of the last scrape not showing it
			for {
				s0 := time.Since(t0)
				page, _, err := p.scrape(ctx)
				if err == nil && m.count(page) == 1 {
					upper[p.name] = append(upper[p.name], time.Since(t0))
					lower[p.name] = append(lower[p.name], lastMiss)
					break
				}
				lastMiss = s0
				if ctx.Err() != nil || time.Since(t0) > time.Minute {
					return nil, nil, fmt.Errorf("%s: deployment %d not shown unavailable within a minute (%v)", p.name, i, err)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	return upper, lower, nil
}
