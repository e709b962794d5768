package cache

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// input is a gatherer the test steers: it serves a real registry, or an
// error, or blocks until released. It records how many Gathers run at once.
type input struct {
	reg *prometheus.Registry

	mu    sync.Mutex
	err   error
	block chan struct{} // non-nil: Gather waits for it to close

	calls, inflight, maxInflight atomic.Int64
}

func newInput() *input { return &input{reg: prometheus.NewRegistry()} }

func (in *input) Gather() ([]*dto.MetricFamily, error) {
	in.calls.Add(1)
	n := in.inflight.Add(1)
	defer in.inflight.Add(-1)
	for {
		m := in.maxInflight.Load()
		if n <= m || in.maxInflight.CompareAndSwap(m, n) {
			break
		}
	}
	in.mu.Lock()
	err, block := in.err, in.block
	in.mu.Unlock()
	if block != nil {
		<-block
	}
	if err != nil {
		return nil, err
	}
	return in.reg.Gather()
}

func (in *input) setErr(err error) { in.mu.Lock(); in.err = err; in.mu.Unlock() }

// hang makes the next Gathers block; the returned func releases them.
func (in *input) hang() (release func()) {
	ch := make(chan struct{})
	in.mu.Lock()
	in.block = ch
	in.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			in.mu.Lock()
			in.block = nil
			in.mu.Unlock()
			close(ch)
		})
	}
}

func (in *input) gaugeVec(name string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: name + " help"}, labels)
	in.reg.MustRegister(g)
	return g
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_800_000_000, 0)} }
func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}
func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// instance is a cache built and run outside the harness, for tests that
// need a data directory of their own (restarts).
type instance struct {
	t   testing.TB
	c   *Component
	reg *prometheus.Registry

	cancel context.CancelFunc
	done   chan error
}

func build(t testing.TB, body, dir string, in prometheus.Gatherer, now func() time.Time) *instance {
	t.Helper()
	args, diags := pipelinetest.Decode(t, "cache", body, pipelinetest.WithGatherer("in", in))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	reg := prometheus.NewRegistry()
	comp, err := Build(pipeline.Options[Exports]{
		ID: "cache.test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg,
		DataPath: dir, OnExports: func(Exports) {},
	}, args.(Arguments))
	if err != nil {
		t.Fatal(err)
	}
	c := comp.(*Component)
	if now != nil {
		c.now = now
	}
	return &instance{t: t, c: c, reg: reg}
}

func (i *instance) start() {
	ctx, cancel := context.WithCancel(context.Background())
	i.cancel, i.done = cancel, make(chan error, 1)
	go func() { i.done <- i.c.Run(ctx) }()
	i.t.Cleanup(i.stop)
}

func (i *instance) stop() {
	if i.cancel == nil {
		return
	}
	i.cancel()
	i.cancel = nil
	select {
	case err := <-i.done:
		if err != nil {
			i.t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		i.t.Fatal("Run did not return")
	}
}

// harness builds a cache through pipelinetest over in, with the clock set
// before Run starts.
func harness(t *testing.T, body string, in prometheus.Gatherer, clk *clock) (*pipelinetest.Harness, *Component) {
	t.Helper()
	h := pipelinetest.New(t, "cache", body, pipelinetest.WithGatherer("in", in))
	c := h.Component.(*Component)
	if clk != nil {
		c.now = clk.now
	}
	return h, c
}

// metric reads one self-metric's value (counter, gauge, or a histogram's
// sample count) from reg; labels are name, value pairs.
func metric(t testing.TB, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range fams {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.Label {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}

// served returns the cache's families as "name{labels} value" -> true.
func served(t testing.TB, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range fams {
		for _, m := range mf.Metric {
			key := mf.GetName()
			for _, lp := range m.Label {
				key += "," + lp.GetName() + "=" + lp.GetValue()
			}
			switch {
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Untyped != nil:
				out[key] = m.Untyped.GetValue()
			default:
				out[key] = -1
			}
		}
	}
	return out
}

var errDown = errors.New("database is down")

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
