package jsonlimit

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

const doc = `{"object_kind": "build", "n": 1.5e3, "ok": true, "nil": null,
 "commits": [{"id": "a", "msg": "x", "files": [1, 2]}, {"id": "b", "msg": "y"}],
 "labels": {"team": "core", "tier": "1"}, "deep": {"er": {"est": [[1, {"v": "z"}]]}}, "big": "` + "ignored" + `"}`

func parseExpr(t testing.TB, src string) hcl.Expression {
	t.Helper()
	e, diags := hclsyntax.ParseExpression([]byte(src), "t.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("%s: %v", src, diags)
	}
	return e
}

func ctyDecode(t testing.TB, b []byte) cty.Value {
	t.Helper()
	ty, err := ctyjson.ImpliedType(b)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ctyjson.Unmarshal(b, ty)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestWholeMatchesCtyJSON: with All, the value is go-cty's own decoding.
func TestWholeMatchesCtyJSON(t *testing.T) {
	for _, src := range []string{doc, `[]`, `{}`, `null`, `"s"`, `-0.5`, `[1, "a", null, [true]]`, `{"a": {"b": []}}`} {
		got, err := Decode(context.Background(), []byte(src), Limits{}, All())
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if want := ctyDecode(t, []byte(src)); !got.RawEquals(want) {
			t.Errorf("%s:\n got %#v\nwant %#v", src, got, want)
		}
	}
}

var funcs = map[string]function.Function{"length": stdlib.LengthFunc, "lookup": stdlib.LookupFunc, "lower": stdlib.LowerFunc}

// TestProjectionReadsTheSame: every expression evaluates the same on the
// projected value as on the whole document, and the projection leaves
// unread values out.
func TestProjectionReadsTheSame(t *testing.T) {
	full := ctyDecode(t, []byte(doc))
	for _, src := range []string{
		`event.object_kind == "build"`,
		`event.n + 1`,
		`event.commits[1].id`,
		`event["labels"]["team"]`,
		`length(event.commits)`,
		`[for c in event.commits : c.id]`,
		`[for c in event.commits : length(c.files) if c.id == "a"]`,
		`{for k, v in event.labels : k => lower(v)}`,
		`[for x in event.deep.er.est : [for y in x : y]]`,
		`event.commits[*].msg`,
		`lookup(event, "ok", false)`,
		`event.deep.er.est[0][1].v`,
		`event.missing`,
		`event.commits[5].id`,
		`[for x in event.commits : [for x in x.files : x]]`,
		`"${event.object_kind}-${event.labels.team}"`,
		`event.ok ? event.n : event.deep.er`,
	} {
		e := parseExpr(t, src)
		keep := PathsOf("event", e)
		proj, err := Decode(context.Background(), []byte(doc), Limits{}, keep)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		want, wd := e.Value(&hcl.EvalContext{Variables: map[string]cty.Value{"event": full}, Functions: funcs})
		got, gd := e.Value(&hcl.EvalContext{Variables: map[string]cty.Value{"event": proj}, Functions: funcs})
		if wd.HasErrors() != gd.HasErrors() {
			t.Errorf("%s: errors differ: whole %v, projected %v", src, wd, gd)
			continue
		}
		if !wd.HasErrors() && !got.RawEquals(want) {
			t.Errorf("%s: got %#v, want %#v", src, got, want)
		}
	}
	// What no expression reads is not built.
	proj, err := Decode(context.Background(), []byte(doc), Limits{}, PathsOf("event", parseExpr(t, `event.commits[0].id`)))
	if err != nil {
		t.Fatal(err)
	}
	if proj.Type().HasAttribute("big") || proj.Type().HasAttribute("labels") {
		t.Errorf("unread attributes were built: %#v", proj.Type())
	}
	if c1 := proj.GetAttr("commits").Index(cty.NumberIntVal(1)); !c1.IsNull() {
		t.Errorf("unread element built: %#v", c1)
	}
}

func TestLimits(t *testing.T) {
	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	for _, c := range []struct {
		name, src string
		lim       Limits
		reason    string
	}{
		{"depth", deep, Limits{}, ReasonDepth},
		{"depth in objects", strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 65), Limits{}, ReasonDepth},
		{"size", `[1,2,3]`, Limits{MaxBytes: 3}, ReasonSize},
		{"values", `[1,2,3,4]`, Limits{MaxValues: 3}, ReasonValues},
		{"syntax", `{"a": }`, Limits{}, ReasonSyntax},
		{"trailing", `{} {}`, Limits{}, ReasonSyntax},
		{"truncated", `{"a": [1, 2`, Limits{}, ReasonSyntax},
		{"empty", ``, Limits{}, ReasonSyntax},
	} {
		_, err := Decode(context.Background(), []byte(c.src), c.lim, All())
		if got := ReasonOf(err); got != c.reason {
			t.Errorf("%s: reason %q (%v), want %q", c.name, got, err, c.reason)
		}
	}
	// Brackets inside strings are not nesting.
	s := `["` + strings.Repeat("[", 1000) + `\"` + `"]`
	if _, err := Decode(context.Background(), []byte(s), Limits{}, All()); err != nil {
		t.Errorf("brackets in a string: %v", err)
	}
	// Exactly the limit passes.
	ok := strings.Repeat("[", 64) + strings.Repeat("]", 64)
	if _, err := Decode(context.Background(), []byte(ok), Limits{}, All()); err != nil {
		t.Errorf("64 levels: %v", err)
	}
}

func TestTimeout(t *testing.T) {
	big := "[" + strings.Repeat(`{"a": 1},`, 200000) + "1]"
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Decode(ctx, []byte(big), Limits{}, All())
	var e *Error
	if !errors.As(err, &e) || e.Reason != ReasonTimeout || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want a timeout", err)
	}
}

// FuzzDecode: any bytes decode to go-cty's own value or to a reasoned
// error; never a panic or a stack overflow; and a projected decoding (what
// a few field references keep) allocates a bounded multiple of the input
// and takes bounded time, whatever the input's shape.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{doc, `[]`, `{"a": {"b": [1, 2, {"c": "d"}]}}`, `[[[[[[1]]]]]]`, `{"a": 1, "a": 2}`, `"\u00e9\ud800"`, `1e999`, `{"x": [` + strings.Repeat(`0,`, 100) + `0]}`} {
		f.Add([]byte(s))
	}
	keep := PathsOf("event", parseExpr(f, `[for c in event.a.b : c.c if event.x[3] == 0]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Decode(context.Background(), b, Limits{MaxValues: 10000}, All())
		if err != nil {
			if ReasonOf(err) == "" || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error without a reason or over one line: %v", err)
			}
		} else if ty, err := ctyjson.ImpliedType(b); err == nil {
			// go-cty refuses duplicate keys, which Decode takes last-wins.
			if want, err := ctyjson.Unmarshal(b, ty); err == nil && !v.RawEquals(want) {
				t.Fatalf("got %#v, want %#v", v, want)
			}
		}
		alloc, took := pipelinetest.Measure(func() { _, _ = Decode(context.Background(), b, Limits{}, keep) })
		if max := uint64(64*len(b)) + 256<<10; alloc > max {
			t.Errorf("projected decoding of %d bytes allocated %d bytes (max %d)", len(b), alloc, max)
		}
		if took > 2*time.Second {
			t.Errorf("projected decoding of %d bytes took %s", len(b), took)
		}
	})
}
