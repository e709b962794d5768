# Unit test of exec.hcl (sluice test, with exec_source built in): the
# command does not run; each step says what a run printed and how it
# exited, and metrics_sink.exec must serve the result.
config = "exec.hcl"

step "a run prints the probe" {
  output "exec_source.probe" {
    stdout = "# TYPE probe_up gauge\nprobe_up 1\n"
  }
  expect "metrics_sink.exec" {
    metrics = <<-EOT
      # TYPE probe_up gauge
      probe_up 1
    EOT
  }
}

step "a failed run keeps the last values" {
  advance = "30s"
  output "exec_source.probe" {
    stdout    = "probe_up 0\n"
    exit_code = 2
  }
  expect "metrics_sink.exec" {
    metrics = "probe_up 1\n"
  }
}

step "output that is not an exposition keeps them too" {
  advance = "30s"
  output "exec_source.probe" {
    stdout = "probe up\n"
  }
  expect "metrics_sink.exec" {
    metrics = "probe_up 1\n"
  }
}
