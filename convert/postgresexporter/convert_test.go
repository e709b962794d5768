package postgresexporter

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclwrite"

	_ "github.com/sluicehq/sluice/components/all" // validation needs the real components
	"github.com/sluicehq/sluice/runtime"
)

// checkValid checks that res validates as `sluice validate` does (with
// the DSN variable set) and is in canonical format (`sluice fmt --check`).
func checkValid(t *testing.T, res Result, dsnEnv string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "postgres.hcl")
	lookup := func(name string) (string, bool) {
		if name == dsnEnv {
			return "postgres://sluice@127.0.0.1:5432/app?sslmode=disable", true
		}
		return "", false
	}
	if err := runtime.ValidateWith(path, res.HCL, runtime.ValidateOptions{LookupEnv: lookup}); err != nil {
		t.Fatalf("converted config does not validate: %v\n%s", err, res.HCL)
	}
	if !bytes.Equal(hclwrite.Format(res.HCL), res.HCL) {
		t.Fatalf("converted config is not in canonical format:\n%s", res.HCL)
	}
}

func squeeze(hcl []byte) string {
	return regexp.MustCompile(` +=`).ReplaceAllString(string(hcl), " =")
}

// TestConvertUpstreamQueries converts postgres_exporter v0.11.1's own
// example queries file (testdata, with its license) with two collectors.
func TestConvertUpstreamQueries(t *testing.T) {
	src, err := os.ReadFile("testdata/postgres_exporter-v0.11.1/queries.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Convert(Options{Queries: src, QueriesPath: "queries.yaml", Collectors: []string{"database,bgwriter"}})
	if err != nil {
		t.Fatal(err)
	}
	checkValid(t, res, "DATA_SOURCE_NAME")
	got := squeeze(res.HCL)
	for _, w := range []string{
		`dsn = env("DATA_SOURCE_NAME")`,
		`collectors = ["database", "bgwriter"]`,
		`query "pg_stat_user_tables" {`,
		`metric "pg_stat_user_tables_seq_scan" {`,
		`type = "counter"`,
		`labels = ["datname", "schemaname", "relname"]`,
		`metric "pg_stat_user_tables_n_live_tup" {`,
		`metric "pg_postmaster_start_time_seconds" {`,
		`metric "pg_replication_lag" {`,   // no replication collector: the query's own
		`metric "pg_database_size_bytes"`, // pg_database in the file: also the database collector's
	} {
		if w == `metric "pg_database_size_bytes"` {
			if strings.Contains(got, w) {
				t.Errorf("pg_database_size_bytes is produced by the database collector and must be left out of the queries")
			}
			continue
		}
		if !strings.Contains(got, w) {
			t.Errorf("converted config lacks %q", w)
		}
	}
	// pg_process_idle is a HISTOGRAM: not expressible, a warning and a comment.
	var histogram bool
	for _, w := range res.Warnings {
		if strings.Contains(w, "pg_process_idle: seconds is HISTOGRAM") {
			histogram = true
		}
	}
	if !histogram || !strings.Contains(got, "# NOT CONVERTED: pg_process_idle: seconds is HISTOGRAM") {
		t.Errorf("no warning/comment for pg_process_idle's HISTOGRAM: %q", res.Warnings)
	}
}

const ownQueries = `
app_orders:
  query: |
    SELECT status, region, count(*) AS orders, sum(total) AS revenue,
           '5s' AS wait, 'up' AS state, 1 AS ignored
    FROM orders GROUP BY status, region
  cache_seconds: 60
  master: true
  metrics:
    - status:
        usage: "LABEL"
        description: "Order status"
    - region:
        usage: "LABEL"
    - orders:
        usage: "GAUGE"
        description: "Orders by status and region"
    - revenue:
        usage: "COUNTER"
        description: "Revenue so far"
    - wait:
        usage: "DURATION"
    - state:
        usage: "MAPPEDMETRIC"
        metric_mapping:
          up: 1
    - ignored:
        usage: "DISCARD"
    - typo:
        usage: "GAGUE"
app_version:
  query: "SELECT 1 AS build"
  runonserver: ">=12.0.0"
  metrics:
    - build:
        usage: "GAUGE"
`

func TestConvertUsages(t *testing.T) {
	res, err := Convert(Options{Queries: []byte(ownQueries), QueriesPath: "q.yaml", DSNEnv: "PG_DSN", ListenAddress: "127.0.0.1:9187",
		Collectors: []string{"pg_stat_database", "stat_archiver"}})
	if err != nil {
		t.Fatal(err)
	}
	checkValid(t, res, "PG_DSN")
	got := squeeze(res.HCL)
	for _, w := range []string{
		`dsn = env("PG_DSN")`,
		`collectors = ["stat_database"]`,
		`interval = "60s"`,
		`metric "app_orders_orders" {`, `type = "gauge"`, `help = "Orders by status and region"`,
		`metric "app_orders_revenue" {`, `type = "counter"`,
		`labels = ["status", "region"]`,
		`listen = "127.0.0.1:9187"`,
		"# master: true",
		`metric "app_version_build" {`,
		`# NOT CONVERTED: runonserver ">=12.0.0"`,
	} {
		if !strings.Contains(got, w) {
			t.Errorf("converted config lacks %q:\n%s", w, res.HCL)
		}
	}
	for _, notWant := range []string{"app_orders_wait", "app_orders_state", "app_orders_ignored", "app_orders_typo", `metric "app_orders_status"`} {
		if regexp.MustCompile(`(?m)^\s*metric "` + notWant).MatchString(got) {
			t.Errorf("converted config has metric %s", notWant)
		}
	}
	wantWarnings := []string{`collector "stat_archiver"`, "wait is DURATION", "state is MAPPEDMETRIC", `typo has usage "GAGUE"`, `runonserver ">=12.0.0"`}
	if len(res.Warnings) != len(wantWarnings) {
		t.Errorf("warnings = %q, want %d", res.Warnings, len(wantWarnings))
	}
	for _, w := range wantWarnings {
		found := false
		for _, have := range res.Warnings {
			found = found || strings.Contains(have, w)
		}
		if !found {
			t.Errorf("no warning containing %q in %q", w, res.Warnings)
		}
	}
}

func TestConvertBadInput(t *testing.T) {
	for name, src := range map[string]string{
		"not yaml":        "app: [",
		"list at top":     "- a\n- b\n",
		"bad label":       "app:\n  query: SELECT 1\n  metrics:\n    - 'bad-label':\n        usage: LABEL\n",
		"column twice":    "app:\n  query: SELECT 1 AS a\n  metrics:\n    - a:\n        usage: GAUGE\n    - a:\n        usage: COUNTER\n",
		"options no map":  "app:\n  query: SELECT 1 AS a\n  metrics:\n    - a: [1, 2]\n",
		"metrics no list": "app:\n  query: SELECT 1 AS a\n  metrics: 3\n",
	} {
		if res, err := Convert(Options{Queries: []byte(src), QueriesPath: "q.yaml"}); err == nil {
			t.Errorf("%s: no error; HCL:\n%s", name, res.HCL)
		}
	}
	if _, err := Convert(Options{Queries: []byte("{}"), DSNEnv: "BAD NAME"}); err == nil {
		t.Error("an invalid --dsn-env was accepted")
	}
	if _, err := Convert(Options{Queries: bytes.Repeat([]byte("#"), maxQueriesFile+1)}); err == nil {
		t.Error("an oversized file was accepted")
	}
}

// TestConvertSQLStaysLiteral: SQL with HCL template sequences and a line
// equal to the heredoc delimiter comes back unchanged.
func TestConvertSQLStaysLiteral(t *testing.T) {
	src := "app:\n  query: |\n    SELECT '${x}' AS a, '%{y}' AS b,\n    1 AS v\n    -- SQL\n  metrics:\n    - v:\n        usage: GAUGE\n"
	res, err := Convert(Options{Queries: []byte(src), QueriesPath: "q.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	checkValid(t, res, "DATA_SOURCE_NAME")
	f, diags := hclparse.NewParser().ParseHCL(res.HCL, "x.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	_ = f
	if !strings.Contains(string(res.HCL), "$${x}") || !strings.Contains(string(res.HCL), "%%{y}") {
		t.Errorf("template sequences not escaped:\n%s", res.HCL)
	}
}

// FuzzConvert: any queries file converts to HCL that parses and is in
// canonical format, or is refused with an error.
func FuzzConvert(f *testing.F) {
	f.Add([]byte(ownQueries))
	f.Add([]byte("a:\n  query: \"x\\n}\\nevil {\"\n  metrics:\n    - v:\n        usage: GAUGE\n        description: \"a\\nb\"\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		if len(src) > 1<<16 {
			return
		}
		res, err := Convert(Options{Queries: src, QueriesPath: "q.yaml"})
		if err != nil {
			return
		}
		if _, diags := hclparse.NewParser().ParseHCL(res.HCL, "x.hcl"); diags.HasErrors() {
			t.Fatalf("converted HCL does not parse: %v\n%s", diags, res.HCL)
		}
		if !bytes.Equal(hclwrite.Format(res.HCL), res.HCL) {
			t.Fatalf("not canonical:\n%s", res.HCL)
		}
	})
}
