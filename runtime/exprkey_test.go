package runtime

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// exprCorpus has every kind of native-syntax expression a component's
// expression argument may hold.
var exprCorpus = []string{
	`1 + 2 * 3 - 4 / 5 % 6`,
	`!true && false || a == b && c != d && e < f && g <= h && i > j && k >= l`,
	`-x`,
	`"a ${b} c %{ if d }e%{ else }f%{ endif } %{ for x in y }${x}%{ endfor }"`,
	"<<EOT\nheredoc ${x}\nEOT\n",
	`[1, "two", null]`,
	`{ a = 1, "b" = 2, (c) = 3 }`,
	`body.items[0].name`,
	`body["key"]`,
	`body.items[*].name`,
	`body.items.*.name[0]`, // the index applies to the result, not to each item
	`x ? y : z`,
	`[for k, v in body : v if k != "x"]`,
	`{for k, v in body : k => v...}`,
	`lower(body.name, xs...)`,
	`(body.a)`,
	`body[body.i]`,
	`"${x}"`,
}

// The kinds of expression nodes exprKey walks and their exported fields,
// as hclsyntax has them today. exprKey keys an expression by its exported
// fields (positions left out), so a new or renamed field in a new HCL
// version changes which reloads count as changes: when this test fails
// after an upgrade, check exprKey against the new fields (a field holding
// evaluation state must be skipped, as AnonSymbolExpr's are by being
// unexported) and then update the list.
const wantExprShapes = `hcl.TraverseAttr{Name string, SrcRange hcl.Range}
hcl.TraverseIndex{Key cty.Value, SrcRange hcl.Range}
hcl.TraverseRoot{Name string, SrcRange hcl.Range}
hcl.TraverseSplat{Each hcl.Traversal, SrcRange hcl.Range}
hclsyntax.AnonSymbolExpr{SrcRange hcl.Range}
hclsyntax.BinaryOpExpr{LHS hclsyntax.Expression, Op *hclsyntax.Operation, RHS hclsyntax.Expression, SrcRange hcl.Range}
hclsyntax.ChildScope{LocalNames map[string]struct {}, Expr hclsyntax.Expression}
hclsyntax.ConditionalExpr{Condition hclsyntax.Expression, TrueResult hclsyntax.Expression, FalseResult hclsyntax.Expression, SrcRange hcl.Range}
hclsyntax.ForExpr{KeyVar string, ValVar string, CollExpr hclsyntax.Expression, KeyExpr hclsyntax.Expression, ValExpr hclsyntax.Expression, CondExpr hclsyntax.Expression, Group bool, SrcRange hcl.Range, OpenRange hcl.Range, CloseRange hcl.Range}
hclsyntax.FunctionCallExpr{Name string, Args []hclsyntax.Expression, ExpandFinal bool, NameRange hcl.Range, OpenParenRange hcl.Range, CloseParenRange hcl.Range}
hclsyntax.IndexExpr{Collection hclsyntax.Expression, Key hclsyntax.Expression, SrcRange hcl.Range, OpenRange hcl.Range, BracketRange hcl.Range}
hclsyntax.LiteralValueExpr{Val cty.Value, SrcRange hcl.Range}
hclsyntax.ObjectConsExpr{Items []hclsyntax.ObjectConsItem, SrcRange hcl.Range, OpenRange hcl.Range}
hclsyntax.ObjectConsItem{KeyExpr hclsyntax.Expression, ValueExpr hclsyntax.Expression}
hclsyntax.ObjectConsKeyExpr{Wrapped hclsyntax.Expression, ForceNonLiteral bool}
hclsyntax.ParenthesesExpr{Expression hclsyntax.Expression, SrcRange hcl.Range}
hclsyntax.RelativeTraversalExpr{Source hclsyntax.Expression, Traversal hcl.Traversal, SrcRange hcl.Range}
hclsyntax.ScopeTraversalExpr{Traversal hcl.Traversal, SrcRange hcl.Range}
hclsyntax.SplatExpr{Source hclsyntax.Expression, Each hclsyntax.Expression, Item *hclsyntax.AnonSymbolExpr, SrcRange hcl.Range, MarkerRange hcl.Range}
hclsyntax.TemplateExpr{Parts []hclsyntax.Expression, SrcRange hcl.Range}
hclsyntax.TemplateJoinExpr{Tuple hclsyntax.Expression}
hclsyntax.TemplateWrapExpr{Wrapped hclsyntax.Expression, SrcRange hcl.Range}
hclsyntax.TupleConsExpr{Exprs []hclsyntax.Expression, SrcRange hcl.Range, OpenRange hcl.Range}
hclsyntax.UnaryOpExpr{Op *hclsyntax.Operation, Val hclsyntax.Expression, SrcRange hcl.Range, SymbolRange hcl.Range}
`

func exprShapes(t *testing.T) string {
	t.Helper()
	seen := map[string]string{}
	for _, src := range exprCorpus {
		e, diags := hclsyntax.ParseExpression([]byte(src), "x.hcl", hcl.InitialPos)
		if diags.HasErrors() {
			t.Fatalf("%s: %v", src, diags)
		}
		_ = hclsyntax.VisitAll(e, func(n hclsyntax.Node) hcl.Diagnostics {
			rt := reflect.TypeOf(n)
			for rt.Kind() == reflect.Pointer {
				rt = rt.Elem()
			}
			var fields []string
			for i := range rt.NumField() {
				if f := rt.Field(i); f.IsExported() {
					fields = append(fields, f.Name+" "+f.Type.String())
				}
			}
			seen[rt.String()] = strings.Join(fields, ", ")
			return nil
		})
	}
	// Not nodes, but walked too: the steps of traversals and the items of
	// object constructors.
	for _, v := range []any{hcl.TraverseRoot{}, hcl.TraverseAttr{}, hcl.TraverseIndex{}, hcl.TraverseSplat{}, hclsyntax.ObjectConsItem{}} {
		rt := reflect.TypeOf(v)
		var fields []string
		for i := range rt.NumField() {
			if f := rt.Field(i); f.IsExported() {
				fields = append(fields, f.Name+" "+f.Type.String())
			}
		}
		seen[rt.String()] = strings.Join(fields, ", ")
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s{%s}\n", n, seen[n])
	}
	return b.String()
}

func TestExprKeyPinnedToHCLSyntax(t *testing.T) {
	if got := exprShapes(t); got != wantExprShapes {
		t.Errorf("hclsyntax's expression nodes changed: review exprKey (exprkey.go), then update wantExprShapes.\ngot:\n%s\nwant:\n%s", got, wantExprShapes)
	}
}

// exprKey ignores where an expression is and how it is laid out, and
// tells apart any two expressions that differ.
func TestExprKey(t *testing.T) {
	key := func(src string, line int) string {
		t.Helper()
		e, diags := hclsyntax.ParseExpression([]byte(src), "x.hcl", hcl.Pos{Line: line, Column: 1, Byte: line * 100})
		if diags.HasErrors() {
			t.Fatalf("%s: %v", src, diags)
		}
		return exprKey(e)
	}
	keys := map[string]string{}
	for _, src := range exprCorpus {
		k := key(src, 1)
		if k == "" {
			t.Fatalf("%s: empty key", src)
		}
		if k2 := key(src, 40); k2 != k {
			t.Errorf("%s: the key depends on the position:\n%s\n%s", src, k, k2)
		}
		if prev, dup := keys[k]; dup {
			t.Errorf("%s and %s have the same key", prev, src)
		}
		keys[k] = src
	}
	for _, tc := range []struct{ a, b string }{
		{`1 + 2`, "1   +\n  2"},
		{`[for k, v in body : v]`, "[\n  for k, v in body :\n    v # the value\n]"},
		{`body.a`, `body.a /* a comment */`},
	} {
		if key(tc.a, 1) != key(tc.b, 7) {
			t.Errorf("%q and %q differ only in layout but have different keys", tc.a, tc.b)
		}
	}
	for _, tc := range []struct{ a, b string }{
		{`1 + 2`, `1 - 2`},
		{`a == b`, `a != b`},
		{`body.a`, `body.b`},
		{`body[0]`, `body[1]`},
		{`"x"`, `"y"`},
	} {
		if key(tc.a, 1) == key(tc.b, 1) {
			t.Errorf("%q and %q have the same key", tc.a, tc.b)
		}
	}
}
