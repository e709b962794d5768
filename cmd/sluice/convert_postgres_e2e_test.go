package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/internal/testing/pgtest"
)

// knownPostgresDifferences are the differences between Debian's
// prometheus-postgres-exporter (0.11.1) and the converted Sluice on
// testdata/pgdiff, each with its reason; docs/migration.md lists them.
// (Every series of the exporter also has a server="host:port" label,
// which the comparison removes: see docs/migration.md.)
var knownPostgresDifferences = map[string]string{
	// A NULL value: postgres_exporter exports NaN, postgres_source skips
	// the sample (and counts it in sluice_postgres_null_values_total).
	`- shop_orders_min_discount{region="",status="new"} gauge NaN`: "NULL value",
	// A timestamp with a fraction of a second: postgres_exporter exports
	// whole Unix seconds (time.Unix()), postgres_source keeps the fraction.
	`~ shop_orders_last_order_timestamp{region="",status="new"} gauge 1.7724528e+09 (Sluice: 1.7724528007500002e+09)`: "sub-second timestamp",
	// Columns the file does not list: postgres_exporter exports them
	// untyped; the converted config has only the listed metrics.
	`- shop_orders_not_listed{region="",status="new"} untyped 2`:    "unlisted column",
	`- shop_orders_not_listed{region="eu",status="paid"} untyped 4`: "unlisted column",
	`- shop_orders_not_listed{region="us",status="paid"} untyped 2`: "unlisted column",
	`- shop_orders_not_listed{region="eu",status="new"} untyped 2`:  "unlisted column",
}

// TestConvertedPostgresExporterMatchesReal is the differential test of
// `sluice convert postgres_exporter`: Debian's prometheus-postgres-exporter
// with --extend.query-path and the database collector, and Sluice running
// the converted config, against the same real PostgreSQL; the exposed
// series of the queries file and of the collector must be the same (names,
// label sets, types, values) but for the known differences.
func TestConvertedPostgresExporterMatchesReal(t *testing.T) {
	exporterBin, err := exec.LookPath("prometheus-postgres-exporter")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prometheus-postgres-exporter is not installed (scripts/ensure-deps.sh installs it)")
		}
		t.Skip("prometheus-postgres-exporter is not installed; run scripts/ensure-deps.sh")
	}
	pg := pgtest.Start(t, pgtest.Options{})
	pg.MustExec(t, "postgres", `
CREATE TABLE shop_orders (status text NOT NULL, region text, total numeric(10,2), placed_at timestamptz, express bool, discount float8);
INSERT INTO shop_orders VALUES
  ('paid', 'eu', 19.99, '2026-01-02 03:04:05+00', false, 0.1),
  ('paid', 'eu', 5.01, '2026-01-03 03:04:05+00', true, 0.2),
  ('paid', 'us', 100, '2026-02-01 00:00:00+00', false, 0),
  ('new', 'eu', 7.5, '2026-03-01 12:00:00+00', false, 0.5),
  ('new', NULL, 3, '2026-03-02 12:00:00.75+00', true, NULL);
CREATE TABLE shop_queues (name text, depth int, processed bigint, state text, wait text);
INSERT INTO shop_queues VALUES ('mail', 3, 1234567, 'running', '1.5s'), ('thumbs', 0, 42, 'paused', '250ms');
`)
	dsn := pg.DSN("postgres")
	queries, err := filepath.Abs(filepath.Join("testdata", "pgdiff", "queries.yaml"))
	if err != nil {
		t.Fatal(err)
	}

	web := distinctTCPAddrs(t, 2) // see TestConvertedStatsdExporterMatchesReal
	expWeb, sluiceWeb := web[0], web[1]
	exp := exec.Command(exporterBin, "--web.listen-address="+expWeb, "--extend.query-path="+queries,
		"--disable-default-metrics", "--disable-settings-metrics", "--collector.database", "--no-collector.bgwriter")
	exp.Env = append(os.Environ(), "DATA_SOURCE_NAME="+dsn)
	startPeer(t, "prometheus-postgres-exporter", exp)

	code, out := runBinary(t, "convert", "postgres_exporter", "--queries", queries, "--collectors", "database",
		"--dsn-env", "SLUICE_DIFF_DSN", "--web.listen-address", sluiceWeb)
	if code != 0 {
		t.Fatalf("sluice convert = %d:\n%s", code, out)
	}
	for _, w := range []string{"shop_queue: state is MAPPEDMETRIC", "shop_queue: wait is DURATION"} {
		if !strings.Contains(out, "warning: "+w) {
			t.Errorf("convert did not warn %q:\n%s", w, out)
		}
	}
	// MAPPEDMETRIC and DURATION columns of text give no series in
	// postgres_exporter 0.11 either (it parses them as numbers: "Unexpected
	// error parsing column"), so they are no difference here.
	config := out[strings.Index(out, "# Converted by"):]
	launch(t, config, launchOpts{env: []string{"SLUICE_DIFF_DSN=" + dsn}}).waitReady()

	scrape := func(addr string) (map[string]string, error) {
		fams, err := scrapeText(addr)
		if err != nil {
			return nil, err
		}
		kept := map[string]*dto.MetricFamily{}
		for name, f := range fams {
			if !strings.HasPrefix(name, "shop_") && name != "pg_database_size_bytes" && name != "pg_up" {
				continue
			}
			for _, m := range f.GetMetric() {
				var ls []*dto.LabelPair
				for _, l := range m.GetLabel() {
					if l.GetName() != "server" {
						ls = append(ls, l)
					}
				}
				m.Label = ls
			}
			kept[name] = f
		}
		return flattenSeries(kept), nil
	}

	var diff []string
	var last string
	deadline := time.Now().Add(60 * time.Second)
	for {
		e, err1 := scrape(expWeb)
		s, err2 := scrape(sluiceWeb)
		switch {
		case err1 != nil || err2 != nil:
			last = fmt.Sprintf("scrape errors: %v / %v", err1, err2)
		case s["shop_settings_answer gauge"] == "" || s["pg_database_size_bytes{datname=\"postgres\"} gauge"] == "":
			last = "Sluice has not run every query yet"
		default:
			diff = diffSeries(e, s)
			if sameDiffs(diff, knownPostgresDifferences) {
				if len(e) < 15 {
					t.Fatalf("only %d series compared", len(e))
				}
				t.Logf("%d series compared; %d known differences", len(e), len(diff))
				return
			}
			last = "differences:\n" + strings.Join(diff, "\n")
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("prometheus-postgres-exporter (-) and converted Sluice (+) differ beyond the known differences; last: %s", last)
}
