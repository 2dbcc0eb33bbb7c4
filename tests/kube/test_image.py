"""tests/kube/image.py: the chart's images run as any uid, with the checkout, /tmp and /root out of sight."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labdeck.hub.local.serverenv import reachable_by_others
from tests.kube import image as image_mod
from tests.kube.image import ROOT, ensure_image, link_tree

CHECK = (
    "import labdeck.hub, labdeck.runs.app, labdeck.runs.viewer, jupyterhub.app, kubespawner, jupyterlab, sys; "
    "print(labdeck.hub.__path__[0]); print(sys.prefix)"
)
needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root (uids, mount namespaces)")


def run_hidden(image: image_mod.Image, argv: list[str], uid: int = 1000) -> subprocess.CompletedProcess:
    """``argv`` as ``uid`` in a mount namespace where the checkout, /tmp and /root are empty tmpfs."""
    hide = [str(ROOT), "/tmp", "/root"]  # the checkout first: it may live under /tmp
    mounts = " && ".join(f"mount -t tmpfs none {shlex.quote(p)}" for p in hide if os.path.isdir(p))
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in image.env(image.node_bin, image.bin).items())
    drop = f"setpriv --reuid={uid} --regid={uid} --clear-groups -- env -i HOME=/nonexistent {env}"
    script = f"{mounts} && cd / && exec {drop} {shlex.join(argv)}"
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script],
                          capture_output=True, text=True, timeout=180)  # fmt: skip


@needs_root
def test_image_runs_as_uid_1000_without_the_checkout():
    image = ensure_image()
    out = run_hidden(image, ["python", "-c", CHECK])
    assert out.returncode == 0, out.stderr[-3000:]
    src, prefix = out.stdout.split()
    assert src == str(image.root / "src" / "hub")
    assert prefix == str(image.root / "venv")
    for argv, want in ((["jupyterhub", "--version"], "."), (["configurable-http-proxy", "--version"], "."), (["labdeck", "--help"], "usage: labdeck")):
        out = run_hidden(image, argv)
        assert out.returncode == 0 and want in out.stdout, (argv, out.stdout, out.stderr[-2000:])


@needs_root
def test_image_runs_the_python_that_made_the_venv():
    """The very interpreter (same patch release), not another 3.11: Debian's 3.11.2 mis-parses
    soupsieve's selectors, so the viewer's notebook rendering failed on it."""
    image = ensure_image()
    python = json.loads((image.root / image_mod.STAMP).read_text())["python"]
    exe = os.path.realpath(sys._base_executable)
    if reachable_by_others(exe):
        assert python == exe  # every user can run it: used as it is
    else:
        assert python.startswith(str(image.root / "python") + "/")
    code = "import sys, soupsieve; print(sys.version.split()[0]); soupsieve.compile('img:not([alt])')"
    out = run_hidden(image, ["python", "-c", code])
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == sys.version.split()[0]


def test_image_source_follows_the_checkout(tmp_path, monkeypatch):
    monkeypatch.setenv("LABDECK_IMAGE_CACHE", str(tmp_path / "cache"))
    image = ensure_image()
    mine = image.root / "src" / "hub" / "contract.py"
    assert mine.read_text() == (ROOT / "hub" / "contract.py").read_text()
    (image.root / "src" / "hub" / "stale.py").write_text("x")
    assert ensure_image().root == image.root  # the venv copy is reused
    assert not (image.root / "src" / "hub" / "stale.py").exists()  # the source is fresh
    finder = next((image.root / "venv").glob("lib/python*/site-packages/__editable__*labdeck*finder.py"))
    assert str(ROOT) + "/" not in finder.read_text()
    # the checkout's venv is untouched: its finder still points at the checkout
    own = next(Path(os.path.realpath(sys.prefix)).glob("lib/python*/site-packages/__editable__*labdeck*finder.py"))
    assert str(ROOT) + "/hub" in own.read_text()


def test_link_tree_links_public_files_copies_private_ones(tmp_path):
    src, outside, dst = tmp_path / "src", tmp_path / "outside", tmp_path / "dst"
    (src / "pkg").mkdir(parents=True)
    outside.mkdir()
    public, private = src / "pkg" / "public.py", src / "pkg" / "private.py"
    public.write_text("public")
    private.write_text("private")
    os.chmod(public, 0o644)
    os.chmod(private, 0o600)
    (outside / "target.txt").write_text("outside")
    os.symlink("pkg/public.py", src / "inside-link")
    os.symlink(outside / "target.txt", src / "outside-link")
    os.symlink(outside, src / "outside-dir")
    link_tree(src, dst)
    assert os.stat(dst / "pkg" / "public.py").st_ino == public.stat().st_ino
    assert os.stat(dst / "pkg" / "private.py").st_ino != private.stat().st_ino
    assert oct(os.stat(dst / "pkg" / "private.py").st_mode & 0o777) == oct(0o644)
    assert oct(private.stat().st_mode & 0o777) == oct(0o600)  # the original keeps its mode
    assert os.readlink(dst / "inside-link") == "pkg/public.py"
    assert not (dst / "outside-link").is_symlink() and (dst / "outside-link").read_text() == "outside"
    assert not (dst / "outside-dir").is_symlink() and (dst / "outside-dir" / "target.txt").read_text() == "outside"
