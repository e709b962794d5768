package pipeline

import "testing"

func TestHealthTracker(t *testing.T) {
	var tr HealthTracker
	if got := tr.Health().State; got != "" {
		t.Fatalf("zero value state = %q, want none", got)
	}
	if !tr.SetOK(false, "db down") {
		t.Fatal("first unhealthy Set did not report a change")
	}
	since := tr.Health().Since
	if tr.SetOK(false, "db still down") {
		t.Fatal("same state reported as a change")
	}
	h := tr.Health()
	if h.State != HealthUnhealthy || h.Message != "db still down" || !h.Since.Equal(since) {
		t.Fatalf("after a same-state Set: %+v (since %v)", h, since)
	}
	if !tr.SetOK(true, "ignored") {
		t.Fatal("recovery not reported as a change")
	}
	if h := tr.Health(); h.State != HealthHealthy || h.Message != "" {
		t.Fatalf("after recovery: %+v", h)
	}
}
