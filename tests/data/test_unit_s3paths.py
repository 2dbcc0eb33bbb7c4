"""Where drive paths lie in a person's grants (labdeck.data.s3paths), table-driven."""

import pytest

from labdeck.data.s3paths import S3, VIRTUAL, Place, Refused, grant_children, hidden_children, locate

PREFIXES = [{"prefix": "home/alice/", "access": "rw"}, {"prefix": "shared/", "access": "ro"},
            {"prefix": "shared/team/", "access": "rw"}, {"prefix": "projects/x/", "access": "rw"}]
DENIED = ["shared/analysts/"]


@pytest.mark.parametrize("path, place", [
    ("", Place("", VIRTUAL)),
    ("/home/", Place("home", VIRTUAL)),
    ("projects", Place("projects", VIRTUAL)),
    ("home/alice", Place("home/alice", S3, "rw", "home/alice/", True)),
    ("home/alice/a/b.ipynb", Place("home/alice/a/b.ipynb", S3, "rw", "home/alice/", False)),
    ("shared", Place("shared", S3, "ro", "shared/", True)),
    ("shared/demo/trips.csv", Place("shared/demo/trips.csv", S3, "ro", "shared/", False)),
    ("shared/team/x.csv", Place("shared/team/x.csv", S3, "rw", "shared/team/", False)),
])
def test_locate(path, place):
    assert locate(path, PREFIXES, DENIED) == place


@pytest.mark.parametrize("path", ["home/bob", "home/bob/x", "homes", "home/alicex/y", "x.txt", "projects/y",
                                  "shared/analysts", "shared/analysts/targets.csv", "home/alice/../bob",
                                  "home//alice", "home/./alice", "home\\alice"])
def test_refused(path):
    with pytest.raises(Refused):
        locate(path, PREFIXES, DENIED)


def test_children_lead_to_grants_and_hide_restricted_prefixes():
    assert grant_children("", PREFIXES) == ["home", "projects", "shared"]
    assert grant_children("home", PREFIXES) == ["alice"]
    assert grant_children("shared", PREFIXES) == ["team"]
    assert grant_children("home/alice", PREFIXES) == []
    assert hidden_children("shared", DENIED) == {"analysts"}
    assert hidden_children("", DENIED) == set()
