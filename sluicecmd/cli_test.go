package sluicecmd

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	_ "github.com/sluicehq/sluice/components/all" // the tests run the CLI of cmd/sluice
	"github.com/sluicehq/sluice/runtime"
)

// validConfig is a small config that validates.
const validConfig = `
relabel "self" {
  input = agent.metrics
  rule {
    action        = "keep"
    source_labels = ["__name__"]
    regex         = "sluice_build_info"
  }
}

metrics_sink "e2e" {
  inputs = [relabel.self.metrics]
  path   = "/metrics/e2e"
}
`

func runCLI(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := Run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidateCommand(t *testing.T) {
	good := writeTemp(t, "good.hcl", validConfig)
	if code, out, errOut := runCLI("validate", good); code != 0 || !strings.Contains(out, "valid") {
		t.Errorf("validate good = %d %q %q", code, out, errOut)
	}
	bad := writeTemp(t, "bad.hcl", "relabel \"r\" {\n  input = agent.metrics\n  rule {\n    action = \"explode\"\n  }\n}\n")
	code, _, errOut := runCLI("validate", bad)
	if code != 1 || !strings.Contains(errOut, "bad.hcl:") || !strings.Contains(errOut, "explode") {
		t.Errorf("validate bad = %d %q", code, errOut)
	}
	// A relative config path: files the config names (mapping files)
	// resolve against the config's directory, not the working directory.
	for _, ex := range []string{"quickstart.hcl", "gunicorn-sidecar.hcl"} {
		rel := filepath.Join("..", "config", "examples", ex)
		if code, out, errOut := runCLI("validate", rel); code != 0 {
			t.Errorf("validate %s = %d %q %q", rel, code, out, errOut)
		}
	}
	if code, _, _ := runCLI("validate", filepath.Join(t.TempDir(), "missing.hcl")); code != 1 {
		t.Errorf("validate of a missing file = %d, want 1", code)
	}
}

func TestFmtCommand(t *testing.T) {
	ugly := "metrics_sink \"a\" {\ninputs=[agent.metrics]\n    path =    \"/metrics/a\"\n}\n"
	want := "metrics_sink \"a\" {\n  inputs = [agent.metrics]\n  path   = \"/metrics/a\"\n}\n"
	p := writeTemp(t, "a.hcl", ugly)
	if code, out, _ := runCLI("fmt", "--check", p); code != 1 || !strings.Contains(out, p) {
		t.Errorf("fmt --check on an unformatted file = %d %q", code, out)
	}
	if code, out, _ := runCLI("fmt", p); code != 0 || out != want {
		t.Errorf("fmt to stdout = %d %q, want %q", code, out, want)
	}
	if code, _, _ := runCLI("fmt", "-w", p); code != 0 {
		t.Errorf("fmt -w = %d", code)
	}
	if b, _ := os.ReadFile(p); string(b) != want {
		t.Errorf("after fmt -w: %q", b)
	}
	if code, out, _ := runCLI("fmt", "--check", p); code != 0 || out != "" {
		t.Errorf("fmt --check on a formatted file = %d %q", code, out)
	}
	broken := writeTemp(t, "b.hcl", "metrics_sink \"a\" {\n")
	if code, _, errOut := runCLI("fmt", "-w", broken); code != 1 || !strings.Contains(errOut, "b.hcl") {
		t.Errorf("fmt of a syntax error = %d %q", code, errOut)
	}
}

func TestComponentsCommand(t *testing.T) {
	code, out, _ := runCLI("components", "--json")
	if code != 0 {
		t.Fatalf("components --json = %d", code)
	}
	var docs []runtime.ComponentDoc
	if err := json.Unmarshal([]byte(out), &docs); err != nil {
		t.Fatal(err)
	}
	byName := map[string]runtime.ComponentDoc{}
	for _, d := range docs {
		byName[d.Name] = d
	}
	for _, name := range []string{"metrics_sink", "relabel"} {
		d, ok := byName[name]
		if !ok {
			t.Errorf("components lacks %s", name)
			continue
		}
		if d.Kind != "standard" || d.Module != "github.com/sluicehq/sluice" || len(d.Args) == 0 || len(d.Exports) == 0 && name != "metrics_sink" {
			t.Errorf("%s doc = %+v", name, d)
		}
	}
	code, out, _ = runCLI("components", "relabel")
	if code != 0 || !regexp.MustCompile(`(?m)^  input +metrics +required`).MatchString(out) || !strings.Contains(out, "Example:") {
		t.Errorf("components relabel = %d:\n%s", code, out)
	}
	if code, _, errOut := runCLI("components", "nope"); code != 1 || !strings.Contains(errOut, "nope") {
		t.Errorf("components nope = %d %q", code, errOut)
	}
}

func TestVersionCommand(t *testing.T) {
	if code, out, _ := runCLI("version"); code != 0 || !strings.Contains(out, "sluice, version") || !strings.Contains(out, "go version") {
		t.Errorf("version = %d %q", code, out)
	}
}

func TestUnknownCommand(t *testing.T) {
	if code, _, errOut := runCLI("rnu"); code != 2 || !strings.Contains(errOut, "rnu") {
		t.Errorf("unknown command = %d %q", code, errOut)
	}
}

// docs/components.md is generated; it must match the binary's components.
func TestComponentsReferenceIsCurrent(t *testing.T) {
	code, out, _ := runCLI("components", "--markdown")
	if code != 0 {
		t.Fatalf("components --markdown = %d", code)
	}
	path := filepath.Join("..", "docs", "components.md")
	if os.Getenv("SLUICE_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != out {
		t.Errorf("%s is out of date: run `make docs`", path)
	}
}

// A secret attribute (postgres_source's dsn) never reaches the output, not
// even as the source line of a diagnostic that points at it.
func TestValidateNeverPrintsSecrets(t *testing.T) {
	cfg := writeTemp(t, "leak.hcl", `postgres_source "db" {
  dsn = "postgres://app:Hunter2Secret@db/shop?sslmode=bogus"
  query "q" {
    sql = "SELECT 1 AS n"
    metric "x" {
      value = "n"
    }
  }
}
`)
	code, out, errOut := runCLI("validate", cfg)
	if code != 1 {
		t.Fatalf("validate = %d, want 1 (bad sslmode)\n%s", code, errOut)
	}
	if !strings.Contains(errOut, "leak.hcl:2:") {
		t.Errorf("the diagnostic lacks its position:\n%s", errOut)
	}
	if strings.Contains(out+errOut, "Hunter2Secret") {
		t.Errorf("the password was printed:\n%s", errOut)
	}
}

// Two sinks on one agent path are refused at load time, default paths
// included, instead of one of them failing at run time.
func TestValidateRefusesHTTPPathClash(t *testing.T) {
	cfg := writeTemp(t, "clash.hcl", `metrics_sink "a" {
  inputs = [agent.metrics]
  path   = "/metrics/b"
}

metrics_sink "b" {
  inputs = [agent.metrics]
}
`)
	code, _, errOut := runCLI("validate", cfg)
	if code != 1 || !strings.Contains(errOut, "clash.hcl:6:1: error: HTTP path used twice") || !strings.Contains(errOut, "metrics_sink.a") {
		t.Errorf("validate = %d:\n%s", code, errOut)
	}
}

// The distribution a binary's main names is what sluice components and
// sluice version show; Run (and Main) name it custom.
func TestDistributionIsShown(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := RunDistribution("lite", []string{"components"}, &out, &errOut); code != 0 ||
		!regexp.MustCompile(`^Distribution lite: \d+ components\.\n\nNAME`).MatchString(out.String()) {
		t.Errorf("components in the lite distribution = %d:\n%s%s", code, out.String(), errOut.String())
	}
	out.Reset()
	if code := RunDistribution("lite", []string{"version"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "\n  distribution:     lite\n") {
		t.Errorf("version in the lite distribution = %d:\n%s", code, out.String())
	}
	if code, out, _ := runCLI("components"); code != 0 || !strings.HasPrefix(out, "Distribution custom: ") {
		t.Errorf("components through Run = %d:\n%s", code, out)
	}
}
