#!/usr/bin/env bash
# Builds kube-apiserver once into a cache directory outside the repository,
# keyed by version, for internal/testing/kubetest (the kubernetes_status_source tests
# run against a real API server). Also installs Debian's etcd-server.
#
# kube-apiserver is built from the Go module proxy as a tiny main module that
# requires k8s.io/kubernetes and replaces every staging module k8s.io/kubernetes
# itself replaces (read from its go.mod) with the published v0.x.y release.
# sample-cli-plugin and sample-controller are not served by the proxy and not
# needed by the API server: they are left out.
#
# Idempotent: does nothing when the binary exists. A clean build takes about
# 7 minutes on 2 CPUs and ~4 GB of Go build cache.
# Prints the binary's path on stdout.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
cache=${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}
dir="$cache/kube-apiserver-$KUBE_VERSION"
bin="$dir/kube-apiserver"

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
if ! command -v etcd >/dev/null 2>&1 && [ ! -x /usr/bin/etcd ]; then
  echo "ensure-kube-apiserver: installing etcd-server (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Other set-up scripts may hold the dpkg lock: wait for it.
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
  $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends etcd-server >/dev/null
  # On a systemd machine the package starts an etcd on :2379; the tests run
  # their own on free ports.
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    $sudo systemctl disable --now etcd >/dev/null 2>&1 || true
  fi
fi

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

GO=${GO:-go}
major=${KUBE_VERSION#v}; major=${major%%.*}
minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
patch=${KUBE_VERSION##*.}
staging="v0.$minor.$patch"

echo "ensure-kube-apiserver: building kube-apiserver $KUBE_VERSION into $dir (several minutes, once)" >&2
mkdir -p "$dir"
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-kube-apiserver.XXXXXX")
trap 'rm -rf "$work"' EXIT

kmod=$(cd "$work" && GOFLAGS=-mod=mod "$GO" mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
[ -f "$kmod" ] || { echo "ensure-kube-apiserver: cannot download k8s.io/kubernetes@$KUBE_VERSION" >&2; exit 1; }

{
  echo "module sluice.local/kube-apiserver"
  echo
  echo "go 1.26"
  echo
  echo "require k8s.io/kubernetes $KUBE_VERSION"
  echo
  echo "replace ("
  grep -E '^[[:space:]]*k8s.io/[a-z0-9-]+ => \./staging/' "$kmod" | awk '{print $1}' |
    grep -v -E '^k8s.io/(sample-cli-plugin|sample-controller)$' |
    while read -r m; do echo "	$m => $m $staging"; done
  echo ")"
} > "$work/go.mod"

cat > "$work/main.go" <<'GO'
// Command kube-apiserver is the upstream API server, built from the module
// proxy for Sluice's tests.
package main

import (
	"os"

	_ "k8s.io/component-base/logs/json/register"
	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
GO

ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
done

(
  cd "$work"
  export GOFLAGS=-mod=mod GOWORK=off
  "$GO" mod tidy >&2
  "$GO" build -trimpath -ldflags "$ldflags" -o "$bin.tmp" . >&2
)
mv "$bin.tmp" "$bin"
echo "$bin"
