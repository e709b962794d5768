package testfile

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// FuzzParse: any test file parses or fails with diagnostics, never
// panics, within bounded time and memory; what parses is usable (steps,
// known match modes, expositions that parse again).
func FuzzParse(f *testing.F) {
	for _, p := range []string{"../config/examples/quickstart.test.hcl", "../config/examples/delivery-metrics.test.hcl"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("config {\n  statsd_receiver \"a\" {}\n}\nstep \"s\" {\n  advance = \"1m\"\n  lines \"statsd_receiver.a\" { lines = [\"a:1|c\"] }\n  expect \"statsd_receiver.a\" { metrics = \"a 1\\n\" }\n}\n"))
	f.Add([]byte("config = \"x.hcl\"\nenv = { A = \"b\" }\nstep \"r\" {\n  request \"w.x\" {\n    method = \"PUT\"\n    path = \"/api\"\n    headers = { A = \"b\" }\n    body = <<-EOT\n      {}\n    EOT\n    status = 204\n  }\n}\n"))
	f.Add([]byte("config = \"x.hcl\"\nstep \"f\" {\n  rows \"postgres_source.db\" {\n    query = \"q\"\n    database = \"d\"\n    columns = [\"a\", \"n\"]\n    rows = [[\"x\", \"1\"], [\"y\", null]]\n  }\n  output \"exec_source.e\" {\n    stdout = \"m 1\\n\"\n    exit_code = 1\n  }\n  response \"http_json_source.h\" {\n    status = 503\n    body = \"{}\"\n  }\n  expect \"metrics_sink.s\" {\n    match = \"listed\"\n    metrics = \"# TYPE m histogram\\nm_bucket{le=\\\"1\\\"} 1\\nm_bucket{le=\\\"+Inf\\\"} 1\\nm_sum 1\\nm_count 1\\n\"\n  }\n}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		if len(src) > 1<<16 {
			return
		}
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		s, diags := Parse(filepath.Join("dir", "f.test.hcl"), src)
		if el := time.Since(start); el > 2*time.Second {
			t.Fatalf("Parse took %v on %d bytes", el, len(src))
		}
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
			t.Fatalf("Parse allocated %d bytes on %d bytes of input", grew, len(src))
		}
		if diags.HasErrors() {
			if s != nil {
				t.Fatal("a suite returned with errors")
			}
			for _, d := range diags {
				if d.Subject == nil {
					t.Fatalf("diagnostic without a position: %v", d)
				}
			}
			return
		}
		if len(s.Steps) == 0 || (s.ConfigFile == "" && s.InlineConfig == nil) {
			t.Fatalf("a suite without steps or config parsed: %+v", s)
		}
		if s.InlineConfig != nil && len(s.InlineConfig) != len(src) {
			t.Fatal("the inline config does not keep the file's positions")
		}
		for _, st := range s.Steps {
			for _, e := range st.Expects {
				if e.Match != MatchExact && e.Match != MatchListed {
					t.Fatalf("match %q accepted", e.Match)
				}
				if _, err := parseExposition(e.Metrics); err != nil {
					t.Fatalf("an accepted exposition does not parse: %v", err)
				}
			}
		}
	})
}
