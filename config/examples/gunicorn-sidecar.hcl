# Sluice as a sidecar next to a gunicorn/Flask app, in place of a
# statsd_exporter sidecar. gunicorn runs with
#   --statsd-host=localhost:9125 [--statsd-prefix=web] [--dogstatsd-tags=env:prod]
# and Prometheus scrapes the agent's /metrics.

statsd_receiver "gunicorn" {
  listen_udp   = "127.0.0.1:9125"
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

metrics_sink "default" {
  inputs = [statsd_receiver.gunicorn.metrics]
  path   = "/metrics"
}
