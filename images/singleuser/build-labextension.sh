#!/usr/bin/env bash
# Build one of labdeck's prebuilt JupyterLab extensions and install it into a prefix.
#   images/singleuser/build-labextension.sh EXTENSION_DIR PREFIX
#     EXTENSION_DIR: runs/labextension (@labdeck/lab) or data/labextension (@labdeck/data)
#     PREFIX:        .venv (make deps) or /usr/local (the single-user image's labext-stage)
# The build (npm ci + JupyterLab's builder, against the core packages of the JupyterLab this prefix
# runs) is cached under ~/.cache/labdeck/labextension/<name>/<hash of the sources>, outside the
# repository, and only redone when the sources change or the cache is gone.
#
# Several builds at once (two checkouts, two `make` runs) share the cache safely: one lock per
# extension (flock) lets one build at a time; it builds in a private temporary directory and renames
# the result into place, so the cache never holds a half-built entry (an interrupted build leaves
# nothing the next one could mistake for a result), and the one that waited finds the result and
# only installs it. The install into PREFIX is a complete copy beside it, swapped in by rename.
set -euo pipefail
ext="$(cd "${1:?usage: build-labextension.sh EXTENSION_DIR PREFIX}" && pwd)"
prefix="$(cd "${2:?usage: build-labextension.sh EXTENSION_DIR PREFIX}" && pwd)"
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
python="${PYTHON:-$prefix/bin/python}"
name="$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["name"])' "$ext/package.json")"
case "$name" in @labdeck/[a-z]*) ;; *) echo "labdeck: $ext/package.json names '$name', not an @labdeck/ extension" >&2; exit 2 ;; esac
core="$("$python" -c 'import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging"))')"
key="$( (cd "$ext" && cat package.json package-lock.json src/*.js style/*.css; cat "$self" "$core/package.json") | sha256sum | cut -c1-16)"
root="${LABDECK_CACHE:-$HOME/.cache/labdeck}/labextension/${name#@labdeck/}"
cache="$root/$key"
dest="$prefix/share/jupyter/labextensions/$name"
mkdir -p "$root" "$(dirname "$dest")"

tmp=""
cleanup() { if [ -n "$tmp" ]; then rm -rf "$tmp"; fi; }
trap cleanup EXIT

exec 9>"$root/.lock"
flock 9
if [ -f "$cache/package.json" ]; then
  echo "labdeck: $name $key is cached in $cache"
else
  echo "labdeck: building $name $key (npm ci + labextension build)"
  tmp="$(mktemp -d "$root/.build.XXXXXX")"
  mkdir "$tmp/src"
  cp -r "$ext/package.json" "$ext/package-lock.json" "$ext/src" "$ext/style" "$tmp/src/"
  (cd "$tmp/src" && npm ci --no-audit --no-fund --loglevel=error \
    && node node_modules/@jupyterlab/builder/lib/build-labextension.js --core-path "$core" .)
  test -f "$tmp/src/labextension/package.json"
  rm -rf "$cache"  # never a result (no package.json): what an interrupted older build left
  mv -T "$tmp/src/labextension" "$cache"
  rm -rf "$tmp"
  tmp=""
fi

# install: a complete copy beside the destination (same filesystem, a dot name JupyterLab does not
# scan), then swapped in by rename
tmp="$(mktemp -d "$(dirname "$(dirname "$dest")")/.labdeck-ext.XXXXXX")"
cp -r "$cache/." "$tmp/"
chmod 755 "$tmp"
rm -rf "$dest"
mv -T "$tmp" "$dest"
tmp=""
flock -u 9
echo "labdeck: $name installed in $dest"
