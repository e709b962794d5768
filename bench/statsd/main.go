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
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
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
	cpu      float64 // target's CPU, seconds
	gen      genStats
	rcvbuf   float64 // datagrams the kernel dropped for a full receive buffer (all UDP sockets)
}

type result struct {
	steps         []stepResult
	lossless      float64   // highest achieved rate with loss < 0.1%
	cpuPerMillion float64   // at the lossless step
	genPerDgram   float64   // generator CPU per datagram at the lossless step, microseconds
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
	flagSenders  = flag.Int("senders", 1, "sender goroutines, each with its own connected UDP socket and an equal share of the rate")
	flagBatch    = flag.Int("batch", 64, "datagrams per sendmmsg call; pacing is per batch")
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
	if *flagMemRuns < 0 || *flagLPP < 1 || *flagSenders < 1 || *flagBatch < 1 {
		return errors.New("-mem-runs must be at least 0; -lines-per-packet, -senders and -batch at least 1")
	}
	// The traffic is built once, from a fixed seed, so both targets get the
	// same bytes, and the sender only hands ready datagrams to the kernel.
	rnd := rand.New(rand.NewPCG(1, 2))
	gunicorn = packets(gunicornLines, *flagLPP, func(i int) string { return gunicornLine(i, rnd) })
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

func measure(t target, rates []int) (*result, error) {
	res := &result{}
	fmt.Fprintf(os.Stderr, "== %s\n", t.name)
	p, err := start(t)
	if err != nil {
		return nil, err
	}
	lossy := 0
	for _, rate := range rates {
		before, err := p.settle()
		if err != nil {
			p.stop()
			return nil, err
		}
		cpu0, _ := cpuSeconds(p.cmd.Process.Pid)
		drops0 := rcvbufErrors()
		sent, el, gen, err := blast(p.udp, rate, *flagDuration, gunicorn)
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
		s := stepResult{rate: rate, sent: sent, sentRate: float64(sent) / el.Seconds(), done: after - before, cpu: cpu1 - cpu0,
			gen: gen, rcvbuf: rcvbufErrors() - drops0}
		s.loss = 1 - s.done/float64(sent)
		res.steps = append(res.steps, s)
		fmt.Fprintf(os.Stderr, "  %7d lines/s asked, %9.0f sent/s, loss %6.3f%% (%.0f dropped by the kernel), %.2f CPU s per 1M lines; generator %.2f us/datagram, %.2f CPUs\n",
			rate, s.sentRate, 100*s.loss, s.rcvbuf, s.cpu/(s.done/1e6), 1e6*gen.cpu/float64(max(1, gen.dgrams)), gen.cpu/el.Seconds())
		if s.loss < 0.001 {
			if s.sentRate > res.lossless {
				res.lossless = s.sentRate
				res.cpuPerMillion = s.cpu / (s.done / 1e6)
				res.genPerDgram = 1e6 * s.gen.cpu / float64(max(1, s.gen.dgrams))
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
		idle, after, err := memoryOnce(t)
		if err != nil {
			return nil, err
		}
		rss, added = append(rss, after), append(added, after-idle)
	}
	if len(rss) > 0 {
		res.rss, res.added = median(rss), median(added)
	}
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
func memoryOnce(t target) (idle, rss float64, err error) {
	p, err := start(t)
	if err != nil {
		return 0, 0, err
	}
	defer p.stop()
	// Warm up with the gunicorn traffic so both have their steady-state
	// structures, then measure what the distinct series add.
	if _, _, _, err := blast(p.udp, 20000, 500*time.Millisecond, gunicorn); err != nil {
		return 0, 0, err
	}
	before, err := p.settle()
	if err != nil {
		return 0, 0, err
	}
	idle, _ = rssBytes(p.cmd.Process.Pid)
	n := *flagSeries
	series := packets(n, *flagLPP, func(i int) string {
		return "bench.series_" + strconv.Itoa(i%100) + ":1|c|#id:" + strconv.Itoa(i/100)
	})
	sent, _, _, err := blast(p.udp, 25000, time.Duration(float64(n)/25000*float64(time.Second))+50*time.Millisecond, series)
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
	fmt.Fprintf(w, "\n%s/%s, %d CPUs, %d line(s) per datagram, %s per step, read buffer %d bytes; generator: %d sender(s), %d datagrams per sendmmsg\n\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), *flagLPP, *flagDuration, *flagRcvBuf, *flagSenders, *flagBatch)
	fmt.Fprintf(w, "| | lossless rate (lines/s, <0.1%% loss) | CPU s per 1M lines | RSS after %d series (median of %d) | RSS added per series | generator us per datagram |\n", *flagSeries, *flagMemRuns)
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	names := []string{"statsd_exporter", "sluice"}
	for _, n := range names {
		r := results[n]
		if r == nil {
			continue
		}
		mem := "- | -"
		if len(r.rssRuns) > 0 {
			mem = fmt.Sprintf("%.1f MiB | %.0f B", r.rss/(1<<20), r.added/float64(*flagSeries))
		}
		fmt.Fprintf(w, "| %s | %.0f | %.2f | %s | %.2f |\n", n, r.lossless, r.cpuPerMillion, mem, r.genPerDgram)
	}
	up, sl := results["statsd_exporter"], results["sluice"]
	if up != nil && sl != nil && up.lossless > 0 && up.cpuPerMillion > 0 {
		fmt.Fprintf(w, "\nsluice / statsd_exporter: lossless rate %.2fx, CPU per line %.2fx", sl.lossless/up.lossless, sl.cpuPerMillion/up.cpuPerMillion)
		if up.rss > 0 && up.added > 0 {
			fmt.Fprintf(w, ", RSS %.2fx, RSS per series %.2fx", sl.rss/up.rss, sl.added/up.added)
		}
		fmt.Fprintln(w)
	}
	if *flagMemRuns > 0 {
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
	}
	fmt.Fprintln(w, "\nAll steps (target CPU; generator CPU incl. the kernel's loopback delivery; datagrams the kernel dropped for a full receive buffer):")
	for _, n := range names {
		r := results[n]
		if r == nil {
			continue
		}
		for _, s := range r.steps {
			fmt.Fprintf(w, "  %-16s asked %7d/s sent %9.0f/s processed %9.0f of %9d loss %7.3f%% CPU %.2fs | generator %.2fs, %.2f us/datagram | rcvbuf drops %.0f\n",
				n, s.rate, s.sentRate, s.done, s.sent, 100*s.loss, s.cpu, s.gen.cpu, 1e6*s.gen.cpu/float64(max(1, s.gen.dgrams)), s.rcvbuf)
		}
	}
}
