"""The journey of tests/helpers/journey.py through the chart's own hub, in tests/kube.

``helm install`` of helm/labdeck (chart_harness.py): kube-controller-manager turns the
Deployments into pods, the process kubelet runs them (hub, proxy, broker, runs, viewer),
Service names resolve to their pods. A person then logs in through the proxy with the
chart's OIDC login (``auth.oauth.issuer`` = a real provider process on 127.0.0.1, its
login form), spawns a user pod from the chart's own spawner config, and so on (the
scenario module; the broker's aws provider's session policy makes moto refuse bob's prefix to
alice's kernel). The identity provider's groups become JupyterHub groups, a group grant
opens a shared prefix to a member only, and an identity outside ``allowedGroups`` cannot
log in. Then ``helm upgrade`` with a changed value keeps the running server, and
``helm uninstall`` leaves only the keep-annotated PVCs.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import requests

from tests.chart.chartlib import _helm_path
from tests.helpers import oidc
from tests.helpers.required import missing
from tests.kube import chart_harness as ch
from tests.kube.image import ensure_image
from tests.kube.kubelet import KubeletThread, ProcessKubelet

pytestmark = [pytest.mark.k8s, pytest.mark.integration]

#: identities at the OIDC provider (sub = username): allowedGroups is [data-team],
#: adminGroups [platform], the analysts group has a grant on SHARED
IDENTITIES = {
    "alice": ["data-team", "analysts", "platform"],
    "bob": ["data-team"],
    "carol": ["data-team"],
    "mallory": ["sales"],
}
SHARED = "shared/analysts/"


@pytest.fixture(scope="module")
def release(kube_cluster, tmp_path_factory):
    helm_path, reason = _helm_path()
    if helm_path is None:
        missing("helm", reason)
    from tests.kube.kubelet import _pick_mount_mode

    if _pick_mount_mode("auto") != "unshare":
        # each pod's /etc/hosts and the chart's mount paths need a private mount namespace
        pytest.skip("the chart harness needs root with `unshare --mount` (per-pod /etc/hosts and mounts)")
    busy = ch.ports_in_use()
    if busy:
        pytest.fail(f"ports {busy} are taken on this machine; the chart's hub/proxy/broker pods bind them on every address")
    work = tmp_path_factory.mktemp("chart-release")
    from tests.kube.cluster import ClusterError

    try:
        kube_cluster.start_controller_manager()
    except ClusterError as e:  # like kube_cluster: a skip with the build script's reason, a failure in CI
        missing("kube-controller-manager", e)
    asyncio.run(ch._create_namespace(str(kube_cluster.kubeconfig), ch.NAMESPACE))
    allow_root = work / "jupyter-config"
    allow_root.mkdir()
    (allow_root / "jupyter_server_config.json").write_text(json.dumps({"ServerApp": {"allow_root": True}}))
    onboarding = work / "org-onboarding"
    (onboarding / "guides").mkdir(parents=True)
    (onboarding / "guides" / "Data-access.md").write_text("# Data access at Example Corp\n")
    # the chart's images: this venv where every pod and uid can run it (tests/kube/image.py)
    image = ensure_image()
    moto = ch.start_moto(work)
    idp = oidc.OIDCProvider.start(work)
    for user, groups in IDENTITIES.items():
        idp.set_user(user, preferred_username=user, groups=groups)
    helm = ch.make_helm(helm_path, kube_cluster.kubeconfig, work / "helm-home")
    chart = ch.relaxed_chart(work)
    args = ch.install_args(moto, onboarding, idp.issuer, idp.client_secret, work)
    try:
        # before the journey: each image's interpreter runs as the chart's uid with the chart's mounts
        checks = ch.preflight(kube_cluster, image, helm, chart, args, work / "preflight", allow_root)
        print("\npreflight (as the chart's uids): " + ", ".join(f"{k} {v:.1f}s" for k, v in checks.items()))
    except BaseException:
        moto.stop()
        idp.stop()
        raise
    kubelet_thread = KubeletThread(
        ProcessKubelet(
            str(kube_cluster.kubeconfig), ch.NAMESPACE, node_name="labdeck-chart-node", workdir=work / "kubelet",
            default_commands={"ghcr.io/labdeck/hub": [], ch.USER_IMAGE: []}, image_env=ch.image_env(image, allow_root),
            cluster_dns=True, service_account_tokens=True, probes=True, restarts=True, ip_prefix=ch.IP_PREFIX,
        )
    )  # fmt: skip
    kubelet = kubelet_thread.start()
    rel = ch.Release(kube_cluster, kubelet, helm, chart, args, idp)
    rel.moto = moto
    rel.onboarding = onboarding
    try:
        start = time.monotonic()
        helm("install", ch.RELEASE, str(chart), "-n", ch.NAMESPACE, *args, "--timeout", "120s")
        rel.wait_available()
        rel.wait_routes()
        rel.install_seconds = time.monotonic() - start
        print(f"\nhelm install -> every Deployment available, routes up: {rel.install_seconds:.1f}s")
        yield rel
    finally:
        if helm("status", ch.RELEASE, "-n", ch.NAMESPACE, check=False).returncode == 0:
            helm("uninstall", ch.RELEASE, "-n", ch.NAMESPACE, "--timeout", "120s", check=False)
        kubelet_thread.stop()
        moto.stop()
        idp.stop()


def test_chart_pods_run(release):
    available = release.deployments_available()
    assert set(available) == {f"{ch.RELEASE}-{c}" for c in ("hub", "proxy", "broker", "runs", "viewer")}, available
    r = requests.get(f"{release.url}/hub/health", timeout=10)
    assert r.status_code == 200
    for service in ("runs", "viewer"):
        r = requests.get(f"{release.url}/services/{service}/health", timeout=10)
        assert r.status_code == 200, (service, r.status_code, release.log("hub")[-3000:])


@pytest.fixture(scope="module")
def journey_facts(release):
    from tests.helpers import journey

    target = journey.Target(
        name="chart",
        url=release.url,
        login=oidc.journey_login(release.url),
        home_dir=lambda user: release.kubelet.pvc_root / ch.NAMESPACE / f"claim-{user}",
        onboarding_files=("guides/Data-access.md",),
        # cloud.providers [aws]: a session policy per person, so moto refuses bob's prefix to alice
        enforces_isolation=True,
    )
    try:
        facts = journey.run(target)
    except BaseException:
        print(release.diagnose()[-20000:])
        raise
    print(f"\njourney through the chart's hub: {facts['seconds']}")
    return facts


def test_journey(release, journey_facts):
    # the user pod came from the chart's own spawner config, in the release namespace
    pods = release.pods("component%3Dsingleuser-server")
    alice = [p for p in pods if p["metadata"]["annotations"].get("hub.jupyter.org/username") == "alice"]
    assert alice and alice[0]["metadata"]["labels"]["app.kubernetes.io/instance"] == ch.RELEASE
    assert alice[0]["spec"]["serviceAccountName"] == f"{ch.RELEASE}-singleuser"


def test_oidc_groups_arrive_as_hub_groups(release, journey_facts):
    """The provider's groups claim became JupyterHub groups at login; adminGroups made alice an admin."""
    from urllib.parse import urlparse

    login = oidc.start_login(release.url)
    assert urlparse(login.authorize_url).netloc == urlparse(release.idp.issuer).netloc  # by discovery
    alice = journey_facts["alice"]
    model = alice.api("GET", "/users/alice").json()
    assert sorted(model["groups"]) == sorted(IDENTITIES["alice"]) and model["admin"] is True, model
    model = alice.api("GET", "/users/bob").json()
    assert model["groups"] == ["data-team"] and model["admin"] is False, model
    assert alice.api("GET", "/groups/analysts").json()["users"] == ["alice"]


def test_identity_outside_allowed_groups_cannot_log_in(release, journey_facts):
    login = oidc.authorize(oidc.start_login(release.url), "mallory")
    r = oidc.finish(login)
    assert r.status_code == 403, (r.status_code, r.text[:300])
    assert login.session.get(f"{release.url}/hub/home", allow_redirects=False, timeout=30).status_code == 302  # to the login
    assert journey_facts["alice"].api("GET", "/users/mallory").status_code == 404  # nobody was created


def test_group_grant_opens_the_shared_prefix_to_members_only(release, journey_facts):
    """analysts' grant (broker.grants.groups): alice (a member) reads and writes it, bob's kernel is refused."""
    from tests.helpers import journey

    target = journey.Target(name="chart", url=release.url, facts=journey_facts)
    bob = journey_facts["bob"]
    try:
        out = journey.group_grant(target, journey_facts["alice"], bob, SHARED + "journey/alice.txt", kernel=journey_facts["kernel"])
    finally:
        if bob.api("GET", "/users/bob").json().get("servers"):
            bob.stop_server("", timeout=120)
    print(f"\ngroup grant: {journey_facts['seconds']['group_grant']}s; bob: {out['outsider'].strip()}")


def test_schedules_survive_a_runs_pod_restart(release, journey_facts):
    """The runs service's state is on its PVC: a new pod (the ReplicaSet's replacement) has the schedules."""
    from tests.helpers import journey

    alice = journey_facts["alice"]
    target = journey.Target(name="chart", url=release.url)
    body = {"notebook": journey.RUN_NOTEBOOK, "staged_input": journey.RUN_NOTEBOOK, "cron": "0 6 * * *", "parameters": {"n": 2}}
    r = journey.runs_api(target, alice, "POST", "/schedules", json=body)
    assert r.status_code == 201, r.text
    schedule = r.json()
    old = release.component_pod("runs")
    status, _ = release.cluster.request(f"/api/v1/namespaces/{ch.NAMESPACE}/pods/{old['metadata']['name']}")
    assert status == 200
    release.delete_pod(old["metadata"]["name"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        new = release.component_pod("runs")
        if new and new["metadata"]["uid"] != old["metadata"]["uid"] and all(release.deployments_available().values()):
            break
        time.sleep(0.5)
    assert new["metadata"]["uid"] != old["metadata"]["uid"], "no replacement runs pod"
    release.wait_routes()
    listed = journey.runs_api(target, alice, "GET", "/schedules").json()["schedules"]
    same = [s for s in listed if s["id"] == schedule["id"]]
    assert same and same[0]["cron"] == "0 6 * * *", listed
    assert journey.runs_api(target, alice, "DELETE", f"/schedules/{schedule['id']}").status_code in (200, 204)


def test_the_s3_drive_in_the_charts_server(release, journey_facts):
    """The S3 drive's contents API (labdeck.data) in alice's pod of the chart: her grants only,
    a notebook saved to her home lands in S3 (seen by boto3 in her kernel), bob's home refused."""
    import nbformat

    alice = journey_facts["alice"]

    def drive(method, path="", **kw):
        return requests.request(method, f"{alice.server_url()}labdeck/s3/api/contents/{path}", headers=alice.headers(), timeout=60, **kw)

    root = drive("GET")
    assert root.status_code == 200, root.text[:300]
    assert [e["name"] for e in root.json()["content"]][0] == "home"
    home = drive("GET", "home")
    assert [e["name"] for e in home.json()["content"]] == ["alice"]
    assert drive("GET", "home/bob").status_code == 403
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('saved in the chart')")])
    r = drive("PUT", "home/alice/chart-drive/analysis.ipynb", json={"type": "notebook", "content": nb})
    assert r.status_code == 201, r.text[:300]
    code = (
        "import boto3, os\n"
        "b, home = os.environ['LABDECK_S3_HOME'][5:].split('/', 1)\n"
        "keys = [o['Key'] for o in boto3.client('s3').list_objects_v2(Bucket=b, Prefix=home + 'chart-drive/').get('Contents', [])]\n"
        "print(keys)"
    )
    out = alice.execute(code, journey_facts["kernel"], timeout=120).check().stdout
    assert "home/alice/chart-drive/analysis.ipynb" in out, out
    nb_in_s3 = drive("GET", "home/alice/chart-drive/analysis.ipynb").json()
    assert nb_in_s3["content"]["cells"][0]["source"] == "print('saved in the chart')"


def test_a_clean_environment_in_the_charts_pod_gets_s3(release, journey_facts):
    """As RStudio starts rsession: a process in alice's pod with only HOME, USER and PATH reaches her
    S3 home through the default ~/.aws/config (credential_process reading the pod's token file from
    the Secret), and bob's prefix stays refused."""
    alice = journey_facts["alice"]
    code = (
        "import os, subprocess, sys\n"
        "home = os.environ['LABDECK_S3_HOME']\n"
        "bob = home.replace('/home/alice/', '/home/bob/')\n"
        "env = {'HOME': os.path.expanduser('~'), 'USER': 'jovyan', 'PATH': os.path.dirname(sys.executable) + ':/usr/bin:/bin'}\n"
        "def aws(*a, data=None):\n"
        "    return subprocess.run(['aws', 's3', *a], env=env, input=data, capture_output=True, text=True, timeout=120)\n"
        "up = aws('cp', '-', home + 'clean-env/probe.txt', data='from a clean environment')\n"
        "back = aws('cp', home + 'clean-env/probe.txt', '-')\n"
        "denied = aws('cp', '-', bob + 'clean-env/probe.txt', data='x')\n"
        "print(up.returncode, back.returncode, repr(back.stdout), denied.returncode, 'AccessDenied' in denied.stderr, up.stderr[-300:])"
    )
    out = alice.execute(code, journey_facts["kernel"], timeout=180).check().stdout.strip()
    assert out.startswith("0 0 'from a clean environment' 1 True"), out


def test_a_servers_secret_goes_with_its_pod(release, journey_facts):
    """The per-server Secret (token, SDK files) is owned by its pod: a pod deleted behind the hub's
    back takes its Secret with it (the garbage collector), though the hub never ran stop()."""
    alice = journey_facts["alice"]
    alice.start_server("orphan", timeout=180)
    pod = next(p for p in release.pods("component%3Dsingleuser-server")
               if p["metadata"]["annotations"].get("hub.jupyter.org/servername") == "orphan")  # fmt: skip
    name = pod["metadata"]["name"]
    secret_path = f"/api/v1/namespaces/{ch.NAMESPACE}/secrets/{name}-labdeck"
    owners = release.get(secret_path)["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"], o["uid"]) for o in owners] == [("Pod", name, pod["metadata"]["uid"])]
    release.delete_pod(name)
    deadline = time.monotonic() + 120
    while release.get(secret_path) is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert release.get(secret_path) is None, "the Secret outlived its pod"
    alice.api("DELETE", "/users/alice/servers/orphan", json={"remove": True})


def test_upgrade_keeps_the_running_server(release, journey_facts):
    alice = journey_facts["alice"]
    user_pod = next(p for p in release.pods("component%3Dsingleuser-server")
                    if p["metadata"]["annotations"].get("hub.jupyter.org/username") == "alice")  # fmt: skip
    hub_before = release.component_pod("hub")["metadata"]["uid"]
    runs_before = release.component_pod("runs")["metadata"]["uid"]
    proxy_before = release.component_pod("proxy")["metadata"]["uid"]
    release.helm("upgrade", ch.RELEASE, str(release.chart), "-n", ch.NAMESPACE, *release.args, "--set", "hub.banner=Upgraded", "--timeout", "120s")
    # the hub restarts (its config changed); the user's pod is the same one and still serves
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        hub = release.component_pod("hub")
        if hub and hub["metadata"]["uid"] != hub_before and all(release.deployments_available().values()):
            break
        time.sleep(0.5)
    assert release.component_pod("hub")["metadata"]["uid"] != hub_before, "the hub did not restart on a config change"
    # the runs service is not restarted by an unrelated value (executing runs go on)
    assert release.component_pod("runs")["metadata"]["uid"] == runs_before
    # nor the proxy: every route (and open kernel connection) survives the upgrade
    assert release.component_pod("proxy")["metadata"]["uid"] == proxy_before
    release.wait_routes()
    import base64

    secret = release.get(f"/api/v1/namespaces/{ch.NAMESPACE}/secrets/{ch.RELEASE}-hub")
    assert "banner: Upgraded" in base64.b64decode(secret["data"]["values.yaml"]).decode()  # the new value is mounted
    after = alice.api("GET", "/users/alice").json()["servers"][""]
    assert after["ready"], after
    still = [p for p in release.pods("component%3Dsingleuser-server") if p["metadata"]["uid"] == user_pod["metadata"]["uid"]]
    assert still and still[0]["status"]["phase"] == "Running"
    out = alice.execute("print(6 * 7)", alice.start_kernel(), timeout=120).check().stdout
    assert "42" in out


def test_uninstall_leaves_only_the_kept_volumes(release, journey_facts):
    for client in (journey_facts["alice"],):
        client.stop_server("", timeout=120)
    release.helm("uninstall", ch.RELEASE, "-n", ch.NAMESPACE, "--timeout", "120s")
    kinds = {
        "pods": "/api/v1", "services": "/api/v1", "secrets": "/api/v1", "configmaps": "/api/v1",
        "serviceaccounts": "/api/v1", "persistentvolumeclaims": "/api/v1", "deployments": "/apis/apps/v1",
        "replicasets": "/apis/apps/v1", "networkpolicies": "/apis/networking.k8s.io/v1",
        "poddisruptionbudgets": "/apis/policy/v1beta1", "roles": "/apis/rbac.authorization.k8s.io/v1",
        "rolebindings": "/apis/rbac.authorization.k8s.io/v1",
    }  # fmt: skip
    left = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        left = {
            k: sorted(o["metadata"]["name"] for o in release.get(f"{base}/namespaces/{ch.NAMESPACE}/{k}")["items"])
            for k, base in kinds.items()
        }
        if not any(v for k, v in left.items() if k != "persistentvolumeclaims"):
            break
        time.sleep(0.5)
    others = {k: v for k, v in left.items() if v and k != "persistentvolumeclaims"}
    assert not others, others  # the garbage collector removed the ReplicaSets and pods too
    pvcs = left["persistentvolumeclaims"]
    kept = {f"{ch.RELEASE}-hub-db", f"{ch.RELEASE}-runs-db", f"{ch.RELEASE}-viewer-db"}
    assert kept <= set(pvcs), pvcs
    assert all(p in kept or p.startswith("claim-") for p in pvcs), pvcs  # user homes are never helm's to delete
    assert "claim-alice" in pvcs
    # a run's server is removed after the run, and its volume with it (KubeSpawner.delete_pvc)
    assert not [p for p in pvcs if p.startswith("claim-alice--run-")], pvcs
    print(f"after helm uninstall: {pvcs}")
