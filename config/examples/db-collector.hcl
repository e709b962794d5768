# db-collector: move an aggregate scan off an application's request path.
#
# Before: the app served /api/metrics/db, running this GROUP BY on its
# request-serving pods at every scrape. Now one collector runs it once a
# minute, with a timeout, in a read-only transaction, and every scrape reads
# the latest result. Scrapes never reach the database.
#
#   DATABASE_URL=postgres://metrics:...@db:5432/shop sluice run db-collector.hcl
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

# Served at /metrics/default on the agent's HTTP server.
metrics_sink "default" {
  inputs = [postgres_source.shop.metrics]
}
