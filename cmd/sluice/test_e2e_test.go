package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The built binary: `sluice test` passes on the examples (exit 0, an ok
// line each) and, on the quickstart's test run against a broken gunicorn
// mapping, exits 1 with the diff, as a CI job would see it.
func TestSluiceTestThroughTheBinary(t *testing.T) {
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	examples, err := filepath.Glob("../../config/examples/*.test.hcl")
	if err != nil || len(examples) < 2 {
		t.Fatalf("example tests: %v %v", examples, err)
	}
	out, err := exec.Command(bin, append([]string{"test"}, examples...)...).CombinedOutput()
	if err != nil || strings.Count(string(out), "ok    ") != len(examples) {
		t.Fatalf("sluice test on the examples: %v, output:\n%s", err, out)
	}

	dir := t.TempDir()
	for _, f := range []string{"quickstart.hcl", "quickstart.test.hcl", "gunicorn-mapping.yml"} {
		b, err := os.ReadFile(filepath.Join("../../config/examples", f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "gunicorn-mapping.yml" {
			b = []byte(strings.Replace(string(b), "name: gunicorn_workers\n", "name: gunicorn_worker_count\n", 1))
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err = exec.Command(bin, "test", filepath.Join(dir, "quickstart.test.hcl")).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 ||
		!strings.Contains(string(out), "- gunicorn_workers 4\n") || !strings.Contains(string(out), "+ gunicorn_worker_count 4\n") {
		t.Fatalf("broken mapping: %v, output:\n%s\nwant exit 1 and the diff", err, out)
	}
}
