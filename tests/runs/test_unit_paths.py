"""Notebook paths and output keys (labdeck.runs.paths)."""

import pytest

from labdeck.runs import paths


@pytest.mark.parametrize(
    "path",
    ["a.ipynb", "reports/daily.ipynb", "x y/é.ipynb", "a/b/c/d.ipynb"],
)
def test_valid_paths(path):
    assert paths.validate_notebook_path(path) == path


@pytest.mark.parametrize(
    "path",
    [
        "", None, 3, "/etc/passwd.ipynb", "~/a.ipynb", "../bob/a.ipynb", "a/../../b.ipynb", "a/./b.ipynb",
        "a//b.ipynb", ".labdeck/aws_config.ipynb", "a/.hidden/b.ipynb", "a.txt", "a.ipynb/", ".ipynb",
        "a\\b.ipynb", "a\x00.ipynb", "a\n.ipynb", "x" * 600 + ".ipynb",
    ],
    ids=lambda p: repr(p)[:30],
)
def test_hostile_paths_are_refused(path):
    with pytest.raises(paths.InvalidPath):
        paths.validate_notebook_path(path)


def test_output_keys_are_per_run_and_under_home():
    t = 1795428900.25  # 2026-11-23T10:15:00Z
    nb, rec = paths.output_keys("alice", "reports/daily.ipynb", t, "0123456789ab")
    assert nb == "home/alice/runs/reports/daily/20261123T101500Z-0123456789ab.ipynb"
    assert rec == "home/alice/runs/reports/daily/20261123T101500Z-0123456789ab.json"
    assert paths.output_keys("alice", "reports/daily.ipynb", t, "0123456789ac")[0] != nb


def test_output_keys_refuse_bad_ids_and_users():
    with pytest.raises(paths.InvalidPath):
        paths.output_keys("alice", "a.ipynb", 0, "../x")
    with pytest.raises(paths.InvalidPath):
        paths.output_keys("a/b", "a.ipynb", 0, "0123456789ab")


