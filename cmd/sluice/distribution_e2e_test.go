package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// The sluice binary is the full distribution: every standard component,
// and it says so.
func TestFullDistribution(t *testing.T) {
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "components").CombinedOutput()
	if err != nil {
		t.Fatalf("sluice components: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`^Distribution full: \d+ components\.\n`).Match(out) {
		t.Errorf("sluice components:\n%s", out)
	}
	for _, c := range []string{"kubernetes_status_source", "postgres_source", "remote_write", "statsd_receiver"} {
		if !strings.Contains(string(out), "\n"+c+" ") {
			t.Errorf("sluice components lacks %s:\n%s", c, out)
		}
	}
}
