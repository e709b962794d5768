package all_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/statsd_exporter/pkg/mapper"
	"github.com/prometheus/statsd_exporter/pkg/registry"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
	"github.com/sluicehq/sluice/runtime"
)

// BenchmarkScrapeStatsd is one scrape of 100k statsd series
// (bench.series_<0..99> x #id:<0..999>, as bench/statsd sends) through
// the real path, side by side with statsd_exporter's:
//
//   - sluice: statsd_receiver -> metrics_sink -> HTTP, in the text format
//     (the sink serves it from the receiver's encoded text);
//   - statsd_exporter: upstream's registry (client_golang's vectors, the
//     same series and help) served by promhttp, as statsd_exporter serves
//     /metrics.
//
// Each without and with gzip (Prometheus asks for gzip). Both servers run
// in this process and are scraped by the same client over loopback, so
// B/op and allocs/op are the whole scrape, server and client, for either.
// B/series is the process's allocations per scrape, per series (background
// work included). For a heap profile of the scrape path, add -memprofile.
//
//	go test -run '^$' -bench ScrapeStatsd -benchmem -count 6 ./components/all/
func BenchmarkScrapeStatsd(b *testing.B) {
	const n = 100000
	dir := b.TempDir()
	tcp := freeTCP(b)
	sinkAddr := freeTCP(b)
	cfg := fmt.Sprintf(`
statsd_receiver "app" {
  listen_udp = ""
  listen_tcp = %q
  max_series = 1000000
}
metrics_sink "out" {
  inputs = [statsd_receiver.app.metrics]
  listen = %q
}
`, tcp, sinkAddr)
	path := filepath.Join(dir, "sluice.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	ctrl := runtime.NewController(runtime.ControllerOptions{Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	pipelinetest.RunController(b, ctrl)
	if err := ctrl.LoadFile(path, true); err != nil {
		b.Fatal(err)
	}

	var conn net.Conn
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		if conn, err = net.Dial("tcp", tcp); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	w := bufio.NewWriter(conn)
	for i := range n {
		w.WriteString("bench.series_" + strconv.Itoa(i%100) + ":1|c|#id:" + strconv.Itoa(i/100) + "\n")
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	conn.Close()

	url := "http://" + sinkAddr + "/metrics"
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	for deadline := time.Now().Add(time.Minute); ; {
		if got := bytes.Count(scrapeBody(b, client, url, ""), []byte("\nbench_series_")); got >= n {
			break
		} else if time.Now().After(deadline) {
			b.Fatalf("%d of %d series after a minute", got, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	up := upstreamServer(b, n)
	for _, target := range []struct{ name, url string }{{"sluice", url}, {"statsd_exporter", up}} {
		if got := bytes.Count(scrapeBody(b, client, target.url, ""), []byte("\nbench_series_")); got != n {
			b.Fatalf("%s: %d of %d series", target.name, got, n)
		}
		for _, enc := range []string{"identity", "gzip"} {
			b.Run(target.name+"/"+enc, func(b *testing.B) {
				scrapeBody(b, client, target.url, enc) // as many warm-up scrapes for both
				goruntime.GC()
				var ms0 goruntime.MemStats
				goruntime.ReadMemStats(&ms0)
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					req, _ := http.NewRequest(http.MethodGet, target.url, nil)
					req.Header.Set("Accept-Encoding", enc)
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.Copy(io.Discard, resp.Body); err != nil {
						b.Fatal(err)
					}
					resp.Body.Close()
				}
				b.StopTimer()
				var ms goruntime.MemStats
				goruntime.ReadMemStats(&ms)
				// The whole process's allocations per scrape, per series: B/op / n,
				// plus what ran in the background (sweeps, the agent).
				b.ReportMetric(float64(ms.TotalAlloc-ms0.TotalAlloc)/float64(b.N)/n, "B/series")
			})
		}
	}
}

// scrapeBody scrapes url asking for the content encoding enc (none if
// empty) and returns the body as sent.
func scrapeBody(b *testing.B, client *http.Client, url, enc string) []byte {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	if enc != "" {
		req.Header.Set("Accept-Encoding", enc)
	}
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, resp.Body); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// upstreamServer serves n series as statsd_exporter does for the lines
// BenchmarkScrapeStatsd sends: counters bench_series_<i%100>{id="<i/100>"}
// in upstream's registry, with statsd_exporter's help, served by promhttp
// on loopback. It returns the URL.
func upstreamServer(b *testing.B, n int) string {
	prom := prometheus.NewRegistry()
	reg := registry.NewRegistry(prom, &mapper.MetricMapper{})
	count := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "metrics_total"}, []string{"type"})
	mapping := &mapper.MetricMapping{}
	for i := range n {
		c, err := reg.GetCounter("bench_series_"+strconv.Itoa(i%100), prometheus.Labels{"id": strconv.Itoa(i / 100)},
			"Metric autogenerated by statsd_exporter.", mapping, count)
		if err != nil {
			b.Fatal(err)
		}
		c.Add(1)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(prom, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	b.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String() + "/metrics"
}

func freeTCP(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
