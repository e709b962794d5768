package sluicecmd

import (
	"bytes"
	"encoding/json"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime"
)

// A binary built by sluice-build: the main module is the generated one, the
// core is replaced by a checkout, one plugin is a released module and one is
// a module nested in the core's path.
var customBuild = &debug.BuildInfo{
	Main: debug.Module{Path: "sluice-custom", Version: "(devel)"},
	Deps: []*debug.Module{
		{Path: "github.com/sluicehq/sluice", Version: "v0.0.0-00010101000000-000000000000", Replace: &debug.Module{Path: "/src/sluice", Version: "(devel)"}},
		{Path: "github.com/sluicehq/sluice/plugins/exec", Version: "v0.2.0"},
		{Path: "example.com/acme/sluice-foo", Version: "v1.2.0", Replace: &debug.Module{Path: "example.com/fork/sluice-foo", Version: "v1.2.1"}},
		{Path: "example.com/acme", Version: "v9.0.0"},
	},
}

func TestModuleOf(t *testing.T) {
	for _, tc := range []struct{ pkg, want, kind string }{
		{"github.com/sluicehq/sluice/components/relabel", "github.com/sluicehq/sluice v0.0.0-00010101000000-000000000000 => /src/sluice", "standard"},
		{"github.com/sluicehq/sluice/plugins/exec", "github.com/sluicehq/sluice/plugins/exec v0.2.0", "plugin"},
		{"github.com/sluicehq/sluice/plugins/exec/internal/parse", "github.com/sluicehq/sluice/plugins/exec v0.2.0", "plugin"},
		{"example.com/acme/sluice-foo/source", "example.com/acme/sluice-foo v1.2.0 => example.com/fork/sluice-foo v1.2.1", "plugin"},
		{"example.com/acme/sluice-foobar", "example.com/acme v9.0.0", "plugin"},
		{"example.com/elsewhere", "unknown", "plugin"},
	} {
		mod := moduleOf(customBuild, tc.pkg)
		if got := mod.String(); got != tc.want {
			t.Errorf("moduleOf(%s) = %q, want %q", tc.pkg, got, tc.want)
		}
		if got := kindOf(mod, tc.pkg); got != tc.kind {
			t.Errorf("kindOf(%s) = %q, want %q", tc.pkg, got, tc.kind)
		}
	}
	// Without build information, Sluice's components are still standard.
	if got := kindOf(moduleOf(nil, "github.com/sluicehq/sluice/components/relabel"), "github.com/sluicehq/sluice/components/relabel"); got != "standard" {
		t.Errorf("kind without build info = %q", got)
	}
}

func TestVersionListsPluginModules(t *testing.T) {
	docs := []runtime.ComponentDoc{
		{Name: "relabel", Package: "github.com/sluicehq/sluice/components/relabel", Kind: "standard"},
		{Name: "exec_source", Package: "github.com/sluicehq/sluice/plugins/exec", Kind: "plugin"},
		{Name: "foo_sink", Package: "example.com/acme/sluice-foo/sink", Kind: "plugin"},
		{Name: "foo_source", Package: "example.com/acme/sluice-foo/source", Kind: "plugin"},
	}
	var out bytes.Buffer
	printVersion(&out, "custom", docs, customBuild)
	for _, want := range []string{
		"sluice, version",
		"sluice module:    github.com/sluicehq/sluice v0.0.0-00010101000000-000000000000 => /src/sluice\n",
		"components:       1 standard, 3 plugin\n",
		"plugin modules:\n    example.com/acme/sluice-foo v1.2.0 => example.com/fork/sluice-foo v1.2.1 (foo_sink, foo_source)\n    github.com/sluicehq/sluice/plugins/exec v0.2.0 (exec_source)\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("version output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	printVersion(&out, "custom", docs[:1], customBuild)
	if !strings.Contains(out.String(), "plugin modules:   none") {
		t.Errorf("version output without plugins:\n%s", out.String())
	}
}

// A binary that imports sluicecmd but no component says so instead of
// printing an empty table.
func TestComponentsWithoutAny(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := listComponents("custom", nil, "", false, false, &out, &errOut); code != 0 || !strings.Contains(out.String(), "No components are compiled into this binary") || !strings.Contains(out.String(), "components/all") {
		t.Errorf("components = %d %q %q", code, out.String(), errOut.String())
	}
	out.Reset()
	if code := listComponents("custom", nil, "", true, false, &out, &errOut); code != 0 || strings.TrimSpace(out.String()) != "[]" {
		t.Errorf("components --json = %d %q", code, out.String())
	}
	var docs []runtime.ComponentDoc
	if err := json.Unmarshal(out.Bytes(), &docs); err != nil || len(docs) != 0 {
		t.Errorf("components --json: %v %v", docs, err)
	}
	if code := listComponents("custom", nil, "relabel", false, false, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), `no component named "relabel"`) {
		t.Errorf("components relabel = %d %q", code, errOut.String())
	}
}
