package cache

import (
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

func fam(name string, typ dto.MetricType, labelValues ...string) *dto.MetricFamily {
	mf := &dto.MetricFamily{Name: proto.String(name), Help: proto.String(name + " help"), Type: typ.Enum()}
	for _, v := range labelValues {
		m := &dto.Metric{Label: []*dto.LabelPair{{Name: proto.String("x"), Value: proto.String(v)}}}
		switch typ {
		case dto.MetricType_COUNTER:
			m.Counter = &dto.Counter{Value: proto.Float64(1)}
		default:
			m.Gauge = &dto.Gauge{Value: proto.Float64(1)}
		}
		mf.Metric = append(mf.Metric, m)
	}
	return mf
}

func layout(s *snapshot) string {
	var parts []string
	for _, mf := range s.fams {
		var vs []string
		for _, m := range mf.Metric {
			vs = append(vs, m.Label[0].GetValue())
		}
		parts = append(parts, mf.GetName()+"("+strings.Join(vs, ",")+")")
	}
	return strings.Join(parts, " ")
}

// Kept series and families keep their place; a family whose type changed
// loses its kept series; the input's families are used uncopied when
// nothing is added to them, and never modified.
func TestMergeOrderTypesAndSharing(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	first := []*dto.MetricFamily{
		fam("a", dto.MetricType_GAUGE, "1", "2", "3"),
		fam("c", dto.MetricType_COUNTER, "1"),
		fam("d", dto.MetricType_GAUGE, "1"),
	}
	s1, _ := merge(&snapshot{}, first, t0, 10*time.Minute)
	if s1.fams[0] != first[0] {
		t.Error("a family with nothing added was copied")
	}
	second := []*dto.MetricFamily{
		fam("a", dto.MetricType_GAUGE, "3", "1"), // 2 missing; the input's own order
		fam("b", dto.MetricType_GAUGE, "1"),
		fam("d", dto.MetricType_GAUGE, "1"),
	}
	orig := proto.Clone(second[0]).(*dto.MetricFamily)
	s2, st := merge(s1, second, t0.Add(time.Minute), 10*time.Minute)
	if got, want := layout(s2), "a(1,2,3) b(1) c(1) d(1)"; got != want {
		t.Errorf("layout %s, want %s", got, want)
	}
	if !proto.Equal(second[0], orig) {
		t.Error("merge modified the input's family")
	}
	if s2.stale != 2 || s2.series != 6 || st.expired != 0 {
		t.Errorf("stale %d series %d expired %d, want 2, 6, 0", s2.stale, s2.series, st.expired)
	}
	third := []*dto.MetricFamily{fam("c", dto.MetricType_GAUGE, "2")}
	s3, st := merge(s2, third, t0.Add(2*time.Minute), 10*time.Minute)
	if got, want := layout(s3), "a(1,2,3) b(1) c(2) d(1)"; got != want {
		t.Errorf("after c changed type: %s, want %s", got, want)
	}
	if st.expired != 1 {
		t.Errorf("expired %d, want 1 (the counter c{x=1})", st.expired)
	}
	s4, n := expire(s3, t0.Add(11*time.Minute+30*time.Second), 10*time.Minute)
	if got, want := layout(s4), "c(2)"; got != want || n != 5 {
		t.Errorf("after expiry: %s (%d expired), want %s (5)", got, n, want)
	}
	if same, n := expire(s4, t0.Add(11*time.Minute+30*time.Second), 10*time.Minute); same != s4 || n != 0 {
		t.Error("expire with nothing to expire built a new snapshot")
	}
}
