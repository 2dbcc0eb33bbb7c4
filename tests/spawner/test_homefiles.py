"""SDK wiring at the default paths of a home: placed, rewritten, and never over the person's own files."""

import os
import stat

import pytest

from labdeck.spawner import builders, homefiles

SPEC = builders.home_files(
    env={"AWS_DEFAULT_REGION": "us-east-1", "GOOGLE_CLOUD_PROJECT": "p", "LABDECK_S3_HOME": "s3://d/home/alice/", "GCE_METADATA_URL": "127.0.0.1:4"},
    files_dir="/h/.labdeck",
    broker_url="http://b/",
    region="us-east-1",
    credential_command=["/opt/bin/labdeck-credentials"],
)


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_fresh_home_gets_every_file_private(tmp_path):
    assert homefiles.install(str(tmp_path), SPEC) == {
        ".Renviron": "written",
        ".aws/config": "written",
        ".config/gcloud/application_default_credentials.json": "written",
    }
    for rel, entry in SPEC.items():
        assert (tmp_path / rel).read_text() == entry["content"]
        assert mode(tmp_path / rel) == 0o600
    for d in (".aws", ".config", ".config/gcloud"):
        assert mode(tmp_path / d) == 0o700


def test_the_persons_own_files_are_kept_and_their_renviron_lines_survive(tmp_path):
    (tmp_path / ".aws").mkdir()
    own = "[default]\nregion = eu-west-1\n[profile work]\nsso_start_url = https://x\n"
    (tmp_path / ".aws" / "config").write_text(own)
    (tmp_path / ".Renviron").write_text("R_LIBS_USER=~/R/lib\nMY_VAR=1\n")
    result = homefiles.install(str(tmp_path), SPEC)
    assert result[".aws/config"] == "kept"
    assert (tmp_path / ".aws" / "config").read_text() == own
    text = (tmp_path / ".Renviron").read_text()
    assert text == "R_LIBS_USER=~/R/lib\nMY_VAR=1\n\n" + SPEC[".Renviron"]["content"]
    # the next start replaces labdeck's block, once, and keeps a line the person added after it
    (tmp_path / ".Renviron").write_text(text + "LATER=2\n")
    newer = dict(SPEC, **{".Renviron": {"kind": "block", "content": builders.renviron_block({"LABDECK_S3_HOME": "s3://d/home/alice2/"})}})
    homefiles.install(str(tmp_path), newer)
    assert (tmp_path / ".Renviron").read_text() == "R_LIBS_USER=~/R/lib\nMY_VAR=1\nLATER=2\n\n" + newer[".Renviron"]["content"]


def test_a_managed_file_is_rewritten_and_deleting_the_marker_keeps_it(tmp_path):
    homefiles.install(str(tmp_path), SPEC)
    cfg = tmp_path / ".aws" / "config"
    cfg.write_text(cfg.read_text().replace("us-east-1", "old-region"))
    assert homefiles.install(str(tmp_path), SPEC)[".aws/config"] == "written"
    assert cfg.read_text() == SPEC[".aws/config"]["content"]
    edited = "\n".join(line for line in cfg.read_text().splitlines() if "labdeck-managed" not in line) + "\nextra = 1\n"
    cfg.write_text(edited)
    assert homefiles.install(str(tmp_path), SPEC)[".aws/config"] == "kept"
    assert cfg.read_text() == edited


def test_nothing_is_written_through_a_link(tmp_path):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    (home / ".aws").symlink_to(elsewhere)
    (home / ".Renviron").symlink_to(elsewhere / "target")
    with pytest.raises(OSError):
        homefiles.install(str(home), {".aws/config": SPEC[".aws/config"]})
    assert homefiles.install(str(home), {".Renviron": SPEC[".Renviron"]}) == {".Renviron": "kept"}
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("rel", ["../escape", "/etc/passwd", ".aws/../../x", "a//b", ""])
def test_paths_outside_the_home_are_refused(tmp_path, rel):
    (tmp_path / "home").mkdir()
    with pytest.raises(homefiles.HomeFileError):
        homefiles.install(str(tmp_path / "home"), {rel: {"kind": "file", "content": "x"}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]
    assert list((tmp_path / "home").iterdir()) == []


def test_merge_block_without_a_file_is_the_block():
    assert homefiles.merge_block(None, "B\n") == "B\n"
