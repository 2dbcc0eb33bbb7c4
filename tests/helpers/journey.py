"""The journey of a data scientist, as one scenario for every way labdeck runs.

Driven against ``make up`` (tests/integration/test_journey.py, :func:`tests.helpers.platform.start_platform`)
and against the chart's own hub in the kube harness (tests/kube/test_chart_journey.py), so
the two cannot drift: the same steps, the same assertions, only a :class:`Target` differs.

Through the public URL (the proxy), with the target's login (the dev login's form by
default; the chart harness logs in through a real OIDC provider's form, :attr:`Target.login`):

1. alice, bob and carol log in; alice sees the profile form;
2. alice spawns her default server (the default profile);
3. a kernel cell writes, reads and lists her S3 home with the broker's credentials
   (temporary: a session token; where the object store enforces per-user prefixes, bob's
   is denied, and so are listing bob's prefix and the bucket root);
4. she submits a parameterized run of a notebook staged in her S3 home and gets its
   output notebook (rendered by the viewer);
5. she shares the output read-only with bob, who opens it through the viewer; carol,
   not named in the share, gets 403;
6. ``Welcome.ipynb`` (and the admin's onboarding files) are in her home.

Every step returns facts; durations are recorded in ``facts["seconds"]`` for the report
(never asserted). :func:`group_grant` is a further step for targets whose identity
provider sends groups: a group's grant opens its shared prefix to a member's kernel only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import requests

from tests.helpers.hubclient import HubClient

RUN_NOTEBOOK = "journey/params.ipynb"


@dataclass
class Target:
    """Where the journey runs and what differs there (nothing about *how* a step is done)."""

    name: str
    url: str
    #: the dev login's shared password (unused when ``login`` is set)
    password: str = ""
    #: how a person logs in: username -> a logged-in client with an API token; None is the
    #: dev login's form with ``password`` (an OIDC target passes tests.helpers.oidc.journey_login)
    login: Callable[[str], HubClient] | None = None
    #: where a user's home is on this machine (a homes dir locally, the PVC directory on the harness)
    home_dir: Callable[[str], Path | None] = lambda user: None
    #: relative paths the admin's onboarding directory puts in every new home
    onboarding_files: tuple[str, ...] = ()
    #: the object store refuses another user's prefix, listings included (labdeck's local
    #: AWS endpoint evaluates the session policy and its s3:prefix condition, as AWS does)
    enforces_isolation: bool = True
    spawn_timeout: float = 240
    run_timeout: float = 360
    facts: dict = field(default_factory=dict)


def _timed(target: Target, step: str, start: float) -> None:
    target.facts.setdefault("seconds", {})[step] = round(time.monotonic() - start, 2)


def login(target: Target, user: str) -> HubClient:
    if target.login is not None:
        client = target.login(user)
        assert client.name == user and client.token, (user, client.name)
        return client
    return HubClient(target.url).login(user, target.password)


def see_profile_form(target: Target, client: HubClient) -> str:
    t = time.monotonic()
    r = client.http.get(f"{target.url}/hub/spawn/{client.name}", timeout=30)
    assert r.status_code == 200, r.text[:300]
    assert 'name="profile"' in r.text, "the spawn page has no profile form"
    _timed(target, "profile_form", t)
    return r.text


def spawn(target: Target, client: HubClient) -> dict:
    t = time.monotonic()
    model = client.start_server("", {}, timeout=target.spawn_timeout)
    _timed(target, "spawn", t)
    return model


S3_CELL = """
import boto3, os
home = os.environ["LABDECK_S3_HOME"]
bucket, prefix = home[len("s3://"):].split("/", 1)
s3 = boto3.client("s3")
s3.put_object(Bucket=bucket, Key=prefix + "journey/hello.txt", Body=b"hello from the journey")
print("read:", s3.get_object(Bucket=bucket, Key=prefix + "journey/hello.txt")["Body"].read().decode())
creds = boto3.Session().get_credentials().get_frozen_credentials()
print("temporary:", bool(creds.token))
print("identity:", boto3.client("sts").get_caller_identity()["Arn"])
try:
    s3.get_object(Bucket=bucket, Key="home/bob/journey/hello.txt")
    print("other: readable")
except Exception as e:
    print("other:", type(e).__name__, getattr(e, "response", {}).get("Error", {}).get("Code", ""))
print("list-own:", prefix + "journey/hello.txt" in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]])
for what, kw in (("list-other", {"Prefix": "home/bob/"}), ("list-root", {})):
    try:
        s3.list_objects_v2(Bucket=bucket, **kw)
        print(what + ": listed")
    except Exception as e:
        print(what + ":", getattr(e, "response", {}).get("Error", {}).get("Code", type(e).__name__))
"""


def s3_cell(target: Target, client: HubClient) -> str:
    t = time.monotonic()
    kernel = client.start_kernel()
    out = client.execute(S3_CELL, kernel, timeout=120).check().stdout
    assert "read: hello from the journey" in out, out
    assert "temporary: True" in out, out  # short-lived credentials from the broker, never a long-lived key
    identity = next(line for line in out.splitlines() if line.startswith("identity:"))
    # an identity issued for this person (an assumed role whose session or role names them)
    assert ":assumed-role/" in identity and client.name in identity, identity
    target.facts["identity"] = identity.split(":", 1)[1].strip()
    other = next(line for line in out.splitlines() if line.startswith("other:"))
    target.facts["other_prefix"] = other
    assert "list-own: True" in out, out
    if target.enforces_isolation:
        assert "AccessDenied" in other or " 403" in other, out
        assert "list-other: AccessDenied" in out and "list-root: AccessDenied" in out, out
    _timed(target, "s3_cell", t)
    target.facts["kernel"] = kernel
    return out


def _run_notebook() -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.cells.append(nbformat.v4.new_code_cell("n = 1", metadata={"tags": ["parameters"]}))
    nb.cells.append(nbformat.v4.new_code_cell("print('journey-run', n * 2)"))
    return nbformat.writes(nb)


def stage_notebook(target: Target, client: HubClient) -> None:
    """Put the run's notebook in the home (contents API) and stage it in the S3 home (from the kernel)."""
    text = _run_notebook()
    base = client.server_url()
    requests.put(f"{base}api/contents/journey", headers=client.headers(), json={"type": "directory"}, timeout=30)
    r = requests.put(f"{base}api/contents/{RUN_NOTEBOOK}", headers=client.headers(),
                     json={"type": "notebook", "format": "json", "content": json.loads(text)}, timeout=30)  # fmt: skip
    assert r.status_code in (200, 201), r.text[:300]
    code = (
        "import boto3, os\n"
        "bucket, prefix = os.environ['LABDECK_S3_HOME'][5:].split('/', 1)\n"
        f"boto3.client('s3').put_object(Bucket=bucket, Key=prefix + {RUN_NOTEBOOK!r}, Body={text!r}.encode())\n"
        "print('staged')"
    )
    assert "staged" in client.execute(code, target.facts["kernel"], timeout=120).check().stdout


def runs_api(target: Target, client: HubClient, method: str, path: str, **kw) -> requests.Response:
    kw.setdefault("timeout", 30)
    return requests.request(method, f"{target.url}/services/runs/api{path}", headers=client.headers(), **kw)


def submit_run(target: Target, client: HubClient) -> dict:
    t = time.monotonic()
    stage_notebook(target, client)
    body = {"notebook": RUN_NOTEBOOK, "staged_input": RUN_NOTEBOOK, "parameters": {"n": 21}, "timeout": 240}
    r = runs_api(target, client, "POST", "/runs", json=body)
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    deadline = time.monotonic() + target.run_timeout
    run = {}
    while time.monotonic() < deadline:
        run = runs_api(target, client, "GET", f"/runs/{run_id}").json()
        if run.get("status") in ("succeeded", "failed", "timed_out"):
            break
        time.sleep(1)
    assert run.get("status") == "succeeded", run
    assert run["output"].startswith(f"s3://") and f"/home/{client.name}/runs/" in run["output"], run
    _timed(target, "run", t)
    return run


def output_path(run: dict, user: str) -> str:
    return run["output"].split(f"/home/{user}/", 1)[1]


def viewer(target: Target, client: HubClient, path: str) -> requests.Response:
    """As a browser: the hub login cookie, the viewer's OAuth redirects followed."""
    return client.http.get(f"{target.url}/services/viewer/{path}", timeout=60)


def share(target: Target, owner: HubClient, reader: HubClient, outsider: HubClient, run: dict) -> dict:
    t = time.monotonic()
    rel = output_path(run, owner.name)
    own = viewer(target, owner, "view/" + rel)
    assert own.status_code == 200 and "journey-run 42" in own.text, own.text[:300]
    r = requests.post(f"{target.url}/services/viewer/api/shares", headers=owner.headers(),
                      json={"path": rel, "user": reader.name}, timeout=30)  # fmt: skip
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    seen = viewer(target, reader, f"s/{sid}")
    assert seen.status_code == 200 and "journey-run 42" in seen.text, seen.text[:300]
    assert viewer(target, outsider, f"s/{sid}").status_code == 403
    _timed(target, "share", t)
    return r.json()


def welcome_in_home(target: Target, client: HubClient) -> None:
    r = requests.get(f"{client.server_url()}api/contents/Welcome.ipynb?content=0", headers=client.headers(), timeout=30)
    assert r.status_code == 200, r.text[:300]
    home = target.home_dir(client.name)
    if home is not None:
        assert (home / "Welcome.ipynb").is_file(), sorted(p.name for p in home.iterdir())
        for rel in target.onboarding_files:
            assert (home / rel).is_file(), f"{rel} (admin onboarding) not in {home}"


def run(target: Target) -> dict:
    """The whole journey; returns the facts (clients, run, share, durations)."""
    alice, bob, carol = (login(target, u) for u in ("alice", "bob", "carol"))
    see_profile_form(target, alice)
    server = spawn(target, alice)
    s3_cell(target, alice)
    done = submit_run(target, alice)
    shared = share(target, alice, bob, carol, done)
    welcome_in_home(target, alice)
    target.facts.update(alice=alice, bob=bob, carol=carol, server=server, run=done, share=shared)
    return target.facts


GROUP_CELL = """
import boto3, os
from botocore.exceptions import ClientError
bucket = os.environ["LABDECK_S3_HOME"][len("s3://"):].split("/", 1)[0]
s3 = boto3.client("s3")
for what, call in (
    ("write", lambda: s3.put_object(Bucket=bucket, Key={key!r}, Body=b"written by " + {user!r}.encode())),
    ("read", lambda: s3.get_object(Bucket=bucket, Key={key!r})["Body"].read().decode()),
    ("list", lambda: s3.list_objects_v2(Bucket=bucket, Prefix={key!r}.rsplit("/", 1)[0] + "/")["KeyCount"]),
):
    try:
        result = call()
        print(what + ":", "ok" if what == "write" else result)
    except ClientError as e:
        print(what + ":", e.response["Error"]["Code"])
"""


def group_grant(target: Target, member: HubClient, outsider: HubClient, key: str, write: bool = True, kernel: str | None = None) -> dict:
    """A group's grant opens the object ``key`` under its shared prefix to a member's kernel, not an outsider's.

    With ``write`` (a read-write grant) the member writes ``key`` and reads it back; without
    (a read-only grant, ``key`` already there) the member reads it and is refused the write.
    The member lists the key's folder too; the member runs in a kernel of their running
    server (``kernel``, or a new one); the outsider's server (started here if it is not
    running) gets AccessDenied for all three, with the real boto3 and the broker's credentials.
    """
    t = time.monotonic()
    out = member.execute(GROUP_CELL.format(key=key, user=member.name), kernel or member.start_kernel(), timeout=120).check().stdout
    if write:
        assert "write: ok" in out and f"read: written by {member.name}" in out, out
    else:
        assert "write: AccessDenied" in out and "read: " in out, out
        assert not any(f"read: {code}" in out for code in ("AccessDenied", "NoSuchKey")), out
    listed = next(line for line in out.splitlines() if line.startswith("list: "))
    assert listed[len("list: "):].isdigit() and int(listed[len("list: "):]) >= 1, out
    servers = outsider.api("GET", f"/users/{outsider.name}").json().get("servers") or {}
    if not (servers.get("") or {}).get("ready"):
        outsider.start_server("", {}, timeout=target.spawn_timeout)
    denied = outsider.execute(GROUP_CELL.format(key=key, user=outsider.name), outsider.start_kernel(), timeout=120).check().stdout
    assert "write: AccessDenied" in denied and "read: AccessDenied" in denied and "list: AccessDenied" in denied, denied
    _timed(target, "group_grant", t)
    return {"member": out, "outsider": denied}
