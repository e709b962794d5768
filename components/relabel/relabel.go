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
	pipeline.Register(pipeline.Registration[Arguments, Exports]{
		Name:      "relabel",
		Stability: pipeline.StabilityBeta,
		Summary:   "applies Prometheus relabel_config rules to the series of one input, at gather time",
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

	// compiled holds Rules compiled, one per rule (Provision).
	compiled []*promrelabel.Config
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

// action returns the rule's action, or an error naming the known ones.
func (r Rule) action() (promrelabel.Action, error) {
	action := promrelabel.Action(strings.ToLower(r.Action))
	for _, a := range actions {
		if a == action {
			return action, nil
		}
	}
	names := make([]string, len(actions))
	for i, a := range actions {
		names[i] = string(a)
	}
	return "", pipeline.ErrorAt("action", fmt.Errorf("unknown action %q (one of %s)", r.Action, strings.Join(names, ", ")))
}

// compile turns the rule into a validated relabel.Config.
func (r Rule) compile() (*promrelabel.Config, error) {
	var errs []error
	action, err := r.action()
	if err != nil {
		errs = append(errs, err)
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

// Validate checks what is cheap to check: the action. The regex and the
// rest are checked where they are compiled, once per load (Provision).
func (r *Rule) Validate() error {
	_, err := r.action()
	return err
}

// Validate checks the input.
func (a *Arguments) Validate() error {
	if a.Input == nil {
		return pipeline.ErrorAt("input", errors.New("input is required"))
	}
	return nil
}

// Provision compiles every rule, once per load: Build and Update use the
// compiled rules as they are. An error points at the rule's attribute.
func (a *Arguments) Provision(ctx pipeline.ProvisionContext) error {
	var errs []error
	a.compiled = make([]*promrelabel.Config, 0, len(a.Rules))
	for i, r := range a.Rules {
		cfg, err := r.compile()
		if err != nil {
			errs = append(errs, pipeline.ErrorInBlock("rule", i, err))
			continue
		}
		a.compiled = append(a.compiled, cfg)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	ctx.Logger().Debug("relabel rules compiled", "rules", len(a.compiled))
	return nil
}

// Component is a running relabel instance. It is its own exported
// Gatherer, so consumers keep their reference across Updates.
type Component struct {
	opts    pipeline.Options[Exports]
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
	_ pipeline.Component[Arguments] = (*Component)(nil)
	_ pipeline.Provisioner          = (*Arguments)(nil)
	_ pipeline.Validator            = (*Arguments)(nil)
	_ pipeline.Validator            = (*Rule)(nil)
	_ prometheus.Gatherer           = (*Component)(nil)
)

// Build creates a relabel component.
func Build(opts pipeline.Options[Exports], args Arguments) (pipeline.Component[Arguments], error) {
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

func (c *Component) newState(args Arguments, old *state) (*state, error) {
	// Unchanged rules keep the processor and its cache: a reload that only
	// rewires the input costs nothing on the next scrape.
	if old != nil && reflect.DeepEqual(old.rules, args.Rules) {
		return &state{input: args.Input, rules: old.rules, proc: old.proc}, nil
	}
	if len(args.compiled) != len(args.Rules) {
		return nil, errors.New("relabel: arguments were not provisioned (decode them with runtime.DecodeArguments)")
	}
	rules := append([]Rule(nil), args.Rules...)
	return &state{input: args.Input, rules: rules, proc: newProcessor(args.compiled, c.metrics)}, nil
}

// Run waits for ctx: the work happens in Gather.
func (c *Component) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Update readies input and rules; Commit swaps them atomically: a Gather
// in progress finishes with the old ones, the next one uses the new ones.
// It acquires nothing, so there is nothing to abort.
func (c *Component) Update(args Arguments) (pipeline.Pending, error) {
	st, err := c.newState(args, c.state.Load())
	if err != nil {
		return nil, err
	}
	return pipeline.CommitFunc(func() { c.state.Store(st) }), nil
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
