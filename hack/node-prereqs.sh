#!/usr/bin/env bash
# Installs what a real Kubernetes node needs on this machine, from Debian's packages: containerd
# (with ctr and containerd-shim-runc-v2), runc, the CNI plugins (bridge, host-local, portmap,
# loopback in /usr/lib/cni), iptables (kube-proxy and the portmap plugin), conntrack (kube-proxy
# flushes stale UDP entries with it) and iproute2 (network namespaces). Idempotent: exits at once
# when everything is there. Needs root; the node tests skip (or, with CI=true, fail) without it.
#
# Debian's containerd is not started here, nor enabled: the tests run their own containerd with a
# private root, state and socket, so the package's service would only change the host.
set -euo pipefail

packages=(containerd runc containernetworking-plugins iptables conntrack iproute2)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "node-prereqs: missing ${missing[*]}; run as root: sudo $0" >&2
  exit 1
fi
echo "node-prereqs: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps the packages' init scripts from starting a host containerd during the install.
policy=/usr/sbin/policy-rc.d
created_policy=false
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  created_policy=true
fi
trap '$created_policy && rm -f "$policy"' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
