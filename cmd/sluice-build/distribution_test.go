package main

import (
	"bytes"
	"go/format"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	_ "github.com/sluicehq/sluice/components/all"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runtime"
)

// Every standard component is in standardPackage with the package that
// registers it, and nothing else is: --components cannot name a component
// components/all does not have, nor miss one it has.
func TestStandardPackagesMatchRegistry(t *testing.T) {
	regs := pipeline.Registrations()
	if len(regs) < 8 {
		t.Fatalf("only %d components registered by components/all", len(regs))
	}
	var names []string
	for _, r := range regs {
		d := runtime.Describe(r)
		names = append(names, d.Name)
		pkg, ok := standardPackage(d.Name)
		if !ok {
			t.Errorf("%s (package %s) is not in standardPackage", d.Name, d.Package)
			continue
		}
		if coreModule+"/"+pkg != d.Package {
			t.Errorf("standardPackage(%s) = %s, but %s registers it", d.Name, pkg, d.Package)
		}
	}
	slices.Sort(names)
	if want := standardNames(); !slices.Equal(names, want) {
		t.Errorf("registered components %v, standardNames %v", names, want)
	}
}

func TestSelectComponents(t *testing.T) {
	for _, tc := range []struct {
		distribution, components string
		wantName                 string
		wantPkgs                 []string
	}{
		{"", "", "custom", nil},
		{"full", "", "full", nil},
		{"lite", "", "lite", []string{coreModule + "/components/cache", coreModule + "/components/relabel",
			coreModule + "/components/sink", coreModule + "/components/statsd", coreModule + "/components/webhook"}},
		{"", " statsd_receiver, metrics_sink ,", "custom", []string{coreModule + "/components/sink", coreModule + "/components/statsd"}},
		{"edge-1", "relabel", "edge-1", []string{coreModule + "/components/relabel"}},
	} {
		name, pkgs, err := selectComponents(tc.distribution, tc.components)
		if err != nil || name != tc.wantName || !slices.Equal(pkgs, tc.wantPkgs) {
			t.Errorf("selectComponents(%q, %q) = %q, %q, %v; want %q, %q", tc.distribution, tc.components, name, pkgs, err, tc.wantName, tc.wantPkgs)
		}
	}
	for _, tc := range []struct{ distribution, components, want string }{
		{"", "statsd", `"statsd" is not a standard component`},
		{"", "relabel,relabel", "named twice"},
		{"", ",", "names no component"},
		{"lite", "relabel", "has its own components"},
		{"full", "relabel", "has its own components"},
		{"Lite", "relabel", "a name is lower-case"},
		{"a\"b", "relabel", "a name is lower-case"},
		{strings.Repeat("a", 33), "relabel", "a name is lower-case"},
	} {
		if _, _, err := selectComponents(tc.distribution, tc.components); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("selectComponents(%q, %q) = %v, want an error with %q", tc.distribution, tc.components, err, tc.want)
		}
	}
}

// The main of a selection imports the CLI, the selected packages and the
// plugins, not components/all, and names its distribution.
func TestGeneratedMainOfASelection(t *testing.T) {
	name, pkgs, err := selectComponents("edge", "statsd_receiver,metrics_sink")
	if err != nil {
		t.Fatal(err)
	}
	src := mainGo(plan{Distribution: name, Components: pkgs, Plugins: []dep{{Module: "example.com/a"}}})
	if formatted, err := format.Source(src); err != nil || !bytes.Equal(formatted, src) {
		t.Errorf("main.go is not gofmt'ed (%v):\n%s", err, src)
	}
	for _, want := range []string{`_ "github.com/sluicehq/sluice/components/sink"`, `_ "github.com/sluicehq/sluice/components/statsd"`,
		`_ "example.com/a"`, `sluicecmd.MainDistribution("edge")`} {
		if !bytes.Contains(src, []byte(want)) {
			t.Errorf("main.go lacks %s:\n%s", want, src)
		}
	}
	if bytes.Contains(src, []byte("components/all")) || bytes.Contains(src, []byte("components/relabel")) {
		t.Errorf("main.go imports more than the selection:\n%s", src)
	}
}

// cmd/sluice-lite/main.go is what sluice-build --distribution lite
// generates (go generate ./cmd/sluice-lite rewrites it).
func TestLiteMainIsCurrent(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "main.go")
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"--distribution", "lite", "--emit-main", out}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("sluice-build --emit-main: exit %d: %s", code, stderr.String())
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join("..", "sluice-lite", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, committed) {
		t.Errorf("cmd/sluice-lite/main.go is stale; run go generate ./cmd/sluice-lite\ngenerated:\n%s", got)
	}
}
