package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	"github.com/sluicehq/sluice/jsonlimit"
)

var nowFunc = time.Now

// plan is what Provision compiles from the arguments: immutable, swapped
// whole by Commit.
type plan struct {
	metrics       map[string]*metricDef
	hooks         map[string]*hookDef
	maxUnverified int64 // bytes of unverified webhook bodies in flight
}

type metricDef struct {
	name, typ, help string
	labels          []string
	buckets         []float64
	ttl             time.Duration
	maxSeries       int
	desc            *prometheus.Desc
	// initial are the label values of the pre-created series
	// (initial_label_values: every combination), keyed by seriesKey.
	initial map[string][]string
}

// initialCombinations returns every combination of the values of
// initial_label_values, in the order of labels, by seriesKey. Validate
// bounded their number by max_series.
func initialCombinations(labels []string, values map[string][]string) map[string][]string {
	if len(values) == 0 {
		return nil
	}
	combos := [][]string{{}}
	for _, l := range labels {
		var next [][]string
		for _, c := range combos {
			for _, v := range values[l] {
				next = append(next, append(slices.Clone(c), v))
			}
		}
		combos = next
	}
	out := make(map[string][]string, len(combos))
	for _, c := range combos {
		out[seriesKey(c)] = c
	}
	return out
}

// sameInitial: the pre-created combinations of one are those of the other.
func (d *metricDef) sameInitial(o *metricDef) bool {
	if len(d.initial) != len(o.initial) {
		return false
	}
	for k := range d.initial {
		if _, ok := o.initial[k]; !ok {
			return false
		}
	}
	return true
}

// helpText is the metric's HELP: its help, or a default.
func (d *metricDef) helpText() string {
	if d.help == "" {
		return "Pushed to webhook_receiver."
	}
	return d.help
}

func (d *metricDef) accepts(verb string) bool { return slices.Contains(verbsByType[d.typ], verb) }

// sameShape: the stored series of one fit the other.
func (d *metricDef) sameShape(o *metricDef) bool {
	return d.typ == o.typ && equalStrings(d.labels, o.labels) && equalFloats(d.buckets, o.buckets)
}

type hookDef struct {
	name, kind string
	secret     []byte // gitlab: the token's hash; github: the HMAC key; generic: the decoded key
	tolerance  time.Duration
	maxBody    int64
	rules      []rule
	event      *jsonlimit.Paths // what the rules read of event: all a delivery's decoding builds
}

type rule struct {
	when    hcl.Expression
	actions []action
}

type action struct {
	verb   string
	metric *metricDef
	value  hcl.Expression
	labels hcl.Expression
}

func newPlan(a *Arguments) (*plan, error) {
	p := &plan{metrics: map[string]*metricDef{}, hooks: map[string]*hookDef{}}
	for _, m := range a.Metrics {
		d := &metricDef{name: m.Name, typ: m.Type, help: m.Help, labels: m.Labels, ttl: m.TTL, maxSeries: m.MaxSeries}
		if d.labels == nil {
			d.labels = []string{}
		}
		if d.maxSeries == 0 {
			d.maxSeries = DefaultMaxSeries
		}
		d.initial = initialCombinations(d.labels, m.InitialLabelValues)
		if d.typ == "histogram" {
			d.buckets = m.Buckets
			if len(d.buckets) == 0 {
				d.buckets = prometheus.DefBuckets
			}
		}
		d.desc = prometheus.NewDesc(d.name, d.helpText(), d.labels, nil)
		p.metrics[d.name] = d
	}
	for _, w := range a.Webhooks {
		h := &hookDef{name: w.Name, kind: w.Kind, tolerance: w.Tolerance, maxBody: w.MaxBody}
		if h.tolerance == 0 {
			h.tolerance = DefaultTolerance
		}
		if h.maxBody == 0 {
			h.maxBody = DefaultWebhookMaxBody
		}
		switch {
		case w.Secret == "":
		case w.Kind == "gitlab":
			sum := hashToken(w.Secret)
			h.secret = sum[:]
		case w.Kind == "generic":
			k, err := decodeWhsec(w.Secret)
			if err != nil {
				return nil, err
			}
			h.secret = k
		default:
			h.secret = []byte(w.Secret)
		}
		for _, r := range w.Rules {
			cr := rule{when: r.When}
			for _, g := range r.actions() {
				for _, act := range g.blocks {
					cr.actions = append(cr.actions, action{verb: g.verb, metric: p.metrics[act.Metric], value: act.Value, labels: act.Labels})
				}
			}
			h.rules = append(h.rules, cr)
		}
		h.event = eventPaths(h.rules)
		p.hooks[h.name] = h
		p.maxUnverified = max(p.maxUnverified, h.maxBody)
	}
	if a.MaxUnverifiedBytes > 0 {
		p.maxUnverified = a.MaxUnverifiedBytes
	} else {
		p.maxUnverified = max(p.maxUnverified, DefaultMaxUnverifiedBytes)
	}
	return p, nil
}

func hashToken(t string) [32]byte { return sha256.Sum256([]byte(t)) }

// decodeWhsec decodes a Standard Webhooks secret: "whsec_" and base64.
func decodeWhsec(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return nil, errors.New(`a generic (Standard Webhooks) secret starts with "whsec_" followed by base64`)
	}
	k, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(k) == 0 {
		return nil, errors.New(`the generic secret after "whsec_" is not base64`)
	}
	return k, nil
}

// ruleFunctions are the functions rules may call: pure string and number
// helpers.
var ruleFunctions = map[string]function.Function{
	"lower":     stdlib.LowerFunc,
	"upper":     stdlib.UpperFunc,
	"replace":   stdlib.ReplaceFunc,
	"regex":     stdlib.RegexFunc,
	"split":     stdlib.SplitFunc,
	"coalesce":  stdlib.CoalesceFunc,
	"lookup":    stdlib.LookupFunc,
	"contains":  stdlib.ContainsFunc,
	"length":    stdlib.LengthFunc,
	"tostring":  stdlib.MakeToFunc(cty.String),
	"tonumber":  stdlib.MakeToFunc(cty.Number),
	"format":    stdlib.FormatFunc,
	"substr":    stdlib.SubstrFunc,
	"trimspace": stdlib.TrimSpaceFunc,
}

// eventPaths is what the rules read of event.
func eventPaths(rules []rule) *jsonlimit.Paths {
	var exprs []hcl.Expression
	for _, r := range rules {
		exprs = append(exprs, r.when)
		for _, a := range r.actions {
			exprs = append(exprs, a.value, a.labels)
		}
	}
	return jsonlimit.PathsOf("event", exprs...)
}

// decodeTimeout bounds the decoding of one delivery's body: far above what
// the largest body allowed takes (about 0.1 s for 8 MB), so that only a
// pathological one meets it.
const decodeTimeout = 5 * time.Second

// eventContext builds the evaluation context of one delivery: the decoded
// JSON body as event (only what the rules read of it: keep), the headers
// (lower-case names, first value) as headers. A body refused by the
// decoding limits is a *jsonlimit.Error.
func eventContext(ctx context.Context, body []byte, lim jsonlimit.Limits, keep *jsonlimit.Paths, headers map[string]string) (*hcl.EvalContext, error) {
	ctx, cancel := context.WithTimeout(ctx, decodeTimeout)
	defer cancel()
	event, err := jsonlimit.Decode(ctx, body, lim, keep)
	if err != nil {
		return nil, fmt.Errorf("body refused: %w", err)
	}
	hv := map[string]cty.Value{}
	for k, v := range headers {
		hv[k] = cty.StringVal(v)
	}
	return &hcl.EvalContext{
		Variables: map[string]cty.Value{"event": event, "headers": cty.ObjectVal(hv)},
		Functions: ruleFunctions,
	}, nil
}

// evalRules runs every rule on one event and returns the ops the matching
// ones produce, and an error per rule that could not be evaluated (the rule
// is skipped, the others still run).
func evalRules(rules []rule, ctx *hcl.EvalContext, now int64) ([]op, []error) {
	var ops []op
	var errs []error
	for i, r := range rules {
		rops, err := evalRule(r, ctx, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %d: %w", i+1, err))
			continue
		}
		ops = append(ops, rops...)
	}
	return ops, errs
}

func evalRule(r rule, ctx *hcl.EvalContext, now int64) ([]op, error) {
	if r.when != nil {
		v, diags := r.when.Value(ctx)
		if diags.HasErrors() {
			return nil, fmt.Errorf("when: %s", diagSummary(diags))
		}
		v, err := convert.Convert(v, cty.Bool)
		if err != nil || v.IsNull() || !v.IsKnown() {
			return nil, errors.New("when: not a bool")
		}
		if v.False() {
			return nil, nil
		}
	}
	var ops []op
	for _, a := range r.actions {
		o := op{Verb: a.verb, Metric: a.metric.name, Time: now, Value: 1}
		if a.value != nil {
			f, err := evalNumber(a.value, ctx)
			if err != nil {
				return nil, fmt.Errorf("%s %s: value: %w", a.verb, a.metric.name, err)
			}
			o.Value = f
		}
		lv, err := evalLabels(a, ctx)
		if err != nil {
			return nil, fmt.Errorf("%s %s: labels: %w", a.verb, a.metric.name, err)
		}
		o.Labels = lv
		ops = append(ops, o)
	}
	return ops, nil
}

func evalNumber(e hcl.Expression, ctx *hcl.EvalContext) (float64, error) {
	v, diags := e.Value(ctx)
	if diags.HasErrors() {
		return 0, errors.New(diagSummary(diags))
	}
	if v.IsNull() || !v.IsKnown() {
		return 0, errors.New("is null")
	}
	v, err := convert.Convert(v, cty.Number)
	if err != nil {
		return 0, errors.New("not a number")
	}
	f, _ := v.AsBigFloat().Float64()
	return f, nil
}

// evalLabels evaluates an action's labels into the metric's label order.
func evalLabels(a action, ctx *hcl.EvalContext) ([]string, error) {
	names := a.metric.labels
	if a.labels == nil {
		return []string{}, nil
	}
	v, diags := a.labels.Value(ctx)
	if diags.HasErrors() {
		return nil, errors.New(diagSummary(diags))
	}
	if v.IsNull() || !v.IsKnown() || !(v.Type().IsObjectType() || v.Type().IsMapType()) {
		return nil, errors.New("not an object of label values")
	}
	if v.LengthInt() != len(names) {
		return nil, fmt.Errorf("want exactly the labels %s", strings.Join(names, ", "))
	}
	out := make([]string, len(names))
	for i, n := range names {
		var lv cty.Value
		if v.Type().IsObjectType() {
			if !v.Type().HasAttribute(n) {
				return nil, fmt.Errorf("label %s is missing", n)
			}
			lv = v.GetAttr(n)
		} else {
			if !v.HasIndex(cty.StringVal(n)).True() {
				return nil, fmt.Errorf("label %s is missing", n)
			}
			lv = v.Index(cty.StringVal(n))
		}
		if lv.IsNull() || !lv.IsKnown() {
			out[i] = ""
			continue
		}
		sv, err := convert.Convert(lv, cty.String)
		if err != nil {
			return nil, fmt.Errorf("label %s: not a string", n)
		}
		out[i] = sv.AsString()
	}
	return out, nil
}

// diagSummary is one line: diagnostics of rule evaluation name the
// expression's position in the config, not the event's content.
func diagSummary(d hcl.Diagnostics) string {
	for _, x := range d {
		if x.Severity == hcl.DiagError {
			s := x.Summary
			if x.Subject != nil {
				s = x.Subject.String() + ": " + s
			}
			return s
		}
	}
	return d.Error()
}

func equalStrings(a, b []string) bool { return slices.Equal(a, b) }

func equalFloats(a, b []float64) bool { return slices.Equal(a, b) }
