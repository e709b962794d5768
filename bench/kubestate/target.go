package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/bench/internal/ports"
	"github.com/sluicehq/sluice/bench/internal/proc"
)

// match selects the lines of a series page of one metric that carry every
// one of labels (each `name="value"`) and the value.
type match struct {
	metric string
	labels []string
	value  string
}

// count is the number of lines of page m matches.
func (m match) count(page string) int {
	n := 0
	prefix := m.metric + "{"
	for line := range strings.Lines(page) {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		line = strings.TrimSuffix(line, "\n")
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 || line[sp+1:] != m.value {
			continue
		}
		ok := true
		for _, l := range m.labels {
			if !hasLabel(line[:sp], l) {
				ok = false
				break
			}
		}
		if ok {
			n++
		}
	}
	return n
}

// hasLabel tells whether series (`name{a="x",b="y"}`) has the label pair l
// (`b="y"`), not merely a pair ending in it (`namespace=` ends in `name=`).
func hasLabel(series, l string) bool {
	for i := 0; ; {
		j := strings.Index(series[i:], l)
		if j < 0 {
			return false
		}
		j += i
		if j > 0 && (series[j-1] == '{' || series[j-1] == ',') {
			return true
		}
		i = j + 1
	}
}

// series counts the samples of a page (lines that are not comments).
func series(page string) int {
	n := 0
	for line := range strings.Lines(page) {
		if line != "\n" && !strings.HasPrefix(line, "#") {
			n++
		}
	}
	return n
}

// target is one watcher under measurement: how it is started and how its
// page shows the bench's objects.
type target struct {
	name string
	// args are its arguments given the kubeconfig, the series page's
	// address and a second port of its own (the agent's server, KSM's
	// telemetry).
	args func(dir, kubeconfig, web, other string) ([]string, error)
	// path of the series page.
	path string
	// deployments and pods match one series per object in its final,
	// available state; unavailable(i) the series that shows deployment i
	// lost its ready replicas.
	deployments, pods match
	unavailable       func(i int) match
}

// sluiceTarget watches the Deployments and Pods of namespace ns, or of
// every namespace when ns is "".
func sluiceTarget(ns string) target {
	return target{
		name: "sluice",
		path: "/metrics",
		args: func(dir, kubeconfig, web, other string) ([]string, error) {
			scope := ""
			if ns != "" {
				scope = fmt.Sprintf("\n  namespaces = [%q]", ns)
			}
			cfg := fmt.Sprintf(`kubernetes_status_source "bench" {
  kubeconfig = %q%s
  watch "objects" {
    kinds = ["Deployment", "Pod"]
  }
}
metrics_sink "default" {
  inputs = [kubernetes_status_source.bench.metrics]
  listen = %q
}
`, kubeconfig, scope, web)
			path := filepath.Join(dir, "sluice.hcl")
			if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
				return nil, err
			}
			return []string{"run", "--server.http.listen-addr=" + other, "--storage.path=" + filepath.Join(dir, "data"),
				"--log.level=error", path}, nil
		},
		deployments: match{metric: "sluice_workload_status", labels: []string{`kind="Deployment"`}, value: "3"},
		pods:        match{metric: "sluice_workload_status", labels: []string{`kind="Pod"`}, value: "3"},
		unavailable: func(i int) match {
			return match{metric: "sluice_workload_status", labels: []string{`kind="Deployment"`, `name="` + appName(i) + `"`}, value: "1"}
		},
	}
}

// ksmTarget is kube-state-metrics limited to Deployments and Pods, of
// namespace ns, or of every namespace when ns is "".
func ksmTarget(ns string) target {
	return target{
		name: "kube-state-metrics",
		path: "/metrics",
		args: func(dir, kubeconfig, web, other string) ([]string, error) {
			host, port, err := splitAddr(web)
			if err != nil {
				return nil, err
			}
			_, tport, err := splitAddr(other)
			if err != nil {
				return nil, err
			}
			args := []string{"--kubeconfig=" + kubeconfig, "--resources=deployments,pods",
				"--host=" + host, "--port=" + port, "--telemetry-host=" + host, "--telemetry-port=" + tport}
			if ns != "" {
				args = append(args, "--namespaces="+ns)
			}
			return args, nil
		},
		deployments: match{metric: "kube_deployment_status_condition", labels: []string{`condition="Available"`, `status="true"`}, value: "1"},
		pods:        match{metric: "kube_pod_status_ready", labels: []string{`condition="true"`}, value: "1"},
		unavailable: func(i int) match {
			return match{metric: "kube_deployment_status_condition", labels: []string{`deployment="` + appName(i) + `"`,
				`condition="Available"`, `status="false"`}, value: "1"}
		},
	}
}

func splitAddr(addr string) (host, port string, err error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", "", fmt.Errorf("address %q without a port", addr)
	}
	return addr[:i], addr[i+1:], nil
}

// process is a started target.
type process struct {
	target
	cmd  *exec.Cmd
	url  string
	log  string
	done chan struct{}
}

// start starts t with its output in dir/NAME.log.
func start(dir, bin, kubeconfig string, t target) (*process, error) {
	addrs, err := ports.Free(2)
	if err != nil {
		return nil, err
	}
	args, err := t.args(dir, kubeconfig, addrs[0], addrs[1])
	if err != nil {
		return nil, err
	}
	p := &process{target: t, url: "http://" + addrs[0] + t.path, log: filepath.Join(dir, t.name+".log"), done: make(chan struct{})}
	lf, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = lf, lf
	// The target ends with the bench, also when the bench is killed.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", t.name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	return p, nil
}

// stop interrupts the process and kills it if it has not ended in 10 s.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// logTail is the end of the process's output, for error messages.
func (p *process) logTail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// client scrapes without compression: the scrape cost measured is the
// target's rendering of the page, not gzip's.
var client = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: time.Minute}

// scrape reads the whole series page.
func (p *process) scrape(ctx context.Context) (string, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return "", 0, err
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	d := time.Since(t0)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", p.url, resp.Status)
	}
	return string(b), d, err
}

// waitFor scrapes until m matches want lines, the process exits or the
// timeout passes.
func (p *process) waitFor(ctx context.Context, m match, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last, got := error(nil), -1
	for {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited:\n%s", p.name, p.logTail())
		default:
		}
		page, _, err := p.scrape(ctx)
		if err == nil {
			if got = m.count(page); got == want {
				return nil
			}
		} else {
			last = err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d of %d %s series after %s (last error: %v)\n%s", p.name, got, want, m.metric, timeout, last, p.logTail())
		}
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// memory reads the process's resident memory.
func (p *process) memory() (proc.Memory, error) { return proc.ReadMemory(p.cmd.Process.Pid) }
