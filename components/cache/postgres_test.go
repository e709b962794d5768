package cache

import (
	"fmt"
	"testing"
	"time"

	_ "github.com/sluicehq/sluice/components/postgres" // postgres_source
	"github.com/sluicehq/sluice/internal/testing/pgtest"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// The collector restarted while its database is down, with a real
// PostgreSQL: the new postgres_source can only say pg_up 0, and the cache
// (persisted by the collector before the restart) still serves the query's
// last values next to it.
func TestPostgresCollectorRestartDuringOutage(t *testing.T) {
	s := pgtest.Start(t, pgtest.Options{})
	s.MustExec(t, "postgres", "CREATE TABLE orders (status text, n int); INSERT INTO orders VALUES ('paid', 12), ('open', 3)")
	source := fmt.Sprintf(`
  dsn              = "postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable"
  default_interval = "200ms"
  connect_timeout  = "1s"
  query "orders" {
    sql      = "SELECT status, n FROM orders"
    interval = "200ms"
    timeout  = "2s"
    metric "shop_orders" {
      value  = "n"
      labels = ["status"]
    }
  }`, s.Port)
	dir := t.TempDir()
	clk := newClock()

	pg1 := pipelinetest.New(t, "postgres_source", source)
	pg1.Start()
	c1 := build(t, persistBody, dir, pg1.Gatherer(), clk.now)
	c1.start()
	pipelinetest.Eventually(t, wait, func() bool {
		got := served(t, c1.c)
		return got["pg_up"] == 1 && got["shop_orders,status=paid"] == 12 && got["shop_orders,status=open"] == 3
	}, "the collector serves the query")
	pipelinetest.Eventually(t, wait, func() bool { return metric(t, c1.reg, "sluice_cache_persisted_series") >= 3 }, "persisted")
	c1.stop()
	if err := pg1.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}

	clk.advance(time.Minute)
	pg2 := pipelinetest.New(t, "postgres_source", source)
	pg2.Start()
	c2 := build(t, persistBody, dir, pg2.Gatherer(), clk.now)
	c2.start()
	pipelinetest.Eventually(t, wait, func() bool {
		got := served(t, c2.c)
		_, hasUp := got["pg_up"]
		return hasUp && got["pg_up"] == 0 && metric(t, c2.reg, "sluice_cache_refresh_duration_seconds") >= 2
	}, "the restarted collector refreshed with the database down")
	got := served(t, c2.c)
	if got["shop_orders,status=paid"] != 12 || got["shop_orders,status=open"] != 3 {
		t.Errorf("during the outage after a restart the cache serves %v, want the last query values", got)
	}
	if metric(t, c2.reg, "sluice_cache_restored") != 1 || metric(t, c2.reg, "sluice_cache_stale_series") != 2 {
		t.Error("want sluice_cache_restored 1 and sluice_cache_stale_series 2")
	}

	// The database is back: fresh values replace the restored ones.
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	s.MustExec(t, "postgres", "UPDATE orders SET n = 13 WHERE status = 'paid'")
	pipelinetest.Eventually(t, 30*time.Second, func() bool {
		got := served(t, c2.c)
		return got["pg_up"] == 1 && got["shop_orders,status=paid"] == 13
	}, "recovery")
	pipelinetest.Eventually(t, wait, func() bool { return metric(t, c2.reg, "sluice_cache_restored") == 0 }, "nothing restored served any more")
}
