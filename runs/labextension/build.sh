#!/usr/bin/env bash
# Build labdeck's prebuilt JupyterLab extension (@labdeck/lab) and install it into a prefix.
#   runs/labextension/build.sh PREFIX     (make deps: .venv; the image: /usr/local)
# The build (npm ci + jupyter labextension build) is cached under ~/.cache/labdeck/labextension/<hash
# of the sources>, outside the repository, and only redone when the sources change or the cache is gone.
#
# Several builds at once (two checkouts, two `make` runs) share the cache safely: one lock
# (flock on labextension/.lock) lets one build at a time; it builds in a private temporary
# directory and renames the result into place, so the cache never holds a half-built entry
# (an interrupted build leaves nothing the next one could mistake for a result), and the one
# that waited finds the result and only installs it. The install into PREFIX is a rename too.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
prefix="$(cd "${1:?usage: build.sh PREFIX}" && pwd)"
python="${PYTHON:-$prefix/bin/python}"
# the core packages' versions of the JupyterLab this prefix runs (its staging package.json)
core="$("$python" -c 'import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging"))')"
key="$( (cd "$here" && cat package.json package-lock.json src/*.js style/*.css build.sh; cat "$core/package.json") | sha256sum | cut -c1-16)"
root="${LABDECK_CACHE:-$HOME/.cache/labdeck}/labextension"
cache="$root/$key"
dest="$prefix/share/jupyter/labextensions/@labdeck/lab"
mkdir -p "$root" "$(dirname "$dest")"

tmp=""
cleanup() { if [ -n "$tmp" ]; then rm -rf "$tmp"; fi; }
trap cleanup EXIT

exec 9>"$root/.lock"
flock 9
if [ -f "$cache/package.json" ]; then
  echo "labdeck: @labdeck/lab $key is cached in $cache"
else
  echo "labdeck: building @labdeck/lab $key (npm ci + labextension build)"
  tmp="$(mktemp -d "$root/.build.XXXXXX")"
  mkdir "$tmp/src"
  cp -r "$here/package.json" "$here/package-lock.json" "$here/src" "$here/style" "$tmp/src/"
  (cd "$tmp/src" && npm ci --no-audit --no-fund --loglevel=error \
    && node node_modules/@jupyterlab/builder/lib/build-labextension.js --core-path "$core" .)
  test -f "$tmp/src/labextension/package.json"
  rm -rf "$cache"  # never a result (no package.json): what an older, non-atomic build left
  mv -T "$tmp/src/labextension" "$cache"
  rm -rf "$tmp"
  tmp=""
fi
# install: a complete copy beside the destination (same filesystem, a name JupyterLab does not
# scan), then swapped in by rename
tmp="$(mktemp -d "$(dirname "$(dirname "$dest")")/.labdeck-lab.XXXXXX")"
cp -r "$cache/." "$tmp/"
chmod 755 "$tmp"
rm -rf "$dest"
mv -T "$tmp" "$dest"
tmp=""
flock -u 9
echo "labdeck: @labdeck/lab installed in $dest"
