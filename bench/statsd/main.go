// Command statsd benchmarks Sluice's statsd_receiver, run as users run it
// (`sluice run` with a metrics_sink), against statsd_exporter v0.31.0 on
// the same machine, in one run, with the same mapping and the same
// traffic (see README.md):
//
//	go run ./bench/statsd            # or: make bench-statsd
//
// It installs statsd_exporter with `go install` into a temporary directory
// and builds ./cmd/sluice. Each of -runs runs starts both targets afresh
// and measures them step by step, interleaved (A then B, B then A at the
// next step), so that the load of a shared machine falls on both alike:
// the lossless rate (gunicorn-shaped lines over UDP on loopback at
// increasing rates), overload (twice the higher lossless rate for 10 s:
// lines processed, and what Sluice reports dropped), and memory (100k
// distinct names, then 100k tag values: RSS before any scrape, after the
// first and under a 15 s scrape loop). Medians with min and max are
// reported. All traffic goes to 127.0.0.1 and every step is bounded in
// time.
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
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/sluicehq/sluice/bench/internal/ports"
)

// target is one side of the comparison. selfPath serves its own metrics
// (events, drops, Go runtime); seriesPath the statsd series, what
// Prometheus scrapes (the same page for statsd_exporter; the
// metrics_sink's own listener for Sluice).
type target struct {
	name string
	cmd  func(dir, udp, web, sink string) (*exec.Cmd, error)
	// sinkPort tells whether the target needs a second HTTP port.
	sinkPort bool
}

var (
	flagPreset   = flag.String("preset", "all", "traffic shape: gunicorn (1 line per datagram), batched (20 lines per datagram) or all (both, in turn); -lines-per-packet and -rates override")
	flagRates    = flag.String("rates", "", "line rates to try, lines/s (default: the preset's grid)")
	flagDuration = flag.Duration("step", 3*time.Second, "duration of each rate step")
	flagLPP      = flag.Int("lines-per-packet", 0, "statsd lines per datagram (default: the preset's; gunicorn sends 1)")
	flagRuns     = flag.Int("runs", 3, "runs, each on fresh processes (medians with min and max are reported)")
	flagModes    = flag.String("modes", "rate,overload,memory,cpu", "what to measure: rate, overload, memory, cpu")
	flagCPURates = flag.String("cpu-rates", "5000x1,20000x1,100000x1,200000x20", "cpu mode: fixed rates, lines/s x lines per datagram, sent to both targets alike")
	flagCPUStep  = flag.Duration("cpu-step", 10*time.Second, "cpu mode: duration of each fixed-rate step")
	flagCPUBatch = flag.Int("cpu-batch", 1, "cpu mode: datagrams per sendmmsg call (1: each datagram sent on its own, paced, as an application's client sends; more makes bursts the receiver takes in one wake-up)")
	flagOverload = flag.Duration("overload-step", 10*time.Second, "duration of the overload step (twice the higher lossless rate of the run)")
	flagSeries   = flag.Int("series", 100000, "distinct series for the memory measurement")
	flagShapes   = flag.String("mem-shapes", "names,tags", "memory series: names (bench.name_<i>) and/or tags (bench.tagged with #id:<i>)")
	flagScrapes  = flag.Int("mem-scrapes", 4, "scrapes of the 15 s loop after the first (0: only the first)")
	flagInterval = flag.Duration("mem-interval", 15*time.Second, "interval of the scrape loop")
	flagMemProto = flag.String("mem-proto", "udp", "how the memory series are sent: udp (20 lines per datagram, paced at -mem-rate; the bench fails if a line is lost) or tcp (one connection, as fast as it goes; lossless on a loaded machine)")
	flagMemRate  = flag.Int("mem-rate", 20000, "lines/s at which the memory series are sent over UDP (a rate both targets keep up with, so neither holds a backlog)")
	flagMapping  = flag.String("mapping", "config/examples/gunicorn-mapping.yml", "mapping file, used by both")
	flagExporter = flag.String("statsd-exporter", "", "a statsd_exporter binary (default: go install v0.31.0 into a temp dir)")
	flagSluice   = flag.String("sluice", "", "a sluice binary (default: go build ./cmd/sluice into a temp dir)")
	flagOnly     = flag.String("only", "", "run one target only: sluice or statsd_exporter")
	flagRcvBuf   = flag.Int("read-buffer", 8<<20, "socket receive buffer for both targets, bytes (capped by net.core.rmem_max; 0: system default)")
	flagSenders  = flag.Int("senders", 2, "sender goroutines, each with its own connected UDP socket and an equal share of the rate (as several client processes, e.g. gunicorn workers)")
	flagBatch    = flag.Int("batch", 64, "datagrams per sendmmsg call; pacing is per batch")
)

// presets are the traffic shapes: gunicorn's one line per datagram, and
// clients that batch (20 lines per datagram). The grids reach past both
// targets' limits on a 2-CPU machine, or past what the generator can send
// there (about 400k datagrams/s with 2 senders), starting low enough for
// a loaded one (a target stops after two lossy steps).
var presets = map[string]struct {
	lpp   int
	rates string
}{
	"gunicorn": {1, "50000,100000,150000,200000,250000,300000,350000,400000,450000,500000,600000,700000,800000"},
	"batched":  {20, "200000,400000,600000,800000,1000000,1200000,1600000,2000000,2400000,2800000,3200000,3600000,4000000,4800000"},
}

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
	sluiceBin := *flagSluice
	if sluiceBin == "" {
		fmt.Fprintln(os.Stderr, "building ./cmd/sluice ...")
		sluiceBin = filepath.Join(tmp, "sluice")
		c := exec.Command("go", "build", "-o", sluiceBin, "./cmd/sluice")
		c.Stdout, c.Stderr = os.Stderr, os.Stderr
		if err := c.Run(); err != nil {
			return fmt.Errorf("building sluice: %w", err)
		}
	}
	all := []target{
		{name: "statsd_exporter", cmd: func(_, udp, web, _ string) (*exec.Cmd, error) {
			return exec.Command(exporterBin, "--statsd.listen-udp="+udp, "--statsd.listen-tcp="+udp, "--web.listen-address="+web,
				"--statsd.mapping-config="+mapping, "--log.level=error", "--statsd.read-buffer="+strconv.Itoa(*flagRcvBuf)), nil
		}},
		{name: "sluice", sinkPort: true, cmd: func(dir, udp, web, sink string) (*exec.Cmd, error) {
			// What a user runs: the receiver, and a metrics_sink serving
			// its series on a listener of its own.
			cfg := fmt.Sprintf(`statsd_receiver "bench" {
  listen_udp   = %q
  listen_tcp   = %q
  mapping_file = %q
  read_buffer  = %d
  max_series   = 1000000
}

metrics_sink "bench" {
  inputs = [statsd_receiver.bench.metrics]
  listen = %q
}
`, udp, udp, mapping, *flagRcvBuf, sink)
			path := filepath.Join(dir, "sluice.hcl")
			if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
				return nil, err
			}
			return exec.Command(sluiceBin, "run", "--server.http.listen-addr="+web, "--log.level=error",
				"--storage.path="+filepath.Join(dir, "data"), path), nil
		}},
	}
	var targets []target
	for _, t := range all {
		if *flagOnly == "" || *flagOnly == t.name {
			targets = append(targets, t)
		}
	}
	if *flagRuns < 1 || *flagSenders < 1 || *flagBatch < 1 || *flagLPP < 0 {
		return errors.New("-runs, -senders and -batch must be at least 1")
	}
	modes := map[string]bool{}
	for _, m := range strings.Split(*flagModes, ",") {
		modes[strings.TrimSpace(m)] = true
	}
	var shapes []string
	switch *flagPreset {
	case "all":
		shapes = []string{"gunicorn", "batched"}
	case "gunicorn", "batched":
		shapes = []string{*flagPreset}
	default:
		return fmt.Errorf("-preset %q: want gunicorn, batched or all", *flagPreset)
	}
	fmt.Printf("%s/%s, %d CPUs, read buffer %d bytes, %d run(s); generator: %d sender(s), %d datagrams per sendmmsg\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), *flagRcvBuf, *flagRuns, *flagSenders, *flagBatch)
	if modes["rate"] || modes["overload"] {
		for _, shape := range shapes {
			lpp, rateList := presets[shape].lpp, presets[shape].rates
			if *flagLPP > 0 {
				lpp = *flagLPP
			}
			if *flagRates != "" {
				rateList = *flagRates
			}
			var rates []int
			for _, s := range strings.Split(rateList, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(s))
				if err != nil {
					return fmt.Errorf("-rates: %w", err)
				}
				rates = append(rates, n)
			}
			// Built once, from a fixed seed: both targets get the same bytes.
			rnd := rand.New(rand.NewPCG(1, 2))
			traffic := packets(gunicornLines, lpp, func(i int) string { return gunicornLine(i, rnd) })
			if err := rateRuns(tmp, targets, shape, traffic, rates, modes["rate"], modes["overload"]); err != nil {
				return err
			}
		}
	}
	if modes["cpu"] {
		if err := cpuRuns(tmp, targets); err != nil {
			return err
		}
	}
	if modes["memory"] {
		for _, shape := range strings.Split(*flagShapes, ",") {
			if err := memoryRuns(tmp, targets, strings.TrimSpace(shape)); err != nil {
				return err
			}
		}
	}
	return nil
}

type proc struct {
	t                  target
	cmd                *exec.Cmd
	udp                string
	selfURL, seriesURL string
	// fullScrapes counts the fetches of the page with all the series
	// (for statsd_exporter every read of its own metrics is one).
	fullScrapes int
	// mirror makes every read of the target's own metrics fetch its
	// series page too, when the two are apart (Sluice): so that both
	// targets are scraped in full as often and at the same moments.
	mirror bool
}

// scrapeSeries fetches the target's page of series once.
func (p *proc) scrapeSeries() error {
	p.fullScrapes++
	_, err := get(p.seriesURL)
	return err
}

// equalScrapes scrapes each target's series page until all have been
// scraped in full as many times, and returns that count: every memory
// reading follows the same number of full scrapes of each.
func equalScrapes(ps []*proc) (int, error) {
	most := 0
	for _, p := range ps {
		most = max(most, p.fullScrapes)
	}
	for _, p := range ps {
		for p.fullScrapes < most {
			if err := p.scrapeSeries(); err != nil {
				return 0, err
			}
		}
	}
	return most, nil
}

func start(dir string, t target) (*proc, error) {
	// web, statsd over UDP and TCP (a free TCP port is very likely a free
	// UDP port), and a sink port of its own where the target has one.
	addrs, err := ports.Free(3)
	if err != nil {
		return nil, err
	}
	web, udp, sink := addrs[0], addrs[1], addrs[0]
	if t.sinkPort {
		sink = addrs[2]
	}
	dir, err = os.MkdirTemp(dir, t.name)
	if err != nil {
		return nil, err
	}
	cmd, err := t.cmd(dir, udp, web, sink)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	// The targets end with the bench, however it ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{t: t, cmd: cmd, udp: udp, selfURL: "http://" + web + "/metrics", seriesURL: "http://" + sink + "/metrics"}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := p.events()
		if err == nil {
			_, err = get(p.seriesURL)
		}
		if err == nil {
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s did not start serving: %w", t.name, err)
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
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

func get(url string) (int64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return io.Copy(io.Discard, resp.Body)
}

// self returns the sum of each listed family's samples on the target's
// own metrics page (a family's name may be followed by a label set).
func (p *proc) self(names ...string) (map[string]float64, error) {
	if p.selfURL == p.seriesURL {
		p.fullScrapes++
	} else if p.mirror {
		if err := p.scrapeSeries(); err != nil {
			return nil, err
		}
	}
	resp, err := http.Get(p.selfURL)
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
			name, want, _ := strings.Cut(n, "{") // "family{label=\"v\"" selects by a label
			if strings.HasPrefix(l, name) && len(l) > len(name) && (l[len(name)] == '{' || l[len(name)] == ' ') &&
				(want == "" || strings.Contains(l, want)) {
				f := strings.Fields(l)
				if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
					out[n] += v
				}
			}
		}
	}
	return out, sc.Err()
}

func (p *proc) events() (float64, error) {
	m, err := p.self("statsd_exporter_events_total")
	return m["statsd_exporter_events_total"], err
}

// settle waits until the processed count stops moving.
func (p *proc) settle() (float64, error) {
	last, err := p.events()
	if err != nil {
		return 0, err
	}
	stable := 0
	deadline := time.Now().Add(20 * time.Second)
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

// sluiceDrops are the self-metrics in which Sluice reports lines it did
// not turn into events: datagrams the kernel dropped for a full socket
// buffer (each a datagram of -lines-per-packet lines), events dropped as
// errors, and read errors.
var sluiceDrops = []string{"sluice_statsd_udp_kernel_drops_total", "statsd_exporter_events_error_total", "sluice_statsd_read_errors_total"}

type step struct {
	rate     int
	sentRate float64
	sent     int
	done     float64
	loss     float64
	cpu      float64 // from the start of the sending to the end of processing (settled)
	cpuSend  float64 // from the start of the sending to 200 ms after it, before the polls that settle
	gen      genStats
	reported float64 // lines Sluice reports dropped (kernel drops x lines per datagram, errors)
}

// runStep sends traffic at rate for d to p and measures what p processed.
func runStep(p *proc, rate int, d time.Duration, t *traffic) (step, error) {
	before, err := p.settle()
	if err != nil {
		return step{}, err
	}
	drops0, _ := p.self(sluiceDrops...)
	cpu0, _ := cpuSeconds(p.cmd.Process.Pid)
	sent, el, gen, err := blast(p.udp, rate, d, t)
	if err != nil {
		return step{}, err
	}
	time.Sleep(200 * time.Millisecond)
	cpuSend, _ := cpuSeconds(p.cmd.Process.Pid)
	after, err := p.settle()
	if err != nil {
		return step{}, err
	}
	cpu1, _ := cpuSeconds(p.cmd.Process.Pid)
	drops1, _ := p.self(sluiceDrops...)
	s := step{rate: rate, sent: sent, sentRate: float64(sent) / el.Seconds(), done: after - before, cpu: cpu1 - cpu0, cpuSend: cpuSend - cpu0, gen: gen}
	s.loss = 1 - s.done/float64(sent)
	for _, n := range sluiceDrops {
		v := drops1[n] - drops0[n]
		if n == "sluice_statsd_udp_kernel_drops_total" {
			v *= float64(t.lpp)
		}
		s.reported += v
	}
	return s, nil
}

type summary struct{ med, lo, hi float64 }

func summarize(xs []float64) summary {
	if len(xs) == 0 {
		return summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return summary{m, s[0], s[len(s)-1]}
}

func (s summary) String() string { return fmt.Sprintf("%.0f (%.0f-%.0f)", s.med, s.lo, s.hi) }

// rateRuns measures the lossless rate and overload, -runs times, on fresh
// processes, the targets interleaved step by step.
func rateRuns(dir string, targets []target, shape string, t *traffic, rates []int, rate, overload bool) error {
	fmt.Printf("\n## %s: %d line(s) per datagram, %s per step\n\n", shape, t.lpp, *flagDuration)
	lossless := map[string][]float64{}
	cpuPerM := map[string][]float64{}
	processed := map[string][]float64{}
	unreported := map[string][]float64{}
	// neverLost lists, per target, the runs in which it lost at no step:
	// its lossless rate there is a lower bound (the grid's top, or what
	// the generator could send).
	neverLost := map[string][]int{}
	ratios := []float64{}
	overRatios := []float64{}
	for run := range *flagRuns {
		procs := make([]*proc, len(targets))
		for i, tg := range targets {
			p, err := start(dir, tg)
			if err != nil {
				for _, p := range procs[:i] {
					p.stop()
				}
				return err
			}
			procs[i] = p
		}
		best := make([]float64, len(procs))
		bestCPU := make([]float64, len(procs))
		if rate {
			lossy := make([]int, len(procs))
			lost := make([]bool, len(procs))
			for k, r := range rates {
				for j := range procs {
					i := j
					if (k+run)%2 == 1 { // alternate who goes first
						i = len(procs) - 1 - j
					}
					if lossy[i] >= 2 {
						continue
					}
					p := procs[i]
					s, err := runStep(p, r, *flagDuration, t)
					if err != nil {
						stopAll(procs)
						return err
					}
					fmt.Fprintf(os.Stderr, "  run %d %-16s asked %8d/s sent %9.0f/s loss %7.3f%% CPU %.2f s per 1M lines | generator %.2f us/datagram\n",
						run+1, p.t.name, r, s.sentRate, 100*s.loss, s.cpu/(s.done/1e6), 1e6*s.gen.cpu/float64(max(1, s.gen.dgrams)))
					if s.loss < 0.001 {
						if s.sentRate > best[i] {
							best[i], bestCPU[i] = s.sentRate, s.cpu/(s.done/1e6)
						}
						lossy[i] = 0
					} else {
						lossy[i]++
						lost[i] = true
					}
				}
			}
			for i, p := range procs {
				if !lost[i] {
					neverLost[p.t.name] = append(neverLost[p.t.name], run+1)
				}
				lossless[p.t.name] = append(lossless[p.t.name], best[i])
				cpuPerM[p.t.name] = append(cpuPerM[p.t.name], bestCPU[i])
			}
			if len(procs) == 2 && best[0] > 0 {
				ratios = append(ratios, best[1]/best[0])
			}
		}
		if overload {
			r := 0.0
			for _, b := range best {
				r = max(r, b)
			}
			if r == 0 {
				r = float64(rates[len(rates)/2])
			}
			r *= 2
			got := make([]float64, len(procs))
			for j := range procs {
				i := j
				if run%2 == 1 {
					i = len(procs) - 1 - j
				}
				p := procs[i]
				s, err := runStep(p, int(r), *flagOverload, t)
				if err != nil {
					stopAll(procs)
					return err
				}
				got[i] = s.done
				processed[p.t.name] = append(processed[p.t.name], s.done)
				line := fmt.Sprintf("  run %d overload %-16s asked %8.0f/s sent %9d processed %9.0f (%.1f%%)", run+1, p.t.name, r, s.sent, s.done, 100*s.done/float64(s.sent))
				if p.t.name == "sluice" {
					un := float64(s.sent) - s.done - s.reported
					unreported[p.t.name] = append(unreported[p.t.name], un)
					line += fmt.Sprintf(", reported dropped %.0f, unaccounted %.0f", s.reported, un)
				}
				fmt.Fprintln(os.Stderr, line)
			}
			if len(procs) == 2 && got[0] > 0 {
				overRatios = append(overRatios, got[1]/got[0])
			}
		}
		stopAll(procs)
	}
	if rate {
		fmt.Println("| lines/s lossless (<0.1% loss), median (min-max) | CPU s per 1M lines at that rate | runs |")
		for _, tg := range targets {
			c := summarize(cpuPerM[tg.name])
			fmt.Printf("| %s: %s | %.2f (%.2f-%.2f) | %v |\n", tg.name, summarize(lossless[tg.name]), c.med, c.lo, c.hi, round(lossless[tg.name]))
		}
		if len(ratios) > 0 {
			r := summarize(ratios)
			fmt.Printf("\nlossless rate sluice / statsd_exporter: %.2fx (%.2f-%.2f), per run %v\n", r.med, r.lo, r.hi, fmtRatios(ratios))
		}
		for _, tg := range targets {
			if runs := neverLost[tg.name]; len(runs) > 0 {
				fmt.Printf("%s lost nothing at any step in run(s) %v: there its lossless rate (and a ratio with it) is a lower bound, the grid's top or what the generator could send\n", tg.name, runs)
			}
		}
	}
	if overload {
		fmt.Printf("\noverload (%s at twice the run's higher lossless rate): lines processed, median (min-max)\n", *flagOverload)
		for _, tg := range targets {
			fmt.Printf("  %s: %s\n", tg.name, summarize(processed[tg.name]))
		}
		if u := unreported["sluice"]; len(u) > 0 {
			fmt.Printf("  sluice: lines neither processed nor reported dropped, per run %v\n", round(u))
		}
		if len(overRatios) > 0 {
			r := summarize(overRatios)
			fmt.Printf("  processed sluice / statsd_exporter: %.2fx (%.2f-%.2f)\n", r.med, r.lo, r.hi)
		}
	}
	return nil
}

func stopAll(ps []*proc) {
	for _, p := range ps {
		if p != nil {
			p.stop()
		}
	}
}

func round(xs []float64) []int64 {
	out := make([]int64, len(xs))
	for i, x := range xs {
		out[i] = int64(x)
	}
	return out
}

func fmtRatios(xs []float64) string {
	var b strings.Builder
	for i, x := range xs {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%.2f", x)
	}
	return b.String()
}

// seriesLine is the i-th distinct series of a memory shape.
func seriesLine(shape string, i int) (string, error) {
	switch shape {
	case "names":
		return "bench.name_" + strconv.Itoa(i) + ":1|c", nil
	case "tags":
		return "bench.tagged:1|c|#id:" + strconv.Itoa(i), nil
	}
	return "", fmt.Errorf("-mem-shapes: unknown shape %q (names, tags)", shape)
}

// sendTCP sends n lines over one TCP connection.
func sendTCP(addr string, n int, line func(int) string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(c, 64<<10)
	for i := range n {
		w.WriteString(line(i))
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		c.Close()
		return err
	}
	return c.Close()
}

// sendUDP sends n lines, 20 per datagram, paced at -mem-rate lines/s.
func sendUDP(addr string, n int, line func(int) string) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	t0 := time.Now()
	var b []byte
	for i, d := 0, 0; i < n; d++ {
		b = b[:0]
		for k := 0; k < 20 && i < n; k, i = k+1, i+1 {
			if k > 0 {
				b = append(b, '\n')
			}
			b = append(b, line(i)...)
		}
		if _, err := c.Write(b); err != nil {
			return err
		}
		if due := t0.Add(time.Duration(float64(d+1) * 20 / float64(*flagMemRate) * float64(time.Second))); time.Until(due) > 0 {
			time.Sleep(time.Until(due))
		}
	}
	return nil
}

// memoryRuns measures resident memory with -series distinct series, -runs
// times on fresh processes, both targets side by side: before any scrape,
// after the first scrape, and after a 15 s scrape loop (what a
// Prometheus scraping every 15 s leaves).
func memoryRuns(dir string, targets []target, shape string) error {
	if _, err := seriesLine(shape, 0); err != nil {
		return err
	}
	if *flagMemProto != "udp" && *flagMemProto != "tcp" {
		return fmt.Errorf("-mem-proto %q: want udp or tcp", *flagMemProto)
	}
	n := *flagSeries
	rnd := rand.New(rand.NewPCG(1, 2))
	warm := packets(6000, 1, func(i int) string { return gunicornLine(i, rnd) })
	type figs struct{ before, first, loop []float64 }
	per := map[string]*figs{}
	for _, t := range targets {
		per[t.name] = &figs{}
	}
	for run := range *flagRuns {
		procs := make([]*proc, len(targets))
		idle := make([]float64, len(targets))
		for i, tg := range targets {
			p, err := start(dir, tg)
			if err != nil {
				stopAll(procs)
				return err
			}
			procs[i] = p
			p.mirror = true
		}
		for i, p := range procs {
			// Warm up with the gunicorn traffic so both have their
			// steady-state structures, then measure what the series add.
			if _, _, _, err := blast(p.udp, 20000, 300*time.Millisecond, warm); err != nil {
				stopAll(procs)
				return err
			}
			if _, err := p.settle(); err != nil {
				stopAll(procs)
				return err
			}
			idle[i], _ = rssBytes(p.cmd.Process.Pid)
		}
		// Count the full scrapes with the series in them.
		for _, p := range procs {
			p.fullScrapes = 0
		}
		for _, p := range procs {
			before, _ := p.events()
			// Over UDP as clients send, or over TCP, which arrives
			// whatever the load of the machine (over UDP, a loaded
			// machine lost a third): a lost line fails the run below.
			send := sendUDP
			if *flagMemProto == "tcp" {
				send = sendTCP
			}
			if err := send(p.udp, n, func(i int) string { l, _ := seriesLine(shape, i); return l }); err != nil {
				stopAll(procs)
				return err
			}
			for deadline := time.Now().Add(time.Minute); ; {
				after, err := p.settle()
				if err != nil {
					stopAll(procs)
					return err
				}
				if after-before >= float64(n) {
					break
				}
				if time.Now().After(deadline) {
					stopAll(procs)
					return fmt.Errorf("%s: %v of %d series lines processed (over UDP on a loaded machine, try -mem-proto tcp)", p.t.name, after-before, n)
				}
			}
		}
		// From here on the bench reads nothing but RSS: the scrapes of
		// the series pages are the only ones, and each target has been
		// scraped in full as often as the other before every reading.
		loading, err := equalScrapes(procs)
		if err != nil {
			stopAll(procs)
			return err
		}
		time.Sleep(2 * time.Second)
		rss := func(p *proc, i int) float64 {
			v, _ := rssBytes(p.cmd.Process.Pid)
			return (v - idle[i]) / float64(n)
		}
		for i, p := range procs {
			per[p.t.name].before = append(per[p.t.name].before, rss(p, i))
		}
		for _, p := range procs {
			if err := p.scrapeSeries(); err != nil {
				stopAll(procs)
				return err
			}
		}
		time.Sleep(2 * time.Second)
		for i, p := range procs {
			per[p.t.name].first = append(per[p.t.name].first, rss(p, i))
		}
		// The scrape loop: both targets scraped at each tick; the figure
		// is the highest RSS seen just before a scrape and after it.
		peak := make([]float64, len(procs))
		for range *flagScrapes {
			time.Sleep(*flagInterval)
			for i, p := range procs {
				peak[i] = max(peak[i], rss(p, i))
				if err := p.scrapeSeries(); err != nil {
					stopAll(procs)
					return err
				}
			}
			time.Sleep(time.Second)
			for i, p := range procs {
				peak[i] = max(peak[i], rss(p, i))
			}
		}
		for i, p := range procs {
			if *flagScrapes > 0 {
				per[p.t.name].loop = append(per[p.t.name].loop, peak[i])
			}
			f := per[p.t.name]
			fmt.Fprintf(os.Stderr, "  memory %s run %d %-16s RSS per series: after loading (%d full scrapes) %.0f B, after one more %.0f B, scrape loop %.0f B (idle RSS %.1f MiB; %d full scrapes in all)\n",
				shape, run+1, p.t.name, loading, f.before[len(f.before)-1], f.first[len(f.first)-1], peak[i], idle[i]/(1<<20), p.fullScrapes)
		}
		stopAll(procs)
	}
	fmt.Printf("\n## memory: %d distinct series (%s, sent over %s), RSS added per series, bytes, median (min-max) of %d runs\n\n", n, shape, *flagMemProto, *flagRuns)
	fmt.Printf("| | after loading (the same full scrapes for both) | after one more full scrape | under a %s scrape loop (%d scrapes, peak) |\n|---|---|---|---|\n", *flagInterval, *flagScrapes)
	for _, t := range targets {
		f := per[t.name]
		fmt.Printf("| %s | %s | %s | %s |\n", t.name, summarize(f.before), summarize(f.first), summarize(f.loop))
	}
	if up, sl := per["statsd_exporter"], per["sluice"]; up != nil && sl != nil {
		fmt.Printf("\nsluice / statsd_exporter: after loading %.2fx, after one more scrape %.2fx, scrape loop %.2fx (ratios of medians)\n",
			summarize(sl.before).med/summarize(up.before).med, summarize(sl.first).med/summarize(up.first).med,
			summarize(sl.loop).med/summarize(up.loop).med)
	}
	return nil
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

// gunicornLines is the length of the prebuilt gunicorn traffic (a
// multiple of the 600-line cycle of gunicornLine), replayed round robin:
// some 7 MB, so building it takes no time from a step.
const gunicornLines = 120000

var gunicorn *traffic

// traffic is prebuilt datagrams of lpp lines each.
type traffic struct {
	dgrams [][]byte
	lpp    int
}

// packets builds datagrams of lpp newline-separated lines from the first
// n lines (rounded down to whole datagrams, at least one).
func packets(n, lpp int, line func(i int) string) *traffic {
	t := &traffic{lpp: lpp}
	i := 0
	for d := 0; d < max(1, n/lpp); d++ {
		var b []byte
		for k := range lpp {
			if k > 0 {
				b = append(b, '\n')
			}
			b = append(b, line(i)...)
			i++
		}
		t.dgrams = append(t.dgrams, b)
	}
	return t
}

// genStats is what the load generator itself cost over a step: its
// process's user+system CPU (getrusage), which includes the kernel's
// loopback delivery of each datagram up to the target's socket (on
// loopback that runs in the sender's context).
type genStats struct {
	cpu    float64 // seconds
	dgrams int
}

func rusageSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// rcvbufErrors reads the kernel's count of UDP datagrams dropped because a
// socket's receive buffer was full (all sockets of the network namespace).
func rcvbufErrors() float64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0
	}
	var hdr []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "Udp: ") {
			continue
		}
		f := strings.Fields(l)
		if hdr == nil {
			hdr = f
			continue
		}
		for i, h := range hdr {
			if h == "RcvbufErrors" && i < len(f) {
				v, _ := strconv.ParseFloat(f[i], 64)
				return v
			}
		}
	}
	return 0
}

// blast sends t's datagrams, round robin from the first, at rate lines/s
// for d, and returns the lines sent. Each of -senders goroutines has its
// own connected socket and an equal share of the rate; it sleeps until a
// whole batch (-batch datagrams) is due and hands it to the kernel in one
// sendmmsg (ipv4.PacketConn.WriteBatch), so the sender costs little more
// than the kernel's own per-datagram work.
func blast(addr string, rate int, d time.Duration, t *traffic) (int, time.Duration, genStats, error) {
	senders, bsz := *flagSenders, *flagBatch
	share := float64(rate) / float64(t.lpp) / float64(senders) // datagrams/s per sender
	conns := make([]*net.UDPConn, senders)
	for i := range conns {
		c, err := net.Dial("udp", addr)
		if err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			return 0, 0, genStats{}, err
		}
		conns[i] = c.(*net.UDPConn)
	}
	sent := make([]int, senders)
	errs := make([]error, senders)
	var wg sync.WaitGroup
	cpu0 := rusageSeconds()
	t0 := time.Now()
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conns[s].Close()
			pc := ipv4.NewPacketConn(conns[s])
			msgs := make([]ipv4.Message, bsz)
			pos := s * len(t.dgrams) / senders
			n := 0
			for {
				el := time.Since(t0)
				if el >= d {
					break
				}
				if due := int(share * el.Seconds()); due-n < bsz {
					next := time.Duration(float64(n+bsz) / share * float64(time.Second))
					time.Sleep(min(next, d) - el)
					continue
				}
				for k := range msgs {
					msgs[k].Buffers = t.dgrams[pos : pos+1]
					if pos++; pos == len(t.dgrams) {
						pos = 0
					}
				}
				for b := msgs; len(b) > 0; {
					m, err := pc.WriteBatch(b, 0)
					if err != nil {
						errs[s] = err
						sent[s] = n
						return
					}
					b, n = b[m:], n+m
				}
			}
			sent[s] = n
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	g := genStats{cpu: rusageSeconds() - cpu0}
	for _, n := range sent {
		g.dgrams += n
	}
	return g.dgrams * t.lpp, el, g, errors.Join(errs...)
}

// cpuRuns measures the CPU each target spends per line at fixed rates
// (-cpu-rates), the same for both, -runs times on fresh processes, the
// targets interleaved step by step: the rates a sidecar sees, where a
// target is far from its limit and what a datagram costs is wake-ups,
// hand-offs and timers as much as parsing. CPU is counted from the start
// of the sending to 200 ms after its end (before the polls that wait for
// the count to settle, which scrape statsd_exporter's whole page).
func cpuRuns(dir string, targets []target) error {
	type fixed struct{ rate, lpp int }
	var steps []fixed
	for _, f := range strings.Split(*flagCPURates, ",") {
		r, l, ok := strings.Cut(strings.TrimSpace(f), "x")
		rate, err1 := strconv.Atoi(r)
		lpp, err2 := strconv.Atoi(l)
		if !ok || err1 != nil || err2 != nil || rate < 1 || lpp < 1 {
			return fmt.Errorf("-cpu-rates: %q is not lines/s x lines per datagram (e.g. 5000x1)", f)
		}
		steps = append(steps, fixed{rate, lpp})
	}
	if *flagCPUBatch < 1 {
		return errors.New("-cpu-batch must be at least 1")
	}
	defer func(b int) { *flagBatch = b }(*flagBatch)
	*flagBatch = *flagCPUBatch
	rnd := rand.New(rand.NewPCG(1, 2))
	traffic := map[int]*traffic{}
	for _, s := range steps {
		if traffic[s.lpp] == nil {
			traffic[s.lpp] = packets(gunicornLines, s.lpp, func(i int) string { return gunicornLine(i, rnd) })
		}
	}
	fmt.Printf("\n## cpu: CPU s per 1M lines at fixed rates, %s per step, %d datagram(s) per sendmmsg, median (min-max) of %d runs\n\n", *flagCPUStep, *flagCPUBatch, *flagRuns)
	per := map[fixed]map[string][]float64{}
	ratios := map[fixed][]float64{}
	for run := range *flagRuns {
		procs := make([]*proc, len(targets))
		for i, tg := range targets {
			p, err := start(dir, tg)
			if err != nil {
				stopAll(procs)
				return err
			}
			procs[i] = p
		}
		for k, f := range steps {
			if per[f] == nil {
				per[f] = map[string][]float64{}
			}
			got := make([]float64, len(procs))
			for j := range procs {
				i := j
				if (k+run)%2 == 1 {
					i = len(procs) - 1 - j
				}
				p := procs[i]
				s, err := runStep(p, f.rate, *flagCPUStep, traffic[f.lpp])
				if err != nil {
					stopAll(procs)
					return err
				}
				got[i] = s.cpuSend / (s.done / 1e6)
				per[f][p.t.name] = append(per[f][p.t.name], got[i])
				fmt.Fprintf(os.Stderr, "  cpu run %d %-16s %7d lines/s x %d per datagram: sent %9.0f/s loss %6.3f%% CPU %.2f s per 1M lines\n",
					run+1, p.t.name, f.rate, f.lpp, s.sentRate, 100*s.loss, got[i])
			}
			if len(procs) == 2 && got[0] > 0 {
				ratios[f] = append(ratios[f], got[1]/got[0])
			}
		}
		stopAll(procs)
	}
	fmt.Print("| lines/s x lines per datagram |")
	for _, tg := range targets {
		fmt.Printf(" %s |", tg.name)
	}
	fmt.Println(" ratio sluice / statsd_exporter (per run) |")
	for _, f := range steps {
		fmt.Printf("| %d x %d |", f.rate, f.lpp)
		for _, tg := range targets {
			c := summarize(per[f][tg.name])
			fmt.Printf(" %.2f (%.2f-%.2f) |", c.med, c.lo, c.hi)
		}
		if r := ratios[f]; len(r) > 0 {
			c := summarize(r)
			fmt.Printf(" %.2fx (%s) |\n", c.med, fmtRatios(r))
		} else {
			fmt.Println(" |")
		}
	}
	return nil
}
