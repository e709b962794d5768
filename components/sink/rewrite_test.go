package sink

import (
	"testing"

	"github.com/cespare/xxhash/v2"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// With honor_timestamps = false and no const labels, a family without
// timestamps is served as the input returned it (no copy per series); one
// with a timestamp is copied without it, the input's family untouched.
func TestRewriteCopiesOnlyWhatItChanges(t *testing.T) {
	gauge := func(ts *int64) *dto.Metric {
		return &dto.Metric{Gauge: &dto.Gauge{Value: proto.Float64(1)}, TimestampMs: ts}
	}
	plain := &dto.MetricFamily{Name: proto.String("plain"), Type: dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{gauge(nil), gauge(nil)}}
	stamped := &dto.MetricFamily{Name: proto.String("stamped"), Type: dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{gauge(nil), gauge(proto.Int64(5))}}
	out := rewrite([]*dto.MetricFamily{plain, stamped}, &state{}, xxhash.New())
	if out[0] != plain {
		t.Error("a family without timestamps was copied")
	}
	if out[1] == stamped {
		t.Fatal("a family with a timestamp was served as is")
	}
	for _, m := range out[1].Metric {
		if m.TimestampMs != nil {
			t.Errorf("timestamp kept: %v", m)
		}
	}
	if stamped.Metric[1].GetTimestampMs() != 5 {
		t.Error("the input's series lost its timestamp")
	}
	// Const labels still copy every family.
	out = rewrite([]*dto.MetricFamily{plain}, &state{consts: []*dto.LabelPair{{Name: proto.String("n"), Value: proto.String("v")}}}, xxhash.New())
	if out[0] == plain || len(out[0].Metric[0].Label) != 1 || len(plain.Metric[0].Label) != 0 {
		t.Errorf("const labels: got %v, input %v", out[0], plain)
	}
}
