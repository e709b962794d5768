// exec_source running a probe script every 30 seconds, served on
// /metrics/exec. The command runs directly (no shell) with only the
// environment given here.
exec_source "probe" {
  command          = ["/bin/echo", "probe_up 1"]
  interval         = "30s"
  timeout          = "5s"
  max_output_bytes = 1048576
  env = {
    PATH = "/usr/bin:/bin"
  }
}

metrics_sink "exec" {
  inputs = [exec_source.probe.metrics]
  path   = "/metrics/exec"
}
