# Unit test of quickstart.hcl (run: sluice test config/examples/quickstart.test.hcl).
# gunicorn's statsd lines go in at statsd_receiver.app; the series the
# gunicorn mapping makes of them must come out at metrics_sink.default.
config = "quickstart.hcl"

step "requests and workers" {
  lines "statsd_receiver.app" {
    lines = [
      "gunicorn.requests:1|c|@1.0",
      "gunicorn.requests:1|c|@1.0",
      "gunicorn.request.status.200:1|c|@1.0",
      "gunicorn.request.status.404:1|c|@1.0",
      "gunicorn.workers:4|g",
    ]
  }
  expect "metrics_sink.default" {
    metrics = <<-EOT
      # TYPE gunicorn_requests_total counter
      gunicorn_requests_total 2
      # TYPE gunicorn_responses_total counter
      gunicorn_responses_total{status="200"} 1
      gunicorn_responses_total{status="404"} 1
      # TYPE gunicorn_workers gauge
      gunicorn_workers 4
    EOT
  }
}

step "request durations in seconds, prefixed app" {
  lines "statsd_receiver.app" {
    lines = [
      "gunicorn.request.duration:12.5|ms",
      "web.gunicorn.requests:3|c",
    ]
  }
  expect "metrics_sink.default" {
    match   = "listed"
    metrics = <<-EOT
      # TYPE gunicorn_request_duration_seconds histogram
      gunicorn_request_duration_seconds_bucket{le="0.005"} 0
      gunicorn_request_duration_seconds_bucket{le="0.01"} 0
      gunicorn_request_duration_seconds_bucket{le="0.025"} 1
      gunicorn_request_duration_seconds_bucket{le="0.05"} 1
      gunicorn_request_duration_seconds_bucket{le="0.1"} 1
      gunicorn_request_duration_seconds_bucket{le="0.25"} 1
      gunicorn_request_duration_seconds_bucket{le="0.5"} 1
      gunicorn_request_duration_seconds_bucket{le="1"} 1
      gunicorn_request_duration_seconds_bucket{le="2.5"} 1
      gunicorn_request_duration_seconds_bucket{le="5"} 1
      gunicorn_request_duration_seconds_bucket{le="10"} 1
      gunicorn_request_duration_seconds_bucket{le="30"} 1
      gunicorn_request_duration_seconds_bucket{le="+Inf"} 1
      gunicorn_request_duration_seconds_sum 0.0125
      gunicorn_request_duration_seconds_count 1
      gunicorn_requests_total{app="web"} 3
      gunicorn_requests_total 2
    EOT
  }
}
