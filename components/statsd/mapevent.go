package statsd

import (
	"math"
	"strconv"
	"strings"

	"github.com/prometheus/statsd_exporter/pkg/event"
	"github.com/prometheus/statsd_exporter/pkg/mapper"
)

// Parse and map: the full path of a line. Upstream's parser makes events
// of it; each is checked (sample rates, names, labels, values) and mapped
// (through the reader's memo of the mapper's answers, else upstream's
// mapper) into an item for the shard that owns its metric name. What the
// checks refuse is counted and logged here, before the store sees it.

// maxMemo bounds a reader's memo of mapper results.
const maxMemo = 1024

// memoKey is what the mapper maps: a statsd name and type.
type memoKey struct {
	name string
	typ  mapper.MetricType
}

// memoEntry is the mapper's answer for a memoKey, with what the reader
// derives from it: the escaped, checked metric name and its shard. Only
// answers that map to a valid name (or drop) are kept; the others take the
// full path, with its counting and logging, every time.
type memoEntry struct {
	mapping *mapper.MetricMapping
	labels  map[string]string // the mapping's labels; read only
	name    string
	shard   int
	present bool
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// sampleRateProblem checks a line's sample rates (`|@rate`) before
// upstream's parser expands it, and returns the reason to drop the line,
// or "". A rate must be a number in (0, 1]: upstream would divide a
// counter by NaN, 0 (which it takes as 1), a negative or a denormal rate
// (NaN, or +Inf for `@1e-320`), and repeat a timer int(1/rate) times,
// which for a rate above 1 silently drops it and for a tiny one is
// billions of events. A rate that is not a number at all is left to
// upstream, which counts it (invalid_sample_factor) and uses 1. It follows
// upstream's split of a line into samples, without allocating.
func sampleRateProblem(line string) string {
	if !strings.Contains(line, "|@") {
		return ""
	}
	_, rest, ok := strings.Cut(line, ":")
	if !ok {
		return ""
	}
	valuePart, suffix, ok := strings.Cut(rest, "|")
	if !ok {
		return ""
	}
	events := 0
	check := func(sample string, times int) string {
		n, reason := sampleEvents(sample)
		if reason != "" {
			return reason
		}
		events += n * times
		if events > maxLineEvents || n > maxLineEvents {
			return reasonTooManyEvents
		}
		return ""
	}
	switch {
	case strings.Contains(valuePart, ":"):
		// DogStatsD extended aggregation: values share one suffix.
		return check("0|"+suffix, strings.Count(valuePart, ":")+1)
	case strings.Contains(rest, "|#"):
		return check(rest, 1)
	}
	for rest != "" {
		var sample string
		sample, rest, _ = strings.Cut(rest, ":")
		if reason := check(sample, 1); reason != "" {
			return reason
		}
	}
	return ""
}

// sampleEvents returns how many events upstream makes of one sample
// (value|type|components...), or why its sample rate is refused.
func sampleEvents(sample string) (int, string) {
	_, rest, ok := strings.Cut(sample, "|")
	if !ok {
		return 1, ""
	}
	typ, rest, _ := strings.Cut(rest, "|")
	n := 1
	for rest != "" {
		var c string
		c, rest, _ = strings.Cut(rest, "|")
		if len(c) < 2 || c[0] != '@' {
			continue
		}
		rate, err := strconv.ParseFloat(c[1:], 64)
		if err != nil {
			continue // upstream's to count
		}
		if !(rate > 0 && rate <= 1) {
			return 0, reasonSampleRate
		}
		if typ == "ms" || typ == "h" || typ == "d" {
			if 1/rate > maxLineEvents {
				return 0, reasonTooManyEvents
			}
			n = int(1 / rate)
		}
	}
	return n, ""
}

// resetMemo empties the memo and ties it to cfg.
func (p *processor) resetMemo(cfg *runtimeConfig) {
	p.flushMemoHits()
	p.memoCfg = cfg
	switch {
	case cfg == nil || cfg.memoSize == 0:
		p.memo, p.fast = nil, nil
	case p.memo == nil:
		p.memo = make(map[memoKey]memoEntry, 64)
		p.fast = make(map[string]*fastEntry, 64)
	default:
		clear(p.memo)
		clear(p.fast)
	}
}

func (p *processor) flushMemoHits() {
	if p.memoHits == 0 {
		return
	}
	if c := p.memoCfg; c != nil && c.cacheGets != nil && c.cacheHits != nil {
		c.cacheGets.Add(p.memoHits)
		c.cacheHits.Add(p.memoHits)
	}
	p.memoHits = 0
}

// resolve maps a statsd name and type, as upstream's exporter does before
// it touches the registry: from the memo, or through the mapper, counting
// and logging what cannot be exported. ok is false if the event is
// dropped.
func (p *processor) resolve(ev event.Event) (e memoEntry, ok bool) {
	key := memoKey{ev.MetricName(), ev.MetricType()}
	if p.memo != nil {
		if e, ok := p.memo[key]; ok {
			p.memoHits++
			return p.counted(e)
		}
	}
	cfg := p.cfg
	mapping, mlabels, present := cfg.mapper.GetMapping(key.name, key.typ)
	if mapping == nil {
		mapping = cfg.unmapped
	}
	e = memoEntry{mapping: mapping, labels: mlabels, present: present}
	if mapping.Action != mapper.ActionTypeDrop {
		if present {
			if mapping.Name == "" {
				p.rep.eventError(reasonEmptyName, "the mapping produces an empty metric name", "statsd_metric", key.name, "match", mapping.Match)
				return e, false
			}
			e.name = mapper.EscapeMetricName(mapping.Name)
		} else {
			e.name = mapper.EscapeMetricName(key.name)
		}
		if e.name == "" || !validName(e.name) {
			p.counted(e)
			if e.name == "" {
				p.rep.eventError(reasonEmptyName, "the metric name is empty", "statsd_metric", key.name)
			} else {
				p.rep.eventError(reasonInvalidName, "invalid metric name", "metric", e.name, "statsd_metric", key.name)
			}
			return e, false
		}
		for k := range mlabels {
			if !validLabelName(k) {
				p.counted(e)
				p.rep.eventError(reasonInvalidLabel, "invalid label name (reserved or malformed)", "label", k, "metric", e.name)
				return e, false
			}
		}
		e.shard = p.set.shardOf(e.name)
	}
	if p.memo != nil {
		if len(p.memo) >= p.memoCfg.memoSize {
			clear(p.memo)
		}
		p.memo[key] = e
	}
	return p.counted(e)
}

// counted counts a resolved event's action (as upstream, before the
// checks that follow).
func (p *processor) counted(e memoEntry) (memoEntry, bool) {
	var c *localCounter
	switch {
	case e.mapping.Action == mapper.ActionTypeDrop:
		c = &p.actDrop
	case e.present:
		c = &p.actMap
	default:
		c = &p.unmapped
	}
	c.n++
	if p.cap.on {
		p.cap.events++
		p.cap.action = c
	}
	return e, c != &p.actDrop
}

func validLabelName(k string) bool {
	return validName(k) && !strings.HasPrefix(k, "__")
}

// event maps one event and queues it for the shard that owns its metric
// name.
func (p *processor) event(ev event.Event) {
	cfg := p.cfg
	e, ok := p.resolve(ev)
	if !ok {
		return
	}
	mapping, name := e.mapping, e.name
	labels := ev.Labels()
	for k := range labels {
		if !validLabelName(k) {
			p.rep.eventError(reasonInvalidLabel, "invalid label name (reserved or malformed)", "label", k, "metric", name)
			return
		}
	}
	switch {
	case !e.present || len(e.labels) == 0:
	case len(labels) == 0:
		// No labels of its own: the mapping's labels, shared (read only,
		// as the event's map is from here on) instead of copied into a
		// map that would have to grow.
		labels = e.labels
	default:
		for k, v := range e.labels {
			if _, ok := labels[k]; ok && mapping.HonorLabels {
				continue
			}
			labels[k] = v
		}
	}
	value := ev.Value()
	if mapping.Scale.Set {
		value *= mapping.Scale.Val
	}
	if math.IsNaN(value) || math.IsInf(value, 0) {
		// A NaN or infinite counter, gauge or observation would stay
		// NaN or infinite (a counter forever): drop it.
		p.rep.eventError(reasonNonFinite, "value is not a finite number, event dropped", "metric", name, "value", value)
		return
	}
	it := item{name: name, labels: labels, help: defaultHelp, mapping: mapping, value: value}
	if mapping.HelpText != "" {
		it.help = mapping.HelpText
	}
	switch te := ev.(type) {
	case *event.CounterEvent:
		if value < 0 {
			p.rep.eventError(reasonNegativeCounter, "counter increments must not be negative", "metric", name, "value", value)
			return
		}
		it.kind = kindCounter
	case *event.GaugeEvent:
		it.kind = kindGauge
		it.relative = te.GRelative
	case *event.ObserverEvent:
		t := mapping.ObserverType
		if t == mapper.ObserverTypeDefault {
			t = cfg.mapper.Defaults.ObserverType
		}
		// client_golang panics on a histogram with an le label or a
		// summary with a quantile label: check before it sees them.
		if t == mapper.ObserverTypeHistogram {
			it.kind = kindHistogram
			if _, bad := labels["le"]; bad {
				p.rep.eventError(reasonReservedLabel, "label le is reserved for histograms, event dropped", "metric", name)
				return
			}
		} else {
			it.kind = kindSummary
			if _, bad := labels["quantile"]; bad {
				p.rep.eventError(reasonReservedLabel, "label quantile is reserved for summaries, event dropped", "metric", name)
				return
			}
		}
	default:
		p.rep.m.eventStats.WithLabelValues("illegal").Inc()
		return
	}
	if p.cap.on {
		p.cap.items++
		p.cap.tmpl, p.cap.shard = it, e.shard
	}
	p.enqueue(e.shard, it)
}

// validName reports whether s is a legacy Prometheus metric or label name.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return true
}
