# Unit test of delivery-metrics.hcl (run: sluice test config/examples/delivery-metrics.test.hcl).
# A CI job pushes a deployment duration, GitLab posts a job event, and the
# receiver's own /metrics must show both; the job durations' TTL of 30d then
# expires them on the fake clock, while the series without a TTL stay.
config = "delivery-metrics.hcl"

# env() in the config under test sees only these variables.
env = {
  PUSH_TOKEN           = "push-secret"
  GITLAB_WEBHOOK_TOKEN = "gitlab-secret"
}

step "a push without the token is refused" {
  request "webhook_receiver.delivery" {
    path    = "/api/deployment_duration_seconds/observe"
    body    = "value=18000&labels=coordinator_pipeline,success"
    headers = { "Content-Type" = "application/x-www-form-urlencoded" }
    status  = 401
  }
  # exact: nothing was pushed; deployments_total's initial_label_values
  # exist at 0 from the start.
  expect "webhook_receiver.delivery" {
    metrics = <<-EOT
      # TYPE deployments_total counter
      deployments_total{environment="production",status="canceled"} 0
      deployments_total{environment="production",status="failed"} 0
      deployments_total{environment="production",status="success"} 0
      deployments_total{environment="staging",status="canceled"} 0
      deployments_total{environment="staging",status="failed"} 0
      deployments_total{environment="staging",status="success"} 0
    EOT
  }
}

step "a deployment push and a GitLab job event" {
  request "webhook_receiver.delivery" {
    method = "POST"
    path   = "/api/deployment_duration_seconds/observe"
    headers = {
      "X-Private-Token" = "push-secret"
      "Content-Type"    = "application/x-www-form-urlencoded"
    }
    body = "value=18000&labels=coordinator_pipeline,success"
  }
  request "webhook_receiver.delivery" {
    path = "/hooks/gitlab_jobs"
    headers = {
      "X-Gitlab-Token" = "gitlab-secret"
      "X-Gitlab-Event" = "Job Hook"
      "Content-Type"   = "application/json"
    }
    body = <<-EOT
      {"object_kind": "build", "build_status": "success", "build_stage": "test",
       "build_duration": 94.311, "retries_count": 2, "project_name": "gitlab-org/gitlab-test"}
    EOT
  }
  expect "webhook_receiver.delivery" {
    match   = "listed"
    metrics = <<-EOT
      # TYPE deployment_duration_seconds histogram
      deployment_duration_seconds_bucket{pipeline="coordinator_pipeline",status="success",le="14400"} 0
      deployment_duration_seconds_bucket{pipeline="coordinator_pipeline",status="success",le="28800"} 1
      deployment_duration_seconds_sum{pipeline="coordinator_pipeline",status="success"} 18000
      deployment_duration_seconds_count{pipeline="coordinator_pipeline",status="success"} 1
      # TYPE ci_job_duration_seconds histogram
      ci_job_duration_seconds_bucket{project="gitlab-org/gitlab-test",stage="test",status="success",le="80"} 0
      ci_job_duration_seconds_bucket{project="gitlab-org/gitlab-test",stage="test",status="success",le="160"} 1
      ci_job_duration_seconds_sum{project="gitlab-org/gitlab-test",stage="test",status="success"} 94.311
      ci_job_duration_seconds_count{project="gitlab-org/gitlab-test",stage="test",status="success"} 1
      # TYPE ci_job_retries_total counter
      ci_job_retries_total{project="gitlab-org/gitlab-test",stage="test"} 2
      # TYPE deployments_total counter
      deployments_total{environment="production",status="canceled"} 0
      deployments_total{environment="production",status="failed"} 0
      deployments_total{environment="production",status="success"} 0
      deployments_total{environment="staging",status="canceled"} 0
      deployments_total{environment="staging",status="failed"} 0
      deployments_total{environment="staging",status="success"} 0
    EOT
  }
}

step "job series expire after their 30d TTL" {
  advance = "31d"
  # exact: the job durations (ttl = "30d") are gone; the deployment
  # durations, the retries counter and the pre-created deployments_total
  # series have no TTL and stay.
  expect "webhook_receiver.delivery" {
    metrics = <<-EOT
      # TYPE deployment_duration_seconds histogram
      deployment_duration_seconds_bucket{pipeline="coordinator_pipeline",status="success",le="60"} 0
      deployment_duration_seconds_bucket{pipeline="coordinator_pipeline",status="success",le="300"} 0
      deployment_duration_seconds_bucket{pipeline="coordinator_pipeline",status="success",le="900"} 0
      deployment_duration_seconds_bucket{pipeline="coordinator_pipeline",status="success",le="1800"} 0
      deployment_duration_seconds_bucket{pipeline="coordinator_pipeline",status="success",le="3600"} 0
      deployment_duration_seconds_bucket{pipeline="coordinator_pipeline",status="success",le="7200"} 0
      deployment_duration_seconds_bucket{pipeline="coordinator_pipeline",status="success",le="14400"} 0
      deployment_duration_seconds_bucket{pipeline="coordinator_pipeline",status="success",le="28800"} 1
      deployment_duration_seconds_bucket{pipeline="coordinator_pipeline",status="success",le="+Inf"} 1
      deployment_duration_seconds_sum{pipeline="coordinator_pipeline",status="success"} 18000
      deployment_duration_seconds_count{pipeline="coordinator_pipeline",status="success"} 1
      # TYPE ci_job_retries_total counter
      ci_job_retries_total{project="gitlab-org/gitlab-test",stage="test"} 2
      # TYPE deployments_total counter
      deployments_total{environment="production",status="canceled"} 0
      deployments_total{environment="production",status="failed"} 0
      deployments_total{environment="production",status="success"} 0
      deployments_total{environment="staging",status="canceled"} 0
      deployments_total{environment="staging",status="failed"} 0
      deployments_total{environment="staging",status="success"} 0
    EOT
  }
}
