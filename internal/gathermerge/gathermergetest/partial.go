// Package gathermergetest has inputs for tests of partial gathers.
package gathermergetest

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// GoodFamily is the family PartialRegistry gathers: good_total 1.
const GoodFamily = "good_total"

// PartialRegistry is a registry whose Gather returns one good family
// (good_total 1) together with an error: its other collector yields a
// series whose label value is not valid UTF-8, which the registry drops
// and reports, as it did for a webhook_receiver that stored one.
func PartialRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: GoodFamily, Help: "A good family."})
	c.Inc()
	reg.MustRegister(c, badCollector{})
	return reg
}

var badDesc = prometheus.NewDesc("bad_label_value", "A family with a label value that is not UTF-8.", []string{"l"}, nil)

type badCollector struct{}

func (badCollector) Describe(ch chan<- *prometheus.Desc) { ch <- badDesc }

func (badCollector) Collect(ch chan<- prometheus.Metric) {
	m, err := prometheus.NewConstMetric(badDesc, prometheus.GaugeValue, 1, "\xff")
	if err != nil {
		ch <- prometheus.NewInvalidMetric(badDesc, fmt.Errorf("bad_label_value: %w", err))
		return
	}
	ch <- m
}
