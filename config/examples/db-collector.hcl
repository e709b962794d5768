# db-collector: move an aggregate scan off an application's request path.
#
# Before: the app served /api/metrics/db, running this GROUP BY on its
# request-serving pods at every scrape. Now one collector runs it once a
# minute, with a timeout, in a read-only transaction, and every scrape reads
# the latest result. Scrapes never reach the database.
#
# The cache between the source and the sink makes the collector "overlap,
# never gap": scrapes read the cache's snapshot; when the database is down
# the last values stay (up to max_staleness) instead of vanishing; and the
# snapshot is persisted under --storage.path, so a restarted collector
# (rolling update, node drain) serves the last values at its first scrape.
# Put --storage.path on a volume that outlives the pod (a PersistentVolume
# or a hostPath), or the restart starts empty. Cut-over order, in
# components/cache/README.md: this collector live and verified first, then
# the application's endpoint switched off.
#
#   DATABASE_URL=postgres://metrics:...@db:5432/shop sluice run --storage.path=/var/lib/sluice db-collector.hcl
#   curl -s localhost:9470/metrics/default

postgres_source "shop" {
  dsn              = env("DATABASE_URL", "postgres://sluice@localhost:5432/shop?sslmode=disable")
  application_name = "sluice-db-collector"
  max_conns        = 2
  default_interval = "30s"
  default_timeout  = "10s"

  # postgres_exporter's common metrics, under the same names.
  collectors = ["database", "stat_database", "stat_activity", "locks", "replication", "bgwriter"]

  # The aggregate the application used to compute per request.
  query "orders_by_status" {
    sql      = <<-SQL
      SELECT status,
             count(*)                                 AS orders,
             COALESCE(sum(amount_cents), 0) / 100.0   AS amount,
             COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0) AS oldest_age_seconds
      FROM shop_orders
      GROUP BY status
    SQL
    interval = "60s"
    timeout  = "15s"

    metric "shop_orders" {
      type   = "gauge"
      help   = "Orders by status."
      value  = "orders"
      labels = ["status"]
    }
    metric "shop_orders_amount" {
      type   = "gauge"
      help   = "Total amount of the orders in each status, in currency units."
      value  = "amount"
      labels = ["status"]
    }
    metric "shop_orders_oldest_age_seconds" {
      type   = "gauge"
      help   = "Age of the oldest order in each status."
      value  = "oldest_age_seconds"
      labels = ["status"]
    }
  }
}

# Scrapes never wait for the database and never see a gap: the last good
# values survive an outage (pg_up goes to 0, the rest is kept and counted in
# sluice_cache_stale_series) and a restart (persist).
cache "shop" {
  input            = postgres_source.shop.metrics
  refresh_interval = "15s"
  max_staleness    = "10m" # a series gone from the database disappears after this
  persist          = true  # written to --storage.path/cache.shop/, read back at start
}

# Served at /metrics/default on the agent's HTTP server.
metrics_sink "default" {
  inputs = [cache.shop.metrics]
}
