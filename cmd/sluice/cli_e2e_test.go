package main

import (
	"strings"
	"testing"
)

// Issue 19 item 17: help is an answer, not a usage error. "sluice run
// --help" used to print the help, then "required argument 'config' not
// provided", and exit 2.
func TestHelpExitsZero(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // a line of the help that must be printed
	}{
		{[]string{"--help"}, "usage: sluice"},
		{[]string{"-h"}, "usage: sluice"},
		{[]string{"help"}, "usage: sluice"},
		{[]string{"run", "--help"}, "--server.http.listen-addr"},
		{[]string{"help", "run"}, "--server.http.listen-addr"},
		{[]string{"validate", "--help"}, "usage: sluice validate"},
		{[]string{"fmt", "--help"}, "usage: sluice fmt"},
		{[]string{"components", "--help"}, "usage: sluice components"},
		{[]string{"version", "--help"}, "usage: sluice version"},
		{[]string{"convert", "--help"}, "usage: sluice convert"},
		// A required flag, missing: still help, not a usage error.
		{[]string{"convert", "postgres_exporter", "--help"}, "usage: sluice convert postgres_exporter"},
		{[]string{"help", "convert", "statsd_exporter"}, "usage: sluice convert statsd_exporter"},
	} {
		code, out := runBinary(t, tc.args...)
		if code != 0 {
			t.Errorf("sluice %s: exit %d, want 0\n%s", strings.Join(tc.args, " "), code, out)
		}
		if !strings.Contains(out, tc.want) {
			t.Errorf("sluice %s: output lacks %q:\n%s", strings.Join(tc.args, " "), tc.want, out)
		}
		if strings.Contains(out, "sluice: ") {
			t.Errorf("sluice %s: help followed by an error:\n%s", strings.Join(tc.args, " "), out)
		}
	}
	// A real usage error still exits 2.
	if code, out := runBinary(t, "run"); code != 2 || !strings.Contains(out, "required argument 'config'") {
		t.Errorf("sluice run without a config: exit %d, want 2 and the missing argument named:\n%s", code, out)
	}
}

// Issue 19 item 15: env() failing in a secret attribute names the
// variable; the line's value stays redacted.
func TestValidateNamesUnsetEnvInSecret(t *testing.T) {
	cfg := writeTemp(t, "db.hcl", `postgres_source "db" {
  dsn = env("SLUICE_E2E_UNSET_DSN")
  query "q" {
    sql = "SELECT 1 AS one"
    metric "m" { value = "one" }
  }
}
`)
	code, out := runBinary(t, "validate", cfg)
	if code != 1 || !strings.Contains(out, `environment variable "SLUICE_E2E_UNSET_DSN" is not set`) {
		t.Errorf("validate = %d, want 1 and the variable named:\n%s", code, out)
	}
	if strings.Contains(out, `"<redacted>" is not set`) {
		t.Errorf("the variable's name is redacted:\n%s", out)
	}
}
