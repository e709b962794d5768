package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline"
)

// Test components. They record what the controller does to them in a
// journal that each test creates and passes through the "journal" argument
// (test-only: journals are looked up by name in journals).

type journal struct {
	mu     sync.Mutex
	events []string
	at     []time.Time
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	j.events = append(j.events, fmt.Sprintf(format, args...))
	j.at = append(j.at, time.Now())
	j.mu.Unlock()
}

// times returns when each event with the prefix happened.
func (j *journal) times(prefix string) []time.Time {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []time.Time
	for i, e := range j.events {
		if strings.HasPrefix(e, prefix) {
			out = append(out, j.at[i])
		}
	}
	return out
}

func (j *journal) take() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	e := j.events
	j.events, j.at = nil, nil
	return e
}

func (j *journal) count(prefix string) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := 0
	for _, e := range j.events {
		if strings.HasPrefix(e, prefix) {
			n++
		}
	}
	return n
}

var journals sync.Map // name -> *journal; test-only state

func newJournal(name string) *journal {
	j := &journal{}
	journals.Store(name, j)
	return j
}

func journalFor(name string) *journal {
	if j, ok := journals.Load(name); ok {
		return j.(*journal)
	}
	return &journal{}
}

type sourceArgs struct {
	Journal   string            `hcl:"journal,optional"`
	Value     float64           `hcl:"value,optional"`
	FailTimes int               `hcl:"fail_times,optional"`
	Labels    map[string]string `hcl:"labels,optional"`
	Interval  string            `hcl:"interval,optional"`
	RejectUpd bool              `hcl:"reject_update,optional"`
	File      string            `hcl:"file,optional"`
	// Republish: "same" re-publishes the same exports in Update, "new" a
	// new gatherer.
	Republish string        `hcl:"republish,optional"`
	Nested    []nestedBlock `hcl:"item,block"`
	// Crash makes Update end the running Run with an error (a crash of a
	// component that was running fine).
	Crash bool `hcl:"crash,optional"`
}

type nestedBlock struct {
	Name  string `hcl:"name,label"`
	Count int    `hcl:"count"`
}

func (a *sourceArgs) SetDefaults() { a.Value = 1 }

func (a *sourceArgs) ResolvePaths(dir string) {
	if a.File != "" && !filepath.IsAbs(a.File) {
		a.File = filepath.Join(dir, a.File)
	}
}

func (a *sourceArgs) ReferencedFiles() []string {
	if a.File == "" {
		return nil
	}
	return []string{a.File}
}

func (a *sourceArgs) Validate() error {
	var errs []error
	if a.Value < 0 {
		errs = append(errs, pipeline.ErrorAt("value", errors.New("value must not be negative")))
	}
	if a.File != "" {
		if _, err := os.Stat(a.File); err != nil {
			errs = append(errs, pipeline.ErrorAt("file", err))
		}
	}
	if a.FailTimes < 0 {
		errs = append(errs, pipeline.ErrorAt("fail_times", errors.New("fail_times must not be negative")))
	}
	return errors.Join(errs...)
}

type metricsExports struct {
	Metrics prometheus.Gatherer `hcl:"metrics"`
}

type testSource struct {
	publish func(pipeline.Exports)
	id      string
	j       *journal
	reg     *prometheus.Registry
	gauge   prometheus.Gauge
	fails   atomic.Int64
	crash   chan struct{}
}

func (s *testSource) Run(ctx context.Context) error {
	s.j.add("run %s", s.id)
	if s.fails.Add(-1) >= 0 {
		s.j.add("fail %s", s.id)
		return errors.New("injected failure")
	}
	select {
	case <-ctx.Done():
	case <-s.crash:
		s.j.add("crash %s", s.id)
		return errors.New("crashed")
	}
	s.j.add("stop %s", s.id)
	return nil
}

func (s *testSource) Update(a pipeline.Arguments) error {
	args := a.(sourceArgs)
	if args.RejectUpd {
		return errors.New("update rejected")
	}
	if args.Crash {
		select {
		case s.crash <- struct{}{}:
		default:
		}
	}
	s.gauge.Set(args.Value)
	switch args.Republish {
	case "same":
		s.publish(metricsExports{Metrics: s.reg})
	case "new":
		s.reg = prometheus.NewRegistry()
		s.publish(metricsExports{Metrics: s.reg})
	}
	s.j.add("update %s", s.id)
	return nil
}

type sinkArgs struct {
	Journal string                `hcl:"journal,optional"`
	Inputs  []prometheus.Gatherer `hcl:"inputs"`
}

type testSink struct {
	id string
	j  *journal
	mu sync.Mutex
	in []prometheus.Gatherer
}

func (s *testSink) Run(ctx context.Context) error {
	s.j.add("run %s", s.id)
	<-ctx.Done()
	s.j.add("stop %s", s.id)
	return nil
}

func (s *testSink) Update(a pipeline.Arguments) error {
	s.mu.Lock()
	s.in = a.(sinkArgs).Inputs
	s.mu.Unlock()
	s.j.add("update %s", s.id)
	return nil
}

func (s *testSink) Gather() (prometheus.Gatherers, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return prometheus.Gatherers(s.in), nil
}

// listenerArgs claims sockets, for the loader's listen-address checks.
type listenerArgs struct {
	TCP      string `hcl:"tcp,optional"`
	UDP      string `hcl:"udp,optional"`
	Unixgram string `hcl:"unixgram,optional"`
}

func (a listenerArgs) ListenAddresses() []pipeline.ListenAddress {
	var out []pipeline.ListenAddress
	for _, l := range []pipeline.ListenAddress{{Network: "tcp", Address: a.TCP, Attr: "tcp"}, {Network: "udp", Address: a.UDP, Attr: "udp"}, {Network: "unixgram", Address: a.Unixgram, Attr: "unixgram"}} {
		if l.Address != "" {
			out = append(out, l)
		}
	}
	return out
}

func init() {
	pipeline.Register(pipeline.Registration{
		Name:    "test_listener",
		Summary: "test component that claims sockets",
		Args:    listenerArgs{},
		Exports: struct{}{},
		Build: func(o pipeline.Options, a pipeline.Arguments) (pipeline.Component, error) {
			o.OnExports(struct{}{})
			return &testSink{id: o.ID, j: &journal{}}, nil
		},
	})
	pipeline.Register(pipeline.Registration{
		Name:      "test_source",
		Stability: pipeline.StabilityExperimental,
		Summary:   "test source",
		Args:      sourceArgs{},
		Exports:   metricsExports{},
		Build: func(o pipeline.Options, a pipeline.Arguments) (pipeline.Component, error) {
			args := a.(sourceArgs)
			s := &testSource{id: o.ID, j: journalFor(args.Journal), reg: prometheus.NewRegistry(), publish: o.OnExports, crash: make(chan struct{}, 1)}
			s.fails.Store(int64(args.FailTimes))
			s.gauge = prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_value", Help: "test", ConstLabels: args.Labels})
			s.gauge.Set(args.Value)
			s.reg.MustRegister(s.gauge)
			s.j.add("build %s", o.ID)
			o.OnExports(metricsExports{Metrics: s.reg})
			return s, nil
		},
	})
	pipeline.Register(pipeline.Registration{
		Name:    "test_sink",
		Summary: "test sink",
		Args:    sinkArgs{},
		Exports: struct{}{},
		Build: func(o pipeline.Options, a pipeline.Arguments) (pipeline.Component, error) {
			args := a.(sinkArgs)
			s := &testSink{id: o.ID, j: journalFor(args.Journal), in: args.Inputs}
			s.j.add("build %s", o.ID)
			o.OnExports(struct{}{})
			return s, nil
		},
	})
}
