#!/usr/bin/env bash
# Builds the real Kubernetes binaries the tests and the playground run, from source through the
# Go module proxy, and caches them by version in the user's cache directory. Builds only what is
# missing. Prints the directory holding the binaries on stdout; progress goes to stderr.
#
# Usage: hack/testbin/ensure.sh [binary ...]   (default: the control-plane binaries)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
kube_version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/kube/go.mod")
etcd_version=$(awk '$1 == "require" && $2 == "go.etcd.io/etcd/server/v3" {print $3}' "$here/etcd/go.mod")
cache_root=${MCSA_TESTBIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-mcsa/testbin}
dir="$cache_root/kube-$kube_version-etcd-$etcd_version"
mkdir -p "$dir"

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(etcd kube-apiserver kube-controller-manager)

minor=${kube_version#v1.}; minor=${minor%%.*}
ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$kube_version \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$kube_version"

for bin in "${want[@]}"; do
  [ -x "$dir/$bin" ] && continue
  start=$(date +%s)
  case "$bin" in
    etcd)
      echo "testbin: building etcd $etcd_version (about a minute cold)..." >&2
      (cd "$here/etcd" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir/.$bin.tmp" go.etcd.io/etcd/server/v3) ;;
    kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|kube-proxy|kubectl)
      echo "testbin: building $bin $kube_version (several minutes cold)..." >&2
      (cd "$here/kube" && CGO_ENABLED=0 go build -trimpath -tags providerless -ldflags "$ldflags" -o "$dir/.$bin.tmp" "k8s.io/kubernetes/cmd/$bin") ;;
    *) echo "testbin: unknown binary $bin" >&2; exit 2 ;;
  esac
  mv "$dir/.$bin.tmp" "$dir/$bin"
  echo "testbin: $bin ready in $(( $(date +%s) - start ))s" >&2
done
echo "$dir"
