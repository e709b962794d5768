// Command remotewrite compares remote_write with Prometheus 2.42 in agent
// mode (--enable-feature=agent), in one run, on one machine:
//
//   - a "target" sluice (statsd_receiver + metrics_sink) holds N gauge
//     series, fed once over statsd;
//   - Prometheus in agent mode scrapes that sink every interval and
//     remote-writes to a counting receiver in this process;
//   - a second sluice holds the same N series and remote-writes them with
//     remote_write (wal = true, as the agent always has a WAL) to the same
//     receiver, at the same interval.
//
// The receiver decodes every request (snappy + prompb.WriteRequest) and
// counts samples by User-Agent. Over each measurement window the bench reads
// utime+stime of both processes from /proc/PID/stat and their RSS, and
// reports CPU seconds per million samples sent, peak RSS, and the ratios.
// The two senders run at the same time in each round, so a loaded machine
// loads both. Run it with bench/remotewrite/run.sh.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

var (
	series   = flag.Int("series", 20000, "gauge series held by each sender")
	interval = flag.Duration("interval", time.Second, "scrape interval of the agent and scrape_interval of remote_write")
	window   = flag.Duration("window", 60*time.Second, "length of each measurement window")
	rounds   = flag.Int("rounds", 3, "measurement windows")
	promBin  = flag.String("prometheus", "prometheus", "Prometheus 2.42 binary")
)

// receiver counts the samples it accepts, by sender.
type receiver struct {
	mu     sync.Mutex
	counts map[string]int64
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(400)
		return
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		w.WriteHeader(400)
		return
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(raw); err != nil {
		w.WriteHeader(400)
		return
	}
	n := 0
	for _, ts := range wr.Timeseries {
		n += len(ts.Samples) + len(ts.Histograms)
	}
	who := "prometheus"
	if strings.HasPrefix(req.UserAgent(), "sluice/") {
		who = "sluice"
	}
	r.mu.Lock()
	r.counts[who] += int64(n)
	r.mu.Unlock()
	w.WriteHeader(204)
}

func (r *receiver) count(who string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[who]
}

func freeAddr(network string) string {
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().String()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type proc struct {
	name string
	cmd  *exec.Cmd
}

func start(name, bin string, args ...string) *proc {
	cmd := exec.Command(bin, args...)
	logf, err := os.Create(filepath.Join(os.TempDir(), "bench-remotewrite-"+name+".log"))
	if err != nil {
		log.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	return &proc{name: name, cmd: cmd}
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
	}
}

// cpu is utime+stime of the process, in seconds.
func (p *proc) cpu() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		log.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// rss is the resident set size and its peak, in MiB.
func (p *proc) rss() (cur, peak float64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(fields[1], 64)
		switch fields[0] {
		case "VmRSS:":
			cur = kb / 1024
		case "VmHWM:":
			peak = kb / 1024
		}
	}
	return cur, peak
}

func feed(addr string, n int) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "bench.gauge_%d:%d|g|#shard:s%d\n", i/100, i, i%100)
		if b.Len() > 1200 {
			_, _ = conn.Write([]byte(b.String()))
			b.Reset()
			time.Sleep(50 * time.Microsecond)
		}
	}
	_, _ = conn.Write([]byte(b.String()))
}

func countSeries(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for s.Scan() {
		if strings.HasPrefix(s.Text(), "bench_gauge_") {
			n++
		}
	}
	return n
}

func main() {
	flag.Parse()
	log.SetFlags(0)
	sluiceBin := flag.Arg(0)
	if sluiceBin == "" {
		log.Fatal("usage: remotewrite [flags] SLUICE_BINARY")
	}
	dir, err := os.MkdirTemp("", "bench-remotewrite")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	rc := &receiver{counts: map[string]int64{}}
	recvAddr := freeAddr("tcp")
	go func() { log.Fatal(http.ListenAndServe(recvAddr, rc)) }()
	recvURL := "http://" + recvAddr + "/api/v1/write"

	// The target the agent scrapes.
	targetStatsd, targetHTTP := freeAddr("udp"), freeAddr("tcp")
	writeFile(filepath.Join(dir, "target.hcl"), fmt.Sprintf(`
statsd_receiver "bench" {
  listen_udp = %q
}
metrics_sink "bench" {
  inputs      = [statsd_receiver.bench.metrics]
  path        = "/metrics/bench"
  openmetrics = false
}
`, targetStatsd))
	target := start("target", sluiceBin, "run", "--server.http.listen-addr", targetHTTP, "--storage.path", filepath.Join(dir, "target-data"), filepath.Join(dir, "target.hcl"))
	defer target.stop()

	// The remote-writing sluice.
	rwStatsd, rwHTTP := freeAddr("udp"), freeAddr("tcp")
	writeFile(filepath.Join(dir, "rw.hcl"), fmt.Sprintf(`
statsd_receiver "bench" {
  listen_udp = %q
}
metrics_sink "check" {
  inputs      = [statsd_receiver.bench.metrics]
  path        = "/metrics/check"
  openmetrics = false
}
remote_write "bench" {
  inputs          = [statsd_receiver.bench.metrics]
  scrape_interval = %q
  wal             = true
  endpoint {
    url = %q
  }
}
`, rwStatsd, interval.String(), recvURL))
	sluice := start("sluice", sluiceBin, "run", "--server.http.listen-addr", rwHTTP, "--storage.path", filepath.Join(dir, "rw-data"), filepath.Join(dir, "rw.hcl"))
	defer sluice.stop()

	writeFile(filepath.Join(dir, "prometheus.yml"), fmt.Sprintf(`global:
  scrape_interval: %s
  scrape_timeout: %s
scrape_configs:
  - job_name: bench
    metrics_path: /metrics/bench
    static_configs:
      - targets: [%q]
remote_write:
  - url: %q
`, interval, interval, targetHTTP, recvURL))
	prom := start("prometheus", *promBin, "--enable-feature=agent", "--config.file", filepath.Join(dir, "prometheus.yml"),
		"--storage.agent.path", filepath.Join(dir, "agent"), "--web.listen-address", freeAddr("tcp"))
	defer prom.stop()

	// Feed both until each holds every series.
	deadline := time.Now().Add(60 * time.Second)
	for {
		a, b := countSeries("http://"+targetHTTP+"/metrics/bench"), countSeries("http://"+rwHTTP+"/metrics/check")
		if a == *series && b == *series {
			break
		}
		if time.Now().After(deadline) {
			log.Fatalf("series: target %d, sluice %d, want %d", a, b, *series)
		}
		if a < *series {
			feed(targetStatsd, *series)
		}
		if b < *series {
			feed(rwStatsd, *series)
		}
		time.Sleep(500 * time.Millisecond)
	}
	log.Printf("%d series each; warming up for 15s", *series)
	time.Sleep(15 * time.Second)
	if rc.count("prometheus") == 0 || rc.count("sluice") == 0 {
		log.Fatalf("receiver counts after warm-up: %v", rc.counts)
	}

	type result struct{ sluiceCPU, promCPU, ratio, systemRatio float64 }
	var results []result
	fmt.Printf("%d series, interval %s, window %s, %d rounds\n", *series, *interval, *window, *rounds)
	fmt.Printf("round  sluice_cpu_s/Msamples  prom_agent_cpu_s/Msamples  ratio  target_cpu_s/Msamples  ratio_vs_agent+target  sluice_Msamples  prom_Msamples\n")
	for i := range *rounds {
		c0s, c0p, c0t := sluice.cpu(), prom.cpu(), target.cpu()
		n0s, n0p := rc.count("sluice"), rc.count("prometheus")
		time.Sleep(*window)
		c1s, c1p, c1t := sluice.cpu(), prom.cpu(), target.cpu()
		n1s, n1p := rc.count("sluice"), rc.count("prometheus")
		ms, mp := float64(n1s-n0s)/1e6, float64(n1p-n0p)/1e6
		r := result{sluiceCPU: (c1s - c0s) / ms, promCPU: (c1p - c0p) / mp}
		r.ratio = r.sluiceCPU / r.promCPU
		targetCPU := (c1t - c0t) / mp
		r.systemRatio = r.sluiceCPU / (r.promCPU + targetCPU)
		results = append(results, r)
		fmt.Printf("%5d  %21.3f  %25.3f  %5.2f  %21.3f  %21.2f  %15.2f  %13.2f\n", i+1, r.sluiceCPU, r.promCPU, r.ratio, targetCPU, r.systemRatio, ms, mp)
	}
	ratios := make([]float64, len(results))
	for i, r := range results {
		ratios[i] = r.ratio
	}
	sort.Float64s(ratios)
	fmt.Printf("CPU ratio sluice/agent: median %.2f, min %.2f, max %.2f\n", ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1])
	for i, r := range results {
		ratios[i] = r.systemRatio
	}
	sort.Float64s(ratios)
	fmt.Printf("CPU ratio sluice/(agent + the target serving its scrapes): median %.2f, min %.2f, max %.2f\n", ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1])
	rs, hs := sluice.rss()
	rp, hp := prom.rss()
	fmt.Printf("RSS MiB: sluice %.1f (peak %.1f), prometheus agent %.1f (peak %.1f), ratio %.2f (peak %.2f)\n", rs, hs, rp, hp, rs/rp, hs/hp)
	fmt.Println("(the sluice process also runs a statsd_receiver and a metrics_sink holding the series, as the target does for the agent)")
}

func writeFile(path, content string) {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		log.Fatal(err)
	}
}
