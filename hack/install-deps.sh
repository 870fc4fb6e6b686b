#!/usr/bin/env bash
# Installs what `strata server` needs on a Debian machine, saying what it does.
set -euo pipefail
need=()
for pair in containerd:containerd runc:runc iptables:iptables conntrack:conntrack; do
  bin=${pair%%:*} pkg=${pair##*:}
  command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
done
[ -x /usr/lib/cni/bridge ] || [ -x /opt/cni/bin/bridge ] || need+=(containernetworking-plugins)
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "deps: containerd, runc, CNI plugins, iptables and conntrack are installed"
fi
command -v go >/dev/null 2>&1 || { echo "deps: Go is missing: install Go 1.26 (https://go.dev/dl) and re-run" >&2; exit 1; }
echo "deps: downloading Go modules"
go mod download
(cd "$(dirname "$0")/../test/helmtool" && go mod download)
