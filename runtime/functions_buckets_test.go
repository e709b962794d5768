package runtime

import (
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

func TestBucketFunctions(t *testing.T) {
	ctx := &hcl.EvalContext{Functions: functions("", nil, nil, nil)}
	eval := func(src string) ([]float64, error) {
		e, diags := hclsyntax.ParseExpression([]byte(src), "t.hcl", hcl.InitialPos)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		v, diags := e.Value(ctx)
		if diags.HasErrors() {
			return nil, diags
		}
		var out []float64
		for it := v.ElementIterator(); it.Next(); {
			_, ev := it.Element()
			f, _ := ev.AsBigFloat().Float64()
			out = append(out, f)
		}
		return out, nil
	}
	for src, want := range map[string][]float64{
		"linear(30, 30, 4)":      {30, 60, 90, 120},
		"linear(-1, 0.5, 3)":     {-1, -0.5, 0},
		"exponential(10, 2, 4)":  {10, 20, 40, 80},
		"exponential(0.5, 3, 1)": {0.5},
	} {
		got, err := eval(src)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s = %v, %v; want %v", src, got, err, want)
		}
	}
	for src, msg := range map[string]string{
		"linear(1, 0, 3)":          "width must be positive",
		"linear(1, 1, 0)":          "count must be",
		"linear(1, 1, 1.5)":        "count must be",
		"linear(1, 1, 100000)":     "count must be",
		"exponential(0, 2, 3)":     "start must be positive",
		"exponential(1, 1, 3)":     "factor must be greater than 1",
		"exponential(1, 1e300, 3)": "overflows",
	} {
		if _, err := eval(src); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want %q", src, err, msg)
		}
	}
}
