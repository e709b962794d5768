// Package stats holds the summaries the bench programs print.
package stats

import (
	"fmt"
	"slices"
)

// Median of xs (the mean of the middle two for an even count), 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Span is "median (min-max)" with prec decimals, "-" for none.
func Span(xs []float64, prec int) string {
	if len(xs) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.*f (%.*f-%.*f)", prec, Median(xs), prec, slices.Min(xs), prec, slices.Max(xs))
}
