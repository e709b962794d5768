package gathermerge_test

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/internal/gathermerge"
	"github.com/sluicehq/sluice/internal/gathermerge/gathermergetest"
)

// TestMergeIsPartial: the families an input returns with an error are
// merged, and each of its errors is reported once as ReasonPartial; an
// input that returns only an error is ReasonGather.
func TestMergeIsPartial(t *testing.T) {
	failing := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return nil, errors.New("down") })
	reasons := map[string]int{}
	fams, errs := gathermerge.Merge([]prometheus.Gatherer{gathermergetest.PartialRegistry(), failing}, func(_ int, reason string, _ error) { reasons[reason]++ })
	if len(fams) != 1 || fams[0].GetName() != gathermergetest.GoodFamily {
		t.Fatalf("families %v, want only %s", fams, gathermergetest.GoodFamily)
	}
	if reasons[gathermerge.ReasonPartial] != 1 || reasons[gathermerge.ReasonGather] != 1 || len(errs) != 2 {
		t.Fatalf("reasons %v, errors %v", reasons, errs)
	}
}

func TestSplitErrors(t *testing.T) {
	a, b := errors.New("a"), errors.New("b")
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{a, 1},
		{prometheus.MultiError{a, b}, 2},
		{errors.Join(a, b), 2},
	} {
		if got := gathermerge.SplitErrors(c.err); len(got) != c.want {
			t.Errorf("SplitErrors(%v) = %d errors, want %d", c.err, len(got), c.want)
		}
	}
}
