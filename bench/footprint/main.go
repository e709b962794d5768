// Command footprint measures what Sluice costs at idle in its most common
// deployment, a statsd sidecar, against statsd_exporter v0.31.0 (see
// README.md):
//
//	go run ./bench/footprint
//
// It builds ./cmd/sluice (the full distribution) and ./cmd/sluice-lite
// static, as the images are (CGO_ENABLED=0), and takes statsd_exporter from
// ~/.cache/sluice (make deps) or -statsd-exporter. Each of -runs runs starts
// every target afresh, in a rotated order (interleaved, so that a shared
// machine's load falls on all alike), with the gunicorn mapping
// (config/examples/gunicorn-mapping.yml) and statsd over UDP on 127.0.0.1;
// sends the same -series series (gunicorn-shaped, with an app prefix) until
// each is visible; scrapes the series page -scrapes times in full; waits
// -settle; and reads the process's RSS (and its anonymous and file-backed
// parts) from /proc. It prints medians with min and max, the binary sizes
// and the load average before and after.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/bench/internal/ports"
	"github.com/sluicehq/sluice/bench/internal/proc"
	"github.com/sluicehq/sluice/bench/internal/stats"
)

var (
	flagRuns     = flag.Int("runs", 3, "runs, each on fresh processes of every target")
	flagScrapes  = flag.Int("scrapes", 3, "full scrapes of the series page before the reading")
	flagSeries   = flag.Int("series", 48, "series sent (6 per app: requests, 3 status codes, a duration histogram, workers)")
	flagSettle   = flag.Duration("settle", 2*time.Second, "wait after the last scrape before reading RSS")
	flagMapping  = flag.String("mapping", "config/examples/gunicorn-mapping.yml", "mapping file, used by every target")
	flagExporter = flag.String("statsd-exporter", filepath.Join(os.Getenv("HOME"), ".cache/sluice/statsd_exporter-v0.31.0/statsd_exporter"), "the statsd_exporter binary")
	flagSluice   = flag.String("sluice", "", "a sluice binary (default: CGO_ENABLED=0 go build ./cmd/sluice)")
	flagLite     = flag.String("sluice-lite", "", "a sluice-lite binary (default: CGO_ENABLED=0 go build ./cmd/sluice-lite)")
)

// target is one program under measurement.
type target struct {
	name string
	bin  string
	// args are its arguments with statsd on udp and the series page on web
	// (and the agent's own server on agent, for Sluice).
	args func(dir, udp, web, agent string) []string
}

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "footprint:", err)
		os.Exit(1)
	}
}

func run() error {
	mapping, err := filepath.Abs(*flagMapping)
	if err != nil {
		return err
	}
	if _, err := os.Stat(mapping); err != nil {
		return fmt.Errorf("mapping file (run from the repository's root, or set -mapping): %w", err)
	}
	if _, err := os.Stat(*flagExporter); err != nil {
		return fmt.Errorf("statsd_exporter (make deps installs it, or set -statsd-exporter): %w", err)
	}
	tmp, err := os.MkdirTemp("", "footprint-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	full, lite := *flagSluice, *flagLite
	if full == "" {
		if full, err = proc.BuildStatic(tmp, "sluice", "./cmd/sluice"); err != nil {
			return err
		}
	}
	if lite == "" {
		if lite, err = proc.BuildStatic(tmp, "sluice-lite", "./cmd/sluice-lite"); err != nil {
			return err
		}
	}
	sluiceArgs := func(dir, udp, web, agent string) []string {
		cfg := fmt.Sprintf(`statsd_receiver "gunicorn" {
  listen_udp   = %q
  listen_tcp   = ""
  mapping_file = %q
}
metrics_sink "default" {
  inputs = [statsd_receiver.gunicorn.metrics, agent.metrics]
  listen = %q
}
`, udp, mapping, web)
		path := filepath.Join(dir, "sluice.hcl")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			panic(err) // a temporary directory of our own
		}
		return []string{"run", "--server.http.listen-addr=" + agent, "--storage.path=" + filepath.Join(dir, "data"), "--log.level=error", path}
	}
	targets := []target{
		{name: "sluice", bin: full, args: sluiceArgs},
		{name: "sluice-lite", bin: lite, args: sluiceArgs},
		{name: "statsd_exporter", bin: *flagExporter, args: func(dir, udp, web, agent string) []string {
			return []string{"--statsd.mapping-config=" + mapping, "--statsd.listen-udp=" + udp, "--statsd.listen-tcp=",
				"--web.listen-address=" + web, "--log.level=error"}
		}},
	}
	load0 := proc.LoadAvg()
	readings := map[string][]reading{}
	for r := range *flagRuns {
		for i := range targets {
			t := targets[(i+r)%len(targets)] // a rotated order each run
			rd, err := measure(tmp, t)
			if err != nil {
				return fmt.Errorf("run %d, %s: %w", r+1, t.name, err)
			}
			fmt.Fprintf(os.Stderr, "run %d %-16s RSS %.1f MiB (anon %.1f, file %.1f), %d series lines\n", r+1, t.name, mib(rd.rss), mib(rd.anon), mib(rd.file), rd.lines)
			readings[t.name] = append(readings[t.name], rd)
		}
	}
	load1 := proc.LoadAvg()

	fmt.Printf("## footprint: idle RSS after %d full scrapes of %d statsd series (gunicorn mapping), MiB, median (min-max) of %d runs\n\n", *flagScrapes, *flagSeries, *flagRuns)
	fmt.Println("| target | RSS | anonymous | file-backed | binary (MiB) | RSS / statsd_exporter's |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	ref := stats.Median(field(readings["statsd_exporter"], func(r reading) float64 { return r.rss }))
	for _, t := range targets {
		rs := readings[t.name]
		rss := field(rs, func(r reading) float64 { return r.rss })
		size := 0.0
		if fi, err := os.Stat(t.bin); err == nil {
			size = float64(fi.Size())
		}
		fmt.Printf("| %s | %s | %s | %s | %.1f | %.2f |\n", t.name, span(rss), span(field(rs, func(r reading) float64 { return r.anon })),
			span(field(rs, func(r reading) float64 { return r.file })), mib(size), stats.Median(rss)/ref)
	}
	fmt.Printf("\nload average before: %s; after: %s\n", load0, load1)
	return nil
}

type reading struct {
	rss, anon, file float64 // bytes
	lines           int     // lines of the series page at the reading
}

// measure starts t, feeds it the series, scrapes it and reads its memory.
func measure(tmp string, t target) (reading, error) {
	var rd reading
	dir, err := os.MkdirTemp(tmp, t.name)
	if err != nil {
		return rd, err
	}
	addrs, err := ports.Free(3)
	if err != nil {
		return rd, err
	}
	udp, web, agent := addrs[0], addrs[1], addrs[2]
	cmd := exec.Command(t.bin, t.args(dir, udp, web, agent)...)
	cmd.Stderr = os.Stderr
	stop, err := proc.Start(cmd) // the target ends with the bench
	if err != nil {
		return rd, err
	}
	defer stop()
	url := "http://" + web + "/metrics"
	conn, err := net.Dial("udp", udp)
	if err != nil {
		return rd, err
	}
	defer conn.Close()
	lines := seriesLines(*flagSeries)
	// Resent until every series is on the page: a datagram sent before
	// the socket is bound is lost.
	deadline := time.Now().Add(60 * time.Second)
	for {
		for _, l := range lines {
			_, _ = conn.Write([]byte(l))
		}
		time.Sleep(100 * time.Millisecond)
		page, err := scrape(url)
		if err == nil && visible(page, *flagSeries) {
			break
		}
		if time.Now().After(deadline) {
			return rd, fmt.Errorf("the %d series are not all on %s after a minute (%v)", *flagSeries, url, err)
		}
	}
	var page string
	for range *flagScrapes {
		if page, err = scrape(url); err != nil {
			return rd, err
		}
	}
	rd.lines = strings.Count(page, "\n")
	time.Sleep(*flagSettle)
	m, err := proc.ReadMemory(cmd.Process.Pid)
	rd.rss, rd.anon, rd.file = m.RSS, m.Anon, m.File
	return rd, err
}

// seriesLines are n gunicorn-shaped series, 6 per app (the prefix is the
// app label of the mapping's *.gunicorn.* rules).
func seriesLines(n int) []string {
	kinds := []string{"gunicorn.requests:1|c", "gunicorn.request.status.200:1|c", "gunicorn.request.status.404:1|c",
		"gunicorn.request.status.500:1|c", "gunicorn.request.duration:12.5|ms", "gunicorn.workers:4|g"}
	lines := make([]string, 0, n)
	for i := range n {
		lines = append(lines, "app"+strconv.Itoa(i/len(kinds))+"."+kinds[i%len(kinds)])
	}
	return lines
}

// visible tells whether every series of seriesLines(n) is on the page: the
// last app's last kind sent, and the number of app label values.
func visible(page string, n int) bool {
	apps := (n + 5) / 6
	seen := 0
	for a := range apps {
		if strings.Contains(page, `app="app`+strconv.Itoa(a)+`"`) {
			seen++
		}
	}
	return seen == apps && strings.Count(page, "gunicorn_requests_total{") >= apps-1
}

func scrape(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), err
}

func field(rs []reading, f func(reading) float64) []float64 {
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = f(r)
	}
	return xs
}

func span(xs []float64) string {
	return fmt.Sprintf("%.1f (%.1f-%.1f)", mib(stats.Median(xs)), mib(slices.Min(xs)), mib(slices.Max(xs)))
}

func mib(b float64) float64 { return b / (1 << 20) }
