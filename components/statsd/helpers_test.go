package statsd

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

const waitFor = 10 * time.Second

// startReceiver builds and starts a receiver from an HCL body and waits
// until its sockets are bound.
func startReceiver(t *testing.T, body string, opts ...pipelinetest.Option) (*pipelinetest.Harness, *Receiver) {
	t.Helper()
	h := pipelinetest.New(t, "statsd_receiver", body, opts...)
	r := h.Component.(*Receiver)
	h.Start()
	pipelinetest.Eventually(t, waitFor, func() bool { return r.running0() }, "receiver did not start")
	return h, r
}

// running0 reports whether Run has bound its sockets.
func (r *Receiver) running0() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running
}

func (r *Receiver) addr(t *testing.T, proto string) string {
	t.Helper()
	a, ok := r.Addrs()[proto]
	if !ok {
		t.Fatalf("no %s listener (have %v)", proto, r.Addrs())
	}
	return a
}

// send writes each packet as one datagram (or, for tcp, one write).
func send(t *testing.T, network, addr string, packets ...string) {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	defer c.Close()
	for _, p := range packets {
		if network == "tcp" && !strings.HasSuffix(p, "\n") {
			p += "\n"
		}
		if _, err := c.Write([]byte(p)); err != nil {
			t.Fatalf("write to %s %s: %v", network, addr, err)
		}
	}
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	if len(m.GetLabel()) != len(want) {
		return false
	}
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; !ok || v != lp.GetValue() {
			return false
		}
	}
	return true
}

// find returns the metric of family name with exactly these labels.
func find(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelsMatch(m, labels) {
				return m
			}
		}
	}
	return nil
}

// value returns a counter, gauge or untyped value, or an observation
// count for histograms and summaries; -1 when the series does not exist.
func value(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	m := find(t, g, name, labels)
	switch {
	case m == nil:
		return -1
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	case m.Summary != nil:
		return float64(m.GetSummary().GetSampleCount())
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return -1
}

// waitValue waits until value(...) == want.
func waitValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string, want float64) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		got := value(t, g, name, labels)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v after %v, want %v", name, labels, got, waitFor, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// familyNames lists the names of the gathered families.
func familyNames(t *testing.T, g prometheus.Gatherer) []string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var out []string
	for _, mf := range mfs {
		out = append(out, mf.GetName())
	}
	slices.Sort(out)
	return out
}

// seriesCount is the number of series in the gathered output.
func seriesCount(t *testing.T, g prometheus.Gatherer) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	n := 0
	for _, mf := range mfs {
		n += len(mf.GetMetric())
	}
	return n
}

func sockPath(t *testing.T) string {
	// Unix socket paths are short (108 bytes); t.TempDir() can be long.
	dir, err := os.MkdirTemp("", "statsd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "statsd.sock")
}

func lines(format string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(format, i)
	}
	return out
}
