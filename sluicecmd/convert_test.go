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
