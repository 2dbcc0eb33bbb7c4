"""Who may do what: pure checks of a verified token's claims against BigQuery resources.

Claims come from :func:`labdeck.emulators.bigquery.tokens.verify`: ``projects`` (may
run jobs there), ``datasets`` (``"project.dataset"`` -> ``"rw"`` | ``"ro"``) and
``admin``. Denials raise a 403 ``accessDenied`` naming the principal and the
resource, never the token.
"""

from __future__ import annotations

from typing import Any, Iterable

from .errors import ApiError, access_denied


def _grant(claims: dict[str, Any], project: str, dataset: str) -> str | None:
    grants = claims.get("datasets") or {}
    if not isinstance(grants, dict):
        return None
    level = grants.get(f"{project}.{dataset}")
    return level if level in ("rw", "ro") else None


def is_admin(claims: dict[str, Any]) -> bool:
    """True for a token with ``admin: true``."""
    return claims.get("admin") is True


def can_read(claims: dict[str, Any], project: str, dataset: str) -> bool:
    """True if the principal may read tables of ``project.dataset``."""
    return is_admin(claims) or _grant(claims, project, dataset) is not None


def can_write(claims: dict[str, Any], project: str, dataset: str) -> bool:
    """True if the principal may create, change or delete in ``project.dataset``."""
    return is_admin(claims) or _grant(claims, project, dataset) == "rw"


def require_job_project(claims: dict[str, Any], project: str) -> None:
    """Raise 403 unless the principal may run jobs in ``project``."""
    projects = claims.get("projects") or []
    if not is_admin(claims) and project not in projects:
        raise access_denied(
            f"Project {project}: User {claims.get('sub')} does not have "
            "bigquery.jobs.create permission in project " + project
        )


def require_read(claims: dict[str, Any], project: str, dataset: str, what: str = "") -> None:
    """Raise 403 unless ``project.dataset`` may be read."""
    if not can_read(claims, project, dataset):
        target = what or f"Dataset {project}:{dataset}"
        raise access_denied(
            f"{target}: User {claims.get('sub')} does not have permission to read "
            f"dataset {project}:{dataset}"
        )


def require_write(claims: dict[str, Any], project: str, dataset: str, what: str = "") -> None:
    """Raise 403 unless ``project.dataset`` may be written."""
    if not can_write(claims, project, dataset):
        target = what or f"Dataset {project}:{dataset}"
        raise access_denied(
            f"{target}: User {claims.get('sub')} does not have permission to write to "
            f"dataset {project}:{dataset}"
        )


def require_tables(
    claims: dict[str, Any], reads: Iterable[Any], writes: Iterable[Any]
) -> None:
    """Check every table a statement reads and writes (``TableRef``-like objects)."""
    for ref in sorted(writes):
        require_write(claims, ref.project, ref.dataset, f"Table {ref}")
    for ref in sorted(reads):
        require_read(claims, ref.project, ref.dataset, f"Table {ref}")


def visible_datasets(claims: dict[str, Any], project: str, existing: Iterable[str]) -> list[str]:
    """The existing datasets of ``project`` the principal may see."""
    return [d for d in existing if can_read(claims, project, d)]


__all__ = [
    "ApiError",
    "can_read",
    "can_write",
    "is_admin",
    "require_job_project",
    "require_read",
    "require_tables",
    "require_write",
    "visible_datasets",
]
