"""One OS user per person for the local spawner when the hub runs as root (a team VM).

Requirements, as in ``jupyterhub/slugs.py``:

- **deterministic and collision-free names**: hub user ``alice`` is system user
  ``labdeck-alice``; a name that is not a valid Linux user name as it is
  (``.``, ``@``, ``_``, longer than 24 characters…) goes through
  ``jupyterhub.slugs.safe_slug`` with ``max_length`` 24, which adds a hash of the
  original name (Linux allows 32 characters, the prefix takes 8). The account's
  comment (GECOS) records the hub name it belongs to, and an existing account
  that records another name (or none) is refused, never shared.
- **own group only**: each account gets its own primary group and no
  supplementary group; processes drop to it with ``setgroups([])``.
- **home 0700**, owned by the account; the parent (``homes/``) stays root's.
- **the hub never writes into a home as root**: files a server needs and the
  onboarding files are written by :func:`install_main` running *as the user*
  (``python -m labdeck.spawner.local.accounts install``), so a symlink the person put
  in their home can never redirect a root write.

Pure parts: :func:`system_username`, :func:`account_comment`. Privileged parts
(root only): :func:`ensure_account`, :func:`ensure_home`, :func:`run_as`;
:func:`preexec` is what a spawn (cold or from a warm pool: ``Account.ids``)
drops to. Removing a user from the hub deletes neither the account nor the home.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass

PREFIX = "labdeck-"
#: Linux (shadow-utils) limit on user names
MAX_LENGTH = 32
#: files the person's own processes create are theirs alone
UMASK = 0o077


class OSUserError(RuntimeError):
    """An account cannot be created or used; the message is for an admin (no secrets)."""


class AccountRefused(OSUserError):
    """An existing account labdeck will not use as it is.

    ``str(e)`` (and :attr:`admin_message`) says what to run; :attr:`person_message`
    is what the person sees on the spawn page (no paths, no account details).
    """

    def __init__(self, admin_message: str, person_message: str):
        super().__init__(admin_message)
        self.admin_message = admin_message
        self.person_message = person_message


ASK_ADMIN = "Your admin has been told what to do (see the hub's log); ask them, then start your server again."


def system_username(hub_name: str, prefix: str = PREFIX) -> str:
    """The system user of hub user ``hub_name`` (pure, deterministic)."""
    from jupyterhub.slugs import safe_slug

    return prefix + safe_slug(hub_name, max_length=MAX_LENGTH - len(prefix))


def account_comment(hub_name: str) -> str:
    """The GECOS field that marks an account as labdeck's for ``hub_name``."""
    return f"labdeck user {hub_name}"


@dataclass(frozen=True)
class Account:
    hub_name: str
    name: str
    uid: int
    gid: int
    home: str

    @property
    def ids(self) -> tuple[int, int, tuple[int, ...]]:
        """(uid, gid, supplementary groups): what a process of this person runs with."""
        return self.uid, self.gid, ()


_lock = threading.Lock()


def _lookup(name: str):
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def ensure_account(hub_name: str, home: str, shell: str = "/bin/bash", log=None) -> Account:
    """The account of ``hub_name``, created (``useradd``) the first time. Root only.

    An account of labdeck's (its comment names ``hub_name``) whose home is
    elsewhere - the state directory was moved or recreated - is re-homed
    (``usermod --home``) when its old home is gone or empty. It is refused
    with :class:`AccountRefused` when the old home still holds files (they
    would be silently left behind) or when the account is not labdeck's.
    """
    name = system_username(hub_name)
    comment = account_comment(hub_name)
    with _lock:
        pw = _lookup(name)
        if pw is None:
            argv = ["useradd", "--user-group", "--no-create-home", "--home-dir", home, "--shell", shell, "--comment", comment, name]
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            pw = _lookup(name)
            if pw is None:
                raise OSUserError(f"could not create system user {name}: {proc.stderr.strip()[:300] or f'useradd exited {proc.returncode}'}")
        if pw.pw_gecos != comment or pw.pw_uid == 0 or pw.pw_gid == 0:
            raise foreign_account(hub_name, name, pw.pw_gecos, pw.pw_uid == 0 or pw.pw_gid == 0, home)
        if os.path.realpath(pw.pw_dir) != os.path.realpath(home):
            if holds_files(pw.pw_dir):
                raise home_in_use(hub_name, name, pw.pw_dir, home)
            proc = subprocess.run(["usermod", "--home", home, name], capture_output=True, text=True, timeout=60)
            pw = _lookup(name)
            if pw is None or os.path.realpath(pw.pw_dir) != os.path.realpath(home):
                raise OSUserError(f"could not re-home system user {name} to {home}: {proc.stderr.strip()[:300] or f'usermod exited {proc.returncode}'}")
            if log is not None:
                log.info("System user %s re-homed to %s (its old home is gone: the state directory was moved or recreated)", name, home)
    return Account(hub_name, name, pw.pw_uid, pw.pw_gid, home)


def holds_files(path: str) -> bool:
    """True if ``path`` exists and is anything but an empty directory (without following links)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        return True
    try:
        with os.scandir(path) as it:
            return next(it, None) is not None
    except OSError:
        return True


def foreign_account(hub_name: str, name: str, comment: str, privileged: bool, home: str) -> AccountRefused:
    """Pure: the refusal of an account labdeck did not make for ``hub_name``, with what an admin can run."""
    q = shlex.quote
    if privileged:
        admin = f"system user {name} has uid or gid 0; labdeck never runs {hub_name!r}'s server with it. Remove or rename it (userdel {name})."
    else:
        admin = (
            f"system user {name} exists but is not labdeck's account for {hub_name!r} (its comment is {comment!r}, "
            f"labdeck's says {account_comment(hub_name)!r}); refusing to use it. If it is an unused leftover, remove it: "
            f"userdel {name} . To hand it to labdeck instead: usermod --comment {q(account_comment(hub_name))} --home {q(home)} {name}"
        )
    person = f"There is already an account named {name} on this machine that labdeck did not create, so your server cannot start. {ASK_ADMIN}"
    return AccountRefused(admin, person)


def home_in_use(hub_name: str, name: str, old: str, new: str) -> AccountRefused:
    """Pure: the refusal of an account whose home is in another state directory and still holds files."""
    q = shlex.quote
    admin = (
        f"system user {name} has home {old}, which still holds files, but {hub_name!r}'s home is now {new} "
        f"(the state directory was moved or recreated); refusing to leave those files behind. "
        f"To keep them: mv {q(old)} {q(new)} && usermod --home {q(new)} {name} . "
        f"To start {hub_name!r} from scratch instead: usermod --home {q(new)} {name}"
    )
    person = f"Your files are still in an earlier labdeck data directory on this machine, so your server will not start without them. {ASK_ADMIN}"
    return AccountRefused(admin, person)


def ensure_home(account: Account) -> None:
    """Make the home exist, owned by the account, mode 0700. Root only.

    The parent must be root's and not writable by anyone else (so nobody can
    swap the home for a link). A home left over from a run without OS users
    (owned by root) is handed over to the account, without following links.
    """
    parent = os.path.dirname(account.home)
    st = os.lstat(parent)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
        raise OSUserError(f"{parent} must be a directory owned by root and writable by root only")
    try:
        os.mkdir(account.home, 0o700)
    except FileExistsError:
        pass
    fd = os.open(account.home, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        previous = os.fstat(fd).st_uid
        os.fchown(fd, account.uid, account.gid)
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    if previous != account.uid:
        for root, dirs, files in os.walk(account.home):
            for entry in dirs + files:
                os.lchown(os.path.join(root, entry), account.uid, account.gid)


def preexec(account: Account, chdir: bool = True):
    """A ``preexec_fn`` dropping to the account: own group only, umask 077, in the home."""
    uid, gid, groups = account.ids
    home = account.home

    def drop():
        os.setgroups(list(groups))
        os.setgid(gid)
        os.setuid(uid)
        if os.getuid() != uid or os.geteuid() != uid or os.getgid() != gid:
            raise PermissionError("could not drop to the person's uid")
        os.umask(UMASK)
        if chdir:
            os.chdir(home)

    return drop


def user_env(account: Account) -> dict[str, str]:
    return {"USER": account.name, "LOGNAME": account.name, "HOME": account.home, "SHELL": "/bin/bash"}


def run_as(account: Account, argv: list[str], payload: dict, env: dict | None = None, timeout: float = 60) -> dict:
    """Run ``argv`` as the account with ``payload`` (JSON) on stdin; its JSON answer."""
    proc = subprocess.run(
        argv,
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": "/usr/bin:/bin", **(env or {}), **user_env(account)},
        preexec_fn=preexec(account),
    )
    if proc.returncode != 0:
        raise OSUserError(f"preparing the home of {account.hub_name} failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout or "{}")


# ------------------------------------------------------------------ as the user


def install(payload: dict) -> dict:
    """Runs as the person: write labdeck's files (0600 in a 0700 dir), copy missing onboarding files, and
    place the SDK wiring at its default paths in the home (:mod:`labdeck.spawner.homefiles`)."""
    from labdeck.spawner import onboarding

    files_dir = payload["files_dir"]
    os.makedirs(files_dir, mode=0o700, exist_ok=True)
    os.chmod(files_dir, 0o700)
    for name, content in (payload.get("files") or {}).items():
        if "/" in name or name.startswith("."):
            raise ValueError(f"refusing file name {name!r}")
        path = os.path.join(files_dir, name)
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(content)
        os.replace(tmp, path)
    copied = []
    if payload.get("onboarding_dirs") is not None:
        copied = onboarding.copy_missing(payload["onboarding_dirs"], payload["home"])
    from labdeck.spawner import homefiles

    placed = homefiles.install_from_dir(files_dir, payload["home"])
    return {"copied": list(copied), "home_files": placed}


def install_main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv != ["install"]:
        print("usage: python -m labdeck.spawner.local.accounts install < payload.json", file=sys.stderr)
        return 2
    if os.geteuid() == 0:
        print("labdeck.spawner.local.accounts install must run as the person, not root", file=sys.stderr)
        return 1
    print(json.dumps(install(json.load(sys.stdin))))
    return 0


if __name__ == "__main__":
    sys.exit(install_main())
