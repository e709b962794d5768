package main

import (
	"bytes"
	"go/format"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// newModuleDir is a directory with a go.mod, as a --with replacement needs.
func newModuleDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestParseWith(t *testing.T) {
	cwd := t.TempDir()
	local := filepath.Join(cwd, "local", "foo")
	if err := os.MkdirAll(local, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(local, "go.mod"), []byte("module github.com/acme/sluice-foo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in   string
		want dep
	}{
		{"github.com/acme/sluice-foo", dep{Module: "github.com/acme/sluice-foo"}},
		{"github.com/acme/sluice-foo@v1.2.0", dep{Module: "github.com/acme/sluice-foo", Version: "v1.2.0"}},
		{"github.com/acme/sluice-foo=./local/foo", dep{Module: "github.com/acme/sluice-foo", Dir: local}},
		{"github.com/acme/sluice-foo=local/foo", dep{Module: "github.com/acme/sluice-foo", Dir: local}},
		{"github.com/acme/sluice-foo@v1.2.0=" + local, dep{Module: "github.com/acme/sluice-foo", Version: "v1.2.0", Dir: local}},
		{"github.com/acme/sluice-foo=github.com/fork/sluice-foo@v1.2.1", dep{Module: "github.com/acme/sluice-foo", ReplaceModule: "github.com/fork/sluice-foo", ReplaceVersion: "v1.2.1"}},
	} {
		got, err := parseWith(tc.in, cwd)
		if err != nil || got != tc.want {
			t.Errorf("parseWith(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"", "no module path"},
		{"=./local/foo", "no module path"},
		{"@v1.2.0", "no module path"},
		{"./local/foo", "a directory goes after ="},
		{"github.com/acme/sluice-foo@", "empty or malformed version"},
		{"github.com/acme/sluice-foo=", "empty replacement"},
		{"github.com/acme/sluice-foo=./missing", "replacement directory"},
		{"github.com/acme/sluice-foo=./local", "not the root of a Go module (no go.mod)"},
		{"github.com/acme/sluice-foo=./local/foo/go.mod", "is not a directory"},
		{"github.com/acme/sluice-foo=github.com/fork/sluice-foo", "neither a directory"},
	} {
		if _, err := parseWith(tc.in, cwd); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseWith(%q) = %v, want an error with %q", tc.in, err, tc.want)
		}
	}
}

func TestNewPlan(t *testing.T) {
	cwd := t.TempDir()
	checkout := newModuleDir(t)
	base := planInput{Output: "sluice", Cwd: cwd}

	p, err := newPlan(base)
	if err != nil || p.Core != (dep{Module: coreModule, Version: "latest"}) || p.Output != filepath.Join(cwd, "sluice") {
		t.Errorf("defaults = %+v, %v", p, err)
	}
	in := base
	in.Self = selfInfo{Version: "v1.4.0"}
	if p, err := newPlan(in); err != nil || p.Core != (dep{Module: coreModule, Version: "v1.4.0"}) {
		t.Errorf("core of a released sluice-build = %+v, %v", p.Core, err)
	}
	in.Self = selfInfo{Version: "(devel)", Checkout: checkout}
	if p, err := newPlan(in); err != nil || p.Core != (dep{Module: coreModule, Dir: checkout}) {
		t.Errorf("core of sluice-build from a checkout = %+v, %v", p.Core, err)
	}
	in.SluiceVersion = "v1.3.0"
	if p, err := newPlan(in); err != nil || p.Core != (dep{Module: coreModule, Version: "v1.3.0"}) {
		t.Errorf("core with --sluice-version = %+v, %v", p.Core, err)
	}
	in = base
	in.With = []string{coreModule + "=" + checkout, "example.com/a@v1.0.0", "example.com/b"}
	p, err = newPlan(in)
	if err != nil || p.Core != (dep{Module: coreModule, Dir: checkout}) || len(p.Plugins) != 2 || p.Plugins[0].Module != "example.com/a" {
		t.Errorf("plan = %+v, %v", p, err)
	}

	for _, tc := range []struct {
		in   planInput
		want string
	}{
		{planInput{With: []string{"example.com/a", "example.com/a@v1.0.0"}}, "named twice"},
		{planInput{With: []string{coreModule + "@v1.0.0"}, SluiceVersion: "v1.1.0"}, "choose one"},
		{planInput{SluiceVersion: "v1 2"}, "not a version"},
		{planInput{Output: ""}, "no output path"},
		{planInput{Output: "missing/sluice"}, "the directory does not exist"},
		{planInput{Output: "."}, "is a directory"},
	} {
		tc.in.Cwd = cwd
		if tc.in.Output == "" && tc.want != "no output path" {
			tc.in.Output = "sluice"
		}
		if _, err := newPlan(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("newPlan(%+v) = %v, want an error with %q", tc.in, err, tc.want)
		}
	}
}

// Usage errors exit 2 with the reason, before any go command runs.
func TestRunUsageErrors(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--with", "=../x"}, "no module path"},
		{[]string{"--with", "example.com/x=../does-not-exist"}, "replacement directory"},
		{[]string{"-o", "nowhere/sluice"}, "the directory does not exist"},
		{[]string{"--bogus"}, "unknown long flag"},
		{[]string{"--components", "statsd_receiver,kafka_source"}, `"kafka_source" is not a standard component`},
		{[]string{"--distribution", "lite", "--components", "relabel"}, "has its own components"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), tc.args, []string{"PATH=/nonexistent"}, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("sluice-build %q = %d %q, want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("usage errors left files: %v", entries)
	}
}

func TestGeneratedModule(t *testing.T) {
	p := plan{
		Core: dep{Module: coreModule, Dir: "/src/sluice"},
		Plugins: []dep{
			{Module: "example.com/a", Version: "v1.2.0"},
			{Module: "example.com/b", Dir: "/src/b"},
			{Module: "example.com/c", Version: "v1.0.0", ReplaceModule: "example.com/fork/c", ReplaceVersion: "v1.0.1"},
			{Module: "example.com/d"},
			{Module: "example.com/e", Version: "main"},
		},
	}
	src := mainGo(p)
	if formatted, err := format.Source(src); err != nil || !bytes.Equal(formatted, src) {
		t.Errorf("main.go is not gofmt'ed (%v):\n%s", err, src)
	}
	for _, imp := range []string{`"github.com/sluicehq/sluice/sluicecmd"`, `_ "github.com/sluicehq/sluice/components/all"`, `_ "example.com/a"`, `_ "example.com/e"`} {
		if !bytes.Contains(src, []byte(imp)) {
			t.Errorf("main.go lacks %s:\n%s", imp, src)
		}
	}
	wantEdit := []string{"mod", "edit",
		"-require=github.com/sluicehq/sluice@" + zeroVersion, "-replace=github.com/sluicehq/sluice=/src/sluice",
		"-require=example.com/a@v1.2.0",
		"-require=example.com/b@" + zeroVersion, "-replace=example.com/b=/src/b",
		"-require=example.com/c@v1.0.0", "-replace=example.com/c=example.com/fork/c@v1.0.1",
	}
	if got := modEditArgs(p); !slices.Equal(got, wantEdit) {
		t.Errorf("go mod edit args:\n got %q\nwant %q", got, wantEdit)
	}
	if got, want := getArgs(p), []string{"get", "example.com/e@main"}; !slices.Equal(got, want) {
		t.Errorf("go get args = %q, want %q", got, want)
	}
	if got := getArgs(plan{Core: dep{Module: coreModule, Version: "v1.0.0"}}); got != nil {
		t.Errorf("go get args without queries = %q", got)
	}
}

func TestStampHelpers(t *testing.T) {
	if got, want := ldflags("v1.2.0", "abc", "main"), "-X github.com/prometheus/common/version.Version=v1.2.0 -X github.com/prometheus/common/version.Revision=abc -X github.com/prometheus/common/version.Branch=main"; got != want {
		t.Errorf("ldflags = %q, want %q", got, want)
	}
	for v, want := range map[string]string{
		"v0.0.0-20240101000000-0123456789ab":            "0123456789ab",
		"v1.2.4-0.20240101000000-0123456789ab":          "0123456789ab",
		"v1.2.3":                                        "",
		"v1.2.3-rc.1":                                   "",
		"v0.0.0-20240101000000-0123456789ab+incompatib": "",
	} {
		if got := pseudoRevision(v); got != want {
			t.Errorf("pseudoRevision(%s) = %q, want %q", v, got, want)
		}
	}
}
