#!/usr/bin/env bash
# Installs what `make test` needs beyond Go modules, when it is missing:
# - a PostgreSQL server: the postgres_source tests start a throwaway one;
# - gunicorn: the statsd_receiver test drives a real gunicorn;
# - prometheus: cmd/sluice's TestRealPrometheus has a real Prometheus server
#   (Debian's package, 2.42) scrape the agent;
# - chromium: the status UI's browser tests (cmd/sluice) drive a headless
#   Debian chromium with chromedp.
# - etcd and a kube-apiserver built once into ~/.cache/sluice (keyed by
#   version): the kubernetes_status_source tests run a real API server
#   (scripts/ensure-kube-apiserver.sh; several minutes the first time).
# - the prometheus-operator module in the Go module cache: its CRD YAML is
#   installed on that API server so deploy/helm/test can dry-run the
#   ServiceMonitor, PodMonitor and PrometheusRule objects we ship (the
#   version is deploy/helm/test/dryrun_test.go's crdModule).
# Idempotent and quiet when everything is present (Debian/Ubuntu, apt-get).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/ensure-postgres.sh"
bash "$here/ensure-kube-apiserver.sh" >/dev/null
crd_module=$(sed -n 's/^const crdModule = "\(.*\)"$/\1/p' "$here/../deploy/helm/test/dryrun_test.go")
[ -n "$crd_module" ] || { echo "ensure-deps: crdModule not found in deploy/helm/test/dryrun_test.go" >&2; exit 1; }
(cd "$here/../deploy/helm/test" && go mod download "$crd_module")

sudo=""
updated=""
# apt_install PACKAGE: installs PACKAGE with apt-get (no recommends, quietly).
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "ensure-deps: need root (or sudo) to apt-get install $1" >&2; exit 1; }
    sudo=sudo
  fi
  echo "ensure-deps: installing $1 (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "$updated" ]; then
    $sudo apt-get update -qq >/dev/null
    updated=1
  fi
  $sudo apt-get install -y -qq --no-install-recommends "$1" >/dev/null
}

if ! command -v gunicorn >/dev/null 2>&1; then
  apt_install gunicorn
fi

if ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium
fi

if ! command -v prometheus >/dev/null 2>&1; then
  apt_install prometheus
  # On a systemd machine the package starts and enables a Prometheus server
  # on :9090. The test runs its own on a free port: stop and disable the one
  # installed here, so `make test` leaves no server behind.
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

# Debian's prometheus-postgres-exporter: the differential test of `sluice
# convert postgres_exporter` (cmd/sluice TestConvertedPostgresExporterMatchesReal)
# runs it and the converted Sluice against the same PostgreSQL.
if [ ! -x /usr/bin/prometheus-postgres-exporter ]; then
  apt_install prometheus-postgres-exporter
  # The package enables a service; the test runs its own instance.
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    $sudo systemctl disable --now prometheus-postgres-exporter >/dev/null 2>&1 || true
  fi
fi

# statsd_exporter, built once into ~/.cache/sluice keyed by version: the
# differential test of `sluice convert statsd_exporter` (cmd/sluice
# TestConvertedStatsdExporterMatchesReal) sends the same lines to it and to
# the converted Sluice. The version is convert/statsdexporter's Version.
statsd_version=$(sed -n 's/^const Version = "\(.*\)"$/\1/p' "$here/../convert/statsdexporter/convert.go")
[ -n "$statsd_version" ] || { echo "ensure-deps: Version not found in convert/statsdexporter/convert.go" >&2; exit 1; }
statsd_dir="${XDG_CACHE_HOME:-$HOME/.cache}/sluice/statsd_exporter-$statsd_version"
if [ ! -x "$statsd_dir/statsd_exporter" ]; then
  echo "ensure-deps: installing statsd_exporter $statsd_version into $statsd_dir (go install)" >&2
  mkdir -p "$statsd_dir"
  # Outside the module, so that its own go.mod picks the dependencies.
  (cd / && GOBIN="$statsd_dir" GOFLAGS=-mod=mod go install "github.com/prometheus/statsd_exporter@$statsd_version")
fi

# kube-state-metrics, built once into ~/.cache/sluice keyed by version: the
# side-by-side bench of kubernetes_status_source (bench/kubestate, `make
# bench-kubestate`) runs it against the same kube-apiserver. Keep the
# version in step with bench/kubestate's -kube-state-metrics default.
ksm_version=v2.20.0
ksm_dir="${XDG_CACHE_HOME:-$HOME/.cache}/sluice/kube-state-metrics-$ksm_version"
if [ ! -x "$ksm_dir/kube-state-metrics" ]; then
  echo "ensure-deps: installing kube-state-metrics $ksm_version into $ksm_dir (go install)" >&2
  mkdir -p "$ksm_dir"
  (cd / && GOBIN="$ksm_dir" GOFLAGS=-mod=mod go install "k8s.io/kube-state-metrics/v2@$ksm_version")
fi
