# Unit test of deliveries.hcl (sluice test, with http_json_source built
# in): no request leaves the process; each step gives the response the CI
# API answers a poll with, and metrics_sink.deliveries must serve the
# series the metric blocks make of it.
config = "deliveries.hcl"

env = {
  CI_API_TOKEN = "test-token"
}

step "a poll" {
  response "http_json_source.deliveries" {
    body = <<-EOT
      {
        "pipelines": [
          {"project": "api", "status": "success", "duration": 312},
          {"project": "web", "status": "failed", "duration": 95},
          {"project": "web", "status": "running", "duration": 10}
        ],
        "projects": {"api": {"finished": 120}, "web": {"finished": 87}},
        "queue": {"name": "default", "length": 3}
      }
    EOT
  }
  expect "metrics_sink.deliveries" {
    metrics = <<-EOT
      # TYPE ci_pipeline_duration_seconds gauge
      ci_pipeline_duration_seconds{project="api",status="success"} 312
      ci_pipeline_duration_seconds{project="web",status="failed"} 95
      # TYPE ci_pipelines gauge
      ci_pipelines{project="api",status="success"} 1
      ci_pipelines{project="web",status="failed"} 1
      ci_pipelines{project="web",status="running"} 1
      # TYPE ci_pipelines_finished_total counter
      ci_pipelines_finished_total{project="api"} 120
      ci_pipelines_finished_total{project="web"} 87
      # TYPE ci_queue_length gauge
      ci_queue_length{queue="default"} 3
    EOT
  }
}

step "an error response keeps the last values" {
  advance = "60s"
  response "http_json_source.deliveries" {
    status = 503
    body   = "{}"
  }
  expect "metrics_sink.deliveries" {
    match   = "listed"
    metrics = "ci_queue_length{queue=\"default\"} 3\n"
  }
}
