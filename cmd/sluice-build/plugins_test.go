package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The plugins in this repository's plugins/ build into a binary through
// sluice-build against this checkout (as CI builds them), are listed as
// plugins with their modules, and their example configs validate.
func TestBuildWithRepositoryPlugins(t *testing.T) {
	root := checkoutForBuild(t)
	plugins := []struct {
		dir, module, component, example string
	}{
		{"httpjson", coreModule + "/plugins/httpjson", "http_json_source", "examples/deliveries.hcl"},
		{"exec", coreModule + "/plugins/exec", "exec_source", "examples/exec.hcl"},
	}
	args := []string{"--with", coreModule + "=" + root}
	for _, p := range plugins {
		args = append(args, "--with", p.module+"="+filepath.Join(root, "plugins", p.dir))
	}
	bin := filepath.Join(t.TempDir(), "sluice-plugins")
	args = append(args, "-o", bin)
	var stdout, stderr bytes.Buffer
	if code := run(buildContext(t), args, buildEnv(), &stdout, &stderr); code != 0 {
		t.Fatalf("sluice-build = %d\n%s%s", code, stdout.String(), stderr.String())
	}

	out, err := exec.Command(bin, "components", "--json").Output()
	if err != nil {
		t.Fatalf("components --json: %v", err)
	}
	var docs []struct{ Name, Kind, Module string }
	if err := json.Unmarshal(out, &docs); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, d := range docs {
		kinds[d.Name] = d.Kind + " " + d.Module
	}
	for _, p := range plugins {
		if want := "plugin " + p.module; kinds[p.component] != want {
			t.Errorf("%s is %q, want %q", p.component, kinds[p.component], want)
		}
		cmd := exec.Command(bin, "validate", filepath.Join(root, "plugins", p.dir, p.example))
		// The httpjson example reads its token with env().
		cmd.Env = append(os.Environ(), "CI_API_TOKEN=test-token")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "valid") {
			t.Errorf("validate %s: %v\n%s", p.example, err, out)
		}
	}
	// A config error in a plugin's block is a diagnostic of the binary.
	bad := filepath.Join(t.TempDir(), "bad.hcl")
	if err := os.WriteFile(bad, []byte(`exec_source "x" { command = ["sh", "-c", "echo"] }`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "validate", bad).CombinedOutput(); err == nil || !strings.Contains(string(out), `"sh" is not a path`) {
		t.Errorf("validate of a bad exec_source: %v\n%s", err, out)
	}
}
