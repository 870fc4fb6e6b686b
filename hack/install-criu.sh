#!/usr/bin/env bash
# Builds criu 4.1.1 from Debian's source and installs it as /usr/local/sbin/criu.
#
# Why: containerd's CRI checkpoint (the kubelet checkpoint API) needs a working
# criu >= 3.16 in PATH. Debian 12's criu 3.17.1 cannot even start on newer
# kernels ("vdso: Unexpected rt vDSO area bounds ... Could not initialize kernel
# features detection"), and trixie's criu 4.1.1 .deb needs glibc >= 2.38, which
# bookworm lacks. So we build trixie's upstream tarball against bookworm's libs.
# /usr/local/sbin comes before /usr/sbin in the default PATH, so this binary
# shadows a Debian criu that may also be installed.
set -euo pipefail

VERSION=4.1.1
TARBALL=criu_${VERSION}.orig.tar.xz
SHA256=f80a66cb3726bb2116266d4759ce3bcbfab7abdb6b6d430bf20dd41911717afe
URL=http://deb.debian.org/debian/pool/main/c/criu/$TARBALL
BIN=/usr/local/sbin/criu
CACHE=/var/cache/strata-criu # keeps the tarball and build tree: reruns are fast

# Nothing to do when a working criu 4.x is already installed.
if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q '^Version: 4\.' \
  && "$BIN" check >/dev/null 2>&1; then
  echo "deps: criu $("$BIN" --version | sed -n 's/^Version: //p') at $BIN works"
  exit 0
fi

# Build dependencies, all from bookworm. The criu binary links only the runtime
# libraries these pull in (protobuf-c, libnl-3, libnet, uuid, libbsd, nftables).
# libprotobuf-dev is needed only for descriptor.proto (criu symlinks to it),
# libcap-dev only for <sys/capability.h>. No docs, so no asciidoc/xmlto.
pkgs=(gcc make pkg-config curl xz-utils ca-certificates
  libprotobuf-dev libprotobuf-c-dev protobuf-c-compiler
  libnl-3-dev libnet1-dev libcap-dev libbsd-dev uuid-dev libnftables-dev)
need=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing criu build dependencies: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Download (once) and verify the upstream source as shipped by Debian trixie.
# Debian's own patches (criu_4.1.1-1.debian.tar.xz) are not needed to build.
mkdir -p "$CACHE"
if ! echo "$SHA256  $CACHE/$TARBALL" | sha256sum -c --status 2>/dev/null; then
  echo "deps: downloading $URL"
  curl -fsSL -o "$CACHE/$TARBALL.tmp" "$URL"
  echo "$SHA256  $CACHE/$TARBALL.tmp" | sha256sum -c --status \
    || { echo "deps: $TARBALL: sha256 mismatch" >&2; rm -f "$CACHE/$TARBALL.tmp"; exit 1; }
  mv "$CACHE/$TARBALL.tmp" "$CACHE/$TARBALL"
  rm -rf "$CACHE/criu-$VERSION"
fi
[ -d "$CACHE/criu-$VERSION" ] || tar -C "$CACHE" -xJf "$CACHE/$TARBALL"

# Only the criu binary (not lib/crit/plugins, which need more deps).
# NO_GNUTLS: TLS for page-server is not used; keeps the build the same
# whether or not libgnutls28-dev happens to be installed.
echo "deps: building criu $VERSION in $CACHE/criu-$VERSION (about a minute)"
make -C "$CACHE/criu-$VERSION" -j"$(nproc)" NO_GNUTLS=1 criu >"$CACHE/build.log" 2>&1 \
  || { tail -n 30 "$CACHE/build.log" >&2; echo "deps: criu build failed, log: $CACHE/build.log" >&2; exit 1; }
install -D -m755 "$CACHE/criu-$VERSION/criu/criu" "$BIN"
echo "deps: installed $BIN ($("$BIN" --version | sed -n 's/^Version: //p'))"

# criu check probes the kernel the way dump/restore will; fail loudly if not.
if ! out=$("$BIN" check 2>&1); then
  echo "$out" >&2
  echo "deps: '$BIN check' failed: this kernel cannot checkpoint/restore with criu" >&2
  exit 1
fi
echo "deps: criu check: $out"
