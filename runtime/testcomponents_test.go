package runtime_test

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
	dto "github.com/prometheus/client_model/go"

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
	Republish string `hcl:"republish,optional"`
	// RepublishOnRun publishes a new gatherer when Run starts: an exports
	// change that no reload caused.
	RepublishOnRun bool          `hcl:"republish_on_run,optional"`
	Nested         []nestedBlock `hcl:"item,block"`
	// Crash makes a committed Update end the running Run with an error (a
	// crash of a component that was running fine).
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
	republishOnRun bool
	publish        func(metricsExports)
	id             string
	j              *journal
	reg            *prometheus.Registry
	gauge          prometheus.Gauge
	fails          atomic.Int64
	crash          chan struct{}
}

func (s *testSource) Run(ctx context.Context) error {
	s.j.add("run %s", s.id)
	if s.republishOnRun {
		s.publish(metricsExports{Metrics: prometheus.NewRegistry()})
		s.j.add("republished %s", s.id)
	}
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

// Update journals "prepare ID"; Commit journals "set ID VALUE" and
// "update ID", Abort "abort ID".
func (s *testSource) Update(args sourceArgs) (pipeline.Pending, error) {
	s.j.add("prepare %s", s.id)
	if args.RejectUpd {
		return nil, errors.New("update rejected")
	}
	return &testPending{j: s.j, id: s.id, commit: func() {
		if args.Crash {
			select {
			case s.crash <- struct{}{}:
			default:
			}
		}
		s.gauge.Set(args.Value)
		s.j.add("set %s %v", s.id, args.Value)
		switch args.Republish {
		case "same":
			s.publish(metricsExports{Metrics: s.reg})
		case "new":
			s.reg = prometheus.NewRegistry()
			s.publish(metricsExports{Metrics: s.reg})
		}
	}}, nil
}

type testPending struct {
	j      *journal
	id     string
	commit func()
}

func (p *testPending) Commit() {
	if p.commit != nil {
		p.commit()
	}
	p.j.add("update %s", p.id)
}

func (p *testPending) Abort() { p.j.add("abort %s", p.id) }

type sinkArgs struct {
	Journal string                `hcl:"journal,optional"`
	Inputs  []prometheus.Gatherer `hcl:"inputs"`
	// Relay publishes a new metrics export at each Commit, so that the
	// sink's own consumers change in turn.
	Relay bool `hcl:"relay,optional"`
}

// testSink exports its inputs, gathered together, as metrics.
type testSink struct {
	id      string
	j       *journal
	publish func(metricsExports)
	mu      sync.Mutex
	in      []prometheus.Gatherer
}

// relay is a testSink's export; a new one is a new identity.
type relay struct{ s *testSink }

func (r *relay) Gather() ([]*dto.MetricFamily, error) {
	gs, _ := r.s.Gather()
	return gs.Gather()
}

func (s *testSink) Run(ctx context.Context) error {
	s.j.add("run %s", s.id)
	<-ctx.Done()
	s.j.add("stop %s", s.id)
	return nil
}

func (s *testSink) Update(args sinkArgs) (pipeline.Pending, error) {
	s.j.add("prepare %s", s.id)
	return &testPending{j: s.j, id: s.id, commit: func() {
		s.mu.Lock()
		s.in = args.Inputs
		s.mu.Unlock()
		if args.Relay {
			s.publish(metricsExports{Metrics: &relay{s}})
		}
	}}, nil
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

// testListener binds nothing: its arguments only claim sockets.
type testListener struct{}

func (testListener) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (testListener) Update(listenerArgs) (pipeline.Pending, error) {
	return pipeline.CommitFunc(nil), nil
}

var (
	_ pipeline.Component[sourceArgs]   = (*testSource)(nil)
	_ pipeline.Component[sinkArgs]     = (*testSink)(nil)
	_ pipeline.Component[listenerArgs] = testListener{}
)

func init() {
	pipeline.Register(pipeline.Registration[listenerArgs, struct{}]{
		Name:    "test_listener",
		Summary: "test component that claims sockets",
		Build: func(o pipeline.Options[struct{}], _ listenerArgs) (pipeline.Component[listenerArgs], error) {
			o.OnExports(struct{}{})
			return testListener{}, nil
		},
	})
	pipeline.Register(pipeline.Registration[sourceArgs, metricsExports]{
		Name:      "test_source",
		Stability: pipeline.StabilityExperimental,
		Summary:   "test source",
		Build: func(o pipeline.Options[metricsExports], args sourceArgs) (pipeline.Component[sourceArgs], error) {
			s := &testSource{id: o.ID, j: journalFor(args.Journal), reg: prometheus.NewRegistry(), publish: o.OnExports, republishOnRun: args.RepublishOnRun, crash: make(chan struct{}, 1)}
			s.fails.Store(int64(args.FailTimes))
			s.gauge = prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_value", Help: "test", ConstLabels: args.Labels})
			s.gauge.Set(args.Value)
			s.reg.MustRegister(s.gauge)
			s.j.add("build %s", o.ID)
			o.OnExports(metricsExports{Metrics: s.reg})
			return s, nil
		},
	})
	pipeline.Register(pipeline.Registration[sinkArgs, metricsExports]{
		Name:    "test_sink",
		Summary: "test sink",
		Build: func(o pipeline.Options[metricsExports], args sinkArgs) (pipeline.Component[sinkArgs], error) {
			s := &testSink{id: o.ID, j: journalFor(args.Journal), in: args.Inputs, publish: o.OnExports}
			s.j.add("build %s", o.ID)
			o.OnExports(metricsExports{Metrics: &relay{s}})
			return s, nil
		},
	})
}

// test_slowstop journals "cancelled ID" when its Run is cancelled, then
// holds Run until the test closes its gate (gates, by name), and journals
// "stop ID": a component that takes its time to stop.
type slowStopArgs struct {
	Journal string `hcl:"journal"`
	Gate    string `hcl:"gate"`
}

var gates sync.Map // name -> chan struct{}; test-only state

func newGate(name string) chan struct{} {
	g := make(chan struct{})
	gates.Store(name, g)
	return g
}

type slowStop struct {
	id   string
	j    *journal
	gate chan struct{}
}

func (s *slowStop) Run(ctx context.Context) error {
	s.j.add("run %s", s.id)
	<-ctx.Done()
	s.j.add("cancelled %s", s.id)
	<-s.gate
	s.j.add("stop %s", s.id)
	return nil
}

func (s *slowStop) Update(slowStopArgs) (pipeline.Pending, error) { return nil, nil }

func init() {
	pipeline.Register(pipeline.Registration[slowStopArgs, struct{}]{
		Name: "test_slowstop",
		Build: func(o pipeline.Options[struct{}], a slowStopArgs) (pipeline.Component[slowStopArgs], error) {
			g, ok := gates.Load(a.Gate)
			if !ok {
				return nil, fmt.Errorf("no gate %q", a.Gate)
			}
			o.OnExports(struct{}{})
			return &slowStop{id: o.ID, j: journalFor(a.Journal), gate: g.(chan struct{})}, nil
		},
	})
}
