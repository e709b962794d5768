package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestPluginWalkthrough follows "A plugin outside the repository, step by
// step" of docs/plugins.md as a new plugin author would: sluice-build
// installed from the checkout with go install, a plugin module of its own
// in a directory outside the repository (next to a "sluice" directory that
// is the checkout, as the documented replace says), its go.mod exactly as
// documented, and the documented commands run there. Every command it runs
// and the go.mod it writes are checked to be the documentation's, so the
// two cannot drift apart.
func TestPluginWalkthrough(t *testing.T) {
	root := checkoutForBuild(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "plugins.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := func(what string) {
		t.Helper()
		if !strings.Contains(string(doc), what) {
			t.Fatalf("docs/plugins.md does not show %q", what)
		}
	}

	base := t.TempDir() // outside the repository
	if err := os.Symlink(root, filepath.Join(base, "sluice")); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "bin")
	env := append(buildEnv(), "GOBIN="+bin, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	sh := func(dir, command string) string {
		t.Helper()
		documented(command)
		f := strings.Fields(command)
		if p := filepath.Join(bin, f[0]); !strings.Contains(f[0], "/") && fileExists(p) {
			f[0] = p // exec looks commands up in this process's PATH, not env's
		}
		cmd := exec.CommandContext(buildContext(t), f[0], f[1:]...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s (in %s): %v\n%s", command, dir, err, out)
		}
		return string(out)
	}

	// 1. sluice-build, installed from the checkout.
	sh(filepath.Join(base, "sluice"), "go install ./cmd/sluice-build")

	// 2. The plugin module, with the documented go.mod.
	m := regexp.MustCompile("(?s)```\n((?:   )?module example.com/you/sluice-heartbeat\n.*?\n) *```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/plugins.md shows no go.mod of example.com/you/sluice-heartbeat")
	}
	goMod := regexp.MustCompile(`(?m)^   `).ReplaceAll(m[1], nil) // the block is indented in a list
	if !strings.Contains(string(goMod), "replace github.com/sluicehq/sluice => ../sluice") {
		t.Fatalf("the documented go.mod has no replace of Sluice:\n%s", goMod)
	}
	plugin := filepath.Join(base, "sluice-heartbeat")
	if err := os.Mkdir(plugin, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, "docs", "example", "heartbeat", "heartbeat.go"))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{"go.mod": goMod, "heartbeat.go": src} {
		if err := os.WriteFile(filepath.Join(plugin, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sh(plugin, "cp ../sluice/go.sum .")
	sh(plugin, "go mod tidy")
	sh(plugin, "go vet ./...")

	// 3. The binary, built and checked from the plugin's directory.
	sh(plugin, "sluice-build --with example.com/you/sluice-heartbeat=. -o ./sluice")
	out := sh(plugin, "./sluice components heartbeat_source")
	for _, want := range []string{"heartbeat_source", "plugin", "example.com/you/sluice-heartbeat"} {
		if !strings.Contains(out, want) {
			t.Errorf("sluice components heartbeat_source does not say %q:\n%s", want, out)
		}
	}
	config := "heartbeat_source \"app\" {\n  interval = \"10s\"\n}\n\nmetrics_sink \"default\" {\n  inputs = [heartbeat_source.app.metrics]\n}\n"
	if err := os.WriteFile(filepath.Join(plugin, "sluice.hcl"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	sh(plugin, "./sluice validate sluice.hcl")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
