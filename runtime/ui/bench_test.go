package ui

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
	"github.com/sluicehq/sluice/runtime"
)

// benchSeries is how many statsd series the benchmark pipeline holds.
const benchSeries = 5000

// BenchmarkSinkScrape scrapes a sink serving 5000 statsd series (statsd
// receiver -> relabel -> sink, on the agent's server) with no browser
// open, and while a simulated browser keeps a component page open (the
// relabel's: its page gathers the 5000-series export for the preview, the
// most expensive page) and refreshes it as ui.js does: status.json, then
// the page. The browser refreshes every 5s; the benchmark also polls 5x and 50x
// as often to make any cost visible:
//
//	for i in 1 2 3 4 5 6; do go test -run '^$' -bench BenchmarkSinkScrape -benchtime 5s ./runtime/ui; done
//
// (one loop iteration runs every case, so the cases interleave on a busy
// machine).
func BenchmarkSinkScrape(b *testing.B) {
	srv, url := benchAgent(b)
	for _, every := range []time.Duration{0, 5 * time.Second, time.Second, 100 * time.Millisecond} {
		name := "ui=closed"
		if every > 0 {
			name = "ui=open,refresh=" + every.String()
		}
		b.Run(name, func(b *testing.B) {
			stop := make(chan struct{})
			var wg sync.WaitGroup
			polls := 0
			if every > 0 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					t := time.NewTicker(every)
					defer t.Stop()
					for {
						for _, p := range []string{"/status.json", "/component/relabel.app"} {
							if body := get(b, srv.URL+p); p != "/status.json" && !strings.Contains(body, "Showing 100 of 5000 matching series") {
								b.Errorf("component page without its preview:\n%.500s", body)
							}
						}
						polls++
						select {
						case <-stop:
							return
						case <-t.C:
						}
					}
				}()
			}
			b.ReportAllocs()
			cpu0 := processCPU(b)
			b.ResetTimer()
			for b.Loop() {
				get(b, url)
			}
			b.StopTimer()
			// CPU time of the whole process (scrapes, and the UI's work
			// while they ran) per scrape: less noisy than wall time on a
			// shared machine, and it counts what the UI costs the agent.
			b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
			close(stop)
			wg.Wait()
			if every > 0 {
				b.ReportMetric(float64(polls), "ui-refreshes")
			}
		})
	}
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func get(b *testing.B, url string) string {
	resp, err := http.Get(url)
	if err != nil {
		b.Error(err)
		return ""
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		b.Errorf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(body)
}

// benchAgent runs the pipeline with its UI and fills the receiver.
func benchAgent(b *testing.B) (*httptest.Server, string) {
	b.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	udp := pc.LocalAddr().String()
	pc.Close()
	cfg := fmt.Sprintf(`
statsd_receiver "app" {
  listen_udp = %q
}
relabel "app" {
  input = statsd_receiver.app.metrics
  rule {
    action       = "replace"
    target_label = "env"
    replacement  = "bench"
  }
}
metrics_sink "default" {
  inputs = [relabel.app.metrics]
}
`, udp)
	dir := b.TempDir()
	file := filepath.Join(dir, "sluice.hcl")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	mounts := runtime.NewMounts()
	ctrl := runtime.NewController(runtime.ControllerOptions{
		Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(), DataPath: filepath.Join(dir, "data"), HTTP: mounts,
	})
	if err := ctrl.LoadFile(file, true); err != nil {
		b.Fatal(err)
	}
	pipelinetest.RunController(b, ctrl)
	h, err := New(Options{Controller: ctrl, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(runtime.NewHandler(runtime.ServerOptions{Controller: ctrl, Mounts: mounts, UI: h}))
	b.Cleanup(srv.Close)

	conn, err := net.Dial("udp", udp)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	url := srv.URL + "/metrics/default"
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Resent until all are in: UDP may drop under load.
		for i := 0; i < benchSeries; i += 20 {
			var sb strings.Builder
			for j := i; j < i+20 && j < benchSeries; j++ {
				fmt.Fprintf(&sb, "bench.series_%d:1|c\n", j)
			}
			_, _ = conn.Write([]byte(sb.String()))
		}
		if strings.Count(get(b, url), "\nbench_series_") >= benchSeries {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the sink never had every series")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return srv, url
}

// BenchmarkUIRefresh is the server's cost of one refresh of an open page,
// on the same pipeline, next to one scrape of the sink: status.json (all an
// open overview costs while nothing changes), the overview, and the
// relabel's component page (gathers its 5000-series export).
func BenchmarkUIRefresh(b *testing.B) {
	srv, url := benchAgent(b)
	for _, p := range []struct{ name, url string }{
		{"sink-scrape", url},
		{"status.json", srv.URL + "/status.json"},
		{"overview", srv.URL + "/"},
		{"component-page", srv.URL + "/component/relabel.app"},
	} {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				get(b, p.url)
			}
		})
	}
}
