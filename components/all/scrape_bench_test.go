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

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
	"github.com/sluicehq/sluice/runtime"
)

// BenchmarkScrapeStatsd is one scrape of 100k statsd series
// (bench.series_<0..99> x #id:<0..999>, as bench/statsd sends) through
// the real path: statsd_receiver -> metrics_sink -> HTTP, in the text
// format. B/op is what one scrape allocates, client included (small:
// io.Discard); B/series is that per series, to set against the bytes one
// series occupies (BenchmarkSeriesMemory in components/statsd, B/series).
// For a heap profile of the scrape path, add -memprofile.
//
//	go test -run '^$' -bench ScrapeStatsd -benchmem ./components/all/
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
	scrape := func() []byte {
		resp, err := client.Get(url)
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
	for deadline := time.Now().Add(time.Minute); ; {
		if got := bytes.Count(scrape(), []byte("\nbench_series_")); got >= n {
			break
		} else if time.Now().After(deadline) {
			b.Fatalf("%d of %d series after a minute", got, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	goruntime.GC()
	var ms0 goruntime.MemStats
	goruntime.ReadMemStats(&ms0)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := client.Get(url)
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
}

func freeTCP(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
