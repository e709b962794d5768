package stats

import "testing"

func TestMedianAndSpan(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := Median(c.xs); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.xs, got, c.want)
		}
	}
	if got := Span([]float64{2, 1.25, 9}, 1); got != "2.0 (1.2-9.0)" {
		t.Errorf("Span: %q", got)
	}
	if got := Span(nil, 1); got != "-" {
		t.Errorf("Span(nil): %q", got)
	}
	// Median must not reorder the caller's slice.
	xs := []float64{3, 1, 2}
	Median(xs)
	if xs[0] != 3 || xs[1] != 1 {
		t.Errorf("Median sorted its argument: %v", xs)
	}
}
