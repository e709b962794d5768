package encoded

import (
	"bytes"
	"math"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"
)

// TestAppendMatchesExpfmt: a gauge written with AppendEscaped and
// AppendFloat is byte for byte what expfmt writes, for values and texts
// that need escaping and for the special values.
func TestAppendMatchesExpfmt(t *testing.T) {
	help := "a\\b\"c\nd and ü"
	for _, v := range []float64{0, 1, -1, 2, 3, 0.5, -0.25, 1e21, 1e-7, 123456789, math.NaN(), math.Inf(1), math.Inf(-1), math.MaxFloat64, math.SmallestNonzeroFloat64} {
		for _, label := range []string{"plain", "a\\b\"c\nd", "ü\"\\"} {
			mf := &dto.MetricFamily{Name: proto.String("m"), Help: proto.String(help), Type: dto.MetricType_GAUGE.Enum(),
				Metric: []*dto.Metric{{Label: []*dto.LabelPair{{Name: proto.String("l"), Value: proto.String(label)}}, Gauge: &dto.Gauge{Value: proto.Float64(v)}}}}
			var want bytes.Buffer
			if _, err := expfmt.MetricFamilyToText(&want, mf); err != nil {
				t.Fatal(err)
			}
			b := append([]byte("# HELP m "), AppendEscaped(nil, help, false)...)
			b = append(b, "\n# TYPE m gauge\nm{l=\""...)
			b = AppendEscaped(b, label, true)
			b = append(b, "\"} "...)
			b = append(AppendFloat(b, v), '\n')
			if string(b) != want.String() {
				t.Errorf("value %v, label %q:\n%s\nexpfmt:\n%s", v, label, b, want.String())
			}
		}
	}
}
