"""The run driver: executes one notebook with papermill *inside the user's server*.

The scheduler service runs :func:`run_and_report` through a kernel of the
run's named server, so everything happens as the user: the home is the
user's, and S3 access uses the server's own credentials (``AWS_CONFIG_FILE``
→ broker). Steps:

1. resolve the notebook under the home (refusing anything that escapes it)
   — or, for a run with ``staged_input``, download that snapshot from the
   owner's S3 home (jupyter-scheduler jobs: a run's server may have a home of
   its own) — and hash it (sha256); the input is only ever read;
2. run ``python -m papermill`` in its own process group with the parameters
   (papermill injects them as a cell tagged ``injected-parameters`` after the
   cell tagged ``parameters``) and a deadline; on timeout the whole group is
   killed and the notebook as saved so far is kept;
3. add ``metadata.labdeck`` (run id, parameters, times, status, input hash,
   profile) and upload the output notebook and a JSON record to new keys
   (``IfNoneMatch: *``: an existing output is never replaced);
4. print one line ``LABDECK_RUN_RESULT <json>`` for the scheduler.

A failed notebook still produces its output notebook (papermill keeps the
error in place). Keep imports light: this runs in user kernels.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .paths import InvalidPath, home_prefix, validate_notebook_path
from .records import FAILED, SUCCEEDED, TIMED_OUT, labdeck_metadata

RESULT_MARKER = "LABDECK_RUN_RESULT "
KILL_GRACE_S = 5


def resolve_notebook(home: Path, notebook: str) -> Path:
    """The notebook's real path, which must be a file inside ``home`` (symlinks resolved)."""
    validate_notebook_path(notebook)
    home = home.resolve()
    path = (home / notebook).resolve()
    if home not in path.parents:
        raise InvalidPath("notebook resolves outside the home")
    if not path.is_file():
        raise FileNotFoundError(f"notebook not found in your home: {notebook}")
    return path


def fetch_staged(bucket: str, user: str, staged_input: str, dest_dir: Path, name: str) -> Path:
    """Download the staged snapshot ``home/<user>/<staged_input>`` into ``dest_dir/name``."""
    import boto3

    key = home_prefix(user) + validate_notebook_path(staged_input)
    dest = dest_dir / Path(name).name
    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    dest.write_bytes(body)
    return dest


def working_dir(home: Path, notebook: str) -> Path:
    """The notebook's folder in the home when it exists there (relative paths in the notebook work), else the home."""
    home = home.resolve()
    folder = (home / notebook).parent.resolve()
    if (folder == home or home in folder.parents) and folder.is_dir():
        return folder
    return home


def run_papermill(src: Path, dst: Path, parameters: dict, timeout: float, cwd: Path) -> tuple[str, str | None]:
    """Execute ``src`` into ``dst``; return (status, error message or None)."""
    params_file = dst.with_suffix(".params.json")
    params_file.write_text(json.dumps(parameters))
    argv = [
        sys.executable, "-m", "papermill", str(src), str(dst),
        "-f", str(params_file), "--cwd", str(cwd), "--no-progress-bar", "--log-level", "ERROR",
    ]
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return TIMED_OUT, f"the run exceeded its timeout of {timeout:g}s and was stopped"
    if proc.returncode == 0:
        return SUCCEEDED, None
    text = out.decode(errors="replace").strip().splitlines()
    # papermill's last lines name the failing cell and exception; keep them short
    tail = [line for line in text if line.strip()][-3:]
    return FAILED, ("\n".join(tail) or f"papermill exited with {proc.returncode}")[-1000:]


def _kill_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=KILL_GRACE_S)
            return
        except subprocess.TimeoutExpired:
            continue


def annotate(output: Path, source_bytes: bytes, meta: dict) -> bytes:
    """The output notebook's bytes with ``metadata.labdeck``; falls back to the input if papermill wrote nothing."""
    import nbformat

    try:
        nb = nbformat.read(str(output), as_version=4)
    except Exception:
        nb = nbformat.reads(source_bytes.decode("utf-8"), as_version=4)
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(f"**This run did not execute:** {meta.get('error') or 'unknown error'}"))
    nb.metadata["labdeck"] = meta
    return nbformat.writes(nb).encode("utf-8")


def upload(bucket: str, key: str, body: bytes, content_type: str) -> None:
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3")
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*")
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code")
        if code in ("PreconditionFailed", "ConditionalRequestConflict"):
            raise FileExistsError(f"refusing to overwrite an existing run output: s3://{bucket}/{key}") from None
        raise


def execute(spec: dict, home: Path | None = None) -> dict:
    """Run one spec (see :meth:`labdeck.runs.scheduler.Scheduler.driver_spec`); return the result dict."""
    home = Path(home or os.environ.get("HOME") or Path.home())
    user = os.environ.get("JUPYTERHUB_USER") or spec["owner"]
    if user != spec["owner"]:
        return {"status": FAILED, "error": "this server does not belong to the run's owner"}
    for key in (spec["output_key"], spec["record_key"]):
        if not key.startswith(home_prefix(user) + "runs/"):
            return {"status": FAILED, "error": "output keys must be under the owner's runs/ prefix"}
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="labdeck-run-") as tmp:
        try:
            if spec.get("staged_input"):
                src = fetch_staged(spec["bucket"], user, spec["staged_input"], Path(tmp), spec["notebook"])
                cwd = working_dir(home, spec["notebook"])
            else:
                src = resolve_notebook(home, spec["notebook"])
                cwd = src.parent
            source = src.read_bytes()
        except Exception as e:  # noqa: BLE001 - OSError, ValueError, botocore errors: the run fails readably
            return {"status": FAILED, "error": str(e)[:300] or type(e).__name__, "started": started, "finished": time.time()}
        digest = hashlib.sha256(source).hexdigest()
        dst = Path(tmp) / "output.ipynb"
        status, error = run_papermill(src, dst, spec.get("parameters") or {}, float(spec["timeout"]), cwd)
        finished = time.time()
        meta = labdeck_metadata(
            run_id=spec["run_id"], owner=user, notebook=spec["notebook"], parameters=spec.get("parameters") or {},
            profile=spec.get("profile"), status=status, started=started, finished=finished, input_sha256=digest,
            schedule_id=spec.get("schedule_id"), error=error,
        )
        body = annotate(dst, source, meta)
    result = {"status": status, "error": error, "started": started, "finished": finished, "input_sha256": digest}
    try:
        upload(spec["bucket"], spec["output_key"], body, "application/x-ipynb+json")
        record = {**spec.get("record", {}), **{k: v for k, v in meta.items()}, "output": f"s3://{spec['bucket']}/{spec['output_key']}"}
        upload(spec["bucket"], spec["record_key"], json.dumps(record, indent=1).encode(), "application/json")
    except Exception as e:  # noqa: BLE001 - reported to the scheduler, never raised into the kernel
        result.update(status=FAILED, error=f"could not store the output: {type(e).__name__}: {str(e)[:300]}")
    return result


def run_and_report(spec: dict) -> None:
    """Entry point used from a kernel: execute and print the result line."""
    try:
        result = execute(spec)
    except Exception as e:  # noqa: BLE001
        result = {"status": FAILED, "error": f"{type(e).__name__}: {str(e)[:300]}"}
    print(RESULT_MARKER + json.dumps(result), flush=True)


def kernel_code(spec: dict) -> str:
    """The code a kernel runs for ``spec`` (the JSON travels as a Python string literal)."""
    return (
        "from labdeck.runs.driver import run_and_report as _labdeck_run\n"
        f"_labdeck_run(__import__('json').loads({json.dumps(spec)!r}))\n"
    )


def parse_result(stdout: str) -> dict | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            try:
                return json.loads(line[len(RESULT_MARKER):])
            except ValueError:
                return None
    return None
