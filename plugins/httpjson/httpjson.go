// Package httpjson implements the http_json_source component: it polls an
// HTTP JSON API on its own schedule, follows `Link: <...>; rel="next"`
// pagination, and turns the decoded bodies into gauges and counters with
// HCL expressions that are evaluated at every poll. Scrapes read the
// snapshot of the last good poll and never touch the API.
//
// Reading order:
//
//	httpjson.go    arguments, defaults, validation, registration
//	plan.go        arguments resolved (Provision) into what a poll needs
//	eval.go        one decoded page -> series (pure; fuzzed)
//	run.go         Build, Update, Run: the schedule and one poll
//	store.go       the snapshot and the exported Gatherer
//	selfmetrics.go sluice_httpjson_* self-metrics
package httpjson

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline"
)

// Name is the component's HCL block type.
const Name = "http_json_source"

// Defaults and bounds.
const (
	DefaultInterval         = 60 * time.Second
	DefaultTimeout          = 10 * time.Second
	DefaultMaxPages         = 10
	DefaultMaxResponseBytes = 10 << 20
	DefaultMaxSeries        = 10000

	// MinInterval is the shortest interval accepted.
	MinInterval = 100 * time.Millisecond
)

// BodyVar is the variable through which expressions see a decoded page.
const BodyVar = "body"

// Arguments configure an http_json_source.
type Arguments struct {
	URL      string        `hcl:"url"`
	Interval time.Duration `hcl:"interval,optional"`
	// Timeout bounds one whole poll, every page included.
	Timeout time.Duration `hcl:"timeout,optional"`
	// Headers are sent with every request. They usually carry credentials
	// (Authorization = env("API_TOKEN")), so they are a secret: no
	// diagnostic prints their line, and no log or error their values.
	Headers          map[string]string `hcl:"headers,optional" secret:"true"`
	MaxPages         int               `hcl:"max_pages,optional"`
	MaxResponseBytes int64             `hcl:"max_response_bytes,optional"`
	MaxSeries        int               `hcl:"max_series,optional"`
	Metrics          []Metric          `hcl:"metric,block"`

	plan *plan // Provision
}

// Metric is one `metric "NAME"` block. Exactly one of Value (one series,
// with Labels) or Series (any number) is set. The expressions are kept
// unevaluated and evaluated against every page, with the page as body.
type Metric struct {
	Name string `hcl:"name,label"`
	Type string `hcl:"type,optional"`
	Help string `hcl:"help,optional"`
	// Value is a number (or a numeric string, or a bool: 1 or 0).
	Value hcl.Expression `hcl:"value,optional"`
	// Labels is an object of label name -> string.
	Labels hcl.Expression `hcl:"labels,optional"`
	// Series is a list of objects { value = ..., labels = {...} }, usually
	// a for expression over an array of the body.
	Series hcl.Expression `hcl:"series,optional"`
	// Aggregate combines the series with the same labels over every page
	// of one poll: sum, count, min or max. Unset, such a series is a
	// duplicate and dropped.
	Aggregate string `hcl:"aggregate,optional"`
}

// Exports of an http_json_source.
type Exports struct {
	Metrics prometheus.Gatherer `hcl:"metrics"`
}

// SetDefaults implements pipeline.SetDefaulter.
func (a *Arguments) SetDefaults() {
	*a = Arguments{
		Interval:         DefaultInterval,
		Timeout:          DefaultTimeout,
		MaxPages:         DefaultMaxPages,
		MaxResponseBytes: DefaultMaxResponseBytes,
		MaxSeries:        DefaultMaxSeries,
	}
}

// SetDefaults implements pipeline.SetDefaulter.
func (m *Metric) SetDefaults() { m.Type = "gauge" }

var (
	headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// checkVariables refuses an expression that refers to anything but body:
// the loader does not resolve the variables of unevaluated expressions, so
// a reference to another component would only fail at poll time.
func checkVariables(e hcl.Expression) error {
	if e == nil {
		return nil
	}
	for _, tr := range e.Variables() {
		if root := tr.RootName(); root != BodyVar {
			return fmt.Errorf("%s: unknown variable %q; expressions here see only %s, the decoded response", tr.SourceRange(), root, BodyVar)
		}
	}
	return nil
}

// Validate implements pipeline.Validator for a metric block.
func (m *Metric) Validate() error {
	var errs []error
	if !pipeline.ValidMetricName(m.Name) {
		errs = append(errs, fmt.Errorf("metric %q: not a valid Prometheus metric name", m.Name))
	}
	if _, err := valueType(m.Type); err != nil {
		errs = append(errs, pipeline.ErrorAt("type", fmt.Errorf("metric %q: %w", m.Name, err)))
	}
	switch {
	case m.Value == nil && m.Series == nil:
		errs = append(errs, fmt.Errorf("metric %q: set value (one series) or series (a list of { value, labels })", m.Name))
	case m.Value != nil && m.Series != nil:
		errs = append(errs, pipeline.ErrorAt("series", fmt.Errorf("metric %q: set value or series, not both", m.Name)))
	case m.Series != nil && m.Labels != nil:
		errs = append(errs, pipeline.ErrorAt("labels", fmt.Errorf("metric %q: with series, labels go in each element: { value = ..., labels = {...} }", m.Name)))
	}
	switch m.Aggregate {
	case "", aggSum, aggMin, aggMax:
	case aggCount:
		if m.Type == "counter" {
			// A count of the items of one poll goes down as well as up.
			errs = append(errs, pipeline.ErrorAt("aggregate", fmt.Errorf("metric %q: a count is a gauge, not a counter", m.Name)))
		}
	default:
		errs = append(errs, pipeline.ErrorAt("aggregate", fmt.Errorf("metric %q: aggregate must be \"sum\", \"count\", \"min\" or \"max\", got %q", m.Name, m.Aggregate)))
	}
	for _, x := range []struct {
		attr string
		e    hcl.Expression
	}{{"value", m.Value}, {"labels", m.Labels}, {"series", m.Series}} {
		attr, e := x.attr, x.e
		if err := checkVariables(e); err != nil {
			errs = append(errs, pipeline.ErrorAt(attr, fmt.Errorf("metric %q: %w", m.Name, err)))
		}
		if err := checkFunctions(e, functions()); err != nil {
			errs = append(errs, pipeline.ErrorAt(attr, fmt.Errorf("metric %q: %w", m.Name, err)))
		}
	}
	return errors.Join(errs...)
}

func valueType(t string) (prometheus.ValueType, error) {
	switch t {
	case "gauge", "":
		return prometheus.GaugeValue, nil
	case "counter":
		return prometheus.CounterValue, nil
	}
	return 0, fmt.Errorf("type must be \"gauge\" or \"counter\", got %q", t)
}

// Validate implements pipeline.Validator.
func (a *Arguments) Validate() error {
	var errs []error
	if u, err := url.Parse(a.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, pipeline.ErrorAt("url", errors.New("url must be an absolute http:// or https:// URL")))
	}
	if a.Interval < MinInterval {
		errs = append(errs, pipeline.ErrorAt("interval", fmt.Errorf("interval must be at least %v", MinInterval)))
	}
	if a.Timeout <= 0 || a.Timeout > a.Interval {
		errs = append(errs, pipeline.ErrorAt("timeout", errors.New("timeout must be positive and at most interval (a poll never overlaps the next)")))
	}
	for _, k := range sortedKeys(a.Headers) {
		if !headerNameRE.MatchString(k) {
			errs = append(errs, pipeline.ErrorAt("headers", fmt.Errorf("%q is not a valid header name", k)))
		}
		// The value is never quoted: it may be a credential.
		if strings.ContainsAny(a.Headers[k], "\r\n\x00") {
			errs = append(errs, pipeline.ErrorAt("headers", fmt.Errorf("the value of header %q holds a line break or NUL", k)))
		}
	}
	if a.MaxPages < 1 {
		errs = append(errs, pipeline.ErrorAt("max_pages", errors.New("max_pages must be at least 1")))
	}
	if a.MaxResponseBytes < 1 {
		errs = append(errs, pipeline.ErrorAt("max_response_bytes", errors.New("max_response_bytes must be at least 1")))
	}
	if a.MaxSeries < 1 {
		errs = append(errs, pipeline.ErrorAt("max_series", errors.New("max_series must be at least 1")))
	}
	if len(a.Metrics) == 0 {
		errs = append(errs, errors.New("at least one metric block is required"))
	}
	return errors.Join(errs...)
}

// Provision resolves the arguments into the plan Build and Update use.
func (a *Arguments) Provision(pipeline.ProvisionContext) error {
	p, err := newPlan(*a)
	if err != nil {
		return err
	}
	a.plan = p
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Example is the block `sluice components http_json_source` shows.
const Example = `http_json_source "deliveries" {
  url      = "https://ci.example.com/api/v1/pipelines?per_page=100"
  interval = "60s"
  timeout  = "15s"
  headers = {
    Authorization = "Bearer ${env("CI_API_TOKEN")}"
  }
  max_pages = 5

  metric "ci_pipeline_duration_seconds" {
    type   = "gauge"
    help   = "Duration of the latest pipelines."
    series = [for p in body.pipelines : { value = p.duration, labels = { project = p.project, status = p.status } }]
  }
  metric "ci_queue_length" {
    help  = "Jobs waiting for a runner."
    value = body.queue.length
  }
}`

func init() {
	pipeline.Register(pipeline.Registration[Arguments, Exports]{
		Name:      Name,
		Stability: pipeline.StabilityExperimental,
		Summary:   "polls an HTTP JSON API (with Link pagination) and maps the body to metrics with HCL expressions",
		Example:   Example,
		Build:     build,
	})
}

// Interface guards.
var (
	_ pipeline.Component[Arguments] = (*Component)(nil)
	_ pipeline.HealthReporter       = (*Component)(nil)
	_ pipeline.SetDefaulter         = (*Arguments)(nil)
	_ pipeline.Validator            = (*Arguments)(nil)
	_ pipeline.Provisioner          = (*Arguments)(nil)
	_ pipeline.SetDefaulter         = (*Metric)(nil)
	_ pipeline.Validator            = (*Metric)(nil)
)
