"""The warm pool: pure parts (recipe, identity, framing), then a real zygote forking real jupyterhub-singleuser servers.

The servers talk to a tiny stand-in for the hub's API (the only thing they ask
at start is the hub's version and, per request, who a token belongs to); the
identity checks through a kernel with real credentials are in
``tests/integration/test_warm_pool.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from labdeck.spawner import readiness
from labdeck.spawner.local import warmpool
from labdeck.spawner.userserver import zygote

BIN = os.path.dirname(sys.executable)
CMD = [os.path.join(BIN, "labdeck-server")]


# ------------------------------------------------------------------ pure


def test_recipe_accepts_this_environments_server_scripts_only():
    for script in ("labdeck-server", "jupyterhub-singleuser"):
        recipe, why = warmpool.recipe_for([os.path.join(BIN, script)], {"PATH": "/bin"})
        assert recipe is not None and why == ""
        assert recipe.python == os.path.join(BIN, "python")
    for cmd, reason in [
        (["nice", "-n", "10", CMD[0]], "not one of"),
        (["/usr/bin/env", "jupyterhub-singleuser"], "not one of"),
        ([], "no command"),
    ]:
        recipe, why = warmpool.recipe_for(cmd, {})
        assert recipe is None and reason in why
    assert warmpool.recipe_for(CMD, {}, shell_cmd=["bash", "-c"])[0] is None
    assert warmpool.recipe_for(CMD, {}, popen_kwargs={"cwd": "/"})[0] is None


def test_recipe_depends_only_on_import_time_environment():
    a, _ = warmpool.recipe_for(CMD, {"PATH": "/bin", "JUPYTERHUB_API_TOKEN": "t-alice", "HOME": "/h/alice"})
    b, _ = warmpool.recipe_for(CMD, {"PATH": "/usr/bin", "JUPYTERHUB_API_TOKEN": "t-bob", "HOME": "/h/bob"})
    c, _ = warmpool.recipe_for(CMD, {"JUPYTERHUB_SINGLEUSER_APP": "notebook"})
    d, _ = warmpool.recipe_for(CMD, {"PYTHONPATH": "/x"})
    assert a == b  # personal variables are given at claim time
    assert len({a, c, d}) == 3  # read at import: another zygote


def test_identity_is_what_a_cold_popen_gets():
    env = {"JUPYTERHUB_USER": "alice", "HOME": "/h/alice"}
    ident = warmpool.identity_for(CMD + ["--debug"], ["--allow-root"], env, "/h/alice", ids=(1001, 1001, ()), umask=0o077)
    assert ident == {
        "argv": ["--debug", "--allow-root"], "env": env, "cwd": "/h/alice", "sys_path0": BIN,
        "uid": 1001, "gid": 1001, "groups": [], "umask": 0o077,
    }
    assert zygote.decode_frame(zygote.encode_identity(ident)) == ident


@pytest.mark.parametrize("bad", [
    {"argv": "--x", "env": {}, "cwd": "/"},
    {"argv": [], "env": {"A": 1}, "cwd": "/"},
    {"argv": [], "env": {"A=B": "c"}, "cwd": "/"},
    {"argv": [], "env": {"A": "nul\0"}, "cwd": "/"},
    {"argv": [], "env": {}, "cwd": "relative"},
    {"argv": [], "env": {}, "cwd": "/", "uid": 0},  # uid without gid
    {"argv": [], "env": {}, "cwd": "/", "uid": -1, "gid": 0},
    {"argv": [], "env": {}, "cwd": "/", "uid": True, "gid": 0},
    {"argv": [], "env": {}, "cwd": "/", "umask": 0o7777},
    {"argv": [], "env": {}, "cwd": "/", "shell": "rm -rf /"},
])
def test_malformed_identities_are_refused(bad):
    with pytest.raises(zygote.IdentityError):
        zygote.check_identity(bad)


def test_frames_with_wrong_length_or_garbage_are_refused():
    good = zygote.encode_identity({"argv": [], "env": {}, "cwd": "/"})
    for data in (good[:-1], good + b"x", good[:4] + b"not json" + good[12:], b"\xff\xff\xff\xff"):
        with pytest.raises(zygote.IdentityError):
            zygote.decode_frame(data)


# ------------------------------------------------------ a real zygote


class _Hub(BaseHTTPRequestHandler):
    """What a starting jupyterhub-singleuser asks its hub: the version (any answer < 500 will do)."""

    def do_GET(self):
        body = json.dumps({"version": "6.1.1"}).encode()
        self.send_response(200)
        self.send_header("X-JupyterHub-Version", "6.1.1")
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def hub_api():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/hub/api"
    srv.shutdown()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_env(name: str, home: str, port: int, hub_api: str) -> dict:
    prefix = f"/user/{name}/"
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home, "USER": name,
        "JUPYTERHUB_USER": name, "JUPYTERHUB_API_TOKEN": f"token-of-{name}",
        "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{name}", "JUPYTERHUB_API_URL": hub_api,
        "JUPYTERHUB_SERVICE_PREFIX": prefix, "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}{prefix}",
        "JUPYTERHUB_BASE_URL": "/", "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
        "JUPYTERHUB_HOST": "", "JUPYTERHUB_DEFAULT_URL": "/lab",
    }


async def _ready_pool(size: int) -> warmpool.WarmPool:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    recipe, _ = warmpool.recipe_for(CMD, base)
    pool = warmpool.WarmPool(recipe, size, base)
    pool.ensure_started()
    deadline = time.monotonic() + 120
    while not pool.ready and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert pool.ready, "the zygote did not get ready"
    while len(pool.members) < size and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return pool


def _kill(pid):
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        pass


def _kill_hard(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _gone(pid, timeout=30) -> bool:
    """True once ``pid`` is gone - reaped, not a zombie (a zombie still answers kill(pid, 0))."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                f.read()
        except OSError:
            return True
        time.sleep(0.05)
    return False


async def test_concurrent_claims_get_distinct_servers_each_with_its_own_identity(tmp_path, hub_api):
    pool = await _ready_pool(2)
    members_before = {m.pid for m in pool.members}
    people = [f"p{i}" for i in range(4)]  # more people than members: two are forked on demand
    homes, ports = {}, {}
    for name in people:
        homes[name] = str(tmp_path / name)
        os.makedirs(homes[name])
        ports[name] = _port()
    args = ["--allow-root"] if os.geteuid() == 0 else []
    pids = []
    try:
        pids = await asyncio.gather(*(
            pool.claim(warmpool.identity_for(CMD, args, _server_env(n, homes[n], ports[n], hub_api), homes[n])) for n in people
        ))
        assert all(pids) and len(set(pids)) == len(people), pids
        assert members_before <= set(pids)
        for name, pid in zip(people, pids):
            # the server answers on *its* port under *its* prefix: it runs with the env it was given
            assert await readiness.wait_http(f"http://127.0.0.1:{ports[name]}/user/{name}/api", 60)
            assert os.readlink(f"/proc/{pid}/cwd") == homes[name]
            assert os.getsid(pid) == pid  # its own session, like Popen(start_new_session=True)
            fds = os.listdir(f"/proc/{pid}/fd")
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds]
            assert not any(homes[o] in link for o in people if o != name for link in links)
        pool.close()
        # unclaimed members and the zygote go away with the pool; claimed servers stay
        assert all(_gone(m) for m in members_before - set(pids))
        for pid in pids:
            assert not _gone(pid, timeout=0.2)
    finally:
        for pid in pids or []:
            if pid:
                _kill(pid)
        pool.close()


async def test_stopped_server_is_reaped_so_the_hubs_poll_sees_it_gone(tmp_path, hub_api):
    pool = await _ready_pool(1)
    try:
        port = _port()
        args = ["--allow-root"] if os.geteuid() == 0 else []
        pid = await pool.claim(warmpool.identity_for(CMD, args, _server_env("r", str(tmp_path), port, hub_api), str(tmp_path)))
        assert pid and await readiness.wait_http(f"http://127.0.0.1:{port}/user/r/api", 60)
        os.kill(pid, 15)
        assert _gone(pid), "a stopped pool server must not linger as a zombie (kill(pid, 0) would say alive)"
    finally:
        pool.close()


async def test_refused_identity_and_lost_zygote_mean_cold_start_not_failure(tmp_path):
    pool = await _ready_pool(1)
    try:
        member = pool.members[0].pid
        # a cwd that does not exist: the member refuses, says so, exits; the spawn starts cold
        bad = {"argv": [], "env": {"PATH": "/bin"}, "cwd": str(tmp_path / "missing")}
        assert await pool.claim(bad) is None
        assert _gone(member)
        # the zygote dies: the next claim returns at once (no waiting), the pool retries later
        os.kill(pool.proc.pid, 9)
        t = time.monotonic()
        assert await pool.claim({"argv": [], "env": {}, "cwd": "/"}) is None
        assert time.monotonic() - t < 5
        assert not pool.ready
    finally:
        pool.close()


def test_what_imports_did_to_the_environment_is_redone_for_the_person(tmp_path):
    import subprocess

    code = (
        "import json, os\n"
        "from labdeck.spawner.userserver import zygote\n"
        "before = dict(os.environ)\n"
        "os.environ['SET_BY_IMPORT'] = 'quiet'; os.environ.pop('GONE_AT_IMPORT')\n"  # what nbdime-like imports do
        "zygote.record_import_env_changes(before)\n"
        f"zygote.become({{'argv': [], 'cwd': {str(tmp_path)!r}, 'env': {{'HOME': '/h/p', 'GONE_AT_IMPORT': 'x', 'ZYGOTE_ONLY': ''}}}})\n"
        "print(json.dumps([dict(os.environ), os.getcwd()]))\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "GONE_AT_IMPORT": "1", "ZYGOTE_ONLY_SECRET": "s"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    after, cwd = json.loads(out)
    assert after == {"HOME": "/h/p", "ZYGOTE_ONLY": "", "SET_BY_IMPORT": "quiet"}
    assert cwd == str(tmp_path)


#: what a server process holds that was computed from who it is, as strings in module globals:
#: every str/bytes value (in module dicts, one level into their dicts, lists and tuples) that names
#: either home. The zygote imports PREIMPORTS as nobody; a claimed member must hold what a cold
#: server that imported them as the person holds.
FINGERPRINT = r"""
import json, os, sys
from labdeck.spawner.userserver import lazyimports, singleuser, zygote
lazyimports.install()
before = dict(os.environ)
missing = singleuser.preimport()
zygote.record_import_env_changes(before)
if sys.argv[1] == "warm":
    zygote.become({"argv": [], "cwd": sys.argv[2], "env": json.loads(sys.argv[3])})
marks = (b"zyg-home-", b"person-home-")
found = set()
def look(where, v):
    b = v.encode(errors="replace") if isinstance(v, str) else v
    if any(m in b for m in marks):
        found.add(f"{where}={b.decode(errors='replace')}")
for name, mod in list(sys.modules.items()):
    if name in ("__main__", "__mp_main__", "sys", "os", "posix", "posixpath") or mod is None:
        continue
    for key, v in list(getattr(mod, "__dict__", {}).items()):
        if isinstance(v, (str, bytes)):
            look(f"{name}.{key}", v)
        elif isinstance(v, dict) and not isinstance(v, type(os.environ)):
            for k2, v2 in list(v.items()):
                if isinstance(v2, (str, bytes)):
                    look(f"{name}.{key}[{k2!r}]", v2)
        elif isinstance(v, (list, tuple)):
            for v2 in v:
                if isinstance(v2, (str, bytes)):
                    look(f"{name}.{key}[]", v2)
print(json.dumps({"found": sorted(found), "missing": missing}))
"""


def test_a_claimed_member_holds_what_a_cold_server_computed_from_the_persons_home(tmp_path):
    """The zygote imports everything in PREIMPORTS as nobody (its own HOME); after ``become`` a member's
    modules must hold the person's home where a cold server's do (send2trash's trash, fsspec's config
    folder), and the zygote's home nowhere. Fails when a preimported module keeps an import-time path."""
    import subprocess

    zyg_home, person_home = tmp_path / "zyg-home-1", tmp_path / "person-home-1"
    zyg_home.mkdir()
    person_home.mkdir()
    (person_home / ".config" / "fsspec").mkdir(parents=True)
    (person_home / ".config" / "fsspec" / "conf.json").write_text('{"file": {"auto_mkdir": true}}')
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    person = {**base, "HOME": str(person_home), "USER": "p"}

    def fingerprint(kind, env):
        out = subprocess.run([sys.executable, "-P", "-c", FINGERPRINT, kind, str(tmp_path), json.dumps(person)],
                             env=env, capture_output=True, text=True, timeout=180, cwd=str(tmp_path))  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout)

    warm = fingerprint("warm", {**base, "HOME": str(zyg_home), "USER": "zygote"})
    cold = fingerprint("cold", person)
    assert warm["missing"] == cold["missing"]
    # the interpreter's start, not imports: site's user base (the zygote runs with -s: no user site for anyone)
    ignore = ("site.USER_BASE=", "site.USER_SITE=", "sysconfig._CONFIG_VARS['userbase']=")
    warm_found = [f for f in warm["found"] if not f.startswith(ignore)]
    cold_found = [f for f in cold["found"] if not f.startswith(ignore)]
    assert not [f for f in warm_found if "zyg-home-" in f], warm_found
    assert warm_found == cold_found
    # what it checks is there: a cold server keeps the person's trash folder and fsspec config folder
    assert any(f.startswith("send2trash.plat_other.HOMETRASH=") for f in cold_found), cold_found
    assert any(f.startswith("fsspec.config.conf_dir=") for f in cold_found), cold_found


def test_redo_identity_imports_reads_the_persons_fsspec_config_into_the_same_dict(tmp_path, monkeypatch):
    fsconf = pytest.importorskip("fsspec.config")
    from labdeck.spawner.userserver import zygote

    (tmp_path / ".config" / "fsspec").mkdir(parents=True)
    (tmp_path / ".config" / "fsspec" / "conf.json").write_text('{"memory": {"skip_instance_cache": true}}')
    conf = fsconf.conf
    saved = (dict(conf), fsconf.conf_dir, fsconf.default_conf_dir)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("FSSPEC_CONFIG_DIR", raising=False)
    try:
        assert "fsspec.config" in zygote.redo_identity_imports()
        assert fsconf.conf is conf  # fsspec.core/spec hold this dict by name
        assert conf["memory"] == {"skip_instance_cache": True}
        assert fsconf.conf_dir == str(tmp_path / ".config/fsspec")
    finally:
        conf.clear()
        conf.update(saved[0])
        fsconf.conf_dir, fsconf.default_conf_dir = saved[1], saved[2]


TRANSLATIONS = r"""
import json, sys
from labdeck.spawner.userserver import lazyimports, singleuser
lazyimports.install()
singleuser.preimport()
warmed = singleuser.prewarm() if sys.argv[1] == "warm" else []
from babel import localedata
cached = sorted(getattr(localedata, "_cache", {}))
from jupyterlab_server import translation_utils as t
names = [t.get_display_name(a, b) for a, b in (("en", "en"), ("fr", "en"), ("en", "fr"), ("de", "de"), ("xx", "en"))]
print(json.dumps({"warmed": warmed, "cached": cached, "names": names, "localtime": "babel.localtime" in sys.modules}))
"""


def test_prewarmed_babel_data_answers_like_a_cold_server():
    """The zygote loads babel's English data once (singleuser.prewarm); JupyterLab's language names
    come out as a cold server's, other languages still load on demand, and TZ (read by what it imports)
    decides which pool a claim can use."""
    import subprocess

    def run(kind):
        out = subprocess.run([sys.executable, "-P", "-c", TRANSLATIONS, kind], capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout)

    warm, cold = run("warm"), run("cold")
    assert warm["warmed"] == ["babel"]
    assert "en" in warm["cached"] and "en" not in cold["cached"]
    assert warm["names"] == cold["names"]
    assert warm["names"][:2] == ["English", "French"]
    if warm["localtime"]:
        assert "TZ" in warmpool.IMPORT_TIME_ENV
        assert warmpool.import_time_env({"TZ": "Europe/Paris", "HOME": "/h"}) == {"TZ": "Europe/Paris"}


async def test_a_claim_cancelled_by_a_stop_leaves_no_server_behind(tmp_path, hub_api):
    """A stop during the start cancels the claim: the member that may hold the identity is killed."""
    pool = await _ready_pool(1)
    member = None
    try:
        member = pool.members[0].pid
        home = str(tmp_path / "stopped")
        os.makedirs(home)
        identity = warmpool.identity_for(CMD, ["--allow-root"] if os.geteuid() == 0 else [], _server_env("stopped", home, _port(), hub_api), home)
        # the member cannot answer before the stop: a member that answered within the claim's first
        # step (the hub descheduled between its send and its receive) made the claim end unstoppable
        os.kill(member, signal.SIGSTOP)
        claim = asyncio.ensure_future(pool.claim(identity))
        while pool.members and pool.members[0].pid == member:  # until the claim took it
            await asyncio.sleep(0)
        claim.cancel()
        with pytest.raises(asyncio.CancelledError):
            await claim
        assert _gone(member)
    finally:
        pool.close()
        if member:
            _kill_hard(member)  # whatever happened above, the member (stopped, or become a server) does not outlive the test
