// Package heartbeat is the heartbeat_source component: a gauge set to the
// time of the last tick, with labels from the config and from a file. It is
// the walkthrough of docs/writing-components.md: keep the two in step.
package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline"
)

func init() {
	pipeline.Register(pipeline.Registration[Arguments, Exports]{
		Name:      "heartbeat_source",
		Stability: pipeline.StabilityExperimental,
		Summary:   "a gauge set to the time of the last tick",
		Example: `heartbeat_source "app" {
  interval    = "10s"
  labels      = { team = "payments" }
  labels_file = "labels.txt"   # one name=value per line
}`,
		Build: Build,
	})
}

// Arguments configure a heartbeat_source.
type Arguments struct {
	Interval   time.Duration     `hcl:"interval,optional"`
	Labels     map[string]string `hcl:"labels,optional"`
	LabelsFile string            `hcl:"labels_file,optional"`

	// labels is Labels and the file's labels together (Provision).
	labels prometheus.Labels
}

// Exports of a heartbeat_source.
type Exports struct {
	Metrics prometheus.Gatherer `hcl:"metrics"`
}

// SetDefaults runs before decoding: fields not set in the block keep these.
func (a *Arguments) SetDefaults() { a.Interval = 10 * time.Second }

// ResolvePaths makes labels_file relative to the config file's directory.
func (a *Arguments) ResolvePaths(configDir string) {
	a.LabelsFile = pipeline.ResolvePath(configDir, a.LabelsFile)
}

// ReferencedFiles makes the file's content part of the configuration:
// editing it reloads the component.
func (a *Arguments) ReferencedFiles() []string {
	if a.LabelsFile == "" {
		return nil
	}
	return []string{a.LabelsFile}
}

// Validate checks what is cheap to check; it runs at every load.
func (a *Arguments) Validate() error {
	var errs []error
	if a.Interval < time.Second {
		errs = append(errs, pipeline.ErrorAt("interval", errors.New("must be at least 1s")))
	}
	for name := range a.Labels {
		if !pipeline.ValidLabelName(name) { // the one rule for names: pipeline/names.go
			errs = append(errs, pipeline.ErrorAt("labels", fmt.Errorf("%q is not a valid label name", name)))
		}
	}
	return errors.Join(errs...)
}

// Provision reads the labels file once per load, only when the block or
// the file changed.
func (a *Arguments) Provision(ctx pipeline.ProvisionContext) error {
	a.labels = prometheus.Labels{}
	if a.LabelsFile != "" {
		b, err := ctx.ReadFile(a.LabelsFile)
		if err != nil {
			return pipeline.ErrorAt("labels_file", err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line == "" {
				continue
			}
			name, value, ok := strings.Cut(line, "=")
			if !ok {
				return pipeline.ErrorAt("labels_file", fmt.Errorf("%s:%d: want name=value", a.LabelsFile, i+1))
			}
			a.labels[name] = value
		}
	}
	for name, value := range a.Labels { // the block wins over the file
		a.labels[name] = value
	}
	return nil
}

// Interface guards: the compiler checks the contract.
var (
	_ pipeline.Component[Arguments] = (*Component)(nil)
	_ pipeline.Validator            = (*Arguments)(nil)
	_ pipeline.Provisioner          = (*Arguments)(nil)
	_ pipeline.FileReferrer         = (*Arguments)(nil)
)

// Component is a running heartbeat_source.
type Component struct {
	opts pipeline.Options[Exports]
	cfg  atomic.Pointer[config]
	last atomic.Int64  // Unix time of the last tick
	kick chan struct{} // Update -> Run: the interval changed
}

// config is what Run and scrapes use, swapped whole by Commit.
type config struct {
	interval time.Duration
	desc     *prometheus.Desc
}

// Build creates the component. No sockets, no goroutines: the same Build
// runs for `sluice validate` and for a reload that may be rejected.
func Build(opts pipeline.Options[Exports], args Arguments) (pipeline.Component[Arguments], error) {
	c := &Component{opts: opts, kick: make(chan struct{}, 1)}
	c.cfg.Store(newConfig(args))
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		return nil, err
	}
	// Exported once: consumers keep this gatherer across Updates.
	opts.OnExports(Exports{Metrics: reg})
	return c, nil
}

func newConfig(args Arguments) *config {
	return &config{
		interval: args.Interval,
		desc: prometheus.NewDesc("heartbeat_timestamp_seconds",
			"Unix time of the last heartbeat.", nil, args.labels),
	}
}

// Describe sends nothing: the labels change with the arguments, so the
// collector is unchecked.
func (c *Component) Describe(chan<- *prometheus.Desc) {}

// Collect reports the last tick with the current labels.
func (c *Component) Collect(ch chan<- prometheus.Metric) {
	if last := c.last.Load(); last > 0 {
		ch <- prometheus.MustNewConstMetric(c.cfg.Load().desc, prometheus.GaugeValue, float64(last))
	}
}

// Run ticks until ctx ends. After a failure the kernel calls Run again on
// this same instance, so Run starts from what the instance holds.
func (c *Component) Run(ctx context.Context) error {
	for {
		c.last.Store(time.Now().Unix())
		t := time.NewTimer(c.cfg.Load().interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-c.kick:
			t.Stop()
		case <-t.C:
		}
	}
}

// Update readies new arguments without changing what runs; it may be
// called while Run is not running. Nothing here needs releasing, so the
// Pending only swaps on Commit.
func (c *Component) Update(args Arguments) (pipeline.Pending, error) {
	cfg := newConfig(args)
	return pipeline.CommitFunc(func() {
		c.cfg.Store(cfg)
		select { // wake Run to use the new interval
		case c.kick <- struct{}{}:
		default:
		}
	}), nil
}
