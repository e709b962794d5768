package webhook_test

import (
	"strings"
	"testing"
)

// TestInvalidUTF8LabelRefused: a label value that is not valid UTF-8 is
// refused with 400 (and counted) instead of stored: stored, it made every
// gather of the receiver fail, so none of its valid series was exported.
func TestInvalidUTF8LabelRefused(t *testing.T) {
	r := newRig(t, baseConfig)
	if code, body := r.form("/api/jobs_total/inc", "labels=good"); code != 204 {
		t.Fatalf("valid push: %d %s", code, body)
	}
	for _, body := range []string{"labels=%ff", "labels=a%c3", "labels=%ed%a0%80"} {
		code, msg := r.form("/api/jobs_total/inc", body)
		if code != 400 || !strings.Contains(msg, "not valid UTF-8") {
			t.Errorf("%s: %d %q, want 400 naming UTF-8", body, code, msg)
		}
	}
	if n := metricValue(t, r.h.Registry, "sluice_webhook_requests_total", "route", "api", "code", "400"); n != 3 {
		t.Errorf("requests{code=400} = %v, want 3", n)
	}
	fams, err := r.h.Gatherer().Gather()
	if err != nil {
		t.Fatalf("the receiver's gather fails: %v", err)
	}
	found := false
	for _, mf := range fams {
		found = found || mf.GetName() == "jobs_total"
	}
	if !found {
		t.Fatal("the valid series is not exported")
	}
	r.mustHave(`jobs_total{project="good"} 1`)
}
