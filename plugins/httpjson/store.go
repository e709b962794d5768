package httpjson

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// snapshot is the result of one good poll. It is never modified once
// stored: a poll builds a new one.
type snapshot struct {
	families map[string]*family
	series   int
}

type family struct {
	desc   *prometheus.Desc
	typ    prometheus.ValueType
	series []series
}

type series struct {
	labelValues []string
	value       float64
}

// store holds the latest snapshot; scrapes read it without waiting for a
// poll.
type store struct {
	cur atomic.Pointer[snapshot]
}

func newStore() *store {
	s := &store{}
	s.cur.Store(&snapshot{families: map[string]*family{}})
	return s
}

func (s *store) set(snap *snapshot) { s.cur.Store(snap) }

func (s *store) get() *snapshot { return s.cur.Load() }

// retain drops the families of metrics no longer configured, so that a
// reload that removes a metric block removes its series at once rather
// than at the next good poll.
func (s *store) retain(p *plan) {
	old := s.get()
	keep := &snapshot{families: map[string]*family{}}
	for _, m := range p.metrics {
		if f, ok := old.families[m.name]; ok {
			keep.families[m.name] = f
			keep.series += len(f.series)
		}
	}
	s.set(keep)
}

// Describe implements prometheus.Collector. It sends nothing: the metrics
// depend on the responses, so the collector is unchecked.
func (s *store) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (s *store) Collect(ch chan<- prometheus.Metric) {
	for _, f := range s.get().families {
		for _, smp := range f.series {
			m, err := prometheus.NewConstMetric(f.desc, f.typ, smp.value, smp.labelValues...)
			if err != nil {
				m = prometheus.NewInvalidMetric(f.desc, err)
			}
			ch <- m
		}
	}
}
