// Command statsd benchmarks Sluice's statsd_receiver against statsd_exporter
// v0.31.0 on the same machine, in one run, with the same mapping and the
// same traffic (see README.md):
//
//	go run ./bench/statsd
//
// It installs statsd_exporter with `go install` into a temporary directory,
// builds ./bench/statsd/receiver, and for each target in turn: sends
// gunicorn-shaped statsd lines over UDP on loopback at increasing rates,
// counting the events the target processed (its statsd_exporter_events_total)
// against the lines sent; then, three times on a fresh process, sends 100k
// distinct series and reads its resident memory (the median is reported). All traffic goes to 127.0.0.1 and
// every step is bounded in time.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

type target struct {
	name string
	cmd  func(udp, web string) *exec.Cmd
}

type stepResult struct {
	rate     int     // lines/s asked
	sentRate float64 // lines/s achieved by the sender
	sent     int
	done     float64
	loss     float64
	cpu      float64 // seconds
}

type result struct {
	steps         []stepResult
	lossless      float64   // highest achieved rate with loss < 0.1%
	cpuPerMillion float64   // at the lossless step
	rss, added    float64   // bytes: median RSS after the distinct series, and median added by them
	rssRuns       []float64 // RSS after the series, each run
}

var (
	flagRates    = flag.String("rates", "25000,50000,100000,150000,200000,300000,400000", "line rates to try, lines/s")
	flagDuration = flag.Duration("step", 2*time.Second, "duration of each rate step")
	flagLPP      = flag.Int("lines-per-packet", 1, "statsd lines per datagram (gunicorn sends 1)")
	flagSeries   = flag.Int("series", 100000, "distinct series for the memory measurement")
	flagMapping  = flag.String("mapping", "config/examples/gunicorn-mapping.yml", "mapping file, used by both")
	flagExporter = flag.String("statsd-exporter", "", "a statsd_exporter binary (default: go install v0.31.0 into a temp dir)")
	flagOnly     = flag.String("only", "", "run one target only: sluice or statsd_exporter")
	flagMemRuns  = flag.Int("mem-runs", 3, "memory measurements per target, each on a fresh process (the median is reported)")
	flagRcvBuf   = flag.Int("read-buffer", 4<<20, "socket receive buffer for both targets, bytes (capped by net.core.rmem_max; 0: system default)")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	tmp, err := os.MkdirTemp("", "sluice-statsd-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	mapping, err := filepath.Abs(*flagMapping)
	if err != nil {
		return err
	}
	exporterBin := *flagExporter
	if exporterBin == "" {
		fmt.Fprintln(os.Stderr, "installing statsd_exporter v0.31.0 ...")
		c := exec.Command("go", "install", "github.com/prometheus/statsd_exporter@v0.31.0")
		c.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=-mod=mod")
		c.Stdout, c.Stderr = os.Stderr, os.Stderr
		if err := c.Run(); err != nil {
			return fmt.Errorf("go install statsd_exporter: %w", err)
		}
		exporterBin = filepath.Join(tmp, "statsd_exporter")
	}
	fmt.Fprintln(os.Stderr, "building ./bench/statsd/receiver ...")
	sluiceBin := filepath.Join(tmp, "sluice-statsd")
	c := exec.Command("go", "build", "-o", sluiceBin, "./bench/statsd/receiver")
	c.Stdout, c.Stderr = os.Stderr, os.Stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("building the receiver: %w", err)
	}

	targets := []target{
		{"statsd_exporter", func(udp, web string) *exec.Cmd {
			return exec.Command(exporterBin, "--statsd.listen-udp="+udp, "--statsd.listen-tcp=", "--web.listen-address="+web,
				"--statsd.mapping-config="+mapping, "--log.level=error", "--statsd.read-buffer="+strconv.Itoa(*flagRcvBuf))
		}},
		{"sluice", func(udp, web string) *exec.Cmd {
			return exec.Command(sluiceBin, "-listen-udp="+udp, "-web="+web, "-mapping="+mapping, "-read-buffer="+strconv.Itoa(*flagRcvBuf))
		}},
	}
	var rates []int
	for _, s := range strings.Split(*flagRates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("-rates: %w", err)
		}
		rates = append(rates, n)
	}
	if *flagMemRuns < 1 {
		return errors.New("-mem-runs must be at least 1")
	}
	results := map[string]*result{}
	for _, t := range targets {
		if *flagOnly != "" && *flagOnly != t.name {
			continue
		}
		res, err := measure(t, rates)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		results[t.name] = res
	}
	report(results)
	return nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

type proc struct {
	cmd      *exec.Cmd
	udp, web string
}

func start(t target) (*proc, error) {
	web, err := freePort()
	if err != nil {
		return nil, err
	}
	udp, err := freePort() // a free TCP port is very likely a free UDP port
	if err != nil {
		return nil, err
	}
	cmd := t.cmd(udp, web)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, udp: udp, web: web}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := p.events(); err == nil {
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, errors.New("did not start serving /metrics")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *proc) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// scrape returns the sum of each listed family's samples.
func (p *proc) scrape(names ...string) (map[string]float64, error) {
	resp, err := http.Get("http://" + p.web + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		for _, n := range names {
			if strings.HasPrefix(l, n) && (len(l) > len(n) && (l[len(n)] == '{' || l[len(n)] == ' ')) {
				f := strings.Fields(l)
				v, err := strconv.ParseFloat(f[len(f)-1], 64)
				if err == nil {
					out[n] += v
				}
			}
		}
	}
	return out, sc.Err()
}

// memStats are the Go runtime's figures both targets serve.
var memStats = []string{"go_memstats_heap_inuse_bytes", "go_memstats_heap_idle_bytes",
	"go_memstats_heap_released_bytes", "go_memstats_next_gc_bytes", "go_gc_duration_seconds_count", "go_memstats_alloc_bytes_total"}

func (p *proc) events() (float64, error) {
	m, err := p.scrape("statsd_exporter_events_total")
	return m["statsd_exporter_events_total"], err
}

// settle waits until the processed count stops moving.
func (p *proc) settle() (float64, error) {
	last, err := p.events()
	if err != nil {
		return 0, err
	}
	stable := 0
	deadline := time.Now().Add(15 * time.Second)
	for stable < 4 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		n, err := p.events()
		if err != nil {
			return 0, err
		}
		if n == last {
			stable++
		} else {
			stable, last = 0, n
		}
	}
	return last, nil
}

// cpuSeconds reads utime+stime of a process from /proc.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, nil // USER_HZ is 100 on Linux
}

func rssBytes(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, err := strconv.ParseFloat(f[1], 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// gunicornLine returns the i-th line of gunicorn-shaped traffic: per
// request a duration, a request count and a status count; half the
// requests from a prefixed app with DogStatsD tags; a workers gauge and a
// log counter now and then.
func gunicornLine(i int, rnd *rand.Rand) string {
	req := i / 3
	prefix, tags := "", ""
	if req%2 == 1 {
		prefix, tags = "web.", "|#env:prod,region:eu"
	}
	if req%100 == 99 && i%3 == 2 {
		if req%200 == 199 {
			return prefix + "gunicorn.log.warning:1|c|@1.0" + tags
		}
		return prefix + "gunicorn.workers:" + strconv.Itoa(4+rnd.IntN(4)) + "|g" + tags
	}
	switch i % 3 {
	case 0:
		return prefix + "gunicorn.request.duration:" + strconv.FormatFloat(rnd.ExpFloat64()*40, 'f', 3, 64) + "|ms" + tags
	case 1:
		return prefix + "gunicorn.requests:1|c|@1.0" + tags
	default:
		codes := []string{"200", "200", "200", "200", "201", "304", "404", "500"}
		return prefix + "gunicorn.request.status." + codes[rnd.IntN(len(codes))] + ":1|c|@1.0" + tags
	}
}

// blast sends lines at rate lines/s for d, returning the lines sent.
func blast(addr string, rate int, d time.Duration, line func(i int) string) (int, time.Duration, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	lpp := *flagLPP
	buf := make([]byte, 0, 64*1024)
	sent := 0
	t0 := time.Now()
	for {
		el := time.Since(t0)
		if el >= d {
			return sent, el, nil
		}
		due := int(float64(rate) * el.Seconds())
		if sent >= due {
			time.Sleep(100 * time.Microsecond)
			continue
		}
		for sent < due {
			buf = buf[:0]
			for k := 0; k < lpp; k++ {
				if k > 0 {
					buf = append(buf, '\n')
				}
				buf = append(buf, line(sent)...)
				sent++
			}
			if _, err := c.Write(buf); err != nil {
				return sent, time.Since(t0), err
			}
		}
	}
}

func measure(t target, rates []int) (*result, error) {
	res := &result{}
	fmt.Fprintf(os.Stderr, "== %s\n", t.name)
	p, err := start(t)
	if err != nil {
		return nil, err
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	lossy := 0
	for _, rate := range rates {
		before, err := p.settle()
		if err != nil {
			p.stop()
			return nil, err
		}
		cpu0, _ := cpuSeconds(p.cmd.Process.Pid)
		sent, el, err := blast(p.udp, rate, *flagDuration, func(i int) string { return gunicornLine(i, rnd) })
		if err != nil {
			p.stop()
			return nil, err
		}
		after, err := p.settle()
		if err != nil {
			p.stop()
			return nil, err
		}
		cpu1, _ := cpuSeconds(p.cmd.Process.Pid)
		s := stepResult{rate: rate, sent: sent, sentRate: float64(sent) / el.Seconds(), done: after - before, cpu: cpu1 - cpu0}
		s.loss = 1 - s.done/float64(sent)
		res.steps = append(res.steps, s)
		fmt.Fprintf(os.Stderr, "  %7d lines/s asked, %9.0f sent/s, loss %6.3f%%, %.2f CPU s per 1M lines\n",
			rate, s.sentRate, 100*s.loss, s.cpu/(s.done/1e6))
		if s.loss < 0.001 {
			if s.sentRate > res.lossless {
				res.lossless = s.sentRate
				res.cpuPerMillion = s.cpu / (s.done / 1e6)
			}
			lossy = 0
		} else if lossy++; lossy == 2 {
			break
		}
	}
	p.stop()

	// Memory: a fresh process, then *flagSeries distinct series, -mem-runs
	// times. The resident size after a load depends on when the last GC
	// ran (the heap goal is twice the heap that was live then, and a scrape
	// of 100k series is tens of MiB): single runs of the same binary differ
	// by up to 15%, so the median is reported.
	var rss, added []float64
	for range *flagMemRuns {
		idle, after, err := memoryOnce(t, rnd)
		if err != nil {
			return nil, err
		}
		rss, added = append(rss, after), append(added, after-idle)
	}
	res.rss, res.added = median(rss), median(added)
	res.rssRuns = rss
	return res, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// memoryOnce starts the target afresh, warms it up, sends the distinct
// series and returns its resident size before and after them.
func memoryOnce(t target, rnd *rand.Rand) (idle, rss float64, err error) {
	p, err := start(t)
	if err != nil {
		return 0, 0, err
	}
	defer p.stop()
	// Warm up with the gunicorn traffic so both have their steady-state
	// structures, then measure what the distinct series add.
	if _, _, err := blast(p.udp, 20000, 500*time.Millisecond, func(i int) string { return gunicornLine(i, rnd) }); err != nil {
		return 0, 0, err
	}
	before, err := p.settle()
	if err != nil {
		return 0, 0, err
	}
	idle, _ = rssBytes(p.cmd.Process.Pid)
	n := *flagSeries
	sent, _, err := blast(p.udp, 25000, time.Duration(float64(n)/25000*float64(time.Second))+50*time.Millisecond, func(i int) string {
		i %= n
		return "bench.series_" + strconv.Itoa(i%100) + ":1|c|#id:" + strconv.Itoa(i/100)
	})
	if err != nil {
		return 0, 0, err
	}
	after, err := p.settle()
	if err != nil {
		return 0, 0, err
	}
	if got := after - before; got < float64(n) {
		fmt.Fprintf(os.Stderr, "  warning: %v of %d series lines processed (%d sent)\n", got, n, sent)
	}
	// Scrape once (as Prometheus would) and let the GC settle.
	p.scrape()
	time.Sleep(2 * time.Second)
	rss, err = rssBytes(p.cmd.Process.Pid)
	if err != nil {
		return 0, 0, err
	}
	fmt.Fprintf(os.Stderr, "  RSS %.1f MiB before, %.1f MiB after %d series\n", idle/(1<<20), rss/(1<<20), n)
	if ms, err := p.scrape(memStats...); err == nil {
		fmt.Fprintf(os.Stderr, "  then: Go heap in use %.1f MiB, idle %.1f MiB (released %.1f), next GC at %.1f MiB, %v GCs\n",
			ms["go_memstats_heap_inuse_bytes"]/(1<<20), ms["go_memstats_heap_idle_bytes"]/(1<<20),
			ms["go_memstats_heap_released_bytes"]/(1<<20), ms["go_memstats_next_gc_bytes"]/(1<<20), ms["go_gc_duration_seconds_count"])
		if ms2, err := p.scrape(memStats...); err == nil {
			fmt.Fprintf(os.Stderr, "  one scrape allocates %.1f MiB\n", (ms2["go_memstats_alloc_bytes_total"]-ms["go_memstats_alloc_bytes_total"])/(1<<20))
		}
	}
	return idle, rss, nil
}

func report(results map[string]*result) {
	w := io.Writer(os.Stdout)
	fmt.Fprintf(w, "\n%s/%s, %d CPUs, %d line(s) per datagram, %s per step, read buffer %d bytes\n\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), *flagLPP, *flagDuration, *flagRcvBuf)
	fmt.Fprintf(w, "| | lossless rate (lines/s, <0.1%% loss) | CPU s per 1M lines | RSS after %d series (median of %d) | RSS added per series |\n", *flagSeries, *flagMemRuns)
	fmt.Fprintln(w, "|---|---|---|---|---|")
	names := []string{"statsd_exporter", "sluice"}
	for _, n := range names {
		r := results[n]
		if r == nil {
			continue
		}
		fmt.Fprintf(w, "| %s | %.0f | %.2f | %.1f MiB | %.0f B |\n", n, r.lossless, r.cpuPerMillion, r.rss/(1<<20), r.added/float64(*flagSeries))
	}
	up, sl := results["statsd_exporter"], results["sluice"]
	if up != nil && sl != nil && up.lossless > 0 && sl.cpuPerMillion > 0 {
		fmt.Fprintf(w, "\nsluice / statsd_exporter: lossless rate %.2fx, CPU per line %.2fx, RSS %.2fx, RSS per series %.2fx\n",
			sl.lossless/up.lossless, sl.cpuPerMillion/up.cpuPerMillion, sl.rss/up.rss, sl.added/up.added)
	}
	fmt.Fprintln(w, "\nRSS after the series, each run:")
	for _, n := range names {
		if r := results[n]; r != nil {
			fmt.Fprintf(w, "  %-16s", n)
			for _, v := range r.rssRuns {
				fmt.Fprintf(w, " %.1f MiB", v/(1<<20))
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintln(w, "\nAll steps:")
	for _, n := range names {
		r := results[n]
		if r == nil {
			continue
		}
		for _, s := range r.steps {
			fmt.Fprintf(w, "  %-16s asked %7d/s sent %9.0f/s processed %9.0f of %9d loss %7.3f%% CPU %.2fs\n", n, s.rate, s.sentRate, s.done, s.sent, 100*s.loss, s.cpu)
		}
	}
}
