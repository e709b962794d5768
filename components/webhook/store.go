package webhook

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// op is one change to the state: what the API and rules produce, what the
// write-ahead log records and what a restart replays.
type op struct {
	Verb   string   `json:"o"` // observe inc add set dec | delete (one series) | reset (every series) | drop (metric removed)
	Metric string   `json:"m"`
	Labels []string `json:"l,omitempty"`
	Value  float64  `json:"v,omitempty"`
	Time   int64    `json:"t"` // Unix milliseconds: a series' last update, for ttl
}

// httpError is an error with the status code the API answers.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errCode(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

// series is one label combination of a metric.
type series struct {
	values  []string
	value   float64  // counter, gauge
	counts  []uint64 // histogram: observations per bucket (not cumulative), +Inf last
	sum     float64
	count   uint64
	updated int64 // Unix ms

	// The series encoded (text.go): text is its lines in the text format,
	// nil once it changed; ver counts its changes; gone is set when it
	// left its metric's map (removed or replaced).
	text []byte
	ver  uint32 // compared for equality within one scrape only: wrapping is harmless
	gone bool
}

// metricState is one metric's series. Every change to them goes through
// put, remove, touch and resetAll, which keep the encoded text (text.go)
// in step.
type metricState struct {
	def    *metricDef
	series map[string]*series
	text   famText
}

// newMetricState is a metric as it starts and as DELETE leaves it: its
// pre-created combinations (initial_label_values) at 0, nothing else.
// gen is the store's change counter.
func newMetricState(d *metricDef, gen *uint64) *metricState {
	ms := &metricState{def: d, series: make(map[string]*series, len(d.initial))}
	ms.text.init(d, gen)
	ms.changed()
	ms.addInitial()
	return ms
}

// newSeries is a series at 0.
func (d *metricDef) newSeries(values []string) *series {
	sr := &series{values: slices.Clone(values)}
	if d.typ == "histogram" {
		sr.counts = make([]uint64, len(d.buckets)+1)
	}
	return sr
}

// addInitial adds the pre-created combinations that are missing, at 0 and
// never updated (updated == 0: no op has touched them).
func (ms *metricState) addInitial() {
	for k, vs := range ms.def.initial {
		if ms.series[k] == nil {
			ms.put(k, ms.def.newSeries(vs))
		}
	}
}

// clearSeries removes one series; a pre-created combination goes back to
// 0 instead, as it was at start.
func (ms *metricState) clearSeries(key string) {
	if vs, ok := ms.def.initial[key]; ok {
		ms.put(key, ms.def.newSeries(vs))
		return
	}
	ms.remove(key)
}

// store is the pushed state. One mutex guards the series and the log
// buffer, so the log's order is the order changes were applied in.
type store struct {
	mu      sync.Mutex
	metrics map[string]*metricState
	// gen counts changes to the series (text.go: a scrape's version).
	gen uint64
	// textMu serializes gatherText (text.go); taken before mu.
	textMu sync.Mutex
	log    *walBuffer // nil without persistence
	onNew  func(metric string, refused bool)
	// onNonFinite is told of a change refused because its result would
	// not be a finite number.
	onNonFinite func(metric string)
	// durable: changes must be logged; without a log (Run has stopped)
	// they are refused rather than acknowledged in memory only.
	durable bool
	// fault is set while the state cannot be written (see committer):
	// changes are refused, not applied in memory only.
	fault error
}

func newStore() *store { return &store{metrics: map[string]*metricState{}} }

// seriesKey joins label values with a byte that cannot appear in UTF-8.
func seriesKey(values []string) string { return strings.Join(values, "\xff") }

// setDefs applies a plan's metric definitions: new metrics start with
// their pre-created combinations only, changed help keeps the series,
// removed metrics are dropped (and the drop logged). Labels, type and
// buckets of a kept metric are equal (Update refuses a change). A changed
// initial_label_values adds the new combinations at 0 and removes the
// pre-created ones no longer listed that nothing has written to; a
// combination that was written to stays, as any pushed series. Called
// with s.mu held.
func (s *store) setDefsLocked(defs map[string]*metricDef, now int64) {
	for name := range s.metrics {
		if defs[name] == nil {
			delete(s.metrics, name)
			s.gen++
			s.appendLocked(op{Verb: "drop", Metric: name, Time: now})
		}
	}
	for name, d := range defs {
		ms := s.metrics[name]
		if ms == nil {
			s.metrics[name] = newMetricState(d, &s.gen)
			continue
		}
		old := ms.def
		ms.def = d
		if old.help != d.help {
			ms.changed() // the HELP line
		}
		if !old.sameInitial(d) {
			for k, sr := range ms.series {
				if _, still := d.initial[k]; !still && sr.updated == 0 {
					ms.remove(k)
				}
			}
			ms.addInitial()
		}
	}
}

func (s *store) appendLocked(o op) {
	if s.log != nil {
		s.log.append(o)
	}
}

// applyLocked validates and applies one op. Called with s.mu held.
func (s *store) applyLocked(o op) error {
	ms := s.metrics[o.Metric]
	if ms == nil {
		if o.Verb == "drop" {
			return nil
		}
		return errCode(404, "unknown metric %q", o.Metric)
	}
	d := ms.def
	switch o.Verb {
	case "drop":
		s.metrics[o.Metric] = newMetricState(d, &s.gen)
		return nil
	case "reset":
		ms.resetAll()
		ms.addInitial()
		return nil
	}
	if len(o.Labels) != len(d.labels) {
		return errCode(400, "metric %s has %d labels (%s), got %d values", d.name, len(d.labels), strings.Join(d.labels, ","), len(o.Labels))
	}
	for i, v := range o.Labels {
		// Every gather of the receiver would fail on it (the registry
		// checks label values), holding back its valid series too.
		if !utf8.ValidString(v) {
			return errCode(400, "label %s: value is not valid UTF-8", d.labels[i])
		}
	}
	key := seriesKey(o.Labels)
	if o.Verb == "delete" {
		ms.clearSeries(key)
		return nil
	}
	if !d.accepts(o.Verb) {
		return errCode(400, "cannot %s a %s; %s accepts %s", o.Verb, d.typ, d.name, strings.Join(verbsByType[d.typ], ", "))
	}
	if math.IsNaN(o.Value) || math.IsInf(o.Value, 0) {
		return errCode(400, "value must be a finite number")
	}
	if d.typ == "counter" && o.Value < 0 {
		return errCode(400, "a counter only goes up: negative value %g", o.Value)
	}
	sr := ms.series[key]
	if sr != nil {
		// The value is finite; the result may not be (1.7e308 added
		// twice). Refused before anything changes: a non-finite value
		// cannot be stored, exported sensibly or added to.
		if next, field := sr.next(o); math.IsInf(next, 0) || math.IsNaN(next) {
			if s.onNonFinite != nil {
				s.onNonFinite(d.name)
			}
			return errCode(400, "%s %g would make the %s of series %s{%s} %g: refused, only finite values are kept", o.Verb, o.Value, field, d.name, strings.Join(o.Labels, ","), next)
		}
	}
	if sr == nil {
		if len(ms.series) >= d.maxSeries {
			if s.onNew != nil {
				s.onNew(d.name, true)
			}
			return errCode(429, "metric %s has reached max_series (%d): series refused", d.name, d.maxSeries)
		}
		sr = d.newSeries(o.Labels)
		ms.put(key, sr)
	}
	switch o.Verb {
	case "observe":
		sr.counts[sort.SearchFloat64s(d.buckets, o.Value)]++
		sr.sum += o.Value
		sr.count++
	case "inc", "add":
		sr.value += o.Value
	case "dec":
		sr.value -= o.Value
	case "set":
		sr.value = o.Value
	}
	if o.Time > sr.updated {
		sr.updated = o.Time
	}
	ms.touch(sr)
	return nil
}

// next is what o makes of sr's value (or sum, for a histogram), and which.
func (sr *series) next(o op) (float64, string) {
	switch o.Verb {
	case "observe":
		return sr.sum + o.Value, "sum"
	case "inc", "add":
		return sr.value + o.Value, "value"
	case "dec":
		return sr.value - o.Value, "value"
	}
	return o.Value, "value"
}

// apply applies ops in order, logging those that succeed, and returns the
// error of each (nil when applied) and what to wait on before answering:
// the group commit that makes them durable.
func (s *store) apply(ops []op) ([]error, *batch) {
	errs := make([]error, len(ops))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.durable && s.log == nil {
		for i := range errs {
			errs[i] = errCode(503, "shutting down: not accepting changes")
		}
		return errs, nil
	}
	if s.fault != nil {
		for i := range errs {
			errs[i] = errCode(503, "the state cannot be written (%v): changes are refused until it can; retrying", s.fault)
		}
		return errs, nil
	}
	any := false
	for i, o := range ops {
		if errs[i] = s.applyLocked(o); errs[i] == nil {
			s.appendLocked(o)
			any = true
		}
	}
	if !any || s.log == nil {
		return errs, nil
	}
	return errs, s.log.current()
}

// expire removes series not updated within their metric's ttl.
func (s *store) expire(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ms := range s.metrics {
		n += ms.expire(now)
	}
	return n
}

// expire removes the metric's series not updated within its ttl (a
// pre-created combination goes back to 0). It scans the series only when
// the oldest update it knows of is past the ttl: a metric whose series
// are all fresh costs a comparison, so that the sweep and every scrape
// can call it.
func (ms *metricState) expire(now time.Time) int {
	if ms.def.ttl <= 0 {
		return 0
	}
	cutoff := now.Add(-ms.def.ttl).UnixMilli()
	if ms.text.oldest >= cutoff {
		return 0
	}
	n := 0
	oldest := int64(math.MaxInt64)
	for k, sr := range ms.series {
		switch {
		case sr.updated == 0:
		case sr.updated < cutoff:
			ms.clearSeries(k)
			n++
		default:
			oldest = min(oldest, sr.updated)
		}
	}
	ms.text.oldest = oldest
	return n
}

// collector exposes the pushed series.
type collector struct{ s *store }

func (c collector) Describe(chan<- *prometheus.Desc) {} // unchecked: the metrics change with reloads

func (c collector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	for _, ms := range c.s.metrics {
		d := ms.def
		cutoff := int64(math.MinInt64)
		if d.ttl > 0 {
			cutoff = now.Add(-d.ttl).UnixMilli()
		}
		for k, sr := range ms.series {
			if sr.updated != 0 && sr.updated < cutoff {
				vs, ok := d.initial[k]
				if !ok {
					continue // expired; the sweep removes it
				}
				sr = d.newSeries(vs) // expired: back to 0 at the sweep
			}
			m, err := d.metric(sr)
			if err != nil {
				m = prometheus.NewInvalidMetric(d.desc, err)
			}
			ch <- m
		}
	}
}

var errNotDurable = errors.New("the change could not be made durable")
