#!/usr/bin/env bash
# Build labdeck's prebuilt JupyterLab extension (@labdeck/lab) and install it into a prefix.
#   runs/labextension/build.sh PREFIX     (make deps: .venv; the image: /usr/local)
# The build (npm ci + jupyter labextension build) is cached under ~/.cache/labdeck/labextension/<hash
# of the sources>, outside the repository, and only redone when the sources change or the cache is gone.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
prefix="$(cd "${1:?usage: build.sh PREFIX}" && pwd)"
python="${PYTHON:-$prefix/bin/python}"
# the core packages' versions of the JupyterLab this prefix runs (its staging package.json)
core="$("$python" -c 'import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging"))')"
key="$( (cd "$here" && cat package.json package-lock.json src/*.js style/*.css build.sh; cat "$core/package.json") | sha256sum | cut -c1-16)"
cache="${LABDECK_CACHE:-$HOME/.cache/labdeck}/labextension/$key"
if [ ! -f "$cache/out/package.json" ]; then
  rm -rf "$cache"
  mkdir -p "$cache/src"
  cp -r "$here/package.json" "$here/package-lock.json" "$here/src" "$here/style" "$cache/src/"
  (cd "$cache/src" && npm ci --no-audit --no-fund --loglevel=error \
    && node node_modules/@jupyterlab/builder/lib/build-labextension.js --core-path "$core" .)
  mv "$cache/src/labextension" "$cache/out"
  rm -rf "$cache/src/node_modules"
fi
dest="$prefix/share/jupyter/labextensions/@labdeck/lab"
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
cp -r "$cache/out" "$dest"
echo "labdeck: @labdeck/lab installed in $dest"
