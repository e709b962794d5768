package postgres

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

func TestQueryExportsGaugesAndCounters(t *testing.T) {
	s := server(t)
	s.MustExec(t, "postgres", `
		CREATE TABLE q_orders (status text, amount numeric);
		INSERT INTO q_orders VALUES ('paid', 10.5), ('paid', 2), ('open', 1);`)
	h, _ := start(t, s, `
		query "orders" {
		  sql      = "SELECT status, count(*) AS n, sum(amount) AS amount FROM q_orders GROUP BY status"
		  interval = "1h"
		  metric "shop_orders" {
		    help   = "Orders by status."
		    value  = "n"
		    labels = ["status"]
		    static_labels = { source = "db" }
		  }
		  metric "shop_amount_total" {
		    type   = "counter"
		    value  = "amount"
		    labels = ["status"]
		  }
		}`)
	waitQueries(t, h, "orders", statusSuccess, 1, 10*time.Second)
	g := h.Gatherer()
	for status, want := range map[string]float64{"paid": 2, "open": 1} {
		if v, ok := value(t, g, "shop_orders", map[string]string{"status": status, "source": "db"}); !ok || v != want {
			t.Errorf("shop_orders{status=%q} = %v, %v; want %v", status, v, ok, want)
		}
	}
	if v, _ := value(t, g, "shop_amount_total", map[string]string{"status": "paid"}); v != 12.5 {
		t.Errorf("shop_amount_total{status=paid} = %v, want 12.5 (numeric column)", v)
	}
	mf := family(t, g, "shop_orders")
	if mf.GetHelp() != "Orders by status." || mf.GetType().String() != "GAUGE" {
		t.Errorf("shop_orders help/type = %q/%v", mf.GetHelp(), mf.GetType())
	}
	if mf := family(t, g, "shop_amount_total"); mf.GetType().String() != "COUNTER" {
		t.Errorf("shop_amount_total type = %v, want COUNTER", mf.GetType())
	}
	if v, _ := value(t, g, "pg_up", map[string]string{}); v != 1 {
		t.Errorf("pg_up = %v, want 1", v)
	}
	if v, _ := value(t, h.Registry, "sluice_postgres_query_rows", map[string]string{"query": "orders"}); v != 2 {
		t.Errorf("sluice_postgres_query_rows = %v, want 2", v)
	}
	if v, ok := value(t, h.Registry, "sluice_postgres_query_last_success_timestamp_seconds", map[string]string{"query": "orders"}); !ok || time.Since(time.Unix(int64(v), 0)) > time.Minute {
		t.Errorf("last success timestamp = %v", v)
	}
	if _, ok := value(t, h.Registry, "sluice_postgres_query_duration_seconds", map[string]string{"query": "orders"}); !ok {
		t.Error("no sluice_postgres_query_duration_seconds")
	}
	for _, st := range statuses {
		if _, ok := value(t, h.Registry, "sluice_postgres_queries_total", map[string]string{"query": "orders", "status": st}); !ok {
			t.Errorf("queries_total{status=%q} is not initialised", st)
		}
	}
}

func TestQueryRunsOnItsInterval(t *testing.T) {
	s := server(t)
	h, _ := start(t, s, `
		query "tick" {
		  sql      = "SELECT 1 AS one"
		  interval = "150ms"
		  metric "tick_one" { value = "one" }
		}`)
	waitQueries(t, h, "tick", statusSuccess, 4, 10*time.Second)
}

func TestScrapesReadTheSnapshot(t *testing.T) {
	s := server(t)
	app := uniqueApp(t)
	h, _ := start(t, s, fmt.Sprintf(`
		application_name = %q
		query "once" {
		  sql      = "SELECT 1 AS one"
		  interval = "1h"
		  metric "once_one" { value = "one" }
		}
		query "slow" {
		  sql      = "SELECT 1 AS one FROM pg_sleep(30)"
		  interval = "1h"
		  timeout  = "60s"
		  metric "slow_one" { value = "one" }
		}`, app))
	waitQueries(t, h, "once", statusSuccess, 1, 10*time.Second)
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return activeCount(t, s, app) == 1 }, "the slow query is running")
	// Many scrapes while a query hangs: each returns, and none runs a query.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 50 {
			if _, err := h.Gatherer().Gather(); err != nil {
				t.Errorf("Gather: %v", err)
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("scrapes blocked behind a running query")
	}
	if n := queries(t, h, "once", statusSuccess); n != 1 {
		t.Errorf("scrapes ran the query: success count %v, want 1", n)
	}
	if v, ok := value(t, h.Gatherer(), "once_one", map[string]string{}); !ok || v != 1 {
		t.Errorf("once_one = %v, %v", v, ok)
	}
}

func TestTimeoutCancelsTheStatementOnTheServer(t *testing.T) {
	s := server(t)
	app := uniqueApp(t)
	h, _ := start(t, s, fmt.Sprintf(`
		application_name = %q
		query "sleepy" {
		  sql      = "SELECT 1 AS one FROM pg_sleep(60)"
		  interval = "1h"
		  timeout  = "1s"
		  metric "sleepy_one" { value = "one" }
		}`, app))
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return activeCount(t, s, app) == 1 }, "pg_sleep is running on the server")
	waitQueries(t, h, "sleepy", statusTimeout, 1, 15*time.Second)
	// The statement is gone from the server, long before pg_sleep(60) ends.
	pipelinetest.Eventually(t, 5*time.Second, func() bool { return activeCount(t, s, app) == 0 }, "pg_sleep was cancelled on the server")
	if n := queries(t, h, "sleepy", statusSuccess); n != 0 {
		t.Errorf("success = %v", n)
	}
	if _, ok := value(t, h.Gatherer(), "sleepy_one", map[string]string{}); ok {
		t.Error("a timed-out query produced a value")
	}
	// A timeout does not mean the database is down.
	if v, _ := value(t, h.Gatherer(), "pg_up", map[string]string{}); v != 1 {
		t.Errorf("pg_up = %v after a timeout, want 1", v)
	}
}

func TestOverlappingRunsAreSkipped(t *testing.T) {
	s := server(t)
	app := uniqueApp(t)
	h, _ := start(t, s, fmt.Sprintf(`
		application_name = %q
		max_conns        = 4
		query "long" {
		  sql      = "SELECT 1 AS one FROM pg_sleep(0.7)"
		  interval = "100ms"
		  timeout  = "10s"
		  metric "long_one" { value = "one" }
		}`, app))
	maxActive := 0
	pipelinetest.Eventually(t, 20*time.Second, func() bool {
		maxActive = max(maxActive, activeCount(t, s, app))
		return queries(t, h, "long", statusSkipped) >= 5 && queries(t, h, "long", statusSuccess) >= 2
	}, "ticks during a run are skipped and counted")
	if maxActive > 1 {
		t.Errorf("%d runs of one query were active at once", maxActive)
	}
}

func TestMaxConnsCapsConcurrentRuns(t *testing.T) {
	s := server(t)
	app := uniqueApp(t)
	var qs strings.Builder
	for i := range 4 {
		fmt.Fprintf(&qs, `
		query "q%d" {
		  sql      = "SELECT 1 AS one FROM pg_sleep(0.5)"
		  interval = "200ms"
		  timeout  = "10s"
		  metric "cap_%d" { value = "one" }
		}`, i, i)
	}
	h, _ := start(t, s, fmt.Sprintf("application_name = %q\nmax_conns = 1\n%s", app, qs.String()))
	maxConns := 0
	pipelinetest.Eventually(t, 20*time.Second, func() bool {
		n := queryInt(t, s, "postgres", "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app)
		maxConns = max(maxConns, n)
		return queries(t, h, "q0", statusSuccess) >= 1 && queries(t, h, "q3", statusSuccess) >= 1
	}, "all queries ran")
	if maxConns > 1 {
		t.Errorf("saw %d connections with max_conns = 1", maxConns)
	}
}

func TestMissingSeriesDisappear(t *testing.T) {
	s := server(t)
	s.MustExec(t, "postgres", `CREATE TABLE q_jobs (state text); INSERT INTO q_jobs VALUES ('queued'), ('running'), ('running');`)
	h, _ := start(t, s, `
		query "jobs" {
		  sql      = "SELECT state, count(*) AS n FROM q_jobs GROUP BY state"
		  interval = "150ms"
		  metric "jobs" {
		    value  = "n"
		    labels = ["state"]
		  }
		}`)
	g := h.Gatherer()
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return strings.Join(seriesOf(t, g, "jobs"), " ") == "state=queued state=running"
	}, "both states, got %v", seriesOf(t, g, "jobs"))
	s.MustExec(t, "postgres", `DELETE FROM q_jobs WHERE state = 'queued'`)
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		return strings.Join(seriesOf(t, g, "jobs"), " ") == "state=running"
	}, "queued disappears, got %v", seriesOf(t, g, "jobs"))
}

func TestFailingQueryKeepsLastValues(t *testing.T) {
	s := server(t)
	s.MustExec(t, "postgres", `CREATE TABLE q_keep (k text, v int); INSERT INTO q_keep VALUES ('a', 7);`)
	logs, logger := bufferLogger()
	h, _ := start(t, s, `
		query "keep" {
		  sql      = "SELECT k, v FROM q_keep"
		  interval = "150ms"
		  metric "keep_v" {
		    value  = "v"
		    labels = ["k"]
		  }
		}`, pipelinetest.WithLogger(logger))
	waitQueries(t, h, "keep", statusSuccess, 1, 10*time.Second)
	s.MustExec(t, "postgres", `ALTER TABLE q_keep RENAME TO q_keep_old`)
	errs := queries(t, h, "keep", statusError)
	waitQueries(t, h, "keep", statusError, errs+2, 10*time.Second)
	last, _ := value(t, h.Registry, "sluice_postgres_query_last_success_timestamp_seconds", map[string]string{"query": "keep"})
	if v, ok := value(t, h.Gatherer(), "keep_v", map[string]string{"k": "a"}); !ok || v != 7 {
		t.Errorf("keep_v = %v, %v during failures; want the last good 7", v, ok)
	}
	if v, _ := value(t, h.Gatherer(), "pg_up", map[string]string{}); v != 1 {
		t.Errorf("pg_up = %v: an SQL error is not an outage", v)
	}
	if !strings.Contains(logs.String(), "q_keep") || strings.Count(logs.String(), "query failed") > 1 {
		t.Errorf("want one rate-limited failure log naming the relation, got:\n%s", logs.String())
	}
	s.MustExec(t, "postgres", `ALTER TABLE q_keep_old RENAME TO q_keep; UPDATE q_keep SET v = 8`)
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		v, _ := value(t, h.Gatherer(), "keep_v", map[string]string{"k": "a"})
		return v == 8
	}, "recovers")
	now, _ := value(t, h.Registry, "sluice_postgres_query_last_success_timestamp_seconds", map[string]string{"query": "keep"})
	if now <= last {
		t.Errorf("last success timestamp did not advance: %v -> %v", last, now)
	}
}

func TestBadResults(t *testing.T) {
	s := server(t)
	s.MustExec(t, "postgres", `CREATE TABLE q_bad (k text, v int); INSERT INTO q_bad VALUES ('a', 1);`)
	cases := []struct {
		name, sql, metric, logWant string
	}{
		{"missing_value", "SELECT 'a' AS k, 1 AS x", "value = \"v\"\nlabels = [\"k\"]", `value column \"v\" is not in the result`},
		{"missing_label", "SELECT 1 AS v", "value = \"v\"\nlabels = [\"k\"]", `label column \"k\" is not in the result`},
		{"non_numeric", "SELECT 'a' AS k, 'lots' AS v", "value = \"v\"\nlabels = [\"k\"]", "is not a number"},
		{"bytea", "SELECT 'a' AS k, '\\x00'::bytea AS v", "value = \"v\"\nlabels = [\"k\"]", "not numeric"},
		{"duplicate_labels", "SELECT 'a' AS k, 1 AS v UNION ALL SELECT 'a', 2", "value = \"v\"\nlabels = [\"k\"]", "same labels"},
		{"sql_error", "SELEC 1", `value = "v"`, "syntax error"},
		{"write_refused", "INSERT INTO q_bad VALUES ('b', 2) RETURNING k, v", "value = \"v\"\nlabels = [\"k\"]", "read-only transaction"},
		{"duplicate_column", "SELECT 1 AS v, 2 AS v", `value = "v"`, "appears more than once"},
		{"too_many_series", "SELECT g AS k, 1 AS v FROM generate_series(1, 10001) g", "value = \"v\"\nlabels = [\"k\"]", "more than 10000 series"},
		{"label_not_utf8", "SELECT '\\xff'::bytea AS k, 1 AS v", "value = \"v\"\nlabels = [\"k\"]", "not valid UTF-8"},
	}
	var body strings.Builder
	for _, c := range cases {
		fmt.Fprintf(&body, "query %q {\n sql = %q\n interval = \"150ms\"\n metric \"bad_%s\" {\n %s\n }\n}\n", c.name, c.sql, c.name, c.metric)
	}
	body.WriteString(`query "good" {
	  sql = "SELECT k, v FROM q_bad"
	  interval = "150ms"
	  metric "good_v" {
		    value  = "v"
		    labels = ["k"]
		  }
	}`)
	logs, logger := bufferLogger()
	h, _ := start(t, s, body.String(), pipelinetest.WithLogger(logger))
	for _, c := range cases {
		waitQueries(t, h, c.name, statusError, 2, 15*time.Second)
	}
	waitQueries(t, h, "good", statusSuccess, 2, 10*time.Second)
	g := h.Gatherer()
	if _, err := g.Gather(); err != nil {
		t.Fatalf("a bad query broke the scrape: %v", err)
	}
	for _, c := range cases {
		if n := queries(t, h, c.name, statusSuccess); n != 0 {
			t.Errorf("%s: success = %v", c.name, n)
		}
		if mf := family(t, g, "bad_"+c.name); mf != nil {
			t.Errorf("%s: exported %v", c.name, mf)
		}
		if !strings.Contains(logs.String(), c.logWant) {
			t.Errorf("%s: log lacks %q", c.name, c.logWant)
		}
	}
	if v, _ := value(t, g, "good_v", map[string]string{"k": "a"}); v != 1 {
		t.Errorf("good_v = %v: a good query suffered from bad ones", v)
	}
	if n := queryInt(t, s, "postgres", "SELECT count(*) FROM q_bad"); n != 1 {
		t.Errorf("the INSERT was committed: %d rows", n)
	}
	select {
	case err := <-h.Done():
		t.Fatalf("Run returned: %v", err)
	default:
	}
}

func TestLenientValues(t *testing.T) {
	s := server(t)
	h, _ := start(t, s, `
		query "lenient" {
		  sql      = "SELECT NULL::text AS k, '42' AS text_num, true AS flag, 1.5::float4 AS f, 3::numeric AS n, interval '1 minute' AS i"
		  interval = "1h"
		  metric "len_text" {
		    value  = "text_num"
		    labels = ["k"]
		  }
		  metric "len_flag" { value = "flag" }
		  metric "len_f"    { value = "f" }
		  metric "len_n"    { value = "n" }
		  metric "len_i"    { value = "i" }
		}`)
	waitQueries(t, h, "lenient", statusSuccess, 1, 10*time.Second)
	g := h.Gatherer()
	for name, want := range map[string]float64{"len_text": 42, "len_flag": 1, "len_f": 1.5, "len_n": 3, "len_i": 60} {
		if v, ok := value(t, g, name, map[string]string{}); !ok || v != want {
			t.Errorf("%s = %v, %v; want %v", name, v, ok, want)
		}
	}
}

func TestDatabases(t *testing.T) {
	s := server(t)
	for _, db := range []string{"dbq_one", "dbq_two"} {
		s.MustExec(t, "postgres", "CREATE DATABASE "+db)
		s.MustExec(t, db, "CREATE TABLE items (id int); INSERT INTO items SELECT generate_series(1, "+map[string]string{"dbq_one": "3", "dbq_two": "5"}[db]+")")
	}
	h, _ := start(t, s, `
		query "items" {
		  sql       = "SELECT count(*) AS n FROM items"
		  interval  = "1h"
		  databases = ["dbq_one", "dbq_two"]
		  metric "items" { value = "n" }
		}`)
	waitQueries(t, h, "items", statusSuccess, 2, 10*time.Second)
	for db, want := range map[string]float64{"dbq_one": 3, "dbq_two": 5} {
		if v, ok := value(t, h.Gatherer(), "items", map[string]string{"datname": db}); !ok || v != want {
			t.Errorf("items{datname=%q} = %v, %v; want %v", db, v, ok, want)
		}
	}
	if v, _ := value(t, h.Registry, "sluice_postgres_query_rows", map[string]string{"query": "items"}); v != 2 {
		t.Errorf("rows = %v, want 2 (one per database)", v)
	}
}

func TestStopLeavesNoGoroutines(t *testing.T) {
	s := server(t)
	before := goleak.IgnoreCurrent()
	h := pipelinetest.New(t, Name, fmt.Sprintf(`
		dsn = %q
		default_interval = "100ms"
		collectors = ["stat_database"]
		query "sleepy" {
		  sql = "SELECT 1 AS one FROM pg_sleep(5)"
		  interval = "100ms"
		  metric "leak_one" { value = "one" }
		}`, s.DSN("")))
	h.Start()
	waitQueries(t, h, "stat_database", statusSuccess, 1, 10*time.Second)
	waitQueries(t, h, "sleepy", statusSkipped, 1, 10*time.Second)
	if err := h.Stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	goleak.VerifyNone(t, before)
}

func TestBuildHasNoSideEffects(t *testing.T) {
	before := goleak.IgnoreCurrent()
	// A port nothing listens on: Build must not try it.
	h := pipelinetest.New(t, Name, `
		dsn = "postgres://u:pw@127.0.0.1:1/db"
		query "x" {
		  sql = "SELECT 1 AS one"
		  metric "x_one" { value = "one" }
		}`)
	goleak.VerifyNone(t, before)
	if v, ok := value(t, h.Gatherer(), "pg_up", map[string]string{}); !ok || v != 0 {
		t.Errorf("pg_up before Run = %v, %v; want 0", v, ok)
	}
	if _, ok := value(t, h.Registry, "sluice_postgres_queries_total", map[string]string{"query": "x", "status": "error"}); !ok {
		t.Error("self-metrics are not initialised at Build")
	}
}

func TestContextCancelStopsPromptly(t *testing.T) {
	s := server(t)
	app := uniqueApp(t)
	h, _ := start(t, s, fmt.Sprintf(`
		application_name = %q
		query "hang" {
		  sql = "SELECT 1 AS one FROM pg_sleep(60)"
		  timeout = "120s"
		  metric "hang_one" { value = "one" }
		}`, app))
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return activeCount(t, s, app) == 1 }, "running")
	if err := h.Stop(); err != nil { // fails the test if Run does not return within 10s
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return activeCount(t, s, app) == 0 }, "the statement was cancelled when the component stopped")
}

func TestMissingDatabaseIsAQueryError(t *testing.T) {
	s := server(t)
	h, _ := start(t, s, `
		query "one" {
		  sql       = "SELECT 1 AS n"
		  interval  = "200ms"
		  databases = ["postgres", "no_such_db"]
		  metric "dbs_one" { value = "n" }
		}`)
	waitQueries(t, h, "one", statusError, 2, 10*time.Second)
	waitQueries(t, h, "one", statusSuccess, 2, 10*time.Second)
	if v, ok := value(t, h.Gatherer(), "dbs_one", map[string]string{"datname": "postgres"}); !ok || v != 1 {
		t.Errorf("dbs_one{datname=postgres} = %v, %v", v, ok)
	}
	if v, _ := value(t, h.Gatherer(), "pg_up", map[string]string{}); v != 1 {
		t.Errorf("pg_up = %v: one missing database is not a server outage", v)
	}
	if _, ok := value(t, h.Registry, "sluice_postgres_query_last_success_timestamp_seconds", map[string]string{"query": "one"}); ok {
		t.Error("last success is set though a database failed every run")
	}
}

// A NULL in a value column skips that sample only: the row's other
// metrics and the other rows are kept, the run succeeds, and the skipped
// samples are counted by query and column (as postgres_exporter skips
// them).
func TestNullValueSkipsTheSample(t *testing.T) {
	s := server(t)
	s.MustExec(t, "postgres", `CREATE TABLE q_null (k text, v int, w float8);
		INSERT INTO q_null VALUES ('a', 1, 10), ('b', NULL, 20), ('c', 3, NULL), ('d', NULL, NULL);`)
	h, _ := start(t, s, `query "nulls" {
	  sql      = "SELECT k, v, w, NULL::numeric AS n FROM q_null"
	  interval = "150ms"
	  metric "nv" {
	    value  = "v"
	    labels = ["k"]
	  }
	  metric "nw" {
	    value  = "w"
	    labels = ["k"]
	  }
	  metric "nn" {
	    value  = "n"
	    labels = ["k"]
	  }
	}`)
	waitQueries(t, h, "nulls", statusSuccess, 2, 15*time.Second)
	if n := queries(t, h, "nulls", statusError); n != 0 {
		t.Errorf("%v failed runs: a NULL value must not fail the query", n)
	}
	g := h.Gatherer()
	for _, c := range []struct {
		name, k string
		want    float64
		present bool
	}{
		{"nv", "a", 1, true}, {"nv", "b", 0, false}, {"nv", "c", 3, true}, {"nv", "d", 0, false},
		{"nw", "a", 10, true}, {"nw", "b", 20, true}, {"nw", "c", 0, false}, {"nw", "d", 0, false},
		{"nn", "a", 0, false},
	} {
		v, ok := value(t, g, c.name, map[string]string{"k": c.k})
		if ok != c.present || v != c.want {
			t.Errorf("%s{k=%q} = %v (present %v), want %v (present %v)", c.name, c.k, v, ok, c.want, c.present)
		}
	}
	// Per successful run: 2 NULLs in v, 2 in w, 4 in n. A run counts its
	// success just before its NULLs: wait for a reading between runs.
	want := map[string]float64{"v": 2, "w": 2, "n": 4}
	got := map[string]float64{}
	var runs float64
	pipelinetest.Eventually(t, 10*time.Second, func() bool {
		runs = queries(t, h, "nulls", statusSuccess)
		for col, perRun := range want {
			got[col], _ = value(t, h.Registry, "sluice_postgres_null_values_total", map[string]string{"query": "nulls", "column": col})
			if got[col] != perRun*runs {
				return false
			}
		}
		return runs == queries(t, h, "nulls", statusSuccess)
	}, "sluice_postgres_null_values_total %v after %v runs, want %v per run", got, runs, want)
}
