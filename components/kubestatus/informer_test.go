package kubestatus

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/components/kubestatus/internal/kubewatch"
	"github.com/sluicehq/sluice/pipeline"
)

// TestRelistKeepsUndecodable: a relist takes the objects it did not return
// for deleted, but not one whose item it could not decode: that object
// keeps its last status (counted as dropped) instead of disappearing.
func TestRelistKeepsUndecodable(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, err := build(pipeline.Options[Exports]{ID: "t", Logger: slog.New(slog.DiscardHandler), Registerer: reg,
		OnExports: func(Exports) {}}, Arguments{MaxSeries: 10, Watches: []Watch{{Label: "w", Kinds: []string{"Pod"}, Metric: "m"}}})
	if err != nil {
		t.Fatal(err)
	}
	in := &informer{scope: scope{Kind: "Pod"}, c: c, objs: map[objKey]Result{}, namespaces: map[string]string{}}
	pod := func(name, phase string) *Pod {
		p := &Pod{Metadata: kubewatch.Meta{Name: name, Namespace: "ns"}}
		p.Status.Phase = phase
		return p
	}
	in.ListStart()
	for _, n := range []string{"a", "b", "c"} {
		in.Upsert(pod(n, "Running"))
	}
	in.ListDone()
	if !in.synced() || in.count() != 3 {
		t.Fatalf("synced %v, %d objects", in.synced(), in.count())
	}
	in.ListStart() // a relist: a is gone, b does not decode, c is there
	in.Dropped(&kubewatch.Meta{Name: "b", Namespace: "ns"}, "undecodable", errors.New("phase: not a string"))
	in.Upsert(pod("c", "Succeeded"))
	in.ListDone()
	if _, ok := in.lookup("ns", "a"); ok {
		t.Error("a, not listed again, is still there")
	}
	if r, ok := in.lookup("ns", "b"); !ok || r.Status != Running {
		t.Errorf("b (undecodable in the relist): %v %v, want its last status Running", r, ok)
	}
	if r, _ := in.lookup("ns", "c"); r.Status != Available {
		t.Errorf("c: %v", r)
	}
	if v, _ := value(t, reg, "sluice_kubernetes_dropped_events_total", map[string]string{"kind": "Pod", "reason": "undecodable"}); v != 1 {
		t.Errorf("dropped events counted %v, want 1", v)
	}
	if v, _ := value(t, reg, "sluice_kubernetes_relists_total", map[string]string{"kind": "Pod"}); v != 1 {
		t.Errorf("relists %v, want 1", v)
	}
}
