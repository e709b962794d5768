package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/internal/testing/pgtest"
	"github.com/sluicehq/sluice/pipeline/pipelinetest"
)

// holdTx opens a transaction on database db that holds an ACCESS EXCLUSIVE
// lock on a fresh table, and keeps it open until the test ends.
func holdTx(t *testing.T, s *pgtest.Server, db, table string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (x int)", table)); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf("LOCK TABLE %s IN ACCESS EXCLUSIVE MODE", table)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
}

func TestBuiltinCollectors(t *testing.T) {
	s := server(t)
	s.MustExec(t, "postgres", "CREATE DATABASE builtin_db")
	holdTx(t, s, "builtin_db", "held")
	s.MustExec(t, "postgres", "CHECKPOINT")
	h, _ := start(t, s, `
		default_interval = "200ms"
		collectors = ["database", "stat_database", "stat_activity", "locks", "replication", "bgwriter"]`)
	for _, c := range builtinNames() {
		waitQueries(t, h, c, statusSuccess, 1, 15*time.Second)
	}
	g := h.Gatherer()
	db := map[string]string{"datname": "builtin_db"}

	t.Run("database", func(t *testing.T) {
		if v, ok := value(t, g, "pg_database_size_bytes", db); !ok || v < 1e6 {
			t.Errorf("pg_database_size_bytes{datname=builtin_db} = %v, %v", v, ok)
		}
	})
	t.Run("stat_database", func(t *testing.T) {
		oid := fmt.Sprint(queryInt(t, s, "postgres", "SELECT oid::int FROM pg_database WHERE datname = 'builtin_db'"))
		labels := map[string]string{"datid": oid, "datname": "builtin_db"}
		for _, name := range []string{"pg_stat_database_xact_commit", "pg_stat_database_blks_hit", "pg_stat_database_numbackends"} {
			if v, ok := value(t, g, name, labels); !ok || v < 1 {
				t.Errorf("%s%v = %v, %v; want >= 1", name, labels, v, ok)
			}
		}
		for _, name := range []string{"pg_stat_database_xact_rollback", "pg_stat_database_deadlocks", "pg_stat_database_temp_bytes", "pg_stat_database_blks_read", "pg_stat_database_stats_reset"} {
			if _, ok := value(t, g, name, labels); !ok {
				t.Errorf("no %s%v", name, labels)
			}
		}
		if mf := family(t, g, "pg_stat_database_xact_commit"); mf.GetType().String() != "COUNTER" {
			t.Errorf("pg_stat_database_xact_commit is a %v", mf.GetType())
		}
	})
	t.Run("stat_activity", func(t *testing.T) {
		l := map[string]string{"datname": "builtin_db", "state": "idle in transaction"}
		if v, ok := value(t, g, "pg_stat_activity_count", l); !ok || v != 1 {
			t.Errorf("pg_stat_activity_count%v = %v, %v; want 1", l, v, ok)
		}
		pipelinetest.Eventually(t, 10*time.Second, func() bool {
			v, _ := value(t, g, "pg_stat_activity_max_tx_duration", l)
			return v > 0.1
		}, "the held transaction's age shows")
		if v, ok := value(t, g, "pg_stat_activity_count", map[string]string{"datname": "builtin_db", "state": "fastpath function call"}); !ok || v != 0 {
			t.Errorf("absent states are not zero-filled: %v, %v", v, ok)
		}
	})
	t.Run("locks", func(t *testing.T) {
		l := map[string]string{"datname": "builtin_db", "mode": "accessexclusivelock"}
		if v, ok := value(t, g, "pg_locks_count", l); !ok || v < 1 {
			t.Errorf("pg_locks_count%v = %v, %v; want >= 1", l, v, ok)
		}
		if v, ok := value(t, g, "pg_locks_count", map[string]string{"datname": "builtin_db", "mode": "sireadlock"}); !ok || v != 0 {
			t.Errorf("sireadlock = %v, %v; want a zero", v, ok)
		}
	})
	t.Run("replication_on_primary", func(t *testing.T) {
		for _, name := range []string{"pg_replication_lag", "pg_replication_is_replica"} {
			if v, ok := value(t, g, name, map[string]string{}); !ok || v != 0 {
				t.Errorf("%s = %v, %v; want 0 on a primary", name, v, ok)
			}
		}
	})
	t.Run("bgwriter", func(t *testing.T) {
		if v, ok := value(t, g, "pg_stat_bgwriter_checkpoints_req_total", map[string]string{}); !ok || v < 1 {
			t.Errorf("pg_stat_bgwriter_checkpoints_req_total = %v, %v; want >= 1 after CHECKPOINT", v, ok)
		}
		for _, name := range []string{"pg_stat_bgwriter_buffers_alloc_total", "pg_stat_bgwriter_checkpoints_timed_total", "pg_stat_bgwriter_stats_reset_total"} {
			if _, ok := value(t, g, name, map[string]string{}); !ok {
				t.Errorf("no %s", name)
			}
		}
	})
}

func TestReplicationOnReplica(t *testing.T) {
	s := server(t)
	replica, err := s.NewReplica()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(replica.Close)
	h, _ := start(t, replica, `
		default_interval = "200ms"
		collectors = ["replication"]`)
	waitQueries(t, h, "replication", statusSuccess, 1, 15*time.Second)
	if v, ok := value(t, h.Gatherer(), "pg_replication_is_replica", map[string]string{}); !ok || v != 1 {
		t.Errorf("pg_replication_is_replica = %v, %v; want 1", v, ok)
	}
	if v, ok := value(t, h.Gatherer(), "pg_replication_lag", map[string]string{}); !ok || v < 0 {
		t.Errorf("pg_replication_lag = %v, %v", v, ok)
	}
}

func TestBuiltinSQLForEveryVersion(t *testing.T) {
	// The version switch picks pg_stat_checkpointer on 17+; the columns the
	// metrics need are there either way (optional ones aside).
	for _, major := range []int{12, 16, 17} {
		sql := builtinByName("bgwriter").sql(major)
		for _, m := range builtinByName("bgwriter").metrics {
			if !m.optional && !containsWord(sql, m.value) {
				t.Errorf("PostgreSQL %d: bgwriter SQL lacks column %s", major, m.value)
			}
		}
	}
}

func containsWord(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i:i+len(w)] == w && (i == 0 || !isIdent(s[i-1])) && (i+len(w) == len(s) || !isIdent(s[i+len(w)])) {
			return true
		}
	}
	return false
}

func isIdent(b byte) bool {
	return b == '_' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9'
}
