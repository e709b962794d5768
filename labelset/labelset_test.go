package labelset

import (
	"testing"

	"github.com/cespare/xxhash/v2"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

func pairs(kv ...string) []*dto.LabelPair {
	var out []*dto.LabelPair
	for i := 0; i < len(kv); i += 2 {
		out = append(out, &dto.LabelPair{Name: proto.String(kv[i]), Value: proto.String(kv[i+1])})
	}
	return out
}

func TestEqualAndHashIgnoreOrder(t *testing.T) {
	a, b := pairs("x", "1", "y", "2"), pairs("y", "2", "x", "1")
	d := xxhash.New()
	if !Equal(a, b) || Hash(d, a) != Hash(d, b) {
		t.Error("the same pairs in another order differ")
	}
	for _, c := range [][]*dto.LabelPair{pairs("x", "1"), pairs("x", "1", "y", "3"), pairs("x", "1", "z", "2")} {
		if Equal(a, c) {
			t.Errorf("%v equals %v", a, c)
		}
	}
	// Separator: "ab"+"c" must not collide with "a"+"bc".
	if Hash(d, pairs("ab", "c")) == Hash(d, pairs("a", "bc")) {
		t.Error("hash ignores the name/value boundary")
	}
}

func TestDedupeKeepsFirst(t *testing.T) {
	m := func(v float64, kv ...string) *dto.Metric {
		return &dto.Metric{Label: pairs(kv...), Gauge: &dto.Gauge{Value: proto.Float64(v)}}
	}
	ms := []*dto.Metric{m(1, "a", "1"), m(2, "a", "2"), m(3, "a", "1"), m(4)}
	out, dropped := Dedupe(xxhash.New(), ms)
	if dropped != 1 || len(out) != 3 || out[0].GetGauge().GetValue() != 1 || out[2].GetGauge().GetValue() != 4 {
		t.Errorf("Dedupe = %v, dropped %d", out, dropped)
	}
	if !Contains(out, pairs("a", "2")) || Contains(out, pairs("a", "3")) {
		t.Error("Contains is wrong")
	}
}
