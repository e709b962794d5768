package encoded

import (
	"bytes"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
)

func family(name, label string, ts *int64) *dto.MetricFamily {
	return &dto.MetricFamily{
		Name: proto.String(name), Help: proto.String("H."), Type: dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{{
			Label: []*dto.LabelPair{{Name: proto.String(label), Value: proto.String("v")}},
			Gauge: &dto.Gauge{Value: proto.Float64(2)}, TimestampMs: ts,
		}},
	}
}

// Each family is its text encoding, which parses back to the family, with
// its timestamps and non-legacy names flagged.
func TestEncode(t *testing.T) {
	mfs := []*dto.MetricFamily{
		family("a_plain", "x", nil),
		family("b_stamped", "x", proto.Int64(1700000000000)),
		family("c.dotted", "x", nil),
		family("d_label", "x.y", nil),
	}
	fams, err := Encode(mfs)
	if err != nil {
		t.Fatal(err)
	}
	want := []Family{{Name: "a_plain"}, {Name: "b_stamped", Timestamps: true}, {Name: "c.dotted", Escaped: true}, {Name: "d_label", Escaped: true}}
	if len(fams) != len(want) {
		t.Fatalf("%d families, want %d", len(fams), len(want))
	}
	for i, f := range fams {
		if f.Name != want[i].Name || f.Timestamps != want[i].Timestamps || f.Escaped != want[i].Escaped {
			t.Errorf("family %d = %s timestamps %v escaped %v, want %+v", i, f.Name, f.Timestamps, f.Escaped, want[i])
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		parsed, err := parser.TextToMetricFamilies(bytes.NewReader(f.Text))
		if err != nil {
			t.Fatalf("%s does not parse: %v\n%s", f.Name, err, f.Text)
		}
		if got := parsed[f.Name]; got == nil || !proto.Equal(got, mfs[i]) {
			t.Errorf("%s parses back as %v, want %v", f.Name, got, mfs[i])
		}
	}
}

// A family the text format cannot hold is an error, not a page that
// Prometheus would reject.
func TestEncodeRejectsAnInvalidFamily(t *testing.T) {
	bad := &dto.MetricFamily{Name: proto.String("x"), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{{Counter: &dto.Counter{Value: proto.Float64(1)}}}}
	if _, err := Encode([]*dto.MetricFamily{bad}); err == nil {
		t.Error("a gauge family with a counter metric encoded")
	}
}
