package pipeline_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline"
)

// wantDiag is one expected diagnostic: where it points and what it says.
type wantDiag struct {
	line, col int
	contains  []string
}

func loadErr(t *testing.T, src string, env map[string]string) *pipeline.DiagnosticsError {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "test.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	err := pipeline.Validate(path, []byte(src), lookup)
	if err == nil {
		return nil
	}
	var de *pipeline.DiagnosticsError
	if !errors.As(err, &de) {
		t.Fatalf("error is %T, want *DiagnosticsError: %v", err, err)
	}
	return de
}

func TestLoaderDiagnostics(t *testing.T) {
	tests := []struct {
		name string
		src  string
		env  map[string]string
		want []wantDiag
	}{
		{
			name: "syntax error",
			src:  "test_source \"a\" {\n  value = \n}\n",
			want: []wantDiag{{2, 11, []string{"Invalid expression"}}},
		},
		{
			name: "unknown block type with suggestion",
			src:  "test_sourec \"a\" {\n}\n",
			want: []wantDiag{{1, 1, []string{"Unsupported block type", `Did you mean "test_source"?`}}},
		},
		{
			name: "unknown attribute with suggestion",
			src:  "test_source \"a\" {\n  valeu = 3\n}\n",
			want: []wantDiag{{2, 3, []string{"Unsupported argument", `Did you mean "value"?`}}},
		},
		{
			name: "missing required attribute",
			src:  "test_sink \"s\" {\n}\n",
			want: []wantDiag{{1, 15, []string{"Missing required argument", `"inputs" is required`}}},
		},
		{
			name: "wrong type",
			src:  "test_source \"a\" {\n  value = \"high\"\n}\n",
			want: []wantDiag{{2, 11, []string{`Invalid value for "value"`, "a number is required"}}},
		},
		{
			name: "wrong type for a reference list",
			src:  "test_sink \"s\" {\n  inputs = [\"x\"]\n}\n",
			want: []wantDiag{{2, 12, []string{`Invalid value for "inputs"`, "metrics reference"}}},
		},
		{
			name: "reference to unknown component",
			src:  "test_source \"app\" {\n}\ntest_sink \"s\" {\n  inputs = [test_source.ap.metrics]\n}\n",
			want: []wantDiag{{4, 13, []string{"Reference to undeclared component", "test_source.ap", `Did you mean "test_source.app"?`}}},
		},
		{
			name: "reference to unknown type",
			src:  "test_sink \"s\" {\n  inputs = [tset_source.app.metrics]\n}\n",
			want: []wantDiag{{2, 13, []string{"Unknown reference", `Did you mean "test_source"?`}}},
		},
		{
			name: "reference to unknown export",
			src:  "test_source \"app\" {\n}\ntest_sink \"s\" {\n  inputs = [test_source.app.metric]\n}\n",
			want: []wantDiag{{4, 28, []string{"Unsupported attribute", `"metric"`}}},
		},
		{
			name: "duplicate component ID",
			src:  "test_source \"app\" {\n}\n\ntest_source \"app\" {\n}\n",
			want: []wantDiag{{4, 1, []string{"Duplicate component", "test_source.app is already defined at", "test.hcl:1,1"}}},
		},
		{
			name: "cycle names every member",
			src: "test_sink \"a\" {\n  inputs = [test_sink.b.metrics]\n}\n" +
				"test_sink \"b\" {\n  inputs = [test_sink.c.metrics]\n}\n" +
				"test_sink \"c\" {\n  inputs = [test_sink.a.metrics]\n}\n",
			want: []wantDiag{{1, 1, []string{"Cycle in component references", "test_sink.a -> test_sink.b -> test_sink.c -> test_sink.a"}}},
		},
		{
			name: "self reference is a cycle",
			src:  "test_sink \"a\" {\n  inputs = [test_sink.a.metrics]\n}\n",
			want: []wantDiag{{1, 1, []string{"Cycle", "test_sink.a -> test_sink.a"}}},
		},
		{
			name: "env without default",
			src:  "test_source \"a\" {\n  interval = env(\"SLUICE_TEST_UNSET\")\n}\n",
			want: []wantDiag{{2, 14, []string{"env", `"SLUICE_TEST_UNSET" is not set`}}},
		},
		{
			name: "file that does not exist",
			src:  "test_source \"a\" {\n  interval = file(\"missing.txt\")\n}\n",
			want: []wantDiag{{2, 14, []string{"file", "missing.txt", "no such file"}}},
		},
		{
			name: "validate error points at attribute",
			src:  "test_source \"a\" {\n  value = -1\n  fail_times = -2\n}\n",
			want: []wantDiag{
				{2, 11, []string{"value must not be negative"}},
				{3, 16, []string{"fail_times must not be negative"}},
			},
		},
		{
			name: "duplicate labelled nested block",
			src:  "test_source \"a\" {\n  item \"x\" {\n    count = 1\n  }\n  item \"x\" {\n    count = 2\n  }\n}\n",
			want: []wantDiag{{5, 3, []string{`Duplicate item "x" block`}}},
		},
		{
			name: "top-level attribute is not allowed",
			src:  "value = 1\n",
			want: []wantDiag{{1, 1, []string{"Unsupported argument"}}},
		},
		{
			name: "invalid component name",
			src:  "test_source \"9lives\" {\n}\n",
			want: []wantDiag{{1, 13, []string{"Invalid component name"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			de := loadErr(t, tt.src, tt.env)
			if de == nil {
				t.Fatal("config loaded; want an error")
			}
			if len(de.Diags) != len(tt.want) {
				t.Fatalf("got %d diagnostics, want %d:\n%v", len(de.Diags), len(tt.want), de)
			}
			for i, w := range tt.want {
				d := de.Diags[i]
				if d.Subject == nil {
					t.Fatalf("diagnostic %d has no position: %s", i, d.Error())
				}
				if d.Subject.Start.Line != w.line || d.Subject.Start.Column != w.col {
					t.Errorf("diagnostic %d at %d:%d, want %d:%d (%s)", i, d.Subject.Start.Line, d.Subject.Start.Column, w.line, w.col, d.Error())
				}
				text := d.Summary + ": " + d.Detail
				for _, c := range w.contains {
					if !strings.Contains(text, c) {
						t.Errorf("diagnostic %d = %q, want it to contain %q", i, text, c)
					}
				}
			}
			// The rendered error carries file:line:col and the source line.
			msg := de.Error()
			first := tt.want[0]
			if want := fmt.Sprintf("test.hcl:%d:%d: error: ", first.line, first.col); !strings.Contains(msg, want) {
				t.Errorf("rendered error lacks %q:\n%s", want, msg)
			}
			if !strings.Contains(msg, " | ") || !strings.Contains(msg, "^") {
				t.Errorf("rendered error lacks the marked source line:\n%s", msg)
			}
		})
	}
}

func TestLoaderFunctions(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "interval.txt"), []byte("42s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := `
test_source "a" {
  interval = trimspace(file("interval.txt"))
  labels   = { region = env("SLUICE_TEST_REGION", "eu-west-1"), zone = upper(env("SLUICE_TEST_ZONE")) }
}
`
	path := filepath.Join(dir, "cfg.hcl")
	env := map[string]string{"SLUICE_TEST_ZONE": "b"}
	err := pipeline.Validate(path, []byte(src), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
}
