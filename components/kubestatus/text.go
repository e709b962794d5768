package kubestatus

import (
	"fmt"
	"slices"
	"strconv"
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
// sorted by name), gauges.
func (c *Component) encodeText() ([]encoded.Family, error) {
	var all []textSeries
	c.eachSeries(func(name, help string, labels, values []string, v float64) {
		all = append(all, textSeries{name, help, labels, values, v})
	})
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
		b = b[:0]
		b = append(b, "# HELP "...)
		b = append(b, name...)
		b = append(b, ' ')
		b = appendEscaped(b, all[i].help, false)
		b = append(b, "\n# TYPE "...)
		b = append(b, name...)
		b = append(b, " gauge\n"...)
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
					b = appendEscaped(b, s.values[k], true)
					b = append(b, '"')
				}
				b = append(b, '}')
			}
			b = append(b, ' ')
			b = appendValue(b, s.v)
			b = append(b, '\n')
		}
		out = append(out, encoded.Family{Name: name, Text: slices.Clone(b), Escaped: !encoded.UnescapedMetricName(name)})
		i = j
	}
	return out, nil
}

// appendEscaped escapes as the text format does: backslash and newline,
// and in label values the double quote.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '\\':
			b = append(b, `\\`...)
		case ch == '\n':
			b = append(b, `\n`...)
		case ch == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, ch)
		}
	}
	return b
}

// appendValue writes a sample value as expfmt does.
func appendValue(b []byte, v float64) []byte {
	switch v {
	case 0:
		return append(b, '0')
	case 1:
		return append(b, '1')
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
