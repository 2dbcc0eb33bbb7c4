"""images/singleuser/build-labextension.sh (both Lab extensions' one build script): builds that share one cache at once all succeed, and build once.

Real builds (``npm ci`` from the registry, JupyterLab's builder) into a throwaway
``LABDECK_CACHE``: two prefixes and a second build into one of them, all started
together, as two checkouts and two ``make`` runs on one machine would.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "images/singleuser/build-labextension.sh"
EXT = ROOT / "runs/labextension"


def _installed(prefix: Path) -> dict:
    ext = prefix / "share/jupyter/labextensions/@labdeck/lab"
    assert any((ext / "static").iterdir()), f"no built assets in {ext}"
    return json.loads((ext / "package.json").read_text())


def test_concurrent_builds_sharing_a_cache_all_succeed(tmp_path):
    cache = tmp_path / "cache"
    prefixes = [tmp_path / "a", tmp_path / "b", tmp_path / "a"]
    for p in prefixes:
        p.mkdir(exist_ok=True)
    env = {**os.environ, "LABDECK_CACHE": str(cache), "PYTHON": sys.executable}
    procs = [
        subprocess.Popen(["bash", str(BUILD), str(EXT), str(p)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for p in prefixes
    ]
    outs = []
    try:
        for proc in procs:
            outs.append(proc.communicate(timeout=900)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, out in zip(procs, outs):
        assert proc.returncode == 0, out[-3000:]
    log = "".join(outs)
    # one build; the others waited for it and installed its result
    assert log.count("labdeck: building @labdeck/lab") == 1, log[-3000:]
    assert log.count("is cached in") == 2, log[-3000:]
    for p in {tmp_path / "a", tmp_path / "b"}:
        assert _installed(p)["name"] == "@labdeck/lab"
        leftovers = [x.name for x in (p / "share/jupyter/labextensions").iterdir() if x.name.startswith(".")]
        assert leftovers == []
    # the cache holds the one result and its lock, no temporary directory
    entries = sorted(x.name for x in (cache / "labextension" / "lab").iterdir())
    assert len(entries) == 2 and entries[0] == ".lock", entries
    assert (cache / "labextension" / "lab" / entries[1] / "package.json").is_file()

    # with the cache in place, a rebuild is an install only
    again = subprocess.run(["bash", str(BUILD), str(EXT), str(tmp_path / "b")], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "is cached in" in again.stdout, again.stdout + again.stderr


def test_a_folder_that_is_not_one_of_labdecks_extensions_is_refused(tmp_path):
    """The script builds and installs only @labdeck/ packages: a wrong folder changes nothing."""
    other = tmp_path / "ext"
    other.mkdir()
    (other / "package.json").write_text(json.dumps({"name": "left-pad"}))
    prefix = tmp_path / "prefix"
    prefix.mkdir()
    env = {**os.environ, "LABDECK_CACHE": str(tmp_path / "cache"), "PYTHON": sys.executable}
    out = subprocess.run(["bash", str(BUILD), str(other), str(prefix)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "names 'left-pad', not an @labdeck/ extension" in out.stderr
    assert list(prefix.iterdir()) == [] and not (tmp_path / "cache").exists()
