"""R users get the same S3 and BigQuery as Python, in every process they start (issue 23).

A team VM (``labdeck up`` as root, one OS user per person). In alice's server:
an IRkernel kernel, and an RStudio-like session — a process of alice's uid
started with only ``HOME``, ``USER`` and ``PATH``, as RStudio Server starts
``rsession`` — where R reads its Renviron files. Both run ``r_checks.R`` with no
credential code: gargle's ``token_fetch`` (the metadata endpoint) and an httr2
query to the local BigQuery endpoint, the aws CLI through ``system2`` and boto3
through reticulate; bob's dataset and prefix are refused by the clouds.
"""

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from labdeck.spawner.local.spawner import local_capabilities
from tests.helpers.hubclient import HubClient
from tests.helpers.platform import start_platform
from tests.helpers.required import missing

from .test_os_users import _packages_reachable


def _r_ready() -> bool:
    if not shutil.which("Rscript") or "r" in local_capabilities():
        return False
    probe = 'for (p in c("gargle", "httr2", "reticulate", "openssl")) library(p, character.only = TRUE)'
    return subprocess.run(["Rscript", "-e", probe], capture_output=True, timeout=60).returncode == 0


pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("setpriv"), reason="needs root, useradd and setpriv"),
    pytest.mark.skipif(not _packages_reachable(), reason="this checkout's packages are not readable by other users"),
]


@pytest.fixture(scope="module", autouse=True)
def r_installed():
    if not _r_ready():
        missing("R", "R, IRkernel, gargle, httr2, reticulate or openssl not installed (make r-deps)")

SUFFIX = secrets.token_hex(3)
ALICE, BOB = f"ralice-{SUFFIX}", f"rbob-{SUFFIX}"
#: short, so that the refresh test sees its first credentials expire
TTL = 20
SCRIPT = Path(__file__).with_name("r_checks.R")


def sysname(hub_name):
    from labdeck.spawner.local.accounts import system_username

    return system_username(hub_name)


@pytest.fixture(scope="module")
def team():
    root = Path(tempfile.mkdtemp(prefix="labdeck-rteam-", dir="/tmp"))
    os.chmod(root, 0o755)
    shutil.copy(SCRIPT, root / "r_checks.R")
    os.chmod(root / "r_checks.R", 0o644)
    plat = start_platform(root / "state", extra_env={"LABDECK_OS_USERS": "1", "LABDECK_CREDENTIAL_TTL": str(TTL)})
    plat.script = str(root / "r_checks.R")
    _SETTINGS.update(plat.settings())
    try:
        yield plat
    finally:
        plat.stop()
        for name in (ALICE, BOB):
            try:
                uid = pwd.getpwnam(sysname(name)).pw_uid
            except KeyError:
                continue
            for pid in processes_of(uid):  # what the platform's stop left behind (reported, then ended)
                print(f"left behind by the platform's stop: {name} pid {pid} {Path(f'/proc/{pid}/cmdline').read_bytes()[:120]!r}")
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            subprocess.run(["userdel", sysname(name)], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def processes_of(uid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    pids.append(int(entry))
            except FileNotFoundError:
                pass
    return pids


@pytest.fixture(scope="module")
def bob(team):
    """bob's private table and object, made with his own credentials (Python, as today)."""
    client = HubClient(team.url).login(BOB, team.password)
    client.start_server()
    client.kernel = client.start_kernel()
    out = client.execute(
        "import os, boto3, pandas as pd\nfrom google.cloud import bigquery\n"
        "c = bigquery.Client(); ds = os.environ['LABDECK_BQ_DATASET']\n"
        "c.load_table_from_dataframe(pd.DataFrame({'secret': [42]}), f'{c.project}.{ds}.private').result()\n"
        "home = os.environ['LABDECK_S3_HOME']; bucket, prefix = home[5:].split('/', 1)\n"
        "boto3.client('s3').put_object(Bucket=bucket, Key=prefix + 'secret.txt', Body=b'bob only')\n"
        "print(home, ds)",
        client.kernel,
    ).check()
    client.s3_home, client.dataset = out.stdout.split()
    return client


@pytest.fixture(scope="module")
def alice(team):
    client = HubClient(team.url).login(ALICE, team.password)
    client.start_server()
    return client


def r_call(team, bob) -> str:
    return f"Sys.setenv(BOB_HOME = '{bob.s3_home}', BOB_DATASET = '{bob.dataset}'); source('{team.script}')"


def parse(stdout: str) -> dict:
    return {line.split()[0]: line.split()[1:] for line in stdout.splitlines() if line.strip()}


def assert_checks_pass(out: dict):
    assert out["gargle-class"] == ["GceToken"]
    assert out["bq-own-create"] == ["200"]
    assert out["bq-own-select"] == ["200", "r", "42"]
    assert out["bq-bob"] == ["403"]
    assert out["cli-own-cp"] == ["0"], " ".join(out.get("cli-own-cp-output", []))
    assert out["cli-own-read"] == ["0", "hello", "from", "R"]
    assert out["cli-bob-cp"][0] != "0" and out["cli-bob-cp"][1] == "TRUE"
    assert out["boto3-own"] == ["via", "reticulate"], out["boto3-own"]
    assert out["boto3-bob"] == ["AccessDenied"]


def test_the_servers_python_serves_r(team):
    """What R's aws CLI and reticulate need of the servers' Python (see :func:`server_python_gaps`)."""
    assert server_python_gaps() == []


def server_python_gaps() -> list[str]:
    """Why the servers' Python (``server_bin``) cannot serve R's aws CLI and reticulate here; empty when it can.

    Both are known gaps of a *copied* interpreter (``labdeck.hub.local.serverenv`` builds one when the
    hub's Python is private, e.g. under /root): R starts every child with its own ``LD_LIBRARY_PATH``
    (``/usr/lib/R/etc/ldpaths``: ``/usr/lib/x86_64-linux-gnu`` first), which beats a ``RUNPATH``, so
    another ``libpython3.X`` there is loaded and the copy's C extensions (``_ssl``) fail; and
    reticulate looks for ``libpython`` only directly in LIBPL, LIBDIR, prefix, exec_prefix and
    base_exec_prefix, none of which holds the copy's.
    """
    gaps = []
    python = str(Path(team_settings()["server_bin"]) / "python")
    r_ld = subprocess.run(["Rscript", "-e", "cat(Sys.getenv('LD_LIBRARY_PATH'))"], capture_output=True, text=True, timeout=60).stdout
    probe = subprocess.run([python, "-c", "import ssl"], env={"PATH": "/usr/bin:/bin", "LD_LIBRARY_PATH": r_ld}, capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        gaps.append(f"the servers' Python cannot import ssl under R's LD_LIBRARY_PATH ({probe.stderr.strip().splitlines()[-1][:160]}): a RUNPATH loses to it, an RPATH (patchelf --force-rpath) does not")
    if libpython_gap():
        gaps.append("reticulate finds no libpython of the servers' Python that the person can read: link it into the server environment's prefix")
    return gaps


def libpython_gap() -> bool:
    """True where reticulate cannot find a libpython of the servers' Python that other users can read.

    reticulate (``python_config``) looks for ``libpython<ver>*.so`` directly in LIBPL, LIBDIR,
    sys.prefix, exec_prefix and base_exec_prefix of the Python it is given.
    """
    import glob
    import json
    import sys

    from labdeck.hub.local.serverenv import reachable_by_others

    python = Path(team_settings()["server_bin"]) / "python"
    code = (
        "import json, sys, sysconfig\n"
        "print(json.dumps([sysconfig.get_config_var('LIBPL'), sysconfig.get_config_var('LIBDIR'), sys.prefix, sys.exec_prefix, sys.base_exec_prefix]))"
    )
    dirs = json.loads(subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout)
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    found = [f for d in dirs if d for f in glob.glob(os.path.join(d, f"libpython{version}*.so*"))]
    return not any(reachable_by_others(f) for f in found)


_SETTINGS: dict = {}


def team_settings() -> dict:
    return _SETTINGS


def rstudio_like(team, bob) -> dict:
    """Rscript as alice with only HOME, USER and PATH (what rserver gives rsession), from her home."""
    pw = pwd.getpwnam(sysname(ALICE))
    argv = [
        "setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups",
        "env", "-i", f"HOME={pw.pw_dir}", f"USER={pw.pw_name}", "PATH=/usr/local/bin:/usr/bin:/bin",
        "Rscript", "-e", r_call(team, bob),
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=pw.pw_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return parse(proc.stdout)


def test_irkernel_kernel_gets_bigquery_and_s3_with_no_code(team, alice, bob):
    kernel = alice.start_kernel(name="ir")
    r = alice.execute(r_call(team, bob), kernel, timeout=300).check()
    out = parse(r.stdout)
    assert_checks_pass(out)
    print("IRkernel:", {k: v for k, v in out.items() if k.endswith("seconds")})


def test_rstudio_like_clean_environment_gets_the_same(team, alice, bob):
    out = rstudio_like(team, bob)
    assert_checks_pass(out)
    print("clean env:", {k: v for k, v in out.items() if k.endswith("seconds")})


def test_a_clean_environment_shell_gets_s3_through_the_default_aws_config(team, alice, bob):
    """What a terminal login shell or a tool that scrubs its environment sees: only HOME, USER and PATH."""
    pw = pwd.getpwnam(sysname(ALICE))
    server_bin = team_settings()["server_bin"]
    home = f"s3://labdeck-data/home/{ALICE}/"
    probe = Path(pw.pw_dir) / "clean-env.txt"
    probe.write_text("from a clean environment\n")
    os.chown(probe, pw.pw_uid, pw.pw_gid)

    def aws(*args):
        argv = [
            "setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups",
            "env", "-i", f"HOME={pw.pw_dir}", f"USER={pw.pw_name}", f"PATH={server_bin}:/usr/local/bin:/usr/bin:/bin",
            "aws", "s3", *args,
        ]  # fmt: skip
        t0 = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=pw.pw_dir)
        return proc, time.monotonic() - t0

    up, seconds = aws("cp", str(probe), home + "clean-env.txt")
    assert up.returncode == 0, up.stderr
    back, _ = aws("cp", home + "clean-env.txt", "-")
    assert (back.returncode, back.stdout) == (0, "from a clean environment\n")
    denied, _ = aws("cp", str(probe), bob.s3_home + "from-alice.txt")
    assert denied.returncode != 0 and "AccessDenied" in denied.stderr
    print(f"clean-env aws s3 cp (new process, credential_process included): {seconds:.2f}s")


def test_the_wiring_is_alices_alone(team, alice, bob):
    pw = pwd.getpwnam(sysname(ALICE))
    home = Path(pw.pw_dir)
    wiring = [home / ".aws/config", home / ".config/gcloud/application_default_credentials.json", home / ".Renviron", home / ".labdeck/jupyterhub-api-token"]
    for f in wiring:
        st = f.stat()
        assert (st.st_uid, st.st_mode & 0o777) == (pw.pw_uid, 0o600), f
    # no secret in the files at the default paths: the token is only in the 0600 token file
    token_file = (home / ".labdeck/jupyterhub-api-token").read_text()
    assert all(token_file not in f.read_text() for f in wiring[:3])
    # bob's kernel can neither read alice's token file nor get a token from her metadata endpoint
    port = next(line.split("'")[1] for line in (home / ".Renviron").read_text().splitlines() if line.startswith("GCE_METADATA_URL="))
    code = (
        "import urllib.request, urllib.error\n"
        f"try:\n    open({str(home / '.labdeck/jupyterhub-api-token')!r}).read(); print('READ')\n"
        "except PermissionError:\n    print('DENIED')\n"
        f"req = urllib.request.Request('http://{port}/computeMetadata/v1/instance/service-accounts/default/token', headers={{'Metadata-Flavor': 'Google'}})\n"
        "try:\n    urllib.request.urlopen(req, timeout=10); print('TOKEN')\n"
        "except urllib.error.HTTPError as e:\n    print(e.code)\n"
    )
    assert bob.execute(code, bob.kernel).check().stdout.split() == ["DENIED", "403"]


def test_the_r_welcome_notebook_runs_top_to_bottom(team, alice):
    r = requests.get(alice.server_url() + "api/contents/Welcome-R.ipynb", headers=alice.headers(), timeout=30)
    assert r.status_code == 200, r.text[:200]
    nb = r.json()["content"]
    assert nb["metadata"]["kernelspec"]["name"] == "ir"
    kernel = alice.start_kernel(name="ir")
    outputs = [alice.execute("".join(c["source"]), kernel, timeout=120).check().stdout for c in nb["cells"] if c["cell_type"] == "code"]
    assert outputs[0].splitlines() == [f"S3 home:  s3://labdeck-data/home/{ALICE}/", f"BigQuery: labdeck-local.{alice_dataset()}"]
    assert outputs[-1].strip() == '[1] "2"'
    assert "hello-from-r.txt" in outputs[1]


def alice_dataset():
    from labdeck.spawner.builders import bigquery_dataset

    return bigquery_dataset(ALICE)


def test_the_launcher_offers_no_rstudio_tile_that_cannot_start(team, alice):
    from labdeck.spawner.userserver.launchers import runnable

    r = requests.get(alice.server_url() + "server-proxy/servers-info", headers=alice.headers(), timeout=30)
    assert r.status_code == 200, r.text[:200]
    entries = {s["name"]: s["launcher_entry"]["enabled"] for s in r.json()["server_processes"]}
    assert entries["rstudio"] is runnable("rstudio")


def test_clean_environment_keeps_working_after_the_credentials_expire(team, alice, bob):
    first = rstudio_like(team, bob)
    # wait out the credentials' lifetime (LABDECK_CREDENTIAL_TTL) before the second session
    time.sleep(TTL + 3)
    second = rstudio_like(team, bob)
    assert second["gargle-token-sha"] != first["gargle-token-sha"]  # a fresh token, fetched by itself
    assert_checks_pass(second)


def test_stopping_her_server_leaves_no_r_process_behind(team, alice):
    """IRkernel has no parent poller (ipykernel does): R kernels must be ended with the server."""
    uid = pwd.getpwnam(sysname(ALICE)).pw_uid
    assert any(b"IRkernel" in Path(f"/proc/{p}/cmdline").read_bytes() for p in processes_of(uid))
    alice.stop_server()
    deadline = time.monotonic() + 30
    while processes_of(uid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [Path(f"/proc/{p}/cmdline").read_bytes()[:80] for p in processes_of(uid)] == []


def test_a_persons_own_aws_config_is_never_overwritten(team, alice):
    pw = pwd.getpwnam(sysname(ALICE))
    cfg = Path(pw.pw_dir) / ".aws" / "config"
    own = "[default]\nregion = eu-north-1\n"
    cfg.write_text(own)  # as alice would (the file stays hers)
    os.chown(cfg, pw.pw_uid, pw.pw_gid)
    if alice.api("GET", f"/users/{ALICE}").json().get("servers"):
        alice.stop_server()
    alice.start_server()
    assert cfg.read_text() == own
    r = requests.get(f"{team.url}/hub/api/users/{ALICE}", headers=alice.headers(), timeout=10)
    assert r.status_code == 200
