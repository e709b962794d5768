# Quickstart: receive statsd on :9125 (UDP and TCP), map gunicorn's metrics
# with statsd_exporter's mapping format, drop debug series, and serve
# everything with the agent's own metrics at
# http://localhost:9470/metrics/default
#
#   make run
#   echo "gunicorn.requests:1|c" > /dev/udp/127.0.0.1/9125
#   curl -s localhost:9470/metrics/default

statsd_receiver "app" {
  listen_udp   = "127.0.0.1:9125"
  listen_tcp   = "127.0.0.1:9125"
  mapping_file = "gunicorn-mapping.yml"
}

relabel "app" {
  input = statsd_receiver.app.metrics

  rule {
    action        = "drop"
    source_labels = ["__name__"]
    regex         = "debug_.*"
  }
}

metrics_sink "default" {
  inputs = [relabel.app.metrics, agent.metrics]
}
