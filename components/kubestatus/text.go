package kubestatus

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/encoded"
)

// textGatherer is the component's exported gatherer: Gather through a
// registry (as any collector), and GatherText (encoded.Gatherer), which
// metrics_sink serves as bytes. Statuses change rarely against scrapes:
// the encoded families are kept until an event, a reload, a sync or a
// leadership change says they changed, so most scrapes only copy bytes.
type textGatherer struct {
	*prometheus.Registry
	c *Component
}

var _ encoded.Gatherer = textGatherer{}

// GatherText returns the families Gather would, encoded in the text
// format, sorted by name.
func (g textGatherer) GatherText() ([]encoded.Family, error) { return g.c.gatherText() }

// textCache is the last encoding and the change count it was made at.
type textCache struct {
	version  atomic.Uint64 // bumped by changed()
	mu       sync.Mutex
	at       uint64
	valid    bool
	families []encoded.Family
}

// changed says that the exported series may differ from the last
// encoding.
func (c *Component) changed() { c.text.version.Add(1) }

func (c *Component) gatherText() ([]encoded.Family, error) {
	tc := &c.text
	tc.mu.Lock()
	defer tc.mu.Unlock()
	v := tc.version.Load()
	if tc.valid && tc.at == v {
		return tc.families, nil
	}
	fams, err := c.encodeText()
	if err != nil {
		return nil, err
	}
	tc.families, tc.at, tc.valid = fams, v, true
	return fams, nil
}

// textSeries is one series to encode.
type textSeries struct {
	name, help     string
	labels, values []string
	v              float64
}

// encodeText encodes the series as client_golang's registry and expfmt
// would: families sorted by name, series by their label values (labels
// sorted by name), gauges. The watch blocks' families are written straight
// from each informer's objects in series order (watchFamilies); only when
// that order cannot be had without sorting every series (see there) are
// they gathered and sorted like the rest.
func (c *Component) encodeText() ([]encoded.Family, error) {
	p := c.plan.Load()
	if !c.exporting(p) {
		return nil, nil // a standby replica: the leader exports the cluster's series
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	var all []textSeries
	emit := func(name, help string, labels, values []string, v float64) {
		all = append(all, textSeries{name, help, labels, values, v})
	}
	c.eachTargetSeries(p, emit)
	wfs, fast := c.watchFamilies(p)
	if !fast {
		c.eachWatchSeries(p, emit)
	}
	out, err := encodeSeries(all)
	if err != nil {
		return nil, err
	}
	if fast {
		var status, failed []byte
		n, watchFams := 0, []encoded.Family(nil)
		for _, wf := range wfs {
			var fs, ff encoded.Family
			var k int
			fs, ff, k, status, failed = c.encodeWatchFamilies(status[:0], failed[:0], wf)
			n += k
			if k > 0 {
				watchFams = append(watchFams, fs, ff)
			}
		}
		if n > p.maxSeries {
			// Objects came between watchFamilies' count and the walk:
			// max_series decides which series are left out, as a gather
			// would.
			all = all[:0]
			c.eachTargetSeries(p, emit)
			c.eachWatchSeries(p, emit)
			return encodeSeries(all)
		}
		c.self.dropped.Set(0)
		out = append(out, watchFams...)
		slices.SortFunc(out, func(a, b encoded.Family) int { return strings.Compare(a.Name, b.Name) })
	}
	return out, nil
}

// watchFamily is the series of one watch metric: its scopes, one per kind,
// by kind (the first label of its series).
type watchFamily struct {
	metric string
	scopes []scope
}

// watchFamilies groups the watch blocks' scopes by metric. ok is false
// when the series of a family cannot be written scope after scope in
// order: two scopes of one kind under one metric (several namespaces or
// selectors: their objects interleave), a family name that a workload,
// phase or other watch family also has, or more objects than max_series
// (which ones are left out is the gather's choice).
func (c *Component) watchFamilies(p *plan) ([]watchFamily, bool) {
	var out []watchFamily
	index := map[string]int{}
	for _, w := range p.watches {
		i, ok := index[w.metric]
		if !ok {
			i = len(out)
			index[w.metric] = i
			out = append(out, watchFamily{metric: w.metric})
		}
		for _, s := range w.scopes {
			if !slices.Contains(out[i].scopes, s) {
				out[i].scopes = append(out[i].scopes, s)
			}
		}
	}
	names := map[string]bool{}
	for _, t := range p.targets {
		names[t.metric], names[t.metric+"_failed"] = true, true
	}
	for _, ph := range p.phases {
		names[ph.metric] = true
	}
	total := 0
	for i := range out {
		wf := &out[i]
		for _, n := range []string{wf.metric, wf.metric + "_failed"} {
			if names[n] {
				return nil, false
			}
			names[n] = true
		}
		slices.SortFunc(wf.scopes, func(a, b scope) int { return strings.Compare(a.Kind, b.Kind) })
		for j, s := range wf.scopes {
			if j > 0 && wf.scopes[j-1].Kind == s.Kind {
				return nil, false
			}
			if in := c.informers[s]; in != nil {
				total += in.count()
			}
		}
	}
	if total > p.maxSeries {
		return nil, false
	}
	return out, true
}

// encodeWatchFamilies writes the family of wf's metric into bs and its
// _failed family into bf, in one walk of each informer's objects, so that
// both have the same objects when objects come or go meanwhile (as the
// gather's walk emits both series of an object together). n is the number
// of objects written; the families are valid only when n > 0.
func (c *Component) encodeWatchFamilies(bs, bf []byte, wf watchFamily) (status, failed encoded.Family, n int, _, _ []byte) {
	name, failedName := wf.metric, wf.metric+"_failed"
	bs = appendHeader(bs, name, workloadHelp)
	bf = appendHeader(bf, failedName, failedHelp)
	line := func(b []byte, name, kind string, k objKey, v float64) []byte {
		b = append(b, name...)
		b = append(b, `{kind="`...)
		b = encoded.AppendEscaped(b, kind, true)
		b = append(b, `",name="`...)
		b = encoded.AppendEscaped(b, k.name, true)
		b = append(b, `",namespace="`...)
		b = encoded.AppendEscaped(b, k.namespace, true)
		b = append(b, `"} `...)
		b = encoded.AppendFloat(b, v)
		return append(b, '\n')
	}
	for _, s := range wf.scopes {
		in := c.informers[s]
		if in == nil {
			continue
		}
		in.eachSorted(func(k objKey, r Result) {
			bs = line(bs, name, s.Kind, k, float64(r.Status))
			bf = line(bf, failedName, s.Kind, k, b2f(r.Failed))
			n++
		})
	}
	if n == 0 {
		return encoded.Family{}, encoded.Family{}, 0, bs, bf
	}
	status = encoded.Family{Name: name, Text: slices.Clone(bs), Escaped: !encoded.UnescapedMetricName(name)}
	failed = encoded.Family{Name: failedName, Text: slices.Clone(bf), Escaped: !encoded.UnescapedMetricName(failedName)}
	return status, failed, n, bs, bf
}

func appendHeader(b []byte, name, help string) []byte {
	b = append(b, "# HELP "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = encoded.AppendEscaped(b, help, false)
	b = append(b, "\n# TYPE "...)
	b = append(b, name...)
	return append(b, " gauge\n"...)
}

// encodeSeries encodes series in any order: sorted into families, each
// family's series by their label values.
func encodeSeries(all []textSeries) ([]encoded.Family, error) {
	slices.SortFunc(all, func(a, b textSeries) int {
		if r := strings.Compare(a.name, b.name); r != 0 {
			return r
		}
		if len(a.values) != len(b.values) {
			return len(a.values) - len(b.values)
		}
		for i := range a.values {
			if r := strings.Compare(a.values[i], b.values[i]); r != 0 {
				return r
			}
		}
		return 0
	})
	var out []encoded.Family
	var b []byte
	for i := 0; i < len(all); {
		j := i
		name := all[i].name
		b = appendHeader(b[:0], name, all[i].help)
		for ; j < len(all) && all[j].name == name; j++ {
			s := &all[j]
			if j > i && slices.Equal(s.values, all[j-1].values) {
				// The registry refuses a duplicate series: so does this
				// (the sink then serves Gather's answer and its error).
				return nil, fmt.Errorf("series %s%v exported twice", name, s.values)
			}
			b = append(b, name...)
			if len(s.labels) > 0 {
				b = append(b, '{')
				for k, l := range s.labels {
					if k > 0 {
						b = append(b, ',')
					}
					b = append(b, l...)
					b = append(b, `="`...)
					b = encoded.AppendEscaped(b, s.values[k], true)
					b = append(b, '"')
				}
				b = append(b, '}')
			}
			b = append(b, ' ')
			b = encoded.AppendFloat(b, s.v)
			b = append(b, '\n')
		}
		out = append(out, encoded.Family{Name: name, Text: slices.Clone(b), Escaped: !encoded.UnescapedMetricName(name)})
		i = j
	}
	return out, nil
}
