// Package relabel implements the relabel component: Prometheus
// relabel_config rules applied to the metric families of one input, at
// gather time.
package relabel

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	promrelabel "github.com/prometheus/prometheus/model/relabel"

	"github.com/sluicehq/sluice/pipeline"
)

// nameValidation is the label name scheme rules are validated and applied
// with: UTF-8, as in Prometheus 3 and client_golang. A legacy scraper still
// sees legal names: the exposition escapes them on negotiation.
const nameValidation = model.UTF8Validation

func init() {
	pipeline.Register(pipeline.Registration{
		Name:      "relabel",
		Stability: pipeline.StabilityBeta,
		Summary:   "applies Prometheus relabel_config rules to the series of one input, at gather time",
		Args:      Arguments{},
		Exports:   Exports{},
		Build:     Build,
		Example: `relabel "app" {
  input = statsd_receiver.app.metrics

  rule {
    action        = "drop"
    source_labels = ["__name__"]
    regex         = "debug_.*"
  }
  rule {
    action       = "replace"
    target_label = "team"
    replacement  = "payments"
  }
}`,
	})
}

// Arguments configures a relabel component.
type Arguments struct {
	// Input is the gatherer whose families are relabelled.
	Input prometheus.Gatherer `hcl:"input"`
	// Rules run in order on every series; a rule that drops a series ends
	// the run for it.
	Rules []Rule `hcl:"rule,block"`
}

// Rule is one relabel_config. Field defaults are Prometheus's.
type Rule struct {
	SourceLabels []string `hcl:"source_labels,optional"`
	Separator    string   `hcl:"separator,optional"`
	Regex        string   `hcl:"regex,optional"`
	Modulus      uint64   `hcl:"modulus,optional"`
	TargetLabel  string   `hcl:"target_label,optional"`
	Replacement  string   `hcl:"replacement,optional"`
	Action       string   `hcl:"action,optional"`
}

// Exports of a relabel component.
type Exports struct {
	// Metrics gathers the input and applies the rules.
	Metrics prometheus.Gatherer `hcl:"metrics"`
}

var defaultRegex = promrelabel.DefaultRelabelConfig.Regex.String()

// SetDefaults sets Prometheus's relabel_config defaults.
func (r *Rule) SetDefaults() {
	r.Separator = promrelabel.DefaultRelabelConfig.Separator
	r.Regex = defaultRegex
	r.Replacement = promrelabel.DefaultRelabelConfig.Replacement
	r.Action = string(promrelabel.Replace)
}

var actions = []promrelabel.Action{
	promrelabel.Replace, promrelabel.Keep, promrelabel.Drop, promrelabel.HashMod,
	promrelabel.LabelMap, promrelabel.LabelDrop, promrelabel.LabelKeep,
	promrelabel.Lowercase, promrelabel.Uppercase, promrelabel.KeepEqual, promrelabel.DropEqual,
}

// compile turns the rule into a validated relabel.Config.
func (r Rule) compile() (*promrelabel.Config, error) {
	var errs []error
	action := promrelabel.Action(strings.ToLower(r.Action))
	known := false
	for _, a := range actions {
		known = known || a == action
	}
	if !known {
		names := make([]string, len(actions))
		for i, a := range actions {
			names[i] = string(a)
		}
		errs = append(errs, pipeline.ErrorAt("action", fmt.Errorf("unknown action %q (one of %s)", r.Action, strings.Join(names, ", "))))
	}
	// The default regex must be the package's own value: relabel compares
	// it by identity (fast paths, keepequal/dropequal checks).
	re := promrelabel.DefaultRelabelConfig.Regex
	if r.Regex != defaultRegex {
		var err error
		if re, err = promrelabel.NewRegexp(r.Regex); err != nil {
			errs = append(errs, pipeline.ErrorAt("regex", fmt.Errorf("invalid regex %q: %w", r.Regex, err)))
		}
	}
	var sources model.LabelNames
	for _, s := range r.SourceLabels {
		sources = append(sources, model.LabelName(s))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg := &promrelabel.Config{
		SourceLabels: sources,
		Separator:    r.Separator,
		Regex:        re,
		Modulus:      r.Modulus,
		TargetLabel:  r.TargetLabel,
		Replacement:  r.Replacement,
		Action:       action,
	}
	if err := cfg.Validate(nameValidation); err != nil {
		return nil, pipeline.ErrorAt(attrOf(err), err)
	}
	return cfg, nil
}

// attrOf guesses which attribute a relabel.Config.Validate error is about.
func attrOf(err error) string {
	msg := err.Error()
	for _, a := range []string{"target_label", "replacement", "modulus", "source_labels"} {
		if strings.Contains(msg, a) {
			return a
		}
	}
	return "action"
}

// Validate checks the rule as Prometheus does.
func (r Rule) Validate() error {
	_, err := r.compile()
	return err
}

// Validate checks every rule (each rule is also checked where it is
// declared; this catches programmatic Arguments).
func (a Arguments) Validate() error {
	var errs []error
	if a.Input == nil {
		errs = append(errs, pipeline.ErrorAt("input", errors.New("input is required")))
	}
	for i, r := range a.Rules {
		if err := r.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("rule %d: %w", i+1, err))
		}
	}
	return errors.Join(errs...)
}

// Component is a running relabel instance. It is its own exported
// Gatherer, so consumers keep their reference across Updates.
type Component struct {
	opts    pipeline.Options
	metrics *selfMetrics
	state   atomic.Pointer[state]
}

// state is what one Gather uses, swapped as a whole by Update.
type state struct {
	input prometheus.Gatherer
	rules []Rule
	proc  *processor
}

var (
	_ pipeline.Component  = (*Component)(nil)
	_ prometheus.Gatherer = (*Component)(nil)
)

// Build creates a relabel component.
func Build(opts pipeline.Options, args pipeline.Arguments) (pipeline.Component, error) {
	c := &Component{opts: opts}
	m, err := newSelfMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	c.metrics = m
	st, err := c.newState(args, nil)
	if err != nil {
		return nil, err
	}
	c.state.Store(st)
	opts.OnExports(Exports{Metrics: c})
	return c, nil
}

func (c *Component) newState(a pipeline.Arguments, old *state) (*state, error) {
	args, ok := a.(Arguments)
	if !ok {
		if p, isPtr := a.(*Arguments); isPtr && p != nil {
			args = *p
		} else {
			return nil, fmt.Errorf("relabel: unexpected arguments type %T", a)
		}
	}
	if err := args.Validate(); err != nil {
		return nil, err
	}
	// Unchanged rules keep the processor and its cache: a reload that only
	// rewires the input costs nothing on the next scrape.
	if old != nil && reflect.DeepEqual(old.rules, args.Rules) {
		return &state{input: args.Input, rules: old.rules, proc: old.proc}, nil
	}
	cfgs := make([]*promrelabel.Config, 0, len(args.Rules))
	for _, r := range args.Rules {
		cfg, err := r.compile()
		if err != nil {
			return nil, err
		}
		cfgs = append(cfgs, cfg)
	}
	rules := append([]Rule(nil), args.Rules...)
	return &state{input: args.Input, rules: rules, proc: newProcessor(cfgs, c.metrics)}, nil
}

// Run waits for ctx: the work happens in Gather.
func (c *Component) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Update swaps input and rules atomically: a Gather in progress finishes
// with the old ones, the next one uses the new ones.
func (c *Component) Update(args pipeline.Arguments) error {
	st, err := c.newState(args, c.state.Load())
	if err != nil {
		return err
	}
	c.state.Store(st)
	return nil
}

// Gather gathers the input and relabels its series. The families it
// returns, and the metrics in them, may be shared with the input and with
// other Gather calls: callers must not modify them.
func (c *Component) Gather() ([]*dto.MetricFamily, error) {
	st := c.state.Load()
	fams, err := st.input.Gather()
	if err != nil {
		c.metrics.inputErrors.Inc()
		err = fmt.Errorf("relabel %s: input: %w", c.opts.ID, err)
	}
	return st.proc.process(fams), err
}
