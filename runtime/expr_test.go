package runtime_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runtime"
)

// exprArgs has expression fields: the kernel hands them over unevaluated
// and the component evaluates them against a variable of its own, row.
type exprArgs struct {
	Journal string          `hcl:"journal"`
	Value   hcl.Expression  `hcl:"value"`
	Extra   hcl.Expression  `hcl:"extra,optional"`
	Items   []exprItemBlock `hcl:"item,block"`
}

type exprItemBlock struct {
	Name string         `hcl:"name,label"`
	Expr hcl.Expression `hcl:"expr"`
}

// eval evaluates the expressions with row = {x = 2} and describes them.
func (a exprArgs) eval() string {
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"row": cty.ObjectVal(map[string]cty.Value{"x": cty.NumberIntVal(2)})}}
	show := func(e hcl.Expression) string {
		if e == nil {
			return "absent"
		}
		v, diags := e.Value(ctx)
		if diags.HasErrors() {
			return "error: " + diags.Error()
		}
		return v.GoString()
	}
	parts := []string{"value=" + show(a.Value), "extra=" + show(a.Extra)}
	for _, it := range a.Items {
		parts = append(parts, it.Name+"="+show(it.Expr))
	}
	return strings.Join(parts, " ")
}

type exprComponent struct{ j *journal }

func (c *exprComponent) Run(ctx context.Context) error { <-ctx.Done(); return nil }

func (c *exprComponent) Update(args exprArgs) (pipeline.Pending, error) {
	return pipeline.CommitFunc(func() { c.j.add("update %s", args.eval()) }), nil
}

func init() {
	pipeline.Register(pipeline.Registration[exprArgs, struct{}]{
		Name:    "test_expr",
		Summary: "test component with expression arguments",
		Build: func(o pipeline.Options[struct{}], args exprArgs) (pipeline.Component[exprArgs], error) {
			j := journalFor(args.Journal)
			j.add("build %s", args.eval())
			o.OnExports(struct{}{})
			return &exprComponent{j: j}, nil
		},
	})
}

// An hcl.Expression argument arrives unevaluated (its variables are not
// component references), and a reload updates the component only when an
// expression's syntax changed, not when it merely moved.
func TestExpressionArguments(t *testing.T) {
	j := newJournal(t.Name())
	f := newFixture(t, runtime.ControllerOptions{})
	cfg := func(s string) string { return fmt.Sprintf("test_expr \"e\" {\n  journal = %q\n%s\n}\n", t.Name(), s) }

	if err := f.apply(cfg(`  value = row.x * 10
  item "a" { expr = [for v in [1, 2] : v + row.x] }`)); err != nil {
		t.Fatal(err)
	}
	if got, want := j.take(), []string{`build value=cty.NumberIntVal(20) extra=absent a=cty.TupleVal([]cty.Value{cty.NumberIntVal(3), cty.NumberIntVal(4)})`}; !slices.Equal(got, want) {
		t.Fatalf("journal %q, want %q", got, want)
	}

	steps := []struct {
		name, body string
		update     string // "" for no update
	}{
		{"moved, re-indented and commented", `

  # a comment
  value =   row.x   *   10
      item "a" {
        expr = [for v in [1, 2] : v + row.x]
      }`, ""},
		{"operator", `  value = row.x + 10
  item "a" { expr = [for v in [1, 2] : v + row.x] }`, `update value=cty.NumberIntVal(12) extra=absent a=cty.TupleVal([]cty.Value{cty.NumberIntVal(3), cty.NumberIntVal(4)})`},
		{"literal in a nested block", `  value = row.x + 10
  item "a" { expr = [for v in [1, 3] : v + row.x] }`, `update value=cty.NumberIntVal(12) extra=absent a=cty.TupleVal([]cty.Value{cty.NumberIntVal(3), cty.NumberIntVal(5)})`},
		{"optional expression added", `  value = row.x + 10
  extra = "${row.x}s"
  item "a" { expr = [for v in [1, 3] : v + row.x] }`, `update value=cty.NumberIntVal(12) extra=cty.StringVal("2s") a=cty.TupleVal([]cty.Value{cty.NumberIntVal(3), cty.NumberIntVal(5)})`},
		{"template literal", `  value = row.x + 10
  extra = "${row.x}m"
  item "a" { expr = [for v in [1, 3] : v + row.x] }`, `update value=cty.NumberIntVal(12) extra=cty.StringVal("2m") a=cty.TupleVal([]cty.Value{cty.NumberIntVal(3), cty.NumberIntVal(5)})`},
	}
	for _, s := range steps {
		if err := f.apply(cfg(s.body)); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got := j.take()
		var want []string
		if s.update != "" {
			want = []string{s.update}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: journal %q, want %q", s.name, got, want)
		}
	}
}

// Expressions cannot be exports: they have no value until evaluated.
func TestRegisterRefusesExpressionExport(t *testing.T) {
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(fmt.Sprint(r), "Expr") {
			t.Errorf("Register accepted an hcl.Expression export (recovered %v)", r)
		}
	}()
	pipeline.Register(pipeline.Registration[struct{}, struct {
		Expr hcl.Expression `hcl:"expr"`
	}]{Name: "test_expr_export", Build: func(pipeline.Options[struct {
		Expr hcl.Expression `hcl:"expr"`
	}], struct{}) (pipeline.Component[struct{}], error) {
		return nil, nil
	}})
}
