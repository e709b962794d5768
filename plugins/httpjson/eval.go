package httpjson

import (
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/sluicehq/sluice/pipeline"
)

// Why a series was dropped: the reason label of
// sluice_httpjson_series_dropped_total.
const (
	reasonEvalError   = "eval_error"   // the expression failed (e.g. a missing field)
	reasonMissing     = "missing"      // the value is null
	reasonNotNumber   = "not_number"   // the value is not a number
	reasonBadLabels   = "bad_labels"   // labels are not an object of strings, or a name is invalid
	reasonBadElement  = "bad_element"  // a series element is not { value, labels }
	reasonDuplicate   = "duplicate"    // a series with the same labels came first
	reasonSeriesLimit = "series_limit" // max_series reached
)

// Aggregations of the series with the same labels over one poll's pages.
const (
	aggSum   = "sum"
	aggCount = "count" // the number of such series; their values are not read
	aggMin   = "min"
	aggMax   = "max"
)

var reasons = []string{reasonEvalError, reasonMissing, reasonNotNumber, reasonBadLabels, reasonBadElement, reasonDuplicate, reasonSeriesLimit}

// functions are what expressions may call: try and can (for fields that
// some elements lack) and a few conversions. Built per plan, so that no
// table is shared mutable state.
func functions() map[string]function.Function {
	return map[string]function.Function{
		"try":      tryfunc.TryFunc,
		"can":      tryfunc.CanFunc,
		"length":   stdlib.LengthFunc,
		"lower":    stdlib.LowerFunc,
		"upper":    stdlib.UpperFunc,
		"lookup":   stdlib.LookupFunc,
		"coalesce": stdlib.CoalesceFunc,
		"parseint": stdlib.ParseIntFunc,
	}
}

// checkFunctions refuses calls to functions that do not exist at poll time.
func checkFunctions(e hcl.Expression, known map[string]function.Function) error {
	se, ok := e.(hclsyntax.Expression)
	if !ok {
		return nil
	}
	var errs []error
	_ = hclsyntax.VisitAll(se, func(n hclsyntax.Node) hcl.Diagnostics {
		if call, ok := n.(*hclsyntax.FunctionCallExpr); ok {
			if _, ok := known[call.Name]; !ok {
				errs = append(errs, fmt.Errorf("%s: there is no function %q here (available: %s)", call.NameRange, call.Name, strings.Join(sortedFuncs(known), ", ")))
			}
		}
		return nil
	})
	return errors.Join(errs...)
}

func sortedFuncs(m map[string]function.Function) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// decodeJSON decodes a response body into the value expressions see as
// body: objects, arrays (tuples), strings, numbers, bools and null.
func decodeJSON(b []byte) (cty.Value, error) {
	ty, err := ctyjson.ImpliedType(b)
	if err != nil {
		return cty.NilVal, fmt.Errorf("response is not JSON: %w", err)
	}
	v, err := ctyjson.Unmarshal(b, ty)
	if err != nil {
		return cty.NilVal, fmt.Errorf("response is not JSON: %w", err)
	}
	return v, nil
}

// sample is one series.
type sample struct {
	labels map[string]string
	value  float64
}

// collector gathers the series of one poll, page after page.
type collector struct {
	plan   *plan
	funcs  map[string]function.Function
	report func(metric, reason string, err error)
	n      int
	byName map[string][]sample
	seen   map[string]int // metric name + label set -> index in byName[name]
}

func newCollector(p *plan, report func(metric, reason string, err error)) *collector {
	return &collector{plan: p, funcs: p.funcs, report: report, byName: map[string][]sample{}, seen: map[string]int{}}
}

// addPage evaluates every metric against one decoded page. Nothing in a
// page is fatal: each series that cannot be made is reported and dropped.
func (c *collector) addPage(body cty.Value) {
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{BodyVar: body}, Functions: c.funcs}
	for _, m := range c.plan.metrics {
		if m.series != nil {
			c.addSeries(ctx, m)
			continue
		}
		v, diags := m.value.Value(ctx)
		if diags.HasErrors() {
			c.report(m.name, reasonEvalError, diags)
			continue
		}
		labels := cty.NullVal(cty.DynamicPseudoType)
		if m.labels != nil {
			var diags hcl.Diagnostics
			if labels, diags = m.labels.Value(ctx); diags.HasErrors() {
				c.report(m.name, reasonEvalError, diags)
				continue
			}
		}
		c.add(m, v, labels)
	}
}

// addSeries evaluates a series expression. A for expression is evaluated
// element by element, so that an element whose expression fails (a field
// it lacks) costs that one series, not the whole list.
func (c *collector) addSeries(ctx *hcl.EvalContext, m *metricDef) {
	fe, ok := m.series.(*hclsyntax.ForExpr)
	if !ok || fe.KeyExpr != nil || fe.Group {
		list, diags := m.series.Value(ctx)
		if diags.HasErrors() {
			c.report(m.name, reasonEvalError, diags)
			return
		}
		if !list.CanIterateElements() || list.IsNull() || !list.IsKnown() {
			c.report(m.name, reasonBadElement, fmt.Errorf("series is %s, want a list of { value, labels }", list.Type().FriendlyName()))
			return
		}
		for it := list.ElementIterator(); it.Next(); {
			_, e := it.Element()
			c.addElement(m, e)
		}
		return
	}
	coll, diags := fe.CollExpr.Value(ctx)
	if diags.HasErrors() {
		c.report(m.name, reasonEvalError, diags)
		return
	}
	if coll.IsNull() || !coll.IsKnown() || !coll.CanIterateElements() {
		c.report(m.name, reasonEvalError, fmt.Errorf("for expression over %s, want a list or an object", coll.Type().FriendlyName()))
		return
	}
	for it := coll.ElementIterator(); it.Next(); {
		k, v := it.Element()
		child := ctx.NewChild()
		child.Variables = map[string]cty.Value{fe.ValVar: v}
		if fe.KeyVar != "" {
			child.Variables[fe.KeyVar] = k
		}
		if fe.CondExpr != nil {
			cond, diags := fe.CondExpr.Value(child)
			if diags.HasErrors() {
				c.report(m.name, reasonEvalError, diags)
				continue
			}
			cond, err := convert.Convert(cond, cty.Bool)
			if err != nil || cond.IsNull() || !cond.IsKnown() {
				c.report(m.name, reasonEvalError, errors.New("the for expression's if condition is not a bool"))
				continue
			}
			if cond.False() {
				continue
			}
		}
		e, diags := fe.ValExpr.Value(child)
		if diags.HasErrors() {
			c.report(m.name, reasonEvalError, diags)
			continue
		}
		c.addElement(m, e)
	}
}

func (c *collector) addElement(m *metricDef, e cty.Value) {
	if e.IsNull() || !e.IsKnown() || !(e.Type().IsObjectType() || e.Type().IsMapType()) {
		c.report(m.name, reasonBadElement, fmt.Errorf("series element is %s, want { value = ..., labels = {...} }", e.Type().FriendlyName()))
		return
	}
	v, ok := field(e, "value")
	if !ok && m.agg != aggCount { // a count needs no value
		c.report(m.name, reasonBadElement, errors.New("series element has no value"))
		return
	}
	labels, _ := field(e, "labels")
	c.add(m, v, labels)
}

func field(obj cty.Value, name string) (cty.Value, bool) {
	switch {
	case obj.Type().IsObjectType():
		if !obj.Type().HasAttribute(name) {
			return cty.NilVal, false
		}
		return obj.GetAttr(name), true
	case obj.Type().IsMapType():
		k := cty.StringVal(name)
		if !obj.HasIndex(k).True() {
			return cty.NilVal, false
		}
		return obj.Index(k), true
	}
	return cty.NilVal, false
}

func (c *collector) add(m *metricDef, v, labels cty.Value) {
	f := 1.0 // a count counts series: their values are not read
	if m.agg != aggCount {
		var reason string
		var err error
		if f, reason, err = toNumber(v); err != nil {
			c.report(m.name, reason, err)
			return
		}
	}
	ls, err := toLabels(labels)
	if err != nil {
		c.report(m.name, reasonBadLabels, err)
		return
	}
	key := seriesKey(m.name, ls)
	if i, ok := c.seen[key]; ok {
		if m.agg == "" {
			c.report(m.name, reasonDuplicate, fmt.Errorf("duplicate series %s", key))
			return
		}
		smp := &c.byName[m.name][i]
		switch m.agg {
		case aggSum, aggCount:
			smp.value += f
		case aggMin:
			smp.value = min(smp.value, f)
		case aggMax:
			smp.value = max(smp.value, f)
		}
		return
	}
	if c.n >= c.plan.maxSeries {
		c.report(m.name, reasonSeriesLimit, fmt.Errorf("max_series (%d) reached", c.plan.maxSeries))
		return
	}
	c.seen[key] = len(c.byName[m.name])
	c.n++
	c.byName[m.name] = append(c.byName[m.name], sample{labels: ls, value: f})
}

func toNumber(v cty.Value) (float64, string, error) {
	if v.IsNull() {
		return 0, reasonMissing, errors.New("value is null")
	}
	if !v.IsWhollyKnown() {
		return 0, reasonMissing, errors.New("value is not known")
	}
	if v.Type() == cty.Bool {
		if v.True() {
			return 1, "", nil
		}
		return 0, "", nil
	}
	n, err := convert.Convert(v, cty.Number)
	if err != nil {
		return 0, reasonNotNumber, fmt.Errorf("value is %s, not a number", v.Type().FriendlyName())
	}
	f, acc := n.AsBigFloat().Float64()
	if acc != big.Exact && (f == 0 || isInf(f)) {
		// Out of float64 range: rounding to ±Inf or 0 would be a lie.
		return 0, reasonNotNumber, errors.New("value is out of range")
	}
	return f, "", nil
}

func isInf(f float64) bool { return f > 1.7976931348623157e308 || f < -1.7976931348623157e308 }

func toLabels(v cty.Value) (map[string]string, error) {
	if v == cty.NilVal || v.IsNull() {
		return nil, nil
	}
	if !v.IsWhollyKnown() || !(v.Type().IsObjectType() || v.Type().IsMapType()) {
		return nil, fmt.Errorf("labels are %s, want an object of strings", v.Type().FriendlyName())
	}
	out := map[string]string{}
	for it := v.ElementIterator(); it.Next(); {
		k, lv := it.Element()
		name := k.AsString()
		if !pipeline.ValidLabelName(name) {
			return nil, fmt.Errorf("%q is not a valid label name", name)
		}
		if lv.IsNull() {
			continue // an empty label is no label
		}
		s, err := convert.Convert(lv, cty.String)
		if err != nil {
			return nil, fmt.Errorf("label %q is %s, want a string", name, lv.Type().FriendlyName())
		}
		if s.AsString() != "" {
			out[name] = s.AsString()
		}
	}
	return out, nil
}

func seriesKey(name string, ls map[string]string) string {
	keys := make([]string, 0, len(ls))
	for k := range ls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(name)
	b.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%s=%q", k, ls[k])
	}
	b.WriteString("}")
	return b.String()
}

// snapshot turns the collected series into families ready to serve. The
// label names of a family are the union over its series (a series without
// one of them has it empty, which Prometheus reads as absent), so that every
// family is consistent.
func (c *collector) snapshot() *snapshot {
	s := &snapshot{families: map[string]*family{}}
	for _, m := range c.plan.metrics {
		samples := c.byName[m.name]
		if len(samples) == 0 {
			continue
		}
		names := map[string]bool{}
		for _, smp := range samples {
			for k := range smp.labels {
				names[k] = true
			}
		}
		labelNames := make([]string, 0, len(names))
		for k := range names {
			labelNames = append(labelNames, k)
		}
		sort.Strings(labelNames)
		f := &family{desc: prometheus.NewDesc(m.name, m.help, labelNames, nil), typ: m.typ}
		for _, smp := range samples {
			values := make([]string, len(labelNames))
			for i, k := range labelNames {
				values[i] = smp.labels[k]
			}
			f.series = append(f.series, series{labelValues: values, value: smp.value})
		}
		s.families[m.name] = f
		s.series += len(samples)
	}
	return s
}
