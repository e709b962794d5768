# Push statsd metrics and the agent's own metrics to a remote-write receiver
# (Prometheus with --web.enable-remote-write-receiver, Mimir, Thanos Receive,
# Cortex, VictoriaMetrics). Send statsd to :9125; nothing needs to scrape
# this agent.
statsd_receiver "app" {
  listen_udp = ":9125"
}

remote_write "central" {
  inputs          = [statsd_receiver.app.metrics, agent.metrics]
  scrape_interval = "15s"
  external_labels = { cluster = "dev" }
  wal             = true   # unsent samples survive restarts and receiver outages

  endpoint {
    url = "http://localhost:9090/api/v1/write"
  }
}
