"""The k3s e2e workflow cannot run here; check that what it uses exists and parses."""

import py_compile

import yaml
from chartlib import ROOT

WORKFLOW = ROOT / ".github/workflows/k3s-e2e.yaml"


def test_workflow_wiring():
    wf = yaml.safe_load(WORKFLOW.read_text())
    steps = wf["jobs"]["e2e"]["steps"]
    text = WORKFLOW.read_text()
    assert any(s.get("uses", "").startswith("jupyterhub/action-k3s-helm@") for s in steps)
    for path in ["helm/examples/k3s-ci.yaml", ".github/k3s/moto.yaml", ".github/k3s/e2e.py",
                 "images/hub/Dockerfile", "images/singleuser/Dockerfile"]:  # fmt: skip
        assert path in text and (ROOT / path).exists(), path
    py_compile.compile(str(ROOT / ".github/k3s/e2e.py"), doraise=True)
    # the same journey as make up and the local kube harness (tests/helpers/journey.py)
    assert "from tests.helpers import journey" in (ROOT / ".github/k3s/e2e.py").read_text()
    assert "HELM_UPGRADE=" in text and "helm uninstall labdeck" in text
    ci = yaml.safe_load((ROOT / "helm/examples/k3s-ci.yaml").read_text())
    assert ci["cloud"]["aws"]["endpointUrl"] == "http://moto:5000"
    assert "-t labdeck/hub:ci" in text and ci["hub"]["image"] == {"name": "labdeck/hub", "tag": "ci", "pullPolicy": "Never"}


def test_workflow_measures_cold_and_warm_pods():
    """Issue 27: the k3s run times spawns with cold pods, then with singleuser.warmPool on a ReadWriteMany homes claim."""
    text = WORKFLOW.read_text()
    py_compile.compile(str(ROOT / ".github/k3s/spawn_times.py"), doraise=True)
    assert "--label cold" in text and "--label warm" in text and "singleuser.warmPool.enabled=true" in text
    docs = list(yaml.safe_load_all((ROOT / ".github/k3s/homes.yaml").read_text()))
    pv, pvc = docs
    assert pv["spec"]["accessModes"] == pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert f"singleuser.warmPool.homes.existingClaim={pvc['metadata']['name']}" in text
