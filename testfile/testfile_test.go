package testfile

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/sluicehq/sluice/components/all" // the components the examples use
)

// write puts files (name -> content) in a new directory and returns it.
func write(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func run(t *testing.T, path string) (bool, string) {
	t.Helper()
	var out bytes.Buffer
	ok := RunFile(path, &out)
	return ok, out.String()
}

// The repository's examples pass, with one summary line each.
func TestExamplesPass(t *testing.T) {
	files, err := filepath.Glob("../config/examples/*.test.hcl")
	if err != nil || len(files) < 2 {
		t.Fatalf("example tests: %v %v", files, err)
	}
	for _, f := range files {
		ok, out := run(t, f)
		if !ok || !strings.HasPrefix(out, "ok    "+f) || !strings.Contains(out, " steps\n") || strings.Count(out, "\n") != 1 {
			t.Errorf("%s: ok=%v, output:\n%s", f, ok, out)
		}
	}
}

// The quickstart's test, run against a broken gunicorn mapping (requests
// renamed, the status label dropped), fails with a diff of exactly what
// the mapping broke: this fails if sluice test stopped comparing.
func TestBrokenMappingFailsWithDiff(t *testing.T) {
	mapping, err := os.ReadFile("../config/examples/gunicorn-mapping.yml")
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(mapping), "name: gunicorn_requests_total\n", "name: gunicorn_request_total\n", 1)
	broken = strings.Replace(broken, "      status: \"$1\"\n", "      code: \"$1\"\n", 1)
	if broken == string(mapping) {
		t.Fatal("the mapping changed: this test no longer breaks it")
	}
	cfg, err := os.ReadFile("../config/examples/quickstart.hcl")
	if err != nil {
		t.Fatal(err)
	}
	test, err := os.ReadFile("../config/examples/quickstart.test.hcl")
	if err != nil {
		t.Fatal(err)
	}
	dir := write(t, map[string]string{
		"gunicorn-mapping.yml": broken,
		"quickstart.hcl":       string(cfg),
		"quickstart.test.hcl":  string(test),
	})
	ok, out := run(t, filepath.Join(dir, "quickstart.test.hcl"))
	if ok {
		t.Fatalf("passed on a broken mapping:\n%s", out)
	}
	for _, want := range []string{
		"FAIL  " + filepath.Join(dir, "quickstart.test.hcl") + "\n",
		`quickstart.test.hcl:16: step "requests and workers": exposition of metrics_sink.default differs`,
		"- gunicorn_requests_total 2\n",
		"+ gunicorn_request_total 2\n",
		`- gunicorn_responses_total{status="200"} 1`,
		`+ gunicorn_responses_total{code="200"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Unchanged series are not in the diff.
	if strings.Contains(out, "gunicorn_workers") {
		t.Errorf("the diff shows an unchanged series:\n%s", out)
	}
}

// A statsd TTL expires on the fake clock: present after 9 minutes, gone
// after 11 (ttl = "10m"), with an inline config.
func TestStatsdTTLOnFakeClock(t *testing.T) {
	dir := write(t, map[string]string{"ttl.test.hcl": `
config {
  statsd_receiver "app" {
    listen_udp = "127.0.0.1:9125"
    mapping_defaults {
      ttl = "10m"
    }
  }
  metrics_sink "out" {
    inputs = [statsd_receiver.app.metrics]
  }
}

step "fed" {
  lines "statsd_receiver.app" {
    lines = ["jobs:3|g", "hits:1|c"]
  }
  expect "metrics_sink.out" {
    metrics = <<-EOT
      # TYPE jobs gauge
      jobs 3
      # TYPE hits counter
      hits 1
    EOT
  }
}

step "refreshed at 9m" {
  advance = "9m"
  lines "statsd_receiver.app" {
    lines = ["hits:1|c"]
  }
  expect "metrics_sink.out" {
    metrics = "jobs 3\nhits 2\n"
  }
}

step "jobs expired at 11m, hits has 8m left" {
  advance = "2m"
  expect "metrics_sink.out" {
    metrics = "hits 2\n"
  }
}

step "hits expired at 20m" {
  advance = "9m"
  expect "metrics_sink.out" {
    metrics = ""
  }
}
`})
	ok, out := run(t, filepath.Join(dir, "ttl.test.hcl"))
	if !ok || !strings.Contains(out, "4 steps") {
		t.Fatalf("ok=%v:\n%s", ok, out)
	}

	// The same expectation one minute too early fails: the clock drives
	// expiry, not the test's wall time.
	early := write(t, map[string]string{"early.test.hcl": `
config {
  statsd_receiver "app" {
    mapping_defaults {
      ttl = "10m"
    }
  }
}
step "fed" {
  lines "statsd_receiver.app" {
    lines = ["jobs:3|g"]
  }
  expect "statsd_receiver.app" {
    metrics = "jobs 3\n"
  }
}
step "not yet expired" {
  advance = "9m"
  expect "statsd_receiver.app" {
    metrics = ""
  }
}
`})
	ok, out = run(t, filepath.Join(early, "early.test.hcl"))
	if ok || !strings.Contains(out, "+ jobs 3") || !strings.Contains(out, `step "not yet expired"`) {
		t.Fatalf("ok=%v:\n%s", ok, out)
	}
}

// A component asked for something it cannot do under test is named, with
// the missing capability.
func TestCapabilityErrors(t *testing.T) {
	const cfg = `
config {
  statsd_receiver "app" {
  }
  postgres_source "db" {
    dsn = "postgres://u@127.0.0.1:1/db"
    query "q" {
      sql = "select 1 as n"
      metric "m" {
        value = "n"
      }
    }
  }
  remote_write "rw" {
    inputs = [statsd_receiver.app.metrics]
    endpoint {
      url = "http://127.0.0.1:1/push"
    }
  }
  metrics_sink "out" {
    inputs = [statsd_receiver.app.metrics, postgres_source.db.metrics]
  }
}
`
	for _, tc := range []struct{ name, step, want string }{
		{"lines to a sink", `lines "metrics_sink.out" { lines = ["a:1|c"] }`, "metrics_sink.out cannot take lines (it does not implement pipeline.LineTaker)"},
		{"request to statsd", `request "statsd_receiver.app" { path = "/" }`, "statsd_receiver.app cannot take HTTP requests (it does not implement pipeline.RequestTaker)"},
		{"clock with a remote_write", `advance = "1m"`, "remote_write.rw cannot follow the fake clock (it does not implement pipeline.ClockFollower)"},
		{"rows to statsd", `rows "statsd_receiver.app" {
  query   = "q"
  columns = ["n"]
  rows    = [["1"]]
}`, "statsd_receiver.app cannot take query results (it does not implement pipeline.RowsTaker)"},
		{"command output to statsd", `output "statsd_receiver.app" { stdout = "" }`, "statsd_receiver.app cannot take command output (it does not implement pipeline.CommandOutputTaker)"},
		{"a response to postgres", `response "postgres_source.db" { body = "{}" }`, "postgres_source.db cannot take HTTP responses (it does not implement pipeline.ResponseTaker)"},
		{"rows of an unknown query", `rows "postgres_source.db" {
  query   = "nope"
  columns = ["n"]
  rows    = [["1"]]
}`, `postgres_source.db: no query "nope" (the queries are [q])`},
		{"rows without the value column", `rows "postgres_source.db" {
  query   = "q"
  columns = ["x"]
  rows    = [["1"]]
}`, `value column "n" is not in the result`},
		{"unknown component", `lines "statsd_receiver.nope" { lines = ["a:1|c"] }`, "no component statsd_receiver.nope in the config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := write(t, map[string]string{"c.test.hcl": cfg + "step \"s\" {\n" + tc.step + "\n}\n"})
			ok, out := run(t, filepath.Join(dir, "c.test.hcl"))
			if ok || !strings.Contains(out, tc.want) || !strings.Contains(out, `c.test.hcl:`) {
				t.Fatalf("ok=%v, want %q in:\n%s", ok, tc.want, out)
			}
		})
	}
}

// Malformed test files fail with HCL diagnostics at file:line.
func TestMalformedFiles(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"syntax", "config = \"x.hcl\"\nstep \"a\" {\n", "b.test.hcl:2"},
		{"no config", "step \"a\" {\n}\n", "No config under test"},
		{"no steps", "config = \"x.hcl\"\n", "No steps"},
		{"unknown attribute", "config = \"x.hcl\"\nconfg = 1\nstep \"a\" {}\n", `b.test.hcl:2,1-6: Unsupported argument; An argument named "confg"`},
		{"unknown block", "config = \"x.hcl\"\n\nstepp \"a\" {}\n", `b.test.hcl:3,1-10: Unsupported block type`},
		{"step without name", "config = \"x.hcl\"\nstep {}\n", "b.test.hcl:2,1-5: Missing step name"},
		{"bad advance", "config = \"x.hcl\"\nstep \"a\" {\n  advance = \"soon\"\n}\n", `b.test.hcl:3,13-19: Invalid advance; "soon" is not a duration`},
		{"input without id", "config = \"x.hcl\"\nstep \"a\" {\n  lines \"app\" { lines = [] }\n}\n", "b.test.hcl:3,3-14: Missing component ID"},
		{"lines not a list", "config = \"x.hcl\"\nstep \"a\" {\n  lines \"s.a\" { lines = 3 }\n}\n", "b.test.hcl:3"},
		{"bad match", "config = \"x.hcl\"\nstep \"a\" {\n  expect \"s.a\" {\n    match = \"some\"\n    metrics = \"\"\n  }\n}\n", `b.test.hcl:4,13-19: Invalid match`},
		{"bad exposition", "config = \"x.hcl\"\nstep \"a\" {\n  expect \"s.a\" {\n    metrics = \"a b c d\"\n  }\n}\n", `b.test.hcl:4,15-24: Invalid expected exposition`},
		{"bad path", "config = \"x.hcl\"\nstep \"a\" {\n  request \"s.a\" { path = \"api\" }\n}\n", `b.test.hcl:3,26-31: Invalid path`},
		{"rows of another length", "config = \"x.hcl\"\nstep \"a\" {\n  rows \"s.a\" {\n    query = \"q\"\n    columns = [\"a\", \"b\"]\n    rows = [[\"1\"]]\n  }\n}\n", `b.test.hcl:6,12-19: Row length differs from columns`},
		{"bad exit code", "config = \"x.hcl\"\nstep \"a\" {\n  output \"s.a\" {\n    stdout = \"\"\n    exit_code = 300\n  }\n}\n", `b.test.hcl:5,17-20: Invalid exit code`},
		{"bad response status", "config = \"x.hcl\"\nstep \"a\" {\n  response \"s.a\" {\n    body = \"\"\n    status = 1000\n  }\n}\n", `b.test.hcl:5,14-18: Invalid status`},
		{"bad status", "config = \"x.hcl\"\nstep \"a\" {\n  request \"s.a\" {\n    path = \"/\"\n    status = 42\n  }\n}\n", `b.test.hcl:5,14-16: Invalid status`},
		{"config twice", "config = \"x.hcl\"\nconfig {\n}\nstep \"a\" {}\n", "b.test.hcl:2,1-7: Config given twice"},
		{"missing config file", "config = \"nope.hcl\"\nstep \"a\" {}\n", "config under test: "},
		{"inline config error", "config {\n  statsd_receiver \"a\" {\n    bogus = 1\n  }\n}\nstep \"a\" {}\n", `b.test.hcl:3:5: error: Unsupported argument`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := write(t, map[string]string{"b.test.hcl": tc.src})
			ok, out := run(t, filepath.Join(dir, "b.test.hcl"))
			if ok || !strings.HasPrefix(out, "FAIL  ") || !strings.Contains(out, tc.want) {
				t.Fatalf("ok=%v, want %q in:\n%s", ok, tc.want, out)
			}
		})
	}
}

// A request that gets the wrong status fails with the response quoted.
func TestRequestStatusChecked(t *testing.T) {
	dir := write(t, map[string]string{"r.test.hcl": `
config {
  webhook_receiver "w" {
    listen = ":2112"
    auth {
      tokens = ["t"]
    }
    metric "m" {
      type = "counter"
    }
  }
}
step "no token" {
  request "webhook_receiver.w" {
    path = "/api/m/inc"
  }
}
`})
	ok, out := run(t, filepath.Join(dir, "r.test.hcl"))
	if ok || !strings.Contains(out, "POST /api/m/inc to webhook_receiver.w answered 401, want a 2xx status") || !strings.Contains(out, "response: ") {
		t.Fatalf("ok=%v:\n%s", ok, out)
	}
}

// Nothing binds: the config's addresses are held by this test, and the
// test file still runs (a bind would fail with "address in use").
func TestBindsNothing(t *testing.T) {
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	tcp2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp2.Close()
	tcp3, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp3.Close()
	dir := write(t, map[string]string{"n.test.hcl": fmt.Sprintf(`
config {
  statsd_receiver "app" {
    listen_udp = %q
    listen_tcp = %q
  }
  webhook_receiver "w" {
    listen           = %q
    insecure_no_auth = true
    metric "m" {
      type = "counter"
    }
  }
  metrics_sink "out" {
    inputs = [statsd_receiver.app.metrics, webhook_receiver.w.metrics]
    listen = %q
  }
}
step "s" {
  lines "statsd_receiver.app" {
    lines = ["a:1|c"]
  }
  request "webhook_receiver.w" {
    path = "/api/m/inc"
  }
  expect "metrics_sink.out" {
    metrics = "a 1\nm 1\n"
  }
}
`, udp.LocalAddr(), tcp.Addr(), tcp2.Addr(), tcp3.Addr())})
	ok, out := run(t, filepath.Join(dir, "n.test.hcl"))
	if !ok {
		t.Fatalf("failed:\n%s", out)
	}
}

// The cache refreshes on the fake clock every refresh_interval (the first
// refresh is at the start, before any input) and keeps a series its input
// dropped (a statsd TTL) for max_staleness.
func TestCacheOnFakeClock(t *testing.T) {
	dir := write(t, map[string]string{"cache.test.hcl": `
config {
  statsd_receiver "app" {
    mapping_defaults {
      ttl = "50s"
    }
  }
  cache "c" {
    input            = statsd_receiver.app.metrics
    refresh_interval = "15s"
    max_staleness    = "1m"
  }
}
step "fed, not refreshed yet" {
  lines "statsd_receiver.app" {
    lines = ["b:1|g"]
  }
  expect "cache.c" {
    metrics = ""
  }
}
step "refreshed at 15s" {
  advance = "15s"
  expect "cache.c" {
    metrics = "b 1\n"
  }
}
step "updated at 20s, served from the 15s refresh" {
  advance = "5s"
  lines "statsd_receiver.app" {
    lines = ["c:2|g"]
  }
  expect "cache.c" {
    metrics = "b 1\n"
  }
}
step "refreshed at 30s" {
  advance = "10s"
  expect "cache.c" {
    metrics = "b 1\nc 2\n"
  }
}
step "b expired in statsd at 60s, kept by the cache" {
  advance = "30s"
  expect "statsd_receiver.app" {
    metrics = "c 2\n"
  }
  expect "cache.c" {
    metrics = "b 1\nc 2\n"
  }
}
step "at 105s b was last seen 75s ago (at 30s): gone; c 45s ago (at 60s): kept" {
  advance = "45s"
  expect "statsd_receiver.app" {
    metrics = ""
  }
  expect "cache.c" {
    metrics = "c 2\n"
  }
}
`})
	ok, out := run(t, filepath.Join(dir, "cache.test.hcl"))
	if !ok || !strings.Contains(out, "6 steps") {
		t.Fatalf("ok=%v:\n%s", ok, out)
	}
}

// A postgres_source takes a query's rows: values and labels as PostgreSQL
// would send them in text, NULL skipping that sample (as from a real
// server), pg_up 1; a later result replaces the earlier one.
func TestPostgresRows(t *testing.T) {
	dir := write(t, map[string]string{"pg.test.hcl": `
config {
  postgres_source "db" {
    dsn = "postgres://u@127.0.0.1:1/db"
    query "sizes" {
      sql = "SELECT datname, pg_database_size(datname) AS bytes FROM pg_database"
      metric "pg_database_size_bytes" {
        value  = "bytes"
        labels = ["datname"]
      }
    }
  }
}
step "two databases, one NULL" {
  rows "postgres_source.db" {
    query   = "sizes"
    columns = ["datname", "bytes"]
    rows    = [["app", "8192"], ["big", "1.5e9"], ["gone", null]]
  }
  expect "postgres_source.db" {
    metrics = <<-EOT
      # TYPE pg_database_size_bytes gauge
      pg_database_size_bytes{datname="app"} 8192
      pg_database_size_bytes{datname="big"} 1.5e+09
      pg_up 1
    EOT
  }
}
step "the next result replaces it" {
  advance = "1m"
  rows "postgres_source.db" {
    query   = "sizes"
    columns = ["datname", "bytes"]
    rows    = [["app", "9000"]]
  }
  expect "postgres_source.db" {
    metrics = "pg_database_size_bytes{datname=\"app\"} 9000\npg_up 1\n"
  }
}
step "a value that is not a number fails the step" {
  rows "postgres_source.db" {
    query   = "sizes"
    columns = ["datname", "bytes"]
    rows    = [["app", "lots"]]
  }
}
`})
	ok, out := run(t, filepath.Join(dir, "pg.test.hcl"))
	if ok || !strings.Contains(out, `step "a value that is not a number fails the step": postgres_source.db: query "sizes": metric pg_database_size_bytes: row 1: value column "bytes"`) {
		t.Fatalf("ok=%v:\n%s", ok, out)
	}
	if strings.Contains(out, `step "two databases`) || strings.Contains(out, `step "the next result`) {
		t.Fatalf("an earlier step failed:\n%s", out)
	}
}
