// Command sinkparallel measures what parallel scrapes of a large
// metrics_sink cost the real sluice binary: peak resident memory (VmHWM)
// and scrape latency (see README.md):
//
//	go run ./bench/sinkparallel -targets after=BUILD
//	go run ./bench/sinkparallel -targets before=/tmp/sluice-main,after=BUILD,after-limit100=BUILD:100
//
// For each target and run it starts `sluice run` afresh with a
// statsd_receiver feeding a metrics_sink, sends -series distinct counter
// series over UDP on 127.0.0.1 (resending until sluice_statsd_series shows
// them all), then fires -rounds rounds of -parallel simultaneous scrapes
// (each round waits for all of its scrapes; each scrape is bounded by
// -timeout) and reads VmHWM from /proc/PID/status. All traffic stays on
// loopback and every step is bounded.
package main

import (
	"bufio"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	flagTargets  = flag.String("targets", "after=BUILD", "comma-separated NAME=BINARY[:LIMIT]; BINARY \"BUILD\" builds ./cmd/sluice; LIMIT sets max_concurrent_scrapes (omitted: the binary's default)")
	flagSeries   = flag.Int("series", 87000, "distinct series in the sink")
	flagParallel = flag.Int("parallel", 100, "simultaneous scrapes per round")
	flagRounds   = flag.Int("rounds", 3, "rounds of simultaneous scrapes per run")
	flagRuns     = flag.Int("runs", 3, "runs per target, each on a fresh process")
	flagGzip     = flag.Bool("gzip", true, "ask for gzip, as Prometheus does")
	flagTimeout  = flag.Duration("timeout", 60*time.Second, "bound on one scrape")
)

type target struct {
	name, bin string
	limit     int // 0: leave max_concurrent_scrapes out of the config
}

type runResult struct {
	ingestRSS, hwm float64 // bytes
	codes          map[int]int
	lat            []time.Duration // of 200 answers
	rounds         []time.Duration // wall time of each round
	series         int             // series lines in one full scrape
}

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sinkparallel:", err)
		os.Exit(1)
	}
}

func run() error {
	tmp, err := os.MkdirTemp("", "sinkparallel")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var targets []target
	for _, spec := range strings.Split(*flagTargets, ",") {
		name, rest, ok := strings.Cut(spec, "=")
		if !ok {
			return fmt.Errorf("target %q: want NAME=BINARY[:LIMIT]", spec)
		}
		t := target{name: name, bin: rest}
		if b, l, ok := strings.Cut(rest, ":"); ok {
			t.bin = b
			if t.limit, err = strconv.Atoi(l); err != nil {
				return fmt.Errorf("target %q: %w", spec, err)
			}
		}
		if t.bin == "BUILD" {
			t.bin = filepath.Join(tmp, "sluice")
			if _, err := os.Stat(t.bin); err != nil {
				fmt.Fprintln(os.Stderr, "building ./cmd/sluice")
				cmd := exec.Command("go", "build", "-o", t.bin, "./cmd/sluice")
				cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
				if err := cmd.Run(); err != nil {
					return fmt.Errorf("build: %w", err)
				}
			}
		}
		targets = append(targets, t)
	}
	lines := seriesLines(*flagSeries)
	results := map[string][]runResult{}
	for r := 0; r < *flagRuns; r++ {
		for _, t := range targets { // interleaved, so machine load affects all alike
			fmt.Fprintf(os.Stderr, "== %s run %d\n", t.name, r+1)
			res, err := runOnce(t, tmp, lines)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			results[t.name] = append(results[t.name], res)
		}
	}
	report(targets, results)
	return nil
}

// seriesLines are statsd datagrams of up to 20 lines carrying n distinct
// counter series: 100 names x n/100 values of a DogStatsD tag.
func seriesLines(n int) [][]byte {
	var out [][]byte
	var b []byte
	for i := 0; i < n; i++ {
		if len(b) > 0 {
			b = append(b, '\n')
		}
		b = fmt.Appendf(b, "bench.series_%d:1|c|#id:%d", i%100, i/100)
		if i%20 == 19 || i == n-1 {
			out = append(out, b)
			b = nil
		}
	}
	return out
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func runOnce(t target, tmp string, dgrams [][]byte) (runResult, error) {
	var res runResult
	web, err := freeAddr()
	if err != nil {
		return res, err
	}
	udp, err := freeAddr() // a free TCP port is very likely a free UDP port
	if err != nil {
		return res, err
	}
	dir, err := os.MkdirTemp(tmp, t.name)
	if err != nil {
		return res, err
	}
	limit := ""
	if t.limit > 0 {
		limit = fmt.Sprintf("  max_concurrent_scrapes = %d\n", t.limit)
	}
	cfg := fmt.Sprintf(`statsd_receiver "bench" {
  listen_udp  = %q
  read_buffer = 4194304
  max_series  = %d
}

metrics_sink "default" {
  inputs = [statsd_receiver.bench.metrics]
%s}
`, udp, *flagSeries*2, limit)
	cfgPath := filepath.Join(dir, "sluice.hcl")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return res, err
	}
	cmd := exec.Command(t.bin, "run", "--server.http.listen-addr", web, "--storage.path", filepath.Join(dir, "data"), "--log.level", "warn", cfgPath)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return res, err
	}
	defer stop(cmd)
	base := "http://" + web
	if err := waitFor(15*time.Second, func() (bool, error) {
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}); err != nil {
		return res, fmt.Errorf("never ready: %w", err)
	}

	// Ingest: send every series, then resend while the live series count
	// still grows (UDP may drop on a full buffer), until all are there.
	conn, err := net.Dial("udp", udp)
	if err != nil {
		return res, err
	}
	defer conn.Close()
	want := float64(*flagSeries)
	for attempt := 0; ; attempt++ {
		for i, d := range dgrams {
			if _, err := conn.Write(d); err != nil {
				return res, err
			}
			if i%200 == 199 {
				time.Sleep(2 * time.Millisecond) // ~2M lines/s at most: let the receiver keep up
			}
		}
		var n float64
		err := waitFor(10*time.Second, func() (bool, error) {
			var err error
			n, err = agentValue(base, "sluice_statsd_series")
			return n >= want, err
		})
		if err == nil {
			break
		}
		if attempt == 5 {
			return res, fmt.Errorf("only %v of %v series after %d sends", n, want, attempt+1)
		}
	}
	res.ingestRSS, _ = procStatus(cmd.Process.Pid, "VmRSS")

	url := base + "/metrics/default"
	client := &http.Client{Timeout: *flagTimeout, Transport: &http.Transport{
		MaxIdleConnsPerHost: *flagParallel, DisableCompression: true,
	}}
	defer client.CloseIdleConnections()
	res.codes = map[int]int{}
	var mu sync.Mutex
	for round := 0; round < *flagRounds; round++ {
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < *flagParallel; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				code, d, lines, err := scrape(client, url)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					code = -1
					fmt.Fprintln(os.Stderr, "  scrape:", err)
				}
				res.codes[code]++
				if code == http.StatusOK {
					res.lat = append(res.lat, d)
					res.series = lines
				}
			}()
		}
		t0 := time.Now()
		close(start)
		wg.Wait()
		res.rounds = append(res.rounds, time.Since(t0))
	}
	res.hwm, err = procStatus(cmd.Process.Pid, "VmHWM")
	fmt.Fprintf(os.Stderr, "  RSS after ingest %.0f MiB, VmHWM after scrapes %.0f MiB, answers %v, %d series per scrape\n",
		res.ingestRSS/(1<<20), res.hwm/(1<<20), res.codes, res.series)
	return res, err
}

// scrape fetches url as Prometheus does and counts the sample lines.
func scrape(client *http.Client, url string) (int, time.Duration, int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, 0, err
	}
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.2,*/*;q=0.1")
	if *flagGzip {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	var body io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzipReader(resp.Body)
		if err != nil {
			return 0, 0, 0, err
		}
		body = zr
	}
	lines := 0
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		if l := sc.Bytes(); len(l) > 0 && l[0] != '#' {
			lines++
		}
	}
	return resp.StatusCode, time.Since(t0), lines, sc.Err()
}

// agentValue sums the samples of one family on the agent's /metrics.
func agentValue(base, name string) (float64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, name) && len(l) > len(name) && (l[len(name)] == '{' || l[len(name)] == ' ') {
			f := strings.Fields(l)
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				sum += v
			}
		}
	}
	return sum, sc.Err()
}

func procStatus(pid int, key string) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, key+":") {
			f := strings.Fields(l)
			kb, err := strconv.ParseFloat(f[1], 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", key, pid)
}

// waitFor polls cond every 50ms until it holds or d has passed.
func waitFor(d time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(d)
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("timed out")
			}
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func report(targets []target, results map[string][]runResult) {
	fmt.Printf("\n%s/%s, %d CPUs; %d series, %d rounds of %d simultaneous scrapes per run (gzip %v), %d runs per target\n\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), *flagSeries, *flagRounds, *flagParallel, *flagGzip, *flagRuns)
	fmt.Println("| target | run | RSS after ingest MiB | VmHWM after scrapes MiB | 200 | 503 | other | p50 s | p90 s | max s | slowest round s |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, t := range targets {
		for i, r := range results[t.name] {
			other := 0
			for c, n := range r.codes {
				if c != http.StatusOK && c != http.StatusServiceUnavailable {
					other += n
				}
			}
			fmt.Printf("| %s | %d | %.0f | %.0f | %d | %d | %d | %.2f | %.2f | %.2f | %.2f |\n", t.name, i+1,
				r.ingestRSS/(1<<20), r.hwm/(1<<20), r.codes[http.StatusOK], r.codes[http.StatusServiceUnavailable], other,
				pct(r.lat, .5).Seconds(), pct(r.lat, .9).Seconds(), pct(r.lat, 1).Seconds(), slices.Max(r.rounds).Seconds())
		}
	}
}

func gzipReader(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }
