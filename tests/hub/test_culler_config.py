"""The embedded default runs the idle culler with the chart's defaults (one configurer)."""

from labdeck.hub import contract
from labdeck.hub.configurer import configure
from labdeck.hub.local.values import local_values
from labdeck.hub.modes import kube_mode, local_mode

from .test_configurer import SECRETS, SETTINGS


def culler(c):
    return next(s for s in c.JupyterHub.services if s["name"] == contract.CULLER)


def test_embedded_default_culler_equals_the_charts():
    local = configure(local_values(SETTINGS), local_mode(SETTINGS, SECRETS))
    names = {"hub": "h", "proxy-api": "p", "singleuser": "s", contract.BROKER: "b", contract.RUNS: "r", contract.VIEWER: "v"}
    chart = configure({}, kube_mode(names, {**SECRETS}, namespace="ns"))
    assert culler(local)["command"][3:] == ["--timeout=3600", "--cull-every=600", "--concurrency=10", "--max-age=0"]
    assert culler(local) == culler(chart)
    role = next(r for r in local.JupyterHub.load_roles if r["name"] == "labdeck-idle-culler")
    assert role["scopes"] == ["list:users", "read:users:activity", "read:servers", "delete:servers"]
