package exec

import (
	"bytes"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parse reads the text exposition format and returns the families sorted
// by name, checked as a scrape would be: consistent label names, no
// duplicate series. An output with anything wrong is refused whole, so
// that the last good values stay rather than half of a broken output.
func parse(out []byte) ([]*dto.MetricFamily, int, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(out))
	if err != nil {
		return nil, 0, fmt.Errorf("invalid exposition: %w", err)
	}
	list := make([]*dto.MetricFamily, 0, len(fams))
	for _, f := range fams {
		list = append(list, f)
	}
	// Gatherers normalizes (sorts) and checks what a registry checks.
	checked, err := prometheus.Gatherers{prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return list, nil })}.Gather()
	if err != nil {
		return nil, 0, fmt.Errorf("invalid exposition: %w", err)
	}
	n := 0
	for _, f := range checked {
		n += len(f.GetMetric())
	}
	return checked, n, nil
}
