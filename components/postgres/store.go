package postgres

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// sample is one series of a query's result.
type sample struct {
	m           *metricDef
	labelValues []string
	value       float64
}

// store holds the latest good result of every (query, database) and pg_up.
// Scrapes read it under a read lock; nothing on the scrape path waits for
// the database.
type store struct {
	mu      sync.RWMutex
	results map[string]map[string][]sample // query key -> database ("" default) -> samples
	up      float64
}

var upDesc = prometheus.NewDesc(upMetricName, "Whether the last attempt to reach PostgreSQL succeeded (1 for yes, 0 for no).", nil, nil)

func newStore() *store {
	return &store{results: map[string]map[string][]sample{}}
}

func (s *store) set(key, db string, samples []sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.results[key]
	if m == nil {
		m = map[string][]sample{}
		s.results[key] = m
	}
	m[db] = samples
}

// retain drops the results of queries whose key is not in keep, and of
// databases no longer listed.
func (s *store) retain(keep map[string][]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, byDB := range s.results {
		dbs, ok := keep[key]
		if !ok {
			delete(s.results, key)
			continue
		}
		for db := range byDB {
			if !containsDB(dbs, db) {
				delete(byDB, db)
			}
		}
	}
}

func containsDB(dbs []string, db string) bool {
	if len(dbs) == 0 {
		return db == ""
	}
	for _, d := range dbs {
		if d == db {
			return true
		}
	}
	return false
}

func (s *store) setUp(up bool) {
	v := 0.0
	if up {
		v = 1
	}
	s.mu.Lock()
	s.up = v
	s.mu.Unlock()
}

func (s *store) isUp() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.up == 1
}

// Describe implements prometheus.Collector. It sends nothing: the metrics
// depend on query results, so the collector is unchecked.
func (s *store) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (s *store) Collect(ch chan<- prometheus.Metric) {
	s.mu.RLock()
	up := s.up
	var all [][]sample
	for _, byDB := range s.results {
		for _, samples := range byDB {
			all = append(all, samples)
		}
	}
	s.mu.RUnlock()
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up)
	for _, samples := range all {
		for _, smp := range samples {
			m, err := prometheus.NewConstMetric(smp.m.desc, smp.m.typ, smp.value, smp.labelValues...)
			if err != nil {
				m = prometheus.NewInvalidMetric(smp.m.desc, err)
			}
			ch <- m
		}
	}
}
