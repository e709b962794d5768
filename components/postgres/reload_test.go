package postgres

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testing/pgtest"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

func (c *Component) currentPools() *poolSet {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pools
}

func TestReload(t *testing.T) {
	s := server(t)
	s.MustExec(t, "postgres", "CREATE TABLE r_t (v int); INSERT INTO r_t VALUES (1)")
	cfg := func(app string, withB bool, bSQL string) string {
		body := fmt.Sprintf(`dsn = %q
application_name = %q
query "a" {
  sql      = "SELECT v FROM r_t"
  interval = "1h"
  metric "reload_a" { value = "v" }
}
`, s.DSN(""), app)
		if withB {
			body += fmt.Sprintf(`query "b" {
  sql      = %q
  interval = "1h"
  metric "reload_b" { value = "v" }
}
`, bSQL)
		}
		return body
	}
	h := pipelinetest.New(t, Name, cfg("reload1", true, "SELECT 1 AS v"))
	h.Start()
	c := h.Component.(*Component)
	waitQueries(t, h, "a", statusSuccess, 1, 10*time.Second)
	waitQueries(t, h, "b", statusSuccess, 1, 10*time.Second)
	pools := c.currentPools()
	g := h.Gatherer()
	s.MustExec(t, "postgres", "UPDATE r_t SET v = 2") // a re-run of "a" would show 2

	t.Run("changed query runs, unchanged one keeps its value and schedule", func(t *testing.T) {
		if err := h.Update(cfg("reload1", true, "SELECT 5 AS v")); err != nil {
			t.Fatal(err)
		}
		pipelinetest.Eventually(t, 10*time.Second, func() bool { v, _ := value(t, g, "reload_b", map[string]string{}); return v == 5 }, "b runs its new SQL")
		if v, _ := value(t, g, "reload_a", map[string]string{}); v != 1 {
			t.Errorf("reload_a = %v, want the kept 1", v)
		}
		if n := queries(t, h, "a", statusSuccess); n != 1 {
			t.Errorf("a ran %v times; an unchanged query must not restart", n)
		}
		if c.currentPools() != pools {
			t.Error("the pool was replaced though the dsn did not change")
		}
	})
	t.Run("removed query's series and self-metrics go", func(t *testing.T) {
		if err := h.Update(cfg("reload1", false, "")); err != nil {
			t.Fatal(err)
		}
		pipelinetest.Eventually(t, 10*time.Second, func() bool { return family(t, g, "reload_b") == nil }, "reload_b disappears")
		if _, ok := value(t, h.Registry, "sluice_postgres_queries_total", map[string]string{"query": "b", "status": "success"}); ok {
			t.Error("self-metrics of a removed query remain")
		}
		if v, _ := value(t, g, "reload_a", map[string]string{}); v != 1 {
			t.Errorf("reload_a = %v, want the kept 1", v)
		}
	})
	t.Run("connection change replaces the pool and keeps values", func(t *testing.T) {
		if err := h.Update(cfg("reload2", false, "")); err != nil {
			t.Fatal(err)
		}
		if v, _ := value(t, g, "reload_a", map[string]string{}); v != 1 {
			t.Errorf("reload_a = %v right after a pool change, want the kept 1", v)
		}
		pipelinetest.Eventually(t, 10*time.Second, func() bool { p := c.currentPools(); return p != nil && p != pools }, "a new pool")
		pipelinetest.Eventually(t, 10*time.Second, func() bool { v, _ := value(t, g, "reload_a", map[string]string{}); return v == 2 }, "a runs on the new pool")
		if n := queryInt(t, s, "postgres", "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'reload1'"); n != 0 {
			t.Errorf("%d connections of the old pool remain", n)
		}
	})
	t.Run("invalid update is refused", func(t *testing.T) {
		err := h.Update(`dsn = "postgres://u:s3cr3t@h:x/db"`)
		if err == nil || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("Update(bad dsn) = %v", err)
		}
	})
}

func TestOutageAndRecovery(t *testing.T) {
	s := pgtest.Start(t, pgtest.Options{}) // its own server: this test stops it
	s.MustExec(t, "postgres", "CREATE TABLE o_t (v int); INSERT INTO o_t VALUES (1)")
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	logs, logger := bufferLogger()
	// Trust authentication ignores the password, so it is a secret the
	// logs and health messages must never show.
	dsn := fmt.Sprintf("postgres://postgres:s3cr3t-pw@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
	h := pipelinetest.New(t, Name, fmt.Sprintf(`
		dsn              = %q
		default_interval = "200ms"
		connect_timeout  = "1s"
		query "o" {
		  sql      = "SELECT v FROM o_t"
		  interval = "200ms"
		  timeout  = "2s"
		  metric "outage_v" { value = "v" }
		}`, dsn), pipelinetest.WithLogger(logger))
	h.Start()
	c := h.Component.(*Component)
	g := h.Gatherer()
	up := func() float64 { v, _ := value(t, g, "pg_up", map[string]string{}); return v }
	ov := func() float64 { v, _ := value(t, g, "outage_v", map[string]string{}); return v }

	// Start-up with the database down: Run keeps going, pg_up is 0.
	waitQueries(t, h, "o", statusError, 2, 15*time.Second)
	if up() != 0 {
		t.Errorf("pg_up = %v with the database down", up())
	}
	if hl := c.Health(); hl.State != pipeline.HealthUnhealthy || !strings.Contains(hl.Message, "cannot reach") || strings.Contains(hl.Message, "s3cr3t") {
		t.Errorf("health = %+v, want unhealthy without the password", hl)
	}
	if _, err := g.Gather(); err != nil {
		t.Errorf("Gather with the database down: %v", err)
	}
	select {
	case err := <-h.Done():
		t.Fatalf("Run returned: %v", err)
	default:
	}

	// The database comes up: values appear, pg_up is 1.
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 15*time.Second, func() bool { return up() == 1 && ov() == 1 }, "recovery after start-up outage (up=%v v=%v)", up(), ov())
	if hl := c.Health(); hl.State != pipeline.HealthHealthy {
		t.Errorf("health = %+v, want healthy", hl)
	}

	// A crash mid-run: pg_up drops, the last values stay.
	s.MustExec(t, "postgres", "UPDATE o_t SET v = 2")
	pipelinetest.Eventually(t, 10*time.Second, func() bool { return ov() == 2 }, "v = 2")
	if err := s.Crash(); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 15*time.Second, func() bool { return up() == 0 }, "pg_up drops after a crash")
	errs := queries(t, h, "o", statusError) + queries(t, h, "o", statusTimeout)
	pipelinetest.Eventually(t, 15*time.Second, func() bool {
		return queries(t, h, "o", statusError)+queries(t, h, "o", statusTimeout) >= errs+2
	}, "failures are counted during the outage")
	if ov() != 2 {
		t.Errorf("outage_v = %v during the outage, want the last good 2", ov())
	}

	// Restarted: the component recovers by itself.
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	s.MustExec(t, "postgres", "UPDATE o_t SET v = 3")
	pipelinetest.Eventually(t, 15*time.Second, func() bool { return up() == 1 && ov() == 3 }, "recovery after a restart (up=%v v=%v)", up(), ov())

	if strings.Contains(logs.String(), "s3cr3t") || strings.Contains(c.Health().Message, "s3cr3t") {
		t.Errorf("the password leaked:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "unreachable") {
		t.Errorf("the outage was not logged:\n%s", logs.String())
	}
}

// A changed connection argument opens the new pool in Update, before the
// reload commits; Abort (another component of the reload failed) closes it
// and keeps the running plan.
func TestUpdateAbortClosesThePreparedPool(t *testing.T) {
	body := func(app string) string {
		return fmt.Sprintf("dsn = \"postgres://u@127.0.0.1:1/db\"\napplication_name = %q\nquery \"q\" {\n  sql = \"SELECT 1 AS v\"\n  metric \"m\" { value = \"v\" }\n}\n", app)
	}
	h := pipelinetest.New(t, Name, body("before"))
	c := h.Component.(*Component)
	running := c.currentPlan()

	p, err := h.Prepare(body("after"))
	if err != nil {
		t.Fatal(err)
	}
	prepared := p.(*pending).pools
	if prepared == nil || len(prepared.pools) != 1 {
		t.Fatalf("Update did not open the new pool: %+v", prepared)
	}
	p.Abort()
	if n := len(prepared.pools); n != 0 {
		t.Errorf("%d pools left open after Abort", n)
	}
	if c.currentPlan() != running {
		t.Error("Abort changed the plan")
	}

	// Committed, the plan and the pool go to Run.
	p, err = h.Prepare(body("after"))
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
	if got := c.currentPlan().conn.appName; got != "after" {
		t.Errorf("plan after Commit has application_name %q", got)
	}
	if ps := c.takePrepared(c.currentPlan()); ps == nil || ps != p.(*pending).pools {
		t.Error("the committed pool was not handed to Run")
	} else {
		ps.close()
	}
}
