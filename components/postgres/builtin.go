package postgres

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Built-in collectors. Metric names and labels follow postgres_exporter's
// defaults (v0.11, as packaged by Debian) so existing dashboards keep
// working; the SQL is Sluice's own. Each built-in is a query like any other:
// it runs on default_interval with default_timeout, in a READ ONLY
// transaction, and its self-metrics carry query="<collector name>".

const upMetricName = "pg_up"

type builtin struct {
	name    string
	sql     func(major int) string
	metrics []*metricDef
}

func gauge(name, value, help string, labels ...string) *metricDef {
	return &metricDef{name: name, value: value, help: help, typ: prometheus.GaugeValue, labels: labels}
}

func counter(name, value, help string, labels ...string) *metricDef {
	return &metricDef{name: name, value: value, help: help, typ: prometheus.CounterValue, labels: labels}
}

// optional marks a metric whose column some server versions lack: a
// missing column skips the metric instead of failing the query.
func optional(m *metricDef) *metricDef { m.optional = true; return m }

func fixed(sql string) func(int) string { return func(int) string { return sql } }

var builtins = []*builtin{
	{
		name: "database",
		sql: fixed(`SELECT datname, pg_database_size(oid)::float8 AS size_bytes
FROM pg_database
WHERE has_database_privilege(oid, 'CONNECT') OR pg_has_role('pg_read_all_stats', 'MEMBER')`),
		metrics: []*metricDef{
			gauge("pg_database_size_bytes", "size_bytes", "Disk space used by the database", "datname"),
		},
	},
	{
		name: "stat_database",
		sql: fixed(`SELECT d.*, COALESCE(EXTRACT(EPOCH FROM d.stats_reset), 0)::float8 AS stats_reset_seconds
FROM pg_stat_database d
WHERE d.datname IS NOT NULL`),
		metrics: statDatabaseMetrics(),
	},
	{
		name: "stat_activity",
		sql: fixed(`SELECT d.datname, s.state, COALESCE(a.n, 0) AS count, COALESCE(a.max_tx_duration, 0) AS max_tx_duration
FROM pg_database d
CROSS JOIN (VALUES ('active'), ('idle'), ('idle in transaction'), ('idle in transaction (aborted)'),
                   ('fastpath function call'), ('disabled')) AS s(state)
LEFT JOIN (
  SELECT datname, state, count(*) AS n,
         max(EXTRACT(EPOCH FROM now() - xact_start))::float8 AS max_tx_duration
  FROM pg_stat_activity
  WHERE datname IS NOT NULL AND state IS NOT NULL
  GROUP BY datname, state
) a ON a.datname = d.datname AND a.state = s.state`),
		metrics: []*metricDef{
			gauge("pg_stat_activity_count", "count", "number of connections in this state", "datname", "state"),
			gauge("pg_stat_activity_max_tx_duration", "max_tx_duration", "max duration in seconds any active transaction has been running", "datname", "state"),
		},
	},
	{
		name: "locks",
		sql: fixed(`SELECT d.datname, m.mode, COALESCE(l.n, 0) AS count
FROM pg_database d
CROSS JOIN (VALUES ('accesssharelock'), ('rowsharelock'), ('rowexclusivelock'), ('shareupdateexclusivelock'),
                   ('sharelock'), ('sharerowexclusivelock'), ('exclusivelock'), ('accessexclusivelock'),
                   ('sireadlock')) AS m(mode)
LEFT JOIN (
  SELECT database, lower(mode) AS mode, count(*) AS n
  FROM pg_locks
  WHERE database IS NOT NULL
  GROUP BY database, lower(mode)
) l ON l.database = d.oid AND l.mode = m.mode`),
		metrics: []*metricDef{
			gauge("pg_locks_count", "count", "Number of locks", "datname", "mode"),
		},
	},
	{
		// On a primary both values are 0. On a replica the lag is the age of
		// the last replayed transaction, or 0 when everything received has
		// been replayed (an idle primary does not look like lag).
		name: "replication",
		sql: fixed(`SELECT CASE WHEN pg_is_in_recovery() THEN 1 ELSE 0 END AS is_replica,
  CASE
    WHEN NOT pg_is_in_recovery() THEN 0
    WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
    ELSE GREATEST(0, COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0))
  END::float8 AS lag`),
		metrics: []*metricDef{
			gauge("pg_replication_lag", "lag", "Replication lag behind the primary in seconds (0 on a primary)"),
			gauge("pg_replication_is_replica", "is_replica", "Whether the server is a replica (in recovery)"),
		},
	},
	{
		// PostgreSQL 17 moved the checkpoint columns to pg_stat_checkpointer
		// and dropped buffers_backend(_fsync) (now in pg_stat_io).
		name: "bgwriter",
		sql: func(major int) string {
			if major >= 17 {
				return `SELECT c.num_timed AS checkpoints_timed, c.num_requested AS checkpoints_req,
  c.write_time AS checkpoint_write_time, c.sync_time AS checkpoint_sync_time,
  c.buffers_written AS buffers_checkpoint, b.buffers_clean, b.maxwritten_clean, b.buffers_alloc,
  COALESCE(EXTRACT(EPOCH FROM b.stats_reset), 0)::float8 AS stats_reset
FROM pg_stat_bgwriter b, pg_stat_checkpointer c`
			}
			return `SELECT checkpoints_timed, checkpoints_req, checkpoint_write_time, checkpoint_sync_time,
  buffers_checkpoint, buffers_clean, maxwritten_clean, buffers_backend, buffers_backend_fsync, buffers_alloc,
  COALESCE(EXTRACT(EPOCH FROM stats_reset), 0)::float8 AS stats_reset
FROM pg_stat_bgwriter`
		},
		metrics: []*metricDef{
			counter("pg_stat_bgwriter_checkpoints_timed_total", "checkpoints_timed", "Number of scheduled checkpoints that have been performed"),
			counter("pg_stat_bgwriter_checkpoints_req_total", "checkpoints_req", "Number of requested checkpoints that have been performed"),
			counter("pg_stat_bgwriter_checkpoint_write_time_total", "checkpoint_write_time", "Total amount of time that has been spent in the portion of checkpoint processing where files are written to disk, in milliseconds"),
			counter("pg_stat_bgwriter_checkpoint_sync_time_total", "checkpoint_sync_time", "Total amount of time that has been spent in the portion of checkpoint processing where files are synchronized to disk, in milliseconds"),
			counter("pg_stat_bgwriter_buffers_checkpoint_total", "buffers_checkpoint", "Number of buffers written during checkpoints"),
			counter("pg_stat_bgwriter_buffers_clean_total", "buffers_clean", "Number of buffers written by the background writer"),
			counter("pg_stat_bgwriter_maxwritten_clean_total", "maxwritten_clean", "Number of times the background writer stopped a cleaning scan because it had written too many buffers"),
			optional(counter("pg_stat_bgwriter_buffers_backend_total", "buffers_backend", "Number of buffers written directly by a backend (before PostgreSQL 17)")),
			optional(counter("pg_stat_bgwriter_buffers_backend_fsync_total", "buffers_backend_fsync", "Number of times a backend had to execute its own fsync call (before PostgreSQL 17)")),
			counter("pg_stat_bgwriter_buffers_alloc_total", "buffers_alloc", "Number of buffers allocated"),
			counter("pg_stat_bgwriter_stats_reset_total", "stats_reset", "Time at which these statistics were last reset"),
		},
	},
}

func statDatabaseMetrics() []*metricDef {
	ms := []*metricDef{
		gauge("pg_stat_database_numbackends", "numbackends", "Number of backends currently connected to this database"),
	}
	counters := []struct{ col, help string }{
		{"xact_commit", "Number of transactions in this database that have been committed"},
		{"xact_rollback", "Number of transactions in this database that have been rolled back"},
		{"blks_read", "Number of disk blocks read in this database"},
		{"blks_hit", "Number of times disk blocks were found already in the buffer cache"},
		{"tup_returned", "Number of rows returned by queries in this database"},
		{"tup_fetched", "Number of rows fetched by queries in this database"},
		{"tup_inserted", "Number of rows inserted by queries in this database"},
		{"tup_updated", "Number of rows updated by queries in this database"},
		{"tup_deleted", "Number of rows deleted by queries in this database"},
		{"conflicts", "Number of queries canceled due to conflicts with recovery in this database"},
		{"temp_files", "Number of temporary files created by queries in this database"},
		{"temp_bytes", "Total amount of data written to temporary files by queries in this database"},
		{"deadlocks", "Number of deadlocks detected in this database"},
		{"blk_read_time", "Time spent reading data file blocks by backends in this database, in milliseconds"},
		{"blk_write_time", "Time spent writing data file blocks by backends in this database, in milliseconds"},
	}
	for _, c := range counters {
		m := counter("pg_stat_database_"+c.col, c.col, c.help)
		if strings.HasPrefix(c.col, "blk_") {
			m = optional(m) // renamed in newer releases
		}
		ms = append(ms, m)
	}
	// PostgreSQL 14+.
	for _, c := range []struct{ col, help string }{
		{"session_time", "Time spent by database sessions in this database, in milliseconds"},
		{"active_time", "Time spent executing SQL statements in this database, in milliseconds"},
		{"idle_in_transaction_time", "Time spent idling while in a transaction in this database, in milliseconds"},
		{"sessions", "Total number of sessions established to this database"},
		{"sessions_abandoned", "Number of database sessions to this database that were terminated because connection to the client was lost"},
		{"sessions_fatal", "Number of database sessions to this database that were terminated by fatal errors"},
		{"sessions_killed", "Number of database sessions to this database that were terminated by operator intervention"},
	} {
		ms = append(ms, optional(counter("pg_stat_database_"+c.col, c.col, c.help)))
	}
	ms = append(ms, counter("pg_stat_database_stats_reset", "stats_reset_seconds", "Time at which these statistics were last reset (0: never)"))
	for _, m := range ms {
		m.labels = []string{"datid", "datname"}
	}
	return ms
}

func builtinByName(name string) *builtin {
	for _, b := range builtins {
		if b.name == name {
			return b
		}
	}
	return nil
}

func builtinNames() []string {
	out := make([]string, len(builtins))
	for i, b := range builtins {
		out[i] = b.name
	}
	return out
}
