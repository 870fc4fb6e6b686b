#!/usr/bin/env bash
# Installs what `strata server` needs on a Debian machine, saying what it does.
set -euo pipefail
need=()
# containerd itself is built from source by `make build` (third_party/containerd).
for pair in runc:runc iptables:iptables conntrack:conntrack; do
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
  echo "deps: runc, CNI plugins, iptables and conntrack are installed"
fi
# criu, for container checkpoints (strata checkpoint).
"$(dirname "$0")/install-criu.sh"
command -v go >/dev/null 2>&1 || { echo "deps: Go is missing: install Go 1.26 (https://go.dev/dl) and re-run" >&2; exit 1; }
echo "deps: downloading Go modules"
go mod download
for m in third_party/containerd test/helmtool test/cosigntool; do (cd "$(dirname "$0")/../$m" && go mod download); done
