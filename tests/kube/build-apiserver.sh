#!/usr/bin/env bash
# Build (once) and cache a kube-apiserver (or, with an argument, another
# component of the same tree: kube-controller-manager) for the test harness
# in tests/kube/.
#
# Usage: build-apiserver.sh [kube-apiserver|kube-controller-manager]
#
# Source: Debian bookworm's *source* package `kubernetes` (the full upstream tree
# with vendor/), built offline with upstream's make.  The system's apt sources
# are not changed: a private sources list and lists dir live under the cache.
#
# Idempotent: if the cached binary exists and runs, it is printed and nothing
# else happens.  Prints the binary path as the last line of stdout.
#
# Concurrent runs (two checkouts, or kube-apiserver and kube-controller-manager at
# once) share one source tree under the cache, so a build holds a lock (flock on
# $CACHE_ROOT/.build.lock); one that waited re-checks the cache before building.
# The binary is installed by rename, so a reader never sees a partial file.
#
# Env:
#   LABDECK_KUBE_CACHE   cache root (default ~/.cache/labdeck/kube)
#   LABDECK_KUBE_VERSION upstream version expected in the Debian source (default 1.20.2;
#                        bookworm ships 1.20.5+really1.20.2-1.1+deb12u1); also the cache key
set -euo pipefail

UPSTREAM="${LABDECK_KUBE_VERSION:-1.20.2}"
CACHE_ROOT="${LABDECK_KUBE_CACHE:-$HOME/.cache/labdeck/kube}"
OUT_DIR="$CACHE_ROOT/$UPSTREAM"
COMPONENT="${1:-kube-apiserver}"
case "$COMPONENT" in
  kube-apiserver|kube-controller-manager) ;;
  *) echo "build-apiserver: unknown component '$COMPONENT' (kube-apiserver or kube-controller-manager)" >&2; exit 2 ;;
esac
BIN="$OUT_DIR/$COMPONENT"

die() { echo "build-apiserver: $*" >&2; exit 1; }
log() { echo "build-apiserver: $*" >&2; }

if [[ -x "$BIN" ]] && "$BIN" --version >/dev/null 2>&1; then
  log "cached: $("$BIN" --version)"
  echo "$BIN"
  exit 0
fi

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.build.lock"
flock 9
if [[ -x "$BIN" ]] && "$BIN" --version >/dev/null 2>&1; then
  log "cached (built meanwhile): $("$BIN" --version)"
  echo "$BIN"
  exit 0
fi

command -v apt-get >/dev/null || die "apt-get not found: cannot fetch the Debian kubernetes source package (need Debian/Ubuntu), or put a $COMPONENT $UPSTREAM at $BIN"

WORK="$CACHE_ROOT/build-$UPSTREAM"
APT="$WORK/apt"
mkdir -p "$APT/lists/partial" "$APT/sources.list.d" "$OUT_DIR"

# Private apt config: only a deb-src line for bookworm main.
cat >"$APT/sources.list" <<'EOF'
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
EOF
APT_OPTS=(
  -o "Dir::Etc::SourceList=$APT/sources.list"
  -o "Dir::Etc::SourceParts=$APT/sources.list.d"
  -o "Dir::State::Lists=$APT/lists"
  -o "Dir::Cache::archives=$APT/archives"
  -o "APT::Sandbox::User=root"
)
mkdir -p "$APT/archives/partial"

need_tools=()
command -v go >/dev/null || [[ -x /usr/lib/go/bin/go ]] || need_tools+=(golang-go)
command -v rsync >/dev/null || need_tools+=(rsync)
if ((${#need_tools[@]})); then
  [[ $(id -u) == 0 ]] || die "need ${need_tools[*]} installed (run as root or install them)"
  log "installing ${need_tools[*]} with apt-get"
  apt-get update -qq >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_tools[@]}" >&2 \
    || die "apt-get install ${need_tools[*]} failed"
fi
export PATH="/usr/lib/go/bin:$PATH"

cd "$WORK"
if ! ls kubernetes_*.orig.tar.* >/dev/null 2>&1; then
  log "fetching Debian source package kubernetes (bookworm)"
  apt-get "${APT_OPTS[@]}" update -qq >&2 || die "private apt-get update (deb-src) failed"
  apt-get "${APT_OPTS[@]}" source --download-only kubernetes >&2 \
    || die "apt-get source kubernetes failed"
fi
ls kubernetes_*"$UPSTREAM"*.orig.tar.* >/dev/null 2>&1 \
  || die "Debian source is not upstream $UPSTREAM ($(ls kubernetes_*.orig.tar.* 2>/dev/null | tr '\n' ' ')); set LABDECK_KUBE_VERSION"

SRC="$WORK/src"
if [[ ! -f "$SRC/Makefile" ]]; then
  rm -rf "$SRC" && mkdir -p "$SRC"
  orig=$(ls kubernetes_*.orig.tar.* | head -1)
  log "unpacking $orig"
  tar -xf "$orig" -C "$SRC" --strip-components=1
fi
[[ -d "$SRC/vendor" ]] || die "unpacked source has no vendor/ directory: cannot build offline"

log "building $COMPONENT $UPSTREAM (several minutes on first run)"
start=$(date +%s)
(
  cd "$SRC"
  GOPROXY=off GOFLAGS=-mod=vendor CGO_ENABLED=0 KUBE_GIT_VERSION="v$UPSTREAM" \
    make WHAT="cmd/$COMPONENT" >&2
) || die "make WHAT=cmd/$COMPONENT failed (see output above)"
built=$(find "$SRC/_output" -type f -name "$COMPONENT" -perm -u+x | head -1)
[[ -n "$built" ]] || die "build finished but no $COMPONENT binary under $SRC/_output"
install -m 0755 "$built" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
log "built in $(( $(date +%s) - start ))s: $("$BIN" --version)"
echo "$BIN"
