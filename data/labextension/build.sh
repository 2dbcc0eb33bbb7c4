#!/usr/bin/env bash
# Build labdeck's prebuilt JupyterLab extension @labdeck/data (S3 drive, BigQuery panel) and install it.
#   data/labextension/build.sh PREFIX     (make deps: .venv; the image: /usr/local)
# Like runs/labextension/build.sh: the build (npm ci + jupyter labextension build) is cached under
# ~/.cache/labdeck/labextension-data/<hash of the sources>, outside the repository. Atomic: the build
# happens in a temporary directory renamed into the cache only when complete, and the install is a
# copy next to the destination renamed into place, so an interrupted or concurrent run never leaves
# a half-built cache entry or a half-installed extension.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
prefix="$(cd "${1:?usage: build.sh PREFIX}" && pwd)"
python="${PYTHON:-$prefix/bin/python}"
core="$("$python" -c 'import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging"))')"
key="$( (cd "$here" && cat package.json package-lock.json src/*.js style/*.css build.sh; cat "$core/package.json") | sha256sum | cut -c1-16)"
root="${LABDECK_CACHE:-$HOME/.cache/labdeck}/labextension-data"
cache="$root/$key"
if [ ! -f "$cache/out/package.json" ]; then
  mkdir -p "$root"
  work="$(mktemp -d "$root/.build-XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/src"
  cp -r "$here/package.json" "$here/package-lock.json" "$here/src" "$here/style" "$work/src/"
  (cd "$work/src" && npm ci --no-audit --no-fund --loglevel=error \
    && node node_modules/@jupyterlab/builder/lib/build-labextension.js --core-path "$core" .)
  mkdir -p "$work/entry"
  mv "$work/src/labextension" "$work/entry/out"
  # another run may have finished the same key meanwhile: keep the first, both are identical
  mv -T "$work/entry" "$cache" 2>/dev/null || [ -f "$cache/out/package.json" ]
fi
dest="$prefix/share/jupyter/labextensions/@labdeck/data"
mkdir -p "$(dirname "$dest")"
tmp="$(mktemp -d "$(dirname "$dest")/.data-XXXXXX")"
cp -r "$cache/out/." "$tmp/"
chmod 755 "$tmp"
rm -rf "$dest.old"
if [ -e "$dest" ]; then mv -T "$dest" "$dest.old"; fi
mv -T "$tmp" "$dest"
rm -rf "$dest.old"
echo "labdeck: @labdeck/data installed in $dest"
