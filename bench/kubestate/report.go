package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/sluicehq/sluice/bench/internal/proc"
	"github.com/sluicehq/sluice/bench/internal/stats"
)

// report prints the figures of every run: medians with min-max.
func report(results map[string][]result, load0, load1 string) {
	n := float64(*flagObjects)
	names := []string{"sluice", "kube-state-metrics"}
	perD := func(r result) proc.Memory { return r.afterDeployments.Sub(r.idle) }
	perP := func(r result) proc.Memory { return r.afterPods.Sub(r.afterDeployments) }
	kib := func(f func(result) proc.Memory, part func(proc.Memory) float64) func(result) float64 {
		return func(r result) float64 { return part(f(r)) / n / 1024 }
	}
	rss := func(m proc.Memory) float64 { return m.RSS }
	anon := func(m proc.Memory) float64 { return m.Anon }

	scope := "both watching that namespace"
	if *flagAllNS {
		scope = "both watching every namespace"
	}
	fmt.Printf("## kubestate: kubernetes_status_source + metrics_sink beside kube-state-metrics %s, %d Deployments then %d Pods in one namespace, %s, median (min-max) of %d runs\n\n",
		ksmVersion, *flagObjects, *flagObjects, scope, *flagRuns)
	fmt.Printf("### Memory: RSS after %d full scrapes of each page\n\n", *flagScrapes)
	fmt.Println("| target | idle RSS MiB | after Deployments MiB | after Pods MiB | per Deployment KiB | (anonymous) | per Pod KiB | (anonymous) |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, name := range names {
		rs := results[name]
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", name,
			span(rs, func(r result) float64 { return mib(r.idle.RSS) }, 1),
			span(rs, func(r result) float64 { return mib(r.afterDeployments.RSS) }, 1),
			span(rs, func(r result) float64 { return mib(r.afterPods.RSS) }, 1),
			span(rs, kib(perD, rss), 2), span(rs, kib(perD, anon), 2),
			span(rs, kib(perP, rss), 2), span(rs, kib(perP, anon), 2))
	}
	// Ratios within each run (the two targets of a run share the machine's
	// load), then their median and spread.
	ratio := func(f func(result) proc.Memory) []float64 {
		s, k := results["sluice"], results["kube-state-metrics"]
		out := make([]float64, 0, len(s))
		for i := range min(len(s), len(k)) {
			out = append(out, f(s[i]).RSS/f(k[i]).RSS)
		}
		return out
	}
	fmt.Printf("\nRSS per object, sluice / kube-state-metrics (per run): Deployment %s, Pod %s\n",
		stats.Span(ratio(perD), 2), stats.Span(ratio(perP), 2))

	fmt.Printf("\n### Scrape: one full scrape of the page (uncompressed text), median of %d\n\n", *flagScrapes)
	fmt.Println("| target | series (Deployments) | scrape ms | µs per series | series (Deployments + Pods) | scrape ms | µs per series |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	for _, name := range names {
		rs := results[name]
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %s |\n", name,
			span(rs, func(r result) float64 { return float64(r.scrapeD.series) }, 0),
			span(rs, func(r result) float64 { return ms(r.scrapeD.took) }, 1),
			span(rs, func(r result) float64 { return us(r.scrapeD.took) / float64(r.scrapeD.series) }, 2),
			span(rs, func(r result) float64 { return float64(r.scrapeP.series) }, 0),
			span(rs, func(r result) float64 { return ms(r.scrapeP.took) }, 1),
			span(rs, func(r result) float64 { return us(r.scrapeP.took) / float64(r.scrapeP.series) }, 2))
	}

	fmt.Printf("\n### Change-to-metric latency: a Deployment's status patched unavailable, %d changes a target a run, only that target scraped meanwhile\n\n", *flagChanges)
	fmt.Println("| target | to the first page showing it, ms: median of the run medians (min-max) | every change: median | max | lower bound (start of the last scrape not showing it), ms | shown by the first scrape after the patch |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	for _, name := range names {
		rs := results[name]
		var all []float64
		first := 0
		for _, r := range rs {
			for i, d := range r.latency {
				all = append(all, ms(d))
				if r.latencyLow[i] == 0 {
					first++
				}
			}
		}
		fmt.Printf("| %s | %s | %.1f | %.1f | %s | %d of %d |\n", name, span(rs, func(r result) float64 { return ms(medianDur(r.latency)) }, 1),
			stats.Median(all), slices.Max(all), span(rs, func(r result) float64 { return ms(medianDur(r.latencyLow)) }, 1), first, len(all))
	}
	fmt.Printf("\nload average before: %s; after: %s\n", load0, load1)
}

func span(rs []result, f func(result) float64, prec int) string {
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = f(r)
	}
	return stats.Span(xs, prec)
}

func medianDur(ds []time.Duration) time.Duration {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d)
	}
	return time.Duration(stats.Median(xs))
}

func mib(b float64) float64      { return b / (1 << 20) }
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
