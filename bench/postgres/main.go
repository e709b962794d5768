// Command postgres compares postgres_source with Debian's
// prometheus-postgres-exporter on one machine, in one run:
//
//  1. statements the database executes per scrape, with a scrape every
//     second (pg_stat_statements, counted per agent role);
//  2. scrape latency p50/p99 while one query takes 5 s (pg_sleep).
//
// Both agents run their built-in metrics plus the same orders aggregate.
// Sluice's component runs in this process and is served with promhttp, as
// the metrics_sink serves it. Run it with bench/postgres/run.sh, which
// installs what is missing.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/components/postgres"
	"github.com/sluicehq/sluice/internal/testing/pgtest"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runtime"
)

var (
	duration = flag.Duration("duration", 30*time.Second, "length of each measurement phase")
	exporter = flag.String("exporter", "/usr/bin/prometheus-postgres-exporter", "postgres_exporter binary")
	interval = flag.String("interval", "15s", "Sluice's query interval")
)

const ordersSQL = "SELECT status, count(*) AS orders FROM shop_orders GROUP BY status"

func main() {
	flag.Parse()
	log.SetFlags(0)
	srv, err := pgtest.New(pgtest.Options{Conf: []string{
		"shared_preload_libraries = 'pg_stat_statements'",
		"pg_stat_statements.track = 'top'",
		"pg_stat_statements.track_utility = on",
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	must(srv.Exec(ctx, "postgres", `
		CREATE EXTENSION pg_stat_statements;
		CREATE ROLE bench_sluice LOGIN SUPERUSER;
		CREATE ROLE bench_exporter LOGIN SUPERUSER;
		CREATE TABLE shop_orders (id serial PRIMARY KEY, status text NOT NULL, amount_cents bigint NOT NULL);
		INSERT INTO shop_orders (status, amount_cents)
		  SELECT (ARRAY['paid','pending','refunded','shipped'])[1 + i % 4], i % 10000 FROM generate_series(1, 200000) i;
		ANALYZE shop_orders;`))
	dsn := func(role string) string {
		return fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable", role, srv.Port)
	}
	pgVersion := ""
	_ = withConn(ctx, srv.DSN(""), func(c *pgx.Conn) error {
		return c.QueryRow(ctx, "SHOW server_version").Scan(&pgVersion)
	})
	expVersion, _ := exec.Command(*exporter, "--version").CombinedOutput()
	fmt.Printf("PostgreSQL %s; %s; scrape every 1s for %v per phase; Sluice interval %s\n\n",
		pgVersion, strings.SplitN(strings.TrimSpace(string(expVersion)), "\n", 2)[0], *duration, *interval)

	// Phase 1: statements per scrape.
	sl, stopSl := startSluice(dsn("bench_sluice"), false)
	ex, stopEx := startExporter(dsn("bench_exporter"), false)
	time.Sleep(5 * time.Second) // both warm: first runs done, connections open
	must(srv.Exec(ctx, "postgres", "SELECT pg_stat_statements_reset()"))
	scrapesSl, _ := scrapeLoop(sl, *duration)
	stmtSl, ordersSl := statements(ctx, srv, "bench_sluice")
	stopSl()
	must(srv.Exec(ctx, "postgres", "SELECT pg_stat_statements_reset()"))
	scrapesEx, _ := scrapeLoop(ex, *duration)
	stmtEx, ordersEx := statements(ctx, srv, "bench_exporter")
	stopEx()

	fmt.Println("## Statements executed per scrape (1 scrape/s)")
	fmt.Println()
	fmt.Println("| agent | scrapes | statements (all) | per scrape | orders aggregate runs |")
	fmt.Println("|---|---|---|---|---|")
	fmt.Printf("| Sluice postgres_source | %d | %d | %.2f | %d |\n", scrapesSl, stmtSl, float64(stmtSl)/float64(scrapesSl), ordersSl)
	fmt.Printf("| prometheus-postgres-exporter | %d | %d | %.2f | %d |\n\n", scrapesEx, stmtEx, float64(stmtEx)/float64(scrapesEx), ordersEx)

	// Phase 2: scrape latency while a query takes 5 s.
	sl, stopSl = startSluice(dsn("bench_sluice"), true)
	time.Sleep(3 * time.Second)
	_, latSl := scrapeLoop(sl, *duration)
	stopSl()
	ex, stopEx = startExporter(dsn("bench_exporter"), true)
	time.Sleep(time.Second)
	_, latEx := scrapeLoop(ex, *duration)
	stopEx()

	fmt.Println("## Scrape latency while one query takes 5 s (pg_sleep(5))")
	fmt.Println()
	fmt.Println("| agent | scrapes | p50 | p99 | max |")
	fmt.Println("|---|---|---|---|---|")
	for _, r := range []struct {
		name string
		lat  []time.Duration
	}{{"Sluice postgres_source", latSl}, {"prometheus-postgres-exporter", latEx}} {
		fmt.Printf("| %s | %d | %v | %v | %v |\n", r.name, len(r.lat), pct(r.lat, 0.50), pct(r.lat, 0.99), pct(r.lat, 1))
	}
}

// startSluice runs a postgres_source in-process and serves it over HTTP.
func startSluice(dsn string, slow bool) (url string, stop func()) {
	body := fmt.Sprintf(`
		dsn              = %q
		default_interval = %q
		default_timeout  = "10s"
		collectors       = ["database", "stat_database", "stat_activity", "locks", "replication", "bgwriter"]
		query "orders" {
		  sql = %q
		  metric "shop_orders" {
		    value  = "orders"
		    labels = ["status"]
		  }
		}`, dsn, *interval, ordersSQL)
	if slow {
		body += `
		query "slow" {
		  sql      = "SELECT 1 AS one FROM pg_sleep(5)"
		  interval = "6s"
		  timeout  = "10s"
		  metric "slow_one" { value = "one" }
		}`
	}
	reg, _ := pipeline.Lookup("postgres_source")
	f, diags := hclparse.NewParser().ParseHCL([]byte(body), "bench.hcl")
	if diags.HasErrors() {
		log.Fatal(diags)
	}
	args, diags := runtime.DecodeArguments(reg, f.Body, ".", nil, nil)
	if diags.HasErrors() {
		log.Fatal(diags)
	}
	var gatherer prometheus.Gatherer
	comp, err := reg.Build(pipeline.Options[any]{
		ID:         "postgres_source.bench",
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer: prometheus.NewRegistry(),
		OnExports:  func(e any) { gatherer = e.(postgres.Exports).Metrics },
	}, args)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = comp.Run(ctx) }()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	hs := &http.Server{Handler: promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})}
	go func() { _ = hs.Serve(l) }()
	return "http://" + l.Addr().String() + "/metrics", func() {
		_ = hs.Close()
		cancel()
		<-done
	}
}

// startExporter runs prometheus-postgres-exporter with its defaults plus
// the same orders query (and the slow one) as custom queries.
func startExporter(dsn string, slow bool) (url string, stop func()) {
	dir, err := os.MkdirTemp("", "bench-exporter-")
	if err != nil {
		log.Fatal(err)
	}
	queries := fmt.Sprintf(`shop_orders:
  query: %q
  master: true
  metrics:
    - status:
        usage: "LABEL"
        description: "Order status"
    - orders:
        usage: "GAUGE"
        description: "Orders by status"
`, ordersSQL)
	if slow {
		queries += `slow:
  query: "SELECT 1 AS one FROM pg_sleep(5)"
  master: true
  metrics:
    - one:
        usage: "GAUGE"
        description: "slow"
`
	}
	qf := filepath.Join(dir, "queries.yaml")
	must(os.WriteFile(qf, []byte(queries), 0o644))
	port, err := pgtest.FreePort()
	if err != nil {
		log.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	logf, _ := os.Create(filepath.Join(dir, "exporter.log"))
	cmd := exec.Command(*exporter, "--web.listen-address="+addr, "--extend.query-path="+qf)
	cmd.Env = append(os.Environ(), "DATA_SOURCE_NAME="+dsn)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		log.Fatalf("%s: %v (install prometheus-postgres-exporter)", *exporter, err)
	}
	url = "http://" + addr + "/metrics"
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return url, func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		os.RemoveAll(dir)
	}
}

// scrapeLoop scrapes url on a 1 s grid for d, never overlapping (as
// Prometheus does for one target), and returns the scrape count and each
// scrape's latency.
func scrapeLoop(url string, d time.Duration) (int, []time.Duration) {
	client := &http.Client{Timeout: 30 * time.Second}
	end := time.Now().Add(d)
	var lat []time.Duration
	next := time.Now()
	for time.Now().Before(end) {
		time.Sleep(time.Until(next))
		t0 := time.Now()
		resp, err := client.Get(url)
		if err != nil {
			log.Fatalf("scrape %s: %v", url, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		lat = append(lat, time.Since(t0))
		next = next.Add(time.Second)
		if now := time.Now(); next.Before(now) {
			next = now
		}
	}
	return len(lat), lat
}

// statements sums pg_stat_statements calls by role: all statements, and
// the runs of the orders aggregate.
func statements(ctx context.Context, srv *pgtest.Server, role string) (all, orders int64) {
	must(withConn(ctx, srv.DSN(""), func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `
			SELECT COALESCE(sum(calls), 0)::bigint,
			       COALESCE(sum(calls) FILTER (WHERE query ILIKE '%FROM shop_orders GROUP BY%'), 0)::bigint
			FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
			WHERE r.rolname = $1`, role).Scan(&all, &orders)
	}))
	return all, orders
}

func withConn(ctx context.Context, dsn string, fn func(*pgx.Conn) error) error {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	return fn(c)
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p*float64(len(s)-1) + 0.5)
	return s[i].Round(10 * time.Microsecond)
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
