"""Settings of the embedded default on a team VM: company login (OIDC), public URL, TLS, OS users.

Pure: the environment as a mapping in, plain settings out; errors are
:class:`~labdeck.hub.local.settings.SettingsError` with a message for an admin.
The OIDC client secret is *not* a setting: the runner writes it to
``secrets/oidc_client_secret`` (0600) and :func:`labdeck.hub.local.values.local_values`
hands it to the hub's config in memory, so it is never in ``settings.json``,
a log, a URL or a process's argv.

Variables:

``LABDECK_OIDC_ISSUER``, ``LABDECK_OIDC_CLIENT_ID``, ``LABDECK_OIDC_CLIENT_SECRET``
    Log in through this OpenID Connect provider instead of the development password.
``LABDECK_OIDC_USERNAME_CLAIM`` (``preferred_username``), ``LABDECK_OIDC_GROUPS_CLAIM`` (``groups``)
    Claims that give the username and the JupyterHub groups.
``LABDECK_OIDC_ADMIN_GROUPS``, ``LABDECK_OIDC_ALLOWED_GROUPS``
    Comma-separated; without allowed groups everybody the provider authenticates may log in.
``LABDECK_PUBLIC_URL``
    The URL people open (the callback is ``<public URL>/hub/oauth_callback``); default the local URL.
``LABDECK_TLS_CERT``, ``LABDECK_TLS_KEY``
    PEM files: the proxy serves the public port over HTTPS with them.
``LABDECK_BIND_IP``
    ``0.0.0.0`` makes the public port listen on every interface (default ``127.0.0.1``);
    every other port stays on loopback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlparse

from .. import contract

#: where the public port listens: loopback (the default) or every interface (a team VM without a reverse proxy)
BIND_IPS = ("127.0.0.1", "0.0.0.0")
OIDC_SECRET = "oidc_client_secret"
OIDC_SECRET_ENV = "LABDECK_OIDC_CLIENT_SECRET"


def _error(message: str):
    from .settings import SettingsError

    return SettingsError(message)


def split_list(value: str) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def check_public_url(url: str) -> str:
    """``LABDECK_PUBLIC_URL``: ``http(s)://host[:port]`` (a trailing ``/`` is dropped); nothing else."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise _error(f"LABDECK_PUBLIC_URL must look like https://hub.example.com, not {url[:100]!r}")
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment or parsed.username or parsed.password:
        raise _error("LABDECK_PUBLIC_URL must be scheme://host[:port] only (no path, query, fragment or credentials)")
    return f"{parsed.scheme}://{parsed.netloc}"


def oidc_settings(env: Mapping[str, str]) -> dict | None:
    """The ``oidc`` settings, or None when ``LABDECK_OIDC_ISSUER`` is unset."""
    issuer = env.get("LABDECK_OIDC_ISSUER", "").strip()
    if not issuer:
        for name in ("LABDECK_OIDC_CLIENT_ID", "LABDECK_OIDC_ADMIN_GROUPS", "LABDECK_OIDC_ALLOWED_GROUPS"):
            if env.get(name):
                raise _error(f"{name} is set but LABDECK_OIDC_ISSUER is not: set the issuer to log in with OIDC")
        return None
    parsed = urlparse(issuer)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.query or parsed.fragment:
        raise _error(f"LABDECK_OIDC_ISSUER must be the provider's https:// issuer URL, not {issuer[:100]!r}")
    client_id = env.get("LABDECK_OIDC_CLIENT_ID", "").strip()
    if not client_id:
        raise _error("LABDECK_OIDC_ISSUER needs LABDECK_OIDC_CLIENT_ID (and LABDECK_OIDC_CLIENT_SECRET)")
    return {
        "issuer": issuer.rstrip("/"),
        "client_id": client_id,
        "username_claim": env.get("LABDECK_OIDC_USERNAME_CLAIM", "").strip() or "preferred_username",
        "groups_claim": env.get("LABDECK_OIDC_GROUPS_CLAIM", "").strip() or "groups",
        "admin_groups": split_list(env.get("LABDECK_OIDC_ADMIN_GROUPS", "")),
        "allowed_groups": split_list(env.get("LABDECK_OIDC_ALLOWED_GROUPS", "")),
    }


def tls_settings(env: Mapping[str, str]) -> dict | None:
    """``{"cert": path, "key": path}`` (absolute, readable), or None for plain HTTP."""
    cert, key = env.get("LABDECK_TLS_CERT", ""), env.get("LABDECK_TLS_KEY", "")
    if not cert and not key:
        return None
    if not cert or not key:
        raise _error("LABDECK_TLS_CERT and LABDECK_TLS_KEY go together: set both (PEM certificate chain and private key)")
    out = {}
    for name, path in (("cert", cert), ("key", key)):
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            raise _error(f"LABDECK_TLS_{name.upper()}: {path} is not a readable file")
        out[name] = os.path.abspath(path)
    return out


def team_settings(env: Mapping[str, str]) -> dict:
    """What the team-VM variables add to ``settings`` (see the module docstring)."""
    out: dict = {}
    oidc = oidc_settings(env)
    if oidc:
        out["oidc"] = oidc
    tls = tls_settings(env)
    if tls:
        out["tls"] = tls
        out["public_scheme"] = "https"
    if env.get("LABDECK_PUBLIC_URL"):
        out["public_url"] = check_public_url(env["LABDECK_PUBLIC_URL"])
    bind = env.get("LABDECK_BIND_IP", "").strip()
    if bind:
        if bind not in BIND_IPS:
            raise _error(f"LABDECK_BIND_IP must be one of {', '.join(BIND_IPS)} (loopback only, or every interface), not {bind[:50]!r}")
        out["bind_ip"] = bind
    return out


def callback_url(public_url: str, base_url: str = "/") -> str:
    """``<public URL>[<hub.baseUrl>]/hub/oauth_callback``: what the provider must know."""
    prefix = "/" + base_url.strip("/") if base_url.strip("/") else ""
    return public_url.rstrip("/") + prefix + contract.OAUTH_CALLBACK_PATH


def admin_base_url(settings: Mapping) -> str:
    """``hub.baseUrl`` of an admin's values file, else ``/``."""
    hub = (settings.get("values") or {}).get("hub")
    return (hub.get("baseUrl") if isinstance(hub, Mapping) else None) or "/"


def oidc_values(settings: Mapping, public_url: str, client_secret: str = "", base_url: str = "/") -> dict:
    """The chart's ``auth`` values for the ``oidc`` settings (pure); the callback honours ``hub.baseUrl``."""
    o = settings["oidc"]
    oauth = {
        "issuer": o["issuer"],
        "clientId": o["client_id"],
        "callbackUrl": callback_url(public_url, base_url),
        "usernameClaim": o["username_claim"],
        "groupsClaim": o["groups_claim"],
        "adminGroups": list(o["admin_groups"]),
        "allowedGroups": list(o["allowed_groups"]),
        # a team VM admits everybody the company's provider authenticates unless groups are named
        "allowAll": not o["allowed_groups"],
        "loginService": "company login",
    }
    if client_secret:
        oauth["clientSecret"] = client_secret
    return {"type": "generic-oauth", "oauth": oauth}


def store_oidc_secret(state, env: Mapping[str, str], settings: Mapping) -> None:
    """Write ``LABDECK_OIDC_CLIENT_SECRET`` to ``secrets/oidc_client_secret`` (0600); a stored one is kept."""
    if not settings.get("oidc"):
        return
    secret = env.get(OIDC_SECRET_ENV, "")
    if secret:
        state.write_secret(OIDC_SECRET, secret)
    elif not state.secret_path(OIDC_SECRET).exists():
        raise _error(f"LABDECK_OIDC_ISSUER needs {OIDC_SECRET_ENV} (stored once in {state.secret_path(OIDC_SECRET)}, mode 0600)")


def login_lines(settings: Mapping, public_url: str) -> list[str]:
    """What the start banner says about logging in with OIDC."""
    o = settings["oidc"]
    lines = [
        f"  Log in with your company account ({o['issuer']}).",
        f"  Register this callback URL at the provider: {callback_url(public_url, admin_base_url(settings))}",
        f"  Usernames from the {o['username_claim']!r} claim, groups from {o['groups_claim']!r}.",
    ]
    if o["allowed_groups"]:
        lines.append(f"  Only members of {', '.join(o['allowed_groups'])} may log in.")
    if o["admin_groups"]:
        lines.append(f"  Admins: members of {', '.join(o['admin_groups'])}.")
    return lines


# ------------------------------------------------------------------ OS users

OS_USERS_ENV = "LABDECK_OS_USERS"

NOT_ISOLATED = (
    "Servers on this machine are not isolated from each other: every server runs as the same OS user, "
    "so people can read each other's files and processes. Run labdeck up as root for one OS user per person."
)


def os_users_wanted(env: Mapping[str, str], euid: int) -> bool:
    """One OS user per person: when running as root, unless ``LABDECK_OS_USERS=0``."""
    value = env.get(OS_USERS_ENV, "").strip().lower()
    if value in ("1", "true", "yes") and euid != 0:
        raise _error(f"{OS_USERS_ENV}=1 needs labdeck up to run as root (it creates one system user per person)")
    return euid == 0 and value not in ("0", "false", "no")


def check_reachable_homes(state_root) -> None:
    """Every directory above the state directory must let other users pass (x), or nobody reaches their home.

    (The state directory itself and ``homes/`` are made 0711 by :func:`secure_state_dir`.)
    """
    import stat
    from pathlib import Path

    for d in Path(state_root).resolve().parents:
        if not os.stat(d).st_mode & stat.S_IXOTH:
            raise _error(
                f"OS users cannot reach their homes under {state_root}: {d} is not searchable by other users "
                f"(chmod o+x {d}, or choose LABDECK_STATE_DIR elsewhere, e.g. /var/lib/labdeck; "
                f"{OS_USERS_ENV}=0 runs every server as root instead, not isolated)"
            )


def secure_state_dir(state) -> None:
    """State directory for OS users: only homes/ (and the server environment) reachable, nothing readable.

    ``<state>`` 0711 and ``homes/`` 0711 (pass through, no listing); secrets,
    logs, pid files, emulator data, the databases and every config file stay
    root's alone (0700 directories, 0600 files).
    """
    root = state.root
    os.chmod(root, 0o711)
    for entry in root.iterdir():
        if entry.is_symlink():
            continue
        if entry.name == "homes":
            os.chmod(entry, 0o711)
        elif entry.name in ("server-env", "server-env-python"):
            continue  # 0755: the environment and interpreter servers run (labdeck.hub.local.serverenv)
        elif entry.is_dir():
            os.chmod(entry, 0o700)
        else:
            os.chmod(entry, 0o600)


def isolation_lines(settings: Mapping) -> list[str]:
    if settings.get("os_users"):
        return ["  Isolation: one OS user per person (labdeck-<name>), homes 0700 under " + f"{settings['state_dir']}/homes"]
    return ["", "  WARNING: " + NOT_ISOLATED]


# ------------------------------------------------------------------ limits

LIMITS_ENV = "LABDECK_LIMITS"

NOT_LIMITED = (
    "Server sizes are not enforced on this machine: one person's kernel can use all its memory and CPU "
    "and take other people's servers down with it."
)


def limits_settings(env: Mapping[str, str], euid: int, state_root, detect=None) -> dict:
    """``{"limits": {...}}`` when each server's size is enforced with a cgroup, else ``{"limits_off": why}``.

    On when running as root and the machine has cgroups (``LABDECK_LIMITS=0`` turns it off;
    ``LABDECK_LIMITS=1`` makes their absence an error).
    """
    import hashlib

    value = env.get(LIMITS_ENV, "").strip().lower()
    if value in ("0", "false", "no"):
        return {"limits_off": f"{LIMITS_ENV}=0"}
    if euid != 0:
        if value in ("1", "true", "yes"):
            raise _error(f"{LIMITS_ENV}=1 needs labdeck up to run as root (it creates one cgroup per server)")
        return {"limits_off": "labdeck up is not running as root"}
    if detect is None:
        from labdeck.spawner.local.cgroups import detect
    avail = detect()
    if not avail.backend:
        if value in ("1", "true", "yes"):
            raise _error(f"{LIMITS_ENV}=1 but sizes cannot be enforced here: {avail.reason}")
        return {"limits_off": avail.reason}
    group = "labdeck-" + hashlib.sha256(str(state_root).encode()).hexdigest()[:12]
    return {"limits": {"backend": avail.backend, "group": group}}


def limits_lines(settings: Mapping) -> list[str]:
    limits = settings.get("limits")
    if limits:
        how = "a systemd scope" if limits["backend"] == "systemd" else f"a cgroup ({limits['backend']})"
        return [f"  Limits: each server's size (memory, CPU) is enforced with {how}"]
    why = settings.get("limits_off")
    return ["", "  WARNING: " + NOT_LIMITED + (f" ({why}; run labdeck up as root to enforce them.)" if why else "")]
