"""``labdeck systemd-unit``: the unit that starts labdeck on boot, rendered and checked (systemd-analyze verify when present)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labdeck.hub.local.systemd import UnitError, render_unit

LABDECK = str(Path(sys.executable).with_name("labdeck"))


def parse(text: str) -> dict[str, dict[str, list[str]]]:
    sections: dict = {}
    current = None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def render_cli(tmp_path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([LABDECK, "systemd-unit", *args], capture_output=True, text=True, timeout=60)


def test_rendered_unit_runs_labdeck_up_restarting_on_failure_with_state_outside_the_checkout(tmp_path):
    r = render_cli(tmp_path, "--state-dir", "/var/lib/labdeck")
    assert r.returncode == 0, r.stderr
    unit = parse(r.stdout)
    service = unit["Service"]
    assert service["ExecStart"] == [f"{LABDECK} up"]
    assert service["Restart"] == ["on-failure"]
    assert service["Environment"] == ["LABDECK_STATE_DIR=/var/lib/labdeck"]
    assert service["EnvironmentFile"] == ["-/etc/labdeck/labdeck.env"]
    assert service["KillMode"] == ["mixed"] and service["UMask"] == ["0077"]
    # systemd waits for the supervisor's own clean stop before it kills anything
    from labdeck.hub.local.runner import STOP_BUDGET_S

    assert int(service["TimeoutStopSec"][0]) >= 2 * STOP_BUDGET_S
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert "network-online.target" in unit["Unit"]["After"][0]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_it_and_would_catch_a_mistake(tmp_path):
    good = tmp_path / "labdeck.service"
    good.write_text(render_cli(tmp_path, "--state-dir", "/var/lib/labdeck").stdout)
    r = subprocess.run(["systemd-analyze", "verify", str(good)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "labdeck.service" not in r.stderr, r.stderr
    bad = tmp_path / "broken.service"
    bad.write_text(good.read_text().replace(f"ExecStart={LABDECK} up", "ExecStart=labdeck-missing up"))
    r = subprocess.run(["systemd-analyze", "verify", str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 or "broken.service" in r.stderr


@pytest.mark.parametrize(
    "state_dir, message",
    [
        (str(Path(__file__).resolve().parents[2] / ".labdeck"), "inside the checkout"),
        ("relative/state", "absolute path"),
        ("/var/lib/lab deck", "must not contain spaces"),
        ("/var/lib/x\nExecStartPre=/bin/sh", "must not contain"),
    ],
    ids=["00", "01", "02", "03"],
)
def test_bad_state_dirs_are_refused(state_dir, message):
    with pytest.raises(UnitError, match=message):
        render_unit(state_dir, LABDECK)


def test_cli_reports_a_bad_state_dir_clearly(tmp_path):
    r = render_cli(tmp_path, "--state-dir", str(Path(__file__).resolve().parents[2] / ".labdeck"))
    assert r.returncode == 2 and "inside the checkout" in r.stderr and r.stdout == ""
