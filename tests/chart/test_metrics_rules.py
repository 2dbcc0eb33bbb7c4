"""The chart's alerts with Debian's promtool: `promtool check rules` and a `promtool test rules` unit test per alert.

The rules are the ones the chart renders (metrics.prometheusRule.enabled),
taken out of the PrometheusRule's ``spec`` into a plain rule file. The unit
tests (metrics-alerts-test.yaml) cover every alert; a test fails if an alert
is added without one.
"""

from pathlib import Path

import pytest
import yaml
from test_metrics_chart import ALERTS

from tests.helpers.prometheus import promtool

pytestmark = pytest.mark.chart

TESTS = Path(__file__).resolve().parent / "metrics-alerts-test.yaml"


@pytest.fixture
def rule_file(render, tmp_path):
    (rule,) = render(set_values=("metrics.prometheusRule.enabled=true",)).of_kind("PrometheusRule")
    path = tmp_path / "labdeck-rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
    return path


def test_promtool_check_rules(rule_file):
    proc = promtool("check", "rules", str(rule_file))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in proc.stdout + proc.stderr


def test_every_alert_has_a_unit_test():
    tested = {t["alertname"] for case in yaml.safe_load(TESTS.read_text())["tests"] for t in case["alert_rule_test"]}
    assert tested == ALERTS
    firing = {t["alertname"] for case in yaml.safe_load(TESTS.read_text())["tests"] for t in case["alert_rule_test"] if t["exp_alerts"]}
    assert firing == ALERTS  # each one is shown to fire, not only to stay quiet


def test_promtool_test_rules(rule_file):
    tests = yaml.safe_load(TESTS.read_text())
    tests["rule_files"] = [rule_file.name]
    path = rule_file.parent / "labdeck-rules-test.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    proc = promtool("test", "rules", path.name, cwd=rule_file.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr
