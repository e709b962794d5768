package httpjson

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/zclconf/go-cty/cty/function"
)

// plan is a set of arguments resolved for running. It is immutable: Update
// swaps the whole plan, and a poll uses the plan it started with.
type plan struct {
	url       *url.URL
	headers   http.Header
	interval  time.Duration
	timeout   time.Duration
	maxPages  int
	maxBytes  int64
	maxSeries int
	metrics   []*metricDef
	funcs     map[string]function.Function
}

type metricDef struct {
	name   string
	help   string
	typ    prometheus.ValueType
	value  hcl.Expression // one series: value and labels
	labels hcl.Expression
	series hcl.Expression // or many
	agg    string         // "" (duplicates dropped), sum, count, min, max
}

func newPlan(a Arguments) (*plan, error) {
	u, err := url.Parse(a.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	h := http.Header{}
	for k, v := range a.Headers {
		h.Set(k, v)
	}
	if h.Get("Accept") == "" {
		h.Set("Accept", "application/json")
	}
	p := &plan{
		url: u, headers: h, interval: a.Interval, timeout: a.Timeout,
		maxPages: a.MaxPages, maxBytes: a.MaxResponseBytes, maxSeries: a.MaxSeries,
		funcs: functions(),
	}
	for _, m := range a.Metrics {
		typ, err := valueType(m.Type)
		if err != nil {
			return nil, err
		}
		help := m.Help
		if help == "" {
			help = "Value from " + Name + "."
		}
		p.metrics = append(p.metrics, &metricDef{name: m.Name, help: help, typ: typ, value: m.Value, labels: m.Labels, series: m.Series, agg: m.Aggregate})
	}
	return p, nil
}
