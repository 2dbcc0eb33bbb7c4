"""tests/helpers/required.py: a missing test dependency skips on a laptop and fails in CI."""

import pytest

from tests.helpers import required


@pytest.mark.parametrize(
    "env, outcome",
    [({}, "skip"), ({"CI": "true"}, "fail"), ({"CI": "1"}, "fail"), ({"CI": "false"}, "skip"), ({"LABDECK_KUBE_REQUIRE": "1"}, "fail")],
)
def test_missing_skips_or_fails(monkeypatch, env, outcome):
    for k in ("CI", "LABDECK_KUBE_REQUIRE"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    exc = pytest.fail.Exception if outcome == "fail" else pytest.skip.Exception
    with pytest.raises(exc) as info:
        required.missing("helm", "no network")
    assert "helm unavailable: no network" in str(info.value)


def test_ci_run_sets_ci():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert 'export CI="${CI:-true}"' in text and "exec make test" in text
