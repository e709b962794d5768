# A delivery team's metrics service: CI jobs push with a token, GitLab job
# webhooks become job duration and retry metrics, and everything survives
# a restart (stored under --storage.path).
#
#   PUSH_TOKEN=... GITLAB_WEBHOOK_TOKEN=... sluice run delivery-metrics.hcl
#   curl -X POST -H "X-Private-Token: $T" -F value=18000 -F "labels=coordinator_pipeline,success" \
#     http://127.0.0.1:2112/api/deployment_duration_seconds/observe
#   curl -X DELETE -H "X-Private-Token: $T" http://127.0.0.1:2112/api/deployment_duration_seconds
#   Prometheus scrapes http://HOST:2112/metrics.

webhook_receiver "delivery" {
  listen = ":2112"

  auth {
    tokens = [env("PUSH_TOKEN")] # add the next token here while rotating
  }

  metric "deployment_duration_seconds" {
    type    = "histogram"
    help    = "Duration of a deployment pipeline."
    labels  = ["pipeline", "status"]
    buckets = [60, 300, 900, 1800, 3600, 7200, 14400, 28800]
  }

  # Every environment x status series exists at 0 from the start, so that
  # increase(deployments_total{status="failed"}[1h]) works before the first
  # failure; DELETE resets the metric to these series at 0.
  #   curl -X POST -H "X-Private-Token: $T" -F "labels=production,success" \
  #     http://127.0.0.1:2112/api/deployments_total/inc
  metric "deployments_total" {
    type   = "counter"
    help   = "Deployments by environment and outcome."
    labels = ["environment", "status"]
    initial_label_values = {
      environment = ["staging", "production"]
      status      = ["success", "failed", "canceled"]
    }
  }

  metric "ci_job_duration_seconds" {
    type       = "histogram"
    help       = "Duration of CI jobs, from GitLab job events."
    labels     = ["project", "stage", "status"]
    buckets    = exponential(10, 2, 10)
    ttl        = "30d"
    max_series = 5000
  }

  metric "ci_job_retries_total" {
    type   = "counter"
    help   = "Retries of finished CI jobs, from GitLab job events."
    labels = ["project", "stage"]
  }

  webhook "gitlab_jobs" {
    kind   = "gitlab"
    secret = env("GITLAB_WEBHOOK_TOKEN")
    rule {
      when = event.object_kind == "build" && event.build_status != "running" && event.build_status != "pending" && event.build_status != "created"
      observe {
        metric = "ci_job_duration_seconds"
        value  = event.build_duration
        labels = { project = event.project_name, stage = event.build_stage, status = event.build_status }
      }
      add {
        metric = "ci_job_retries_total"
        value  = event.retries_count
        labels = { project = event.project_name, stage = event.build_stage }
      }
    }
  }
}
