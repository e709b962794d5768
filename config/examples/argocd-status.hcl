# Alert when an Argo CD instance's workloads are down.
#
# Run Sluice in the cluster with a service account bound to the Role in
# deploy/kubernetes/role.yaml (namespace argocd): every watch below is
# namespaced. Each metric is 0 Unknown, 1 Pending, 2 Running, 3 Available;
# <metric>_failed is 1 on ProgressDeadlineExceeded / ReplicaFailure.
#
#   alert: ArgoCDDown
#   expr:  argocd_phase < 3
#   for:   10m
kubernetes_status_source "argocd" {
  namespaces = ["argocd"]

  # The eight metrics: argocd_{application_controller,applicationset_controller,
  # repo_server,server,notifications_controller,dex,redis}_status and argocd_phase.
  preset "argocd" { namespace = "argocd" }

  # Every Argo CD workload, one series each: sluice_workload_status{namespace,kind,name}.
  watch "argocd_parts" {
    kinds          = ["Deployment", "StatefulSet"]
    label_selector = "app.kubernetes.io/part-of=argocd"
  }

  # The applications themselves, from their health (needs get/list/watch on
  # applications.argoproj.io added to the Role).
  workload "guestbook" {
    kind          = "argoproj.io/v1alpha1/applications"
    namespace     = "argocd"
    name          = "guestbook"
    metric        = "argocd_app_guestbook_health"
    status_path   = "status.health.status"
    value_map     = { Healthy = 3, Progressing = 1, Suspended = 2, Degraded = 1, Missing = 0, Unknown = 0 }
    failed_values = ["Degraded"]
  }
}

metrics_sink "default" {
  inputs = [kubernetes_status_source.argocd.metrics]
  # Status gauges gain nothing from OpenMetrics (no exemplars, no created
  # timestamps), and in the Prometheus text format every scrape copies the
  # families the source keeps encoded instead of gathering them (Prometheus
  # asks for OpenMetrics first when the sink offers it).
  openmetrics = false
}
