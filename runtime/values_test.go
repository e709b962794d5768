package runtime_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runtime"
)

// Every export type Register accepts reaches a consumer whose argument has
// the same type, with the same value.

type allValues struct {
	S   string                `hcl:"s,optional"`
	B   bool                  `hcl:"b,optional"`
	I   int                   `hcl:"i,optional"`
	I8  int8                  `hcl:"i8,optional"`
	U   uint16                `hcl:"u,optional"`
	U64 uint64                `hcl:"u64,optional"`
	F   float64               `hcl:"f,optional"`
	F32 float32               `hcl:"f32,optional"`
	D   time.Duration         `hcl:"d,optional"`
	G   prometheus.Gatherer   `hcl:"g,optional"`
	L   []string              `hcl:"l,optional"`
	LE  []int                 `hcl:"le,optional"`
	LG  []prometheus.Gatherer `hcl:"lg,optional"`
	M   map[string]int        `hcl:"m,optional"`
	ME  map[string]string     `hcl:"me,optional"`
	P   *string               `hcl:"p,optional"`
	PN  *int                  `hcl:"pn,optional"`
}

type valuesSourceArgs struct {
	NaN bool `hcl:"nan,optional"`
}

type valuesSinkArgs struct {
	Journal string    `hcl:"journal"`
	Got     allValues `hcl:"got,block"`
}

// received holds what each test_values_sink was built with (test-only).
var received sync.Map // journal name -> allValues

type idle struct{}

func (idle) Run(ctx context.Context) error { <-ctx.Done(); return nil }

type idleUpdate[A any] struct{ idle }

func (idleUpdate[A]) Update(A) (pipeline.Pending, error) { return pipeline.CommitFunc(nil), nil }

var sourceRegistry = prometheus.NewRegistry()

func wantValues() allValues {
	p := "pointed"
	return allValues{
		S: "text", B: true, I: -42, I8: 7, U: 65535, U64: math.MaxUint64, F: 0.25, F32: 1.5, D: 90 * time.Second,
		G: sourceRegistry, L: []string{"x", "y"}, LE: []int{}, LG: []prometheus.Gatherer{sourceRegistry, sourceRegistry},
		M: map[string]int{"one": 1}, ME: map[string]string{}, P: &p,
	}
}

func init() {
	pipeline.Register(pipeline.Registration[valuesSourceArgs, allValues]{
		Name: "test_values",
		Build: func(o pipeline.Options[allValues], args valuesSourceArgs) (pipeline.Component[valuesSourceArgs], error) {
			v := wantValues()
			if args.NaN {
				v.F = math.NaN()
			}
			o.OnExports(v)
			return idleUpdate[valuesSourceArgs]{}, nil
		},
	})
	pipeline.Register(pipeline.Registration[valuesSinkArgs, struct{}]{
		Name: "test_values_sink",
		Build: func(o pipeline.Options[struct{}], args valuesSinkArgs) (pipeline.Component[valuesSinkArgs], error) {
			received.Store(args.Journal, args.Got)
			o.OnExports(struct{}{})
			return idleUpdate[valuesSinkArgs]{}, nil
		},
	})
}

func validate(t *testing.T, src string) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sluice.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return runtime.Validate(path, []byte(src), nil)
}

func TestEveryExportTypeIsEvaluated(t *testing.T) {
	var attrs []string
	for _, name := range []string{"s", "b", "i", "i8", "u", "u64", "f", "f32", "d", "g", "l", "le", "lg", "m", "me", "p", "pn"} {
		attrs = append(attrs, "    "+name+" = test_values.v."+name)
	}
	src := `
test_values "v" {}
test_values_sink "s" {
  journal = "` + t.Name() + `"
  got {
` + strings.Join(attrs, "\n") + `
  }
}`
	if err := validate(t, src); err != nil {
		t.Fatal(err)
	}
	v, ok := received.Load(t.Name())
	if !ok {
		t.Fatal("the consumer was not built")
	}
	got, want := v.(allValues), wantValues()
	// Gatherers arrive wrapped with the ID of the component they come from.
	for _, g := range append([]prometheus.Gatherer{got.G}, got.LG...) {
		if id := pipeline.SourceID(g); id != "test_values.v" {
			t.Errorf("SourceID = %q, want test_values.v", id)
		}
		if _, err := g.Gather(); err != nil {
			t.Error(err)
		}
	}
	if len(got.LG) != 2 {
		t.Errorf("LG has %d gatherers, want 2", len(got.LG))
	}
	got.G, got.LG, want.G, want.LG = nil, nil, nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("consumer got\n%#v\nwant\n%#v", got, want)
	}
}

// An export value that cannot be evaluated fails Build with what is wrong.
func TestInvalidExportsFailBuildWithTheReason(t *testing.T) {
	err := validate(t, `test_values "v" { nan = true }`)
	if err == nil {
		t.Fatal("NaN export accepted")
	}
	if msg := err.Error(); !strings.Contains(msg, `export "f"`) || !strings.Contains(msg, "NaN") || strings.Contains(msg, "did not publish") {
		t.Errorf("error %q does not say that export f is NaN", msg)
	}
}

func TestRegisterRefusesTypesItCannotHandle(t *testing.T) {
	type badExports struct {
		Ch chan int `hcl:"ch"`
	}
	type nested struct {
		X string `hcl:"x"`
	}
	type blockExports struct {
		N nested `hcl:"n,block"`
	}
	type badArgs struct {
		F func() `hcl:"f"`
	}
	build := func(o pipeline.Options[badExports], a struct{}) (pipeline.Component[struct{}], error) {
		return nil, errors.New("unused")
	}
	cases := []struct {
		name     string
		register func()
		want     []string
	}{
		{"export of a channel", func() {
			pipeline.Register(pipeline.Registration[struct{}, badExports]{Name: "test_bad_exports", Build: build})
		}, []string{"test_bad_exports", "Ch", "chan int"}},
		{"export block", func() {
			pipeline.Register(pipeline.Registration[struct{}, blockExports]{Name: "test_block_exports",
				Build: func(pipeline.Options[blockExports], struct{}) (pipeline.Component[struct{}], error) { return nil, nil }})
		}, []string{"test_block_exports", "N", "not blocks"}},
		{"argument of a function type", func() {
			pipeline.Register(pipeline.Registration[badArgs, struct{}]{Name: "test_bad_args",
				Build: func(pipeline.Options[struct{}], badArgs) (pipeline.Component[badArgs], error) { return nil, nil }})
		}, []string{"test_bad_args", "F", "func()"}},
		{"arguments not a struct", func() {
			pipeline.Register(pipeline.Registration[string, struct{}]{Name: "test_string_args",
				Build: func(pipeline.Options[struct{}], string) (pipeline.Component[string], error) { return nil, nil }})
		}, []string{"test_string_args", "must be a struct"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := func() (msg string) {
				defer func() { msg, _ = recover().(string) }()
				c.register()
				return ""
			}()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("panic %q does not mention %q", msg, w)
				}
			}
			if _, ok := pipeline.Lookup(c.want[0]); ok {
				t.Errorf("%s was registered", c.want[0])
			}
		})
	}
}
