// Command receiver runs one statsd_receiver on its own, the way the agent
// would, and serves its exports and self-metrics on /metrics: the Sluice
// side of the statsd benchmark (see ../README.md).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"syscall"

	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/components/statsd"
	"github.com/sluicehq/sluice/pipeline"
)

func main() {
	listenUDP := flag.String("listen-udp", "127.0.0.1:9125", "UDP address")
	mapping := flag.String("mapping", "", "statsd_exporter mapping file")
	readBuffer := flag.Int("read-buffer", 0, "SO_RCVBUF in bytes (0: system default)")
	web := flag.String("web", "127.0.0.1:9102", "address serving /metrics")
	flag.Parse()
	// SLUICE_BENCH_CPUPROFILE / SLUICE_BENCH_MEMPROFILE: write a CPU profile
	// of the whole run, and an allocation profile at its end (the bench
	// passes its environment on: for profiling runs with -mem-runs 0).
	if path := os.Getenv("SLUICE_BENCH_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil && pprof.StartCPUProfile(f) == nil {
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	if path := os.Getenv("SLUICE_BENCH_TRACE"); path != "" {
		if f, err := os.Create(path); err == nil && trace.Start(f) == nil {
			defer f.Close()
			defer trace.Stop()
		}
	}
	if path := os.Getenv("SLUICE_BENCH_MEMPROFILE"); path != "" {
		defer func() {
			if f, err := os.Create(path); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	if err := run(*listenUDP, *mapping, *readBuffer, *web); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "receiver:", err)
		os.Exit(1)
	}
}

func run(listenUDP, mapping string, readBuffer int, web string) error {
	mapping, err := filepath.Abs(mapping)
	if err != nil {
		return err
	}
	body := fmt.Sprintf("listen_udp = %q\nmapping_file = %q\nread_buffer = %d\nmax_series = 0\n", listenUDP, mapping, readBuffer)
	f, diags := hclparse.NewParser().ParseHCL([]byte(body), "bench.hcl")
	if diags.HasErrors() {
		return diags
	}
	reg, ok := pipeline.Lookup("statsd_receiver")
	if !ok {
		return fmt.Errorf("statsd_receiver is not registered")
	}
	args, diags := pipeline.DecodeArguments(reg, f.Body, filepath.Dir(mapping), nil, nil)
	if diags.HasErrors() {
		return diags
	}
	// The same collectors as statsd_exporter's default registry, so both
	// serve (and pay for) the same runtime metrics on every scrape.
	self := prometheus.NewRegistry()
	self.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var exports statsd.Exports
	comp, err := reg.Build(pipeline.Options[any]{
		ID:         "statsd_receiver.bench",
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		Registerer: self,
		ConfigDir:  filepath.Dir(mapping),
		OnExports:  func(e any) { exports = e.(statsd.Exports) },
	}, args)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	// One response with the self-metrics and the series, as statsd_exporter
	// serves one registry. Each registry checks its own families when it
	// gathers and their names do not overlap, so the two lists are joined
	// as they are: prometheus.Gatherers would check and copy all 100k
	// series a second time on every scrape (some 9 MiB of garbage per
	// scrape), work that statsd_exporter does not do.
	both := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		a, err := self.Gather()
		if err != nil {
			return nil, err
		}
		b, err := exports.Metrics.Gather()
		return append(a, b...), err
	})
	mux.Handle("/metrics", promhttp.HandlerFor(both, promhttp.HandlerOpts{}))
	srv := &http.Server{Addr: web, Handler: mux}
	go srv.ListenAndServe()
	defer srv.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return comp.Run(ctx)
}
