// Command churn measures statsd_receiver's memory under TCP connection
// churn (issue 7, item 4), end to end on loopback:
//
//	go run ./bench/statsd/churn -runs 3
//
// It builds ./cmd/sluice, and for each scenario and run starts a fresh
// `sluice run` with a statsd_receiver (TCP only) and a metrics_sink,
// scrapes the sink and the agent's /metrics in a loop while the scenario
// runs, waits until the receiver has counted every line sent (or a
// deadline passes), and reports the peak resident size of the sluice
// process (VmHWM in /proc/PID/status) and whether every line was counted:
//
//   - short: two clients open short connections, each writing 1000 lines
//     and closing, for -duration (6 s);
//   - partial: 8000 connections (-partial-conns), at most -partial-parallel
//     at once, each writing one 65,000-byte line without a newline, then
//     closing (the receiver parses an unterminated last line, as
//     statsd_exporter does, so each is one counted line).
//
// Every step is bounded in time; all traffic goes to 127.0.0.1.
package main

import (
	"bufio"
	"context"
	"errors"
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
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	flagRuns      = flag.Int("runs", 3, "runs of each scenario, each on a fresh process")
	flagScenarios = flag.String("scenarios", "short,partial", "scenarios to run")
	flagDuration  = flag.Duration("duration", 6*time.Second, "short: how long the clients churn")
	flagClients   = flag.Int("clients", 2, "short: clients, each opening one connection after another")
	flagLines     = flag.Int("lines", 1000, "short: lines per connection")
	flagConns     = flag.Int("partial-conns", 8000, "partial: connections")
	flagParallel  = flag.Int("partial-parallel", 1000, "partial: connections open at once, at most")
	flagLineBytes = flag.Int("partial-bytes", 65000, "partial: bytes each connection sends (one line, no newline)")
	flagExtra     = flag.String("receiver-args", "", "extra statsd_receiver arguments (HCL), e.g. max_connections = 4096")
	flagWait      = flag.Duration("count-timeout", 2*time.Minute, "how long to wait for every line to be counted")
)

type result struct {
	conns, sent   int64
	counted       float64 // statsd_exporter_lines_total
	series        float64 // the scenario's counter
	hwm, rssAfter int64   // kB
	elapsed       time.Duration
	complete      bool
}

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "churn:", err)
		os.Exit(1)
	}
}

func run() error {
	dir, err := os.MkdirTemp("", "sluice-churn")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "sluice")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sluice")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building sluice: %w", err)
	}
	for _, sc := range strings.Split(*flagScenarios, ",") {
		var rs []result
		for i := range *flagRuns {
			r, err := once(bin, dir, sc)
			if err != nil {
				return fmt.Errorf("%s run %d: %w", sc, i+1, err)
			}
			fmt.Printf("%-7s run %d: %6d connections, %8d lines sent, %8.0f counted (lines_total), counter %8.0f, complete=%v, peak RSS (VmHWM) %6.1f MiB, RSS after %6.1f MiB, %v\n",
				sc, i+1, r.conns, r.sent, r.counted, r.series, r.complete, float64(r.hwm)/1024, float64(r.rssAfter)/1024, r.elapsed.Round(100*time.Millisecond))
			rs = append(rs, r)
		}
		hwm := make([]float64, len(rs))
		all := true
		for i, r := range rs {
			hwm[i] = float64(r.hwm) / 1024
			all = all && r.complete
		}
		slices.Sort(hwm)
		fmt.Printf("%-7s peak RSS over %d runs: min %.1f, median %.1f, max %.1f MiB; every line counted in every run: %v\n",
			sc, len(rs), hwm[0], hwm[len(hwm)/2], hwm[len(hwm)-1], all)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func once(bin, dir, scenario string) (result, error) {
	var res result
	statsdPort, err := freePort()
	if err != nil {
		return res, err
	}
	httpPort, err := freePort()
	if err != nil {
		return res, err
	}
	cfg := filepath.Join(dir, "churn.hcl")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`statsd_receiver "app" {
  listen_udp = ""
  listen_tcp = "127.0.0.1:%d"
  %s
}

metrics_sink "default" {
  inputs = [statsd_receiver.app.metrics]
}
`, statsdPort, *flagExtra)), 0o644); err != nil {
		return res, err
	}
	cmd := exec.Command(bin, "run", cfg, "--server.http.listen-addr", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--storage.path", filepath.Join(dir, "data"), "--log.level", "warn")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return res, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	statsd := fmt.Sprintf("127.0.0.1:%d", statsdPort)
	// Wait for the receiver.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := scrape(base+"/metrics", "statsd_exporter_lines_total"); err == nil {
			if c, err := net.Dial("tcp", statsd); err == nil {
				c.Close()
				break
			}
		}
		if time.Now().After(deadline) {
			return res, errors.New("sluice did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Scrape in a loop, as Prometheus would, while the scenario runs.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var scrapes sync.WaitGroup
	scrapes.Add(1)
	go func() {
		defer scrapes.Done()
		for ctx.Err() == nil {
			scrape(base+"/metrics/default", "")
			scrape(base+"/metrics", "")
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	before, _ := scrape(base+"/metrics", "statsd_exporter_lines_total")
	start := time.Now()
	var counter string
	switch scenario {
	case "short":
		counter = "churn_short"
		res.conns, res.sent, err = short(statsd)
	case "partial":
		counter = "churn_partial"
		res.conns, res.sent, err = partial(statsd)
	default:
		err = fmt.Errorf("unknown scenario %q", scenario)
	}
	if err != nil {
		return res, err
	}
	deadline = time.Now().Add(*flagWait)
	for {
		v, err := scrape(base+"/metrics", "statsd_exporter_lines_total")
		if err == nil {
			res.counted = v - before
		}
		if res.counted >= float64(res.sent) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	res.elapsed = time.Since(start)
	res.series, _ = scrape(base+"/metrics/default", counter)
	res.complete = res.counted == float64(res.sent) && res.series == float64(res.sent)
	stop()
	scrapes.Wait()
	res.hwm, res.rssAfter = procStatus(cmd.Process.Pid, "VmHWM:"), procStatus(cmd.Process.Pid, "VmRSS:")
	return res, nil
}

// short: clients each open connection after connection, writing -lines
// lines and closing, for -duration.
func short(addr string) (conns, sent int64, err error) {
	payload := []byte(strings.Repeat("churn.short:1|c\n", *flagLines))
	var nc, ns atomic.Int64
	var firstErr atomic.Value
	end := time.Now().Add(*flagDuration)
	var wg sync.WaitGroup
	for range *flagClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				c, err := net.DialTimeout("tcp", addr, 30*time.Second)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				c.SetWriteDeadline(time.Now().Add(30 * time.Second))
				_, err = c.Write(payload)
				c.Close()
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				nc.Add(1)
				ns.Add(int64(*flagLines))
			}
		}()
	}
	wg.Wait()
	if e, ok := firstErr.Load().(error); ok {
		return nc.Load(), ns.Load(), e
	}
	return nc.Load(), ns.Load(), nil
}

// partial: connections each writing one unterminated line of
// -partial-bytes, then closing.
func partial(addr string) (conns, sent int64, err error) {
	prefix := "churn.partial:1|c|#pad:"
	payload := []byte(prefix + strings.Repeat("x", *flagLineBytes-len(prefix)))
	sem := make(chan struct{}, *flagParallel)
	var nc atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range *flagConns {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", addr, 60*time.Second)
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			c.SetWriteDeadline(time.Now().Add(60 * time.Second))
			_, err = c.Write(payload)
			c.Close()
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			nc.Add(1)
		}()
	}
	wg.Wait()
	if e, ok := firstErr.Load().(error); ok {
		return nc.Load(), nc.Load(), e
	}
	return nc.Load(), nc.Load(), nil
}

// scrape returns the value of the first sample of family name (any
// labels); with name "", it only reads the page.
func scrape(url, name string) (float64, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return 0, fmt.Errorf("%s: %s", url, resp.Status)
	}
	if name == "" {
		_, err := io.Copy(io.Discard, resp.Body)
		return 0, err
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, name) || (len(l) > len(name) && l[len(name)] != '{' && l[len(name)] != ' ') {
			continue
		}
		f := strings.Fields(l)
		return strconv.ParseFloat(f[len(f)-1], 64)
	}
	return 0, fmt.Errorf("%s: no %s", url, name)
}

// procStatus reads a kB figure from /proc/PID/status.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field) {
			f := strings.Fields(l)
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return -1
}
