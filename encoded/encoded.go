// Package encoded lets a component whose series change rarely hand
// metrics_sink its families already encoded in the Prometheus text format,
// so that a scrape copies bytes instead of gathering, converting and
// encoding every series again (issue 22: a scrape cost about 5 µs per
// series, most of it spent re-encoding series that had not changed).
//
// A component implements Gatherer besides prometheus.Gatherer; the sink
// uses GatherText only when it can serve the bytes exactly as they are
// (text format without name escaping, no const labels, timestamps allowed
// or absent, one input per family name) and falls back to Gather
// otherwise.
package encoded

import (
	"bytes"
	"fmt"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Gatherer is a prometheus.Gatherer that can also return its families
// encoded. GatherText must describe the same series as Gather would at the
// same moment.
type Gatherer interface {
	// GatherText returns the families sorted by name. Callers must not
	// modify them: they are shared by every scrape. Nor may the Gatherer
	// modify bytes it handed out (a later call returns new slices for
	// what changed): a sink recognizes an unchanged family by its slice
	// and keeps what it derived from it (a compressed chunk).
	GatherText() ([]Family, error)
}

// Versioned is a Gatherer that also says when its families changed, so
// that a sink can keep what it derives from them (a compressed page)
// while they do not. It is optional: a Gatherer without it is read anew
// at every scrape.
type Versioned interface {
	Gatherer
	// GatherTextVersion is GatherText and the version of what it
	// returns: two calls on the same Versioned that return the same
	// version returned the same bytes. Versions are not comparable
	// across gatherers.
	GatherTextVersion() ([]Family, uint64, error)
}

// Family is one metric family in the text exposition format (version
// 0.0.4), HELP and TYPE lines included.
type Family struct {
	Name string
	Text []byte
	// Timestamps says that a series of the family carries a timestamp
	// (a sink that strips timestamps cannot use Text).
	Timestamps bool
	// Escaped says that a name in the family is not a legacy Prometheus
	// name, so a scraper that asks for escaped names cannot use Text.
	Escaped bool
}

// Encode encodes mfs (sorted by name, as a registry gathers them) one
// family at a time.
func Encode(mfs []*dto.MetricFamily) ([]Family, error) {
	out := make([]Family, 0, len(mfs))
	var buf bytes.Buffer
	for _, mf := range mfs {
		buf.Reset()
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			return nil, fmt.Errorf("encoding family %s: %w", mf.GetName(), err)
		}
		f := Family{Name: mf.GetName(), Text: bytes.Clone(buf.Bytes()), Escaped: !UnescapedMetricName(mf.GetName())}
		for _, m := range mf.Metric {
			f.Timestamps = f.Timestamps || m.TimestampMs != nil
			for _, l := range m.Label {
				if !UnescapedLabelName(l.GetName()) {
					f.Escaped = true
				}
			}
		}
		out = append(out, f)
	}
	return out, nil
}

// UnescapedMetricName reports whether name is written as it is in the text
// format for every scraper: a legacy Prometheus metric name. Any other name
// is quoted, and escaped for a scraper that asks for escaping (Family's
// Escaped). This is the exposition format's rule, not the one names a
// config declares are checked with (pipeline.ValidMetricName).
func UnescapedMetricName(name string) bool {
	return model.LegacyValidation.IsValidMetricName(name)
}

// UnescapedLabelName is UnescapedMetricName for a label name.
func UnescapedLabelName(name string) bool {
	return model.LegacyValidation.IsValidLabelName(name)
}
