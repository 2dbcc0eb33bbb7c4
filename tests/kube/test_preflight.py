"""chart_harness.preflight: the guard that runs before the chart journey catches what broke it.

On a fresh machine the chart's runs and viewer pods could not start Python: a checkout under
``/tmp`` (a CI clone) is hidden inside pods that mount an emptyDir at ``/tmp``; and a venv in a
directory private to root cannot be run by the chart's uid 1000. These controls point the
chart's images at such a directory and expect the preflight to fail, naming the pod, its uid
and the reason, before any release is installed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.chart.chartlib import _helm_path
from tests.helpers.required import missing
from tests.kube import chart_harness as ch
from tests.kube.image import Image, ensure_image
from tests.kube.kubelet import _pick_mount_mode

pytestmark = [pytest.mark.k8s]


class ImageUnderTmp(Image):
    """The harness image's venv, seen through a venv directory under /tmp (as a CI clone's is)."""

    def __init__(self, real: Image, where: Path) -> None:
        super().__init__(real.root)
        venv = Path(real.bin).parent
        (where / "bin").mkdir(parents=True)
        shutil.copy(venv / "pyvenv.cfg", where / "pyvenv.cfg")
        os.symlink(venv / "lib", where / "lib")
        for name in os.listdir(real.bin):
            os.symlink(os.path.join(real.bin, name), where / "bin" / name)
        self.bin = str(where / "bin")


@pytest.mark.parametrize(
    "where, pod, reason",
    [
        # readable by every uid, but under /tmp: the runs pod's emptyDir hides it
        ("hidden", "preflight-lc-runs", "python: not found"),
        # pytest's own directory (0700, root's): the first pod run as uid 1000 cannot open it
        ("private", "preflight-lc-broker", "Permission denied"),
    ],
)
def test_preflight_names_the_pod_that_cannot_start_its_interpreter(kube_cluster, tmp_path_factory, where, pod, reason):
    helm_path, reason = _helm_path()
    if helm_path is None:
        missing("helm", reason)
    if _pick_mount_mode("auto") != "unshare":
        pytest.skip("the preflight runs pods as the chart's uids: needs root with `unshare --mount`")
    work = tmp_path_factory.mktemp("preflight-control")
    assert str(work).startswith("/tmp/"), work
    bins = Path(tempfile.mkdtemp(prefix="labdeck-preflight-", dir="/tmp")) if where == "hidden" else work
    os.chmod(bins, 0o755 if where == "hidden" else 0o700)
    helm = ch.make_helm(helm_path, kube_cluster.kubeconfig, work / "helm-home")
    chart = ch.relaxed_chart(work)
    args = ["-f", str(ch.VALUES), "--set", "auth.oauth.issuer=http://127.0.0.1:9", "--set", "auth.oauth.clientSecret=x",
            "--set", "cloud.aws.endpointUrl=http://127.0.0.1:9", "--set", "cloud.aws.bucket=b"]  # fmt: skip
    allow_root = work / "jupyter-config"
    allow_root.mkdir()
    try:
        image = ImageUnderTmp(ensure_image(), bins / "venv")
        with pytest.raises(AssertionError) as info:
            ch.preflight(kube_cluster, image, helm, chart, args, work / "kubelet", allow_root, namespace=f"{ch.NAMESPACE}-{where}")
    finally:
        if where == "hidden":
            shutil.rmtree(bins, ignore_errors=True)
    message = str(info.value)
    assert message.startswith(f"{pod} (ghcr.io/labdeck/hub:") and "uid 1000" in message, message
    assert reason in message, message
