package runtime_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime"
)

// wantDiag is one expected diagnostic: where it points and what it says.
type wantDiag struct {
	line, col int
	contains  []string
}

func loadErr(t *testing.T, src string, env map[string]string) *runtime.DiagnosticsError {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "test.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	err := runtime.Validate(path, []byte(src), lookup)
	if err == nil {
		return nil
	}
	var de *runtime.DiagnosticsError
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
			want: []wantDiag{{1, 1, []string{"Unsupported block type", `Did you mean "test_source"?`, "This binary has no component of that type: sluice components lists those it has."}}},
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
	err := runtime.Validate(path, []byte(src), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

// An empty or comment-only config is refused unless AllowEmpty says an
// agent without components is intended.
func TestLoaderRefusesEmptyConfig(t *testing.T) {
	for _, src := range []string{"", "\n\n", "# nothing yet\n// nor here\n/* block */\n"} {
		de := loadErr(t, src, nil)
		if de == nil || !strings.Contains(de.Error(), "No components in the config") || !strings.Contains(de.Error(), "--config.allow-empty") {
			t.Errorf("Validate(%q) = %v, want the empty-config diagnostic", src, de)
		}
		if err := runtime.ValidateWith("x.hcl", []byte(src), runtime.ValidateOptions{LoadOptions: runtime.LoadOptions{AllowEmpty: true}}); err != nil {
			t.Errorf("Validate(%q) with AllowEmpty: %v", src, err)
		}
	}
}

// On reload, an empty config is a rejected config: the graph keeps running.
func TestControllerKeepsGraphOnEmptyReload(t *testing.T) {
	f := newFixture(t, runtime.ControllerOptions{})
	if err := f.apply(`test_source "a" {}`); err != nil {
		t.Fatal(err)
	}
	err := f.apply("# truncated\n")
	var de *runtime.DiagnosticsError
	if !errors.As(err, &de) {
		t.Fatalf("reload of an empty config = %v, want diagnostics", err)
	}
	if got := componentIDs(f.ctrl); len(got) != 1 || got[0] != "test_source.a" {
		t.Errorf("components after an empty reload: %v", got)
	}
	if v := testutilValue(f, "sluice_config_last_reload_successful"); v != 0 {
		t.Errorf("last reload successful = %v, want 0", v)
	}
	if !f.ctrl.Ready() {
		t.Error("not ready after a rejected reload; the old graph still runs")
	}
}

// Duplicate keys in any object expression, nested or not, are an error.
func TestLoaderDuplicateObjectKeys(t *testing.T) {
	for _, tt := range []struct {
		src       string
		line, col int
	}{
		{"test_source \"a\" {\n  labels = { a = \"x\", a = \"y\" }\n}\n", 2, 23},
		{"test_source \"a\" {\n  labels = { \"a\" = \"x\"\n    a = \"y\" }\n}\n", 3, 5},
		{"test_source \"a\" {\n  labels = merge({ b = \"1\" }, { c = \"x\", c = \"y\" })\n}\n", 2, 42},
		{"test_source \"a\" {\n  labels = { (lower(\"A\")) = \"x\", a = \"y\" }\n}\n", 2, 34},
	} {
		de := loadErr(t, tt.src, nil)
		if de == nil || len(de.Diags) != 1 {
			t.Errorf("%q: got %v, want one Duplicate key diagnostic", tt.src, de)
			continue
		}
		d := de.Diags[0]
		if d.Summary != "Duplicate key" || d.Subject.Start.Line != tt.line || d.Subject.Start.Column != tt.col {
			t.Errorf("%q: got %s at %d:%d, want Duplicate key at %d:%d", tt.src, d.Summary, d.Subject.Start.Line, d.Subject.Start.Column, tt.line, tt.col)
		}
	}
	// Distinct keys, and keys only known per iteration, are fine.
	if de := loadErr(t, "test_source \"a\" {\n  labels = { a = \"x\", b = \"y\" }\n}\n", nil); de != nil {
		t.Errorf("distinct keys: %v", de)
	}
	if de := loadErr(t, "test_source \"a\" {\n  labels = merge([for k in [\"a\", \"b\"] : { (k) = k }]...)\n}\n", nil); de != nil {
		t.Errorf("per-iteration keys: %v", de)
	}
}

// A config file that is not a regular file is refused with a clear error.
func TestReadConfigFileRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	loop := filepath.Join(dir, "loop.hcl")
	if err := os.Symlink(loop, loop); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		filepath.Join(dir, "missing.hcl"): "no such file",
		dir:                               "is a directory",
		loop:                              "too many levels of symbolic links",
		os.DevNull:                        "not a regular file",
	} {
		if _, err := runtime.ReadConfigFile(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadConfigFile(%s) = %v, want %q", path, err, want)
		}
	}
}
