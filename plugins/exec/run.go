package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	osexec "os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/ratelog"
)

// plan is a set of arguments resolved for running; Update swaps it whole.
type plan struct {
	argv     []string
	env      []string // never nil: a nil Env would make the child inherit the agent's
	interval time.Duration
	timeout  time.Duration
	maxOut   int64
}

func newPlan(a Arguments) *plan {
	return &plan{
		argv:     append([]string(nil), a.Command...),
		env:      append([]string{}, a.environ()...),
		interval: a.Interval,
		timeout:  a.Timeout,
		maxOut:   a.MaxOutputBytes,
	}
}

// Component is a running exec_source.
type Component struct {
	log       *slog.Logger
	failLog   *slog.Logger // failed runs, at a bounded rate
	stderrLog *slog.Logger // the command's standard error, at a bounded rate
	self      *selfMetrics
	families  atomic.Pointer[[]*dto.MetricFamily]

	updated chan struct{} // Commit -> Run, buffered 1

	mu     sync.Mutex
	plan   *plan
	health pipeline.HealthTracker
}

func build(opts pipeline.Options[Exports], args Arguments) (pipeline.Component[Arguments], error) {
	self, err := newSelfMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("%s: self-metrics: %w", Name, err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Component{
		log:       logger,
		failLog:   ratelog.New(logger, ratelog.Options{Interval: time.Minute}),
		stderrLog: ratelog.New(logger, ratelog.Options{Interval: time.Minute, Burst: 2}),
		self:      self,
		updated:   make(chan struct{}, 1),
		plan:      newPlan(args),
	}
	c.health.Set(pipeline.HealthUnknown, "not run yet")
	c.families.Store(&[]*dto.MetricFamily{})
	opts.OnExports(Exports{Metrics: gatherer{c}})
	return c, nil
}

// gatherer serves copies of the last good run's families: consumers may
// modify what they gather, and the snapshot is shared by every scrape.
type gatherer struct{ c *Component }

func (g gatherer) Gather() ([]*dto.MetricFamily, error) {
	fams := *g.c.families.Load()
	out := make([]*dto.MetricFamily, len(fams))
	for i, f := range fams {
		out[i] = proto.Clone(f).(*dto.MetricFamily)
	}
	return out, nil
}

// Update readies a new plan; it acquires nothing. Commit makes Run run the
// command at once with it. The last values stay until that run succeeds.
func (c *Component) Update(args Arguments) (pipeline.Pending, error) {
	p := newPlan(args)
	return pipeline.CommitFunc(func() {
		c.mu.Lock()
		c.plan = p
		c.mu.Unlock()
		select {
		case c.updated <- struct{}{}:
		default:
		}
	}), nil
}

func (c *Component) currentPlan() *plan {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.plan
}

// Health implements pipeline.HealthReporter: unhealthy while runs fail.
func (c *Component) Health() pipeline.Health { return c.health.Health() }

func (c *Component) setHealth(ok bool, msg string) {
	if c.health.SetOK(ok, msg) && ok {
		c.log.Info("command succeeds again")
	}
}

// Run implements pipeline.Component: it runs the command at once, then
// every interval (on pipeline.Schedule's grid; a run never outlasts its
// timeout, which is at most the interval), and at once after a committed
// Update. When ctx ends, a running command's process group is killed.
func (c *Component) Run(ctx context.Context) error {
	sch := pipeline.Schedule{Interval: func() time.Duration { return c.currentPlan().interval }, Kick: c.updated}
	sch.Run(ctx, func(ctx context.Context) { c.runOnce(ctx, c.currentPlan()) })
	return nil
}

var (
	errTimeout  = errors.New("timeout")
	errTooLarge = errors.New("output too large")
)

// runOnce runs the command once and, if it exits 0 with valid output,
// replaces the exported families.
func (c *Component) runOnce(parent context.Context, p *plan) {
	ctx, cancel := context.WithTimeoutCause(parent, p.timeout, errTimeout)
	defer cancel()
	ctx, kill := context.WithCancelCause(ctx)
	defer kill(nil)

	cmd := osexec.CommandContext(ctx, p.argv[0], p.argv[1:]...)
	cmd.Env = p.env
	setProcessGroup(cmd)
	// A process that escaped the group could hold the pipes open: stop
	// waiting for them shortly after the kill.
	cmd.WaitDelay = time.Second
	stdout := &limitBuffer{max: p.maxOut, overflow: func() { kill(errTooLarge) }}
	stderr := &limitBuffer{max: stderrKept}
	cmd.Stdout, cmd.Stderr = stdout, stderr

	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if parent.Err() != nil {
		return // stopping: not an outcome of the command
	}
	if cmd.ProcessState != nil {
		c.self.exitCode.Set(float64(cmd.ProcessState.ExitCode()))
	}
	if stderr.Len() > 0 {
		c.stderrLog.Warn("command wrote to standard error", "command", p.argv[0], "stderr", strings.TrimSpace(stderr.String()), "truncated", stderr.over)
	}

	result, detail := resultSuccess, ""
	var fams []*dto.MetricFamily
	var series int
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errTooLarge):
		result, detail = resultTooLarge, fmt.Sprintf("more than max_output_bytes (%d) on standard output; killed", p.maxOut)
	case errors.Is(cause, errTimeout):
		result, detail = resultTimeout, fmt.Sprintf("still running after %v; killed with its process group", p.timeout)
	case err != nil:
		var ee *osexec.ExitError
		if errors.As(err, &ee) {
			result, detail = resultExitError, ee.Error()
		} else {
			result, detail = resultError, err.Error()
		}
	default:
		fams, series, err = parse(stdout.Bytes())
		if err != nil {
			result, detail = resultBadOutput, err.Error()
		}
	}
	c.self.run(result, elapsed)
	if result != resultSuccess {
		c.setHealth(false, result+": "+detail)
		c.failLog.Warn("command failed; keeping the last values", "command", p.argv[0], "result", result, "err", detail)
		return
	}
	c.families.Store(&fams)
	c.self.lastSuccess.Set(float64(time.Now().UnixNano()) / 1e9)
	c.self.series.Set(float64(series))
	c.setHealth(true, "")
}

// limitBuffer keeps the first max bytes written to it. Past max it keeps
// accepting (a command blocked on a full pipe would only time out) and
// calls overflow once. The buffer is a field, not embedded: an embedded
// bytes.Buffer would promote ReadFrom, and io.Copy in os/exec would use it
// and bypass the bound.
type limitBuffer struct {
	buf      bytes.Buffer
	max      int64
	over     bool
	overflow func()
}

func (b *limitBuffer) Write(p []byte) (int, error) {
	if room := b.max - int64(b.buf.Len()); room < int64(len(p)) {
		b.buf.Write(p[:max(room, 0)])
		if !b.over {
			b.over = true
			if b.overflow != nil {
				b.overflow()
			}
		}
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *limitBuffer) Len() int       { return b.buf.Len() }
func (b *limitBuffer) Bytes() []byte  { return b.buf.Bytes() }
func (b *limitBuffer) String() string { return b.buf.String() }

// Interface guard for the exported gatherer.
var _ prometheus.Gatherer = gatherer{}
