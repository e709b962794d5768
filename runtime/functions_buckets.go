package runtime

import (
	"fmt"
	"math"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// Histogram bucket functions, as client_golang's LinearBuckets and
// ExponentialBuckets: pure, so they are in the kernel's table for any
// component's buckets attribute (webhook_receiver's, the statsd mapping's).

// maxBuckets bounds count, so a typo cannot allocate gigabytes at load.
const maxBuckets = 1000

func bucketsFunc(name string, next func(start, step float64, i int) float64, check func(start, step float64) error) function.Function {
	return function.New(&function.Spec{
		Description: "Histogram buckets: " + name + "(start, step, count).",
		Params: []function.Parameter{
			{Name: "start", Type: cty.Number},
			{Name: "step", Type: cty.Number},
			{Name: "count", Type: cty.Number},
		},
		Type: function.StaticReturnType(cty.List(cty.Number)),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			start, _ := args[0].AsBigFloat().Float64()
			step, _ := args[1].AsBigFloat().Float64()
			count, acc := args[2].AsBigFloat().Int64()
			if acc != 0 || count < 1 || count > maxBuckets {
				return cty.NilVal, function.NewArgErrorf(2, "count must be a whole number from 1 to %d", maxBuckets)
			}
			if err := check(start, step); err != nil {
				return cty.NilVal, err
			}
			out := make([]cty.Value, count)
			for i := range out {
				v := next(start, step, i)
				if math.IsInf(v, 0) || math.IsNaN(v) {
					return cty.NilVal, fmt.Errorf("%s: bucket %d overflows", name, i)
				}
				out[i] = cty.NumberFloatVal(v)
			}
			return cty.ListVal(out), nil
		},
	})
}

// linearFunc is linear(start, width, count): count buckets, the first
// upper bound start, each width more than the previous.
var linearFunc = bucketsFunc("linear",
	func(start, width float64, i int) float64 { return start + float64(i)*width },
	func(_, width float64) error {
		if width <= 0 {
			return function.NewArgErrorf(1, "width must be positive")
		}
		return nil
	})

// exponentialFunc is exponential(start, factor, count): count buckets, the
// first upper bound start, each factor times the previous.
var exponentialFunc = bucketsFunc("exponential",
	func(start, factor float64, i int) float64 { return start * math.Pow(factor, float64(i)) },
	func(start, factor float64) error {
		if start <= 0 {
			return function.NewArgErrorf(0, "start must be positive")
		}
		if factor <= 1 {
			return function.NewArgErrorf(1, "factor must be greater than 1")
		}
		return nil
	})
