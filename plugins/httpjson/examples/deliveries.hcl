// http_json_source scraping a CI API's pipelines (delivery metrics), served
// on /metrics/deliveries. Run with CI_API_TOKEN set.
http_json_source "deliveries" {
  url       = "https://ci.example.com/api/v1/pipelines?per_page=100"
  interval  = "60s"
  timeout   = "15s"
  max_pages = 5
  headers = {
    Authorization = "Bearer ${env("CI_API_TOKEN")}"
  }

  metric "ci_pipeline_duration_seconds" {
    type   = "gauge"
    help   = "Duration of the latest pipelines, by project and status."
    series = [for p in body.pipelines : { value = p.duration, labels = { project = p.project, status = p.status } } if p.status != "running"]
  }

  # Totals over every page of the poll, not only the first 100 pipelines.
  metric "ci_pipelines" {
    help      = "Latest pipelines by project and status, over every page."
    aggregate = "count"
    series    = [for p in body.pipelines : { labels = { project = p.project, status = p.status } }]
  }

  metric "ci_pipelines_finished_total" {
    type   = "counter"
    help   = "Pipelines finished since the CI server started, by project."
    series = [for name, proj in body.projects : { value = proj.finished, labels = { project = name } }]
  }

  metric "ci_queue_length" {
    help   = "Jobs waiting for a runner."
    value  = try(body.queue.length, 0)
    labels = { queue = body.queue.name }
  }
}

metrics_sink "deliveries" {
  inputs = [http_json_source.deliveries.metrics]
  path   = "/metrics/deliveries"
}
