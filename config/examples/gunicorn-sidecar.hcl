# Sluice as a sidecar next to a gunicorn/Flask app, in place of a
# statsd_exporter sidecar. gunicorn runs with
#   --statsd-host=localhost:9125 [--statsd-prefix=web] [--dogstatsd-tags=env:prod]
# and Prometheus scrapes :9102/metrics, as it scraped statsd_exporter.

statsd_receiver "gunicorn" {
  listen_udp = "127.0.0.1:9125"
  # The mapping file a statsd_exporter sidecar used works as it is.
  mapping_file = "gunicorn-mapping.yml"

  # Application metrics the Flask app sends besides gunicorn's, mapped inline.
  mapping {
    match  = "flask.view.*.duration"
    name   = "flask_view_duration_seconds"
    labels = { view = "$1" }
    help   = "Time spent in a Flask view."
  }
  # Debug metrics (debug.anything.at.any.depth) are not worth a series.
  mapping {
    match      = "^debug\\."
    match_type = "regex"
    action     = "drop"
  }

  max_series = 10000
}

# Served where statsd_exporter served them (:9102/metrics), so the existing
# scrape configuration keeps working; the agent's own metrics (including the
# receiver's statsd_exporter_* self-metrics) come along.
metrics_sink "default" {
  inputs = [statsd_receiver.gunicorn.metrics, agent.metrics]
  listen = ":9102"
  # The Prometheus text format only, as statsd_exporter serves it: the same
  # page for dashboards and alerts, and every scrape copies the text the
  # receiver encodes from its store (Prometheus asks for OpenMetrics first).
  openmetrics = false
}
