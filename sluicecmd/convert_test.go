package sluicecmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConvertStatsdExporterCommand: the printed config passes `sluice
// validate` and `sluice fmt --check`; flags without an equivalent are
// warned about on stderr; an unknown flag exits 1 with an error.
func TestConvertStatsdExporterCommand(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mapping.yml"), []byte("mappings:\n  - match: \"app.*.hits\"\n    name: app_hits_total\n    labels:\n      app: \"$1\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI("convert", "statsd_exporter", "--", "--statsd.mapping-config=mapping.yml",
		"--statsd.listen-tcp=", "--statsd.relay.address=127.0.0.1:1", "--web.listen-address=127.0.0.1:9102")
	if code != 0 {
		t.Fatalf("convert = %d %q", code, errOut)
	}
	if !strings.Contains(errOut, "warning: --statsd.relay.address=127.0.0.1:1 has no equivalent") {
		t.Errorf("stderr lacks the relay warning: %q", errOut)
	}
	p := filepath.Join(dir, "statsd.hcl")
	if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, vout, verr := runCLI("validate", p); code != 0 {
		t.Errorf("validate converted = %d %q %q\n%s", code, vout, verr, out)
	}
	if code, fout, _ := runCLI("fmt", "--check", p); code != 0 {
		t.Errorf("fmt --check converted = %d %q", code, fout)
	}
	if code, _, errOut := runCLI("convert", "statsd_exporter", "--", "--statsd.bogus"); code != 1 || !strings.Contains(errOut, "unknown long flag '--statsd.bogus'") {
		t.Errorf("convert with an unknown flag = %d %q", code, errOut)
	}
}

// TestConvertPostgresExporterCommand: the printed config passes `sluice
// validate` (with the DSN variable set) and `sluice fmt --check`; a
// missing file exits 1.
func TestConvertPostgresExporterCommand(t *testing.T) {
	q := writeTemp(t, "queries.yaml", "app_jobs:\n  query: SELECT queue, count(*) AS pending FROM jobs GROUP BY queue\n  cache_seconds: 30\n  metrics:\n    - queue:\n        usage: LABEL\n    - pending:\n        usage: GAUGE\n        description: Pending jobs.\n    - age:\n        usage: HISTOGRAM\n")
	code, out, errOut := runCLI("convert", "postgres_exporter", "--queries", q, "--collectors", "database,settings", "--dsn-env", "SLUICE_TEST_PG_DSN")
	if code != 0 {
		t.Fatalf("convert = %d %q", code, errOut)
	}
	for _, w := range []string{`warning: collector "settings"`, "warning: app_jobs: age is HISTOGRAM"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr lacks %q: %q", w, errOut)
		}
	}
	p := filepath.Join(t.TempDir(), "postgres.hcl")
	if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLUICE_TEST_PG_DSN", "postgres://sluice@127.0.0.1:5432/app")
	if code, vout, verr := runCLI("validate", p); code != 0 {
		t.Errorf("validate converted = %d %q %q\n%s", code, vout, verr, out)
	}
	if code, fout, _ := runCLI("fmt", "--check", p); code != 0 {
		t.Errorf("fmt --check converted = %d %q", code, fout)
	}
	if !strings.Contains(out, `metric "app_jobs_pending"`) || !strings.Contains(out, `collectors = ["database"]`) {
		t.Errorf("converted config lacks the metric or the collector:\n%s", out)
	}
	if code, _, errOut := runCLI("convert", "postgres_exporter", "--queries", filepath.Join(t.TempDir(), "missing.yaml")); code != 1 || !strings.Contains(errOut, "missing.yaml") {
		t.Errorf("convert of a missing file = %d %q", code, errOut)
	}
}
