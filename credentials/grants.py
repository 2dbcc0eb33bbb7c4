"""Who may touch what: resolve a user's grants from labdeck's grant config.

Pure functions only. The broker calls :func:`resolve_grants` on every fresh
issuance, so a change of grants (or of a user's groups in the hub) takes effect
at the next credential refresh without restarting anything.

Grant config (``BrokerApp.grants``)::

    {
      "everyone": {"s3": [{"prefix": "shared/", "access": "ro"}]},
      "groups": {
        "analysts": {
          "s3": [{"prefix": "shared/analysts/", "access": "ro"}],
          "bigquery": [{"dataset": "labdeck-local.sales", "access": "ro"}],
        }
      },
      "users": {"alice": {"s3": [{"prefix": "projects/x/", "access": "rw"}]}},
    }

Every user always gets their own S3 home (``home/<user>/``, read-write) and
their own BigQuery dataset; those are added by the providers, not configured.

A prefix granted to a group and lying under a prefix granted to everyone is
*restricted*: users outside the group get an explicit deny on it, so
``shared/analysts/`` stays private even though ``shared/`` is readable by all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labdeck.hub.contract import home_prefix

ACCESS_LEVELS = ("ro", "rw")


class GrantConfigError(ValueError):
    """The grant configuration is malformed; the message names the bad entry."""


@dataclass(frozen=True)
class S3Grant:
    prefix: str
    access: str  # "ro" | "rw"


@dataclass(frozen=True)
class BigQueryGrant:
    dataset: str  # "project.dataset"
    access: str  # "ro" | "rw"
    #: on real GCP: the service account to impersonate for this dataset ("" = provider default)
    service_account: str = ""


@dataclass(frozen=True)
class Grants:
    """Everything one user may touch, beyond their own home and dataset."""

    s3: tuple[S3Grant, ...] = ()
    s3_denied: tuple[str, ...] = ()
    bigquery: tuple[BigQueryGrant, ...] = ()
    sources: tuple[str, ...] = field(default=(), compare=False)


def _check_prefix(prefix, where: str) -> str:
    if not isinstance(prefix, str) or not prefix:
        raise GrantConfigError(f"{where}: 'prefix' must be a non-empty string")
    if prefix.startswith("/") or ".." in prefix.split("/") or "*" in prefix:
        raise GrantConfigError(f"{where}: prefix {prefix!r} must be a plain key prefix (no leading '/', '..' or '*')")
    return prefix if prefix.endswith("/") else prefix + "/"


def _check_access(access, where: str) -> str:
    if access not in ACCESS_LEVELS:
        raise GrantConfigError(f"{where}: 'access' must be one of {ACCESS_LEVELS}, not {access!r}")
    return access


def _parse_block(block, where: str) -> tuple[list[S3Grant], list[BigQueryGrant]]:
    if not isinstance(block, dict):
        raise GrantConfigError(f"{where}: expected a mapping with 's3' and/or 'bigquery'")
    unknown = set(block) - {"s3", "bigquery"}
    if unknown:
        raise GrantConfigError(f"{where}: unknown key(s) {sorted(unknown)}; expected 's3' and/or 'bigquery'")
    s3 = []
    for i, entry in enumerate(block.get("s3", [])):
        w = f"{where}.s3[{i}]"
        if not isinstance(entry, dict):
            raise GrantConfigError(f"{w}: expected a mapping with 'prefix' and 'access'")
        s3.append(S3Grant(_check_prefix(entry.get("prefix"), w), _check_access(entry.get("access", "ro"), w)))
    bq = []
    for i, entry in enumerate(block.get("bigquery", [])):
        w = f"{where}.bigquery[{i}]"
        if not isinstance(entry, dict):
            raise GrantConfigError(f"{w}: expected a mapping with 'dataset' and 'access'")
        ds = entry.get("dataset")
        if not isinstance(ds, str) or ds.count(".") != 1 or not all(ds.split(".")):
            raise GrantConfigError(f"{w}: 'dataset' must look like 'project.dataset', not {ds!r}")
        sa = entry.get("service_account", "")
        if not isinstance(sa, str) or (sa and "@" not in sa):
            raise GrantConfigError(f"{w}: 'service_account' must be a service account email")
        unknown = set(entry) - {"dataset", "access", "service_account"}
        if unknown:
            raise GrantConfigError(f"{w}: unknown key(s) {sorted(unknown)}")
        bq.append(BigQueryGrant(ds, _check_access(entry.get("access", "ro"), w), sa))
    return s3, bq


def validate_grant_config(config: dict) -> None:
    """Raise :class:`GrantConfigError` if ``config`` is malformed."""
    if not isinstance(config, dict):
        raise GrantConfigError("grants: expected a mapping")
    unknown = set(config) - {"everyone", "groups", "users"}
    if unknown:
        raise GrantConfigError(f"grants: unknown key(s) {sorted(unknown)}; expected everyone, groups, users")
    _parse_block(config.get("everyone", {}), "grants.everyone")
    for kind in ("groups", "users"):
        section = config.get(kind, {})
        if not isinstance(section, dict):
            raise GrantConfigError(f"grants.{kind}: expected a mapping of name to grants")
        for name, block in section.items():
            _parse_block(block, f"grants.{kind}.{name}")


def resolve_grants(config: dict, username: str, groups: list[str] | tuple[str, ...]) -> Grants:
    """The grants of ``username`` (member of ``groups``) under ``config``.

    Parameters
    ----------
    config : dict
        Grant config, see the module docstring.
    username : str
        The (already validated) JupyterHub username.
    groups : list of str
        The user's JupyterHub groups, as the hub reports them now.

    Returns
    -------
    Grants
        S3 and BigQuery grants (merged: ``rw`` wins over ``ro`` for the same
        prefix or dataset) and the restricted prefixes this user is denied.
    """
    validate_grant_config(config)
    s3: dict[str, str] = {}
    bq: dict[str, str] = {}
    bq_sa: dict[str, str] = {}
    sources = []

    def add(block, where):
        s3_list, bq_list = _parse_block(block, where)
        for g in s3_list:
            if s3.get(g.prefix) != "rw":
                s3[g.prefix] = g.access
        for g in bq_list:
            if bq.get(g.dataset) != "rw":
                bq[g.dataset] = g.access
            if g.service_account:
                bq_sa.setdefault(g.dataset, g.service_account)
        if s3_list or bq_list:
            sources.append(where)

    everyone_s3, _ = _parse_block(config.get("everyone", {}), "grants.everyone")
    add(config.get("everyone", {}), "everyone")
    member_of = set(groups)
    group_cfg = config.get("groups", {})
    for group in sorted(group_cfg):
        if group in member_of:
            add(group_cfg[group], f"group:{group}")
    user_cfg = config.get("users", {})
    if username in user_cfg:
        add(user_cfg[username], f"user:{username}")

    # Prefixes granted to groups the user is not in, lying under an
    # everyone-readable prefix, are explicitly denied.
    denied = set()
    for group in sorted(group_cfg):
        if group in member_of:
            continue
        group_s3, _ = _parse_block(group_cfg[group], f"grants.groups.{group}")
        for g in group_s3:
            covered = any(g.prefix.startswith(e.prefix) for e in everyone_s3)
            if covered and g.prefix not in s3:
                denied.add(g.prefix)
    return Grants(
        s3=tuple(S3Grant(p, a) for p, a in sorted(s3.items())),
        s3_denied=tuple(sorted(denied)),
        bigquery=tuple(BigQueryGrant(d, a, bq_sa.get(d, "")) for d, a in sorted(bq.items())),
        sources=tuple(sources),
    )


def grants_view(username: str, grants: Grants, described: dict[str, dict]) -> dict:
    """What ``username`` may browse, for the data UIs (no secrets): the broker's ``grants`` reply.

    Parameters
    ----------
    username : str
        The caller.
    grants : Grants
        :func:`resolve_grants` for the caller.
    described : dict
        Provider name -> that provider's ``describe()`` for the caller
        (``aws``: ``bucket``; ``gcp``: ``project`` and ``dataset``).

    Returns
    -------
    dict
        ``s3``: ``bucket``, ``prefixes`` (the home first, read-write, then the
        grants, each ``{"prefix", "access"}``) and ``denied`` (restricted
        prefixes under a granted one); ``bigquery``: ``project`` and
        ``datasets`` (the caller's own, read-write, then the grants). A
        section is absent when no provider serves that cloud.
    """
    view: dict = {"name": username}
    aws = described.get("aws") or {}
    if aws.get("bucket"):
        home = home_prefix(username)
        prefixes = [{"prefix": home, "access": "rw"}]
        prefixes += [{"prefix": g.prefix, "access": g.access} for g in grants.s3 if g.prefix != home]
        view["s3"] = {"bucket": aws["bucket"], "prefixes": prefixes, "denied": list(grants.s3_denied)}
    gcp = described.get("gcp") or {}
    if gcp.get("project"):
        datasets = []
        if gcp.get("dataset"):
            datasets.append({"dataset": f"{gcp['project']}.{gcp['dataset']}", "access": "rw"})
        datasets += [{"dataset": g.dataset, "access": g.access} for g in grants.bigquery
                     if g.dataset not in {d["dataset"] for d in datasets}]
        view["bigquery"] = {"project": gcp["project"], "datasets": datasets}
    return view
