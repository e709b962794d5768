package sluicecmd

import (
	"path/filepath"
	"strings"
	"testing"
)

// sluice test runs every example test file (what `make test` runs through
// this test): exit 0, one "ok" line per file.
func TestTestCommandOnExamples(t *testing.T) {
	files, err := filepath.Glob("../config/examples/*.test.hcl")
	if err != nil || len(files) < 2 {
		t.Fatalf("example tests: %v %v", files, err)
	}
	code, out, errOut := runCLI(append([]string{"test"}, files...)...)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || errOut != "" || len(lines) != len(files) {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, "ok    "+files[i]+"  ") {
			t.Errorf("line %q, want ok for %s", l, files[i])
		}
	}
}

// A failing file exits 1 after the other files ran; a file not named
// *.test.hcl is refused.
func TestTestCommandFailures(t *testing.T) {
	bad := writeTemp(t, "bad.test.hcl", `
config {
  statsd_receiver "app" {}
}
step "one" {
  lines "statsd_receiver.app" { lines = ["a:1|c"] }
  expect "statsd_receiver.app" {
    metrics = "a 2\n"
  }
}
`)
	code, out, errOut := runCLI("test", bad, "../config/examples/quickstart.test.hcl", "../config/examples/quickstart.hcl")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{"FAIL  " + bad, "- a 2\n", "+ a 1\n", "ok    ../config/examples/quickstart.test.hcl"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{"../config/examples/quickstart.hcl  not a test file", "2 of 3 test files failed"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if code, _, _ := runCLI("test"); code != 2 {
		t.Errorf("sluice test without files: exit %d, want 2", code)
	}
}
