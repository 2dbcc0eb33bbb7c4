"""Profiles and sizes: what a person may pick on the spawn form, as pure functions.

A profile (the ``profile_list`` idea of KubeSpawner, for every labdeck
backend) is a dict::

    {"slug": "jupyterlab", "display_name": "JupyterLab (Python)",
     "description": "...", "default": True,
     "groups": [],                 # empty: everyone; else only these JupyterHub groups
     "requires": [],               # local capabilities: "r", "rstudio"
     "default_url": "/lab",
     "image": "...", "node_selector": {}, "kubespawner_override": {}}   # Kubernetes only

A size is ``{"slug", "display_name", "cpu_limit", "mem_limit", "cpu_guarantee",
"mem_guarantee", "groups"}``. ``user_options`` are ``{"profile": slug, "size": slug}``;
anything else is rejected, never ignored, and the group restriction is checked
here, on the server, whatever the form showed.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

PROFILE_KEYS = {
    "slug", "display_name", "description", "default", "groups", "requires", "default_url",
    "image", "node_selector", "kubespawner_override", "cpu_limit", "mem_limit", "cpu_guarantee", "mem_guarantee",
}
SIZE_KEYS = {"slug", "display_name", "description", "default", "groups", "cpu_limit", "mem_limit", "cpu_guarantee", "mem_guarantee"}
OPTION_KEYS = {"profile", "size"}
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

DEFAULT_PROFILES = [
    {
        "slug": "jupyterlab",
        "display_name": "JupyterLab (Python)",
        "description": "Python 3 with pandas, pyarrow, boto3, s3fs and google-cloud-bigquery.",
        "default": True,
        "default_url": "/lab",
    },
    {
        "slug": "jupyterlab-r",
        "display_name": "JupyterLab with R",
        "description": "JupyterLab with the IRkernel for R, next to Python.",
        "requires": ["r"],
        "default_url": "/lab",
    },
    {
        "slug": "rstudio",
        "display_name": "RStudio",
        "description": "RStudio Server, through jupyter-rsession-proxy.",
        "requires": ["rstudio"],
        "default_url": "/rstudio",
    },
]

DEFAULT_SIZES = [
    {"slug": "small", "display_name": "Small (1 CPU, 2 GB)", "cpu_limit": 1, "mem_limit": "2G", "default": True},
    {"slug": "medium", "display_name": "Medium (2 CPU, 8 GB)", "cpu_limit": 2, "mem_limit": "8G"},
    {"slug": "large", "display_name": "Large (4 CPU, 16 GB)", "cpu_limit": 4, "mem_limit": "16G"},
]


class ProfileConfigError(ValueError):
    """The admin's profile/size configuration is malformed."""


class OptionsError(Exception):
    """A person's (or a forged) choice is not acceptable; ``status`` is 400 or 403."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Choice:
    profile: dict
    size: dict | None


def _normalize(items: list[dict], keys: set, what: str) -> list[dict]:
    out = []
    seen = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ProfileConfigError(f"{what}[{i}]: expected a mapping")
        unknown = set(item) - keys
        if unknown:
            raise ProfileConfigError(f"{what}[{i}]: unknown key(s) {sorted(unknown)}")
        slug = item.get("slug")
        if not isinstance(slug, str) or not _SLUG.match(slug):
            raise ProfileConfigError(f"{what}[{i}]: 'slug' must match {_SLUG.pattern}")
        if slug in seen:
            raise ProfileConfigError(f"{what}[{i}]: duplicate slug {slug!r}")
        seen.add(slug)
        groups = item.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ProfileConfigError(f"{what}[{i}] ({slug}): 'groups' must be a list of group names")
        out.append({"display_name": slug, "description": "", "groups": [], "requires": [], **item})
    defaults = [p for p in out if p.get("default")]
    if len(defaults) > 1:
        raise ProfileConfigError(f"{what}: more than one default ({', '.join(p['slug'] for p in defaults)})")
    return out


def normalize_profiles(profiles: list[dict]) -> list[dict]:
    return _normalize(profiles, PROFILE_KEYS, "profiles")


def normalize_sizes(sizes: list[dict]) -> list[dict]:
    return _normalize(sizes, SIZE_KEYS, "sizes")


def allowed(item: dict, groups: set[str] | frozenset[str]) -> bool:
    return not item.get("groups") or bool(set(item["groups"]) & set(groups))


def visible(items: list[dict], groups) -> list[dict]:
    return [i for i in items if allowed(i, groups)]


def _default(items: list[dict], groups, unavailable: dict[str, str]) -> dict | None:
    usable = [i for i in visible(items, groups) if i["slug"] not in unavailable]
    for i in usable:
        if i.get("default"):
            return i
    return usable[0] if usable else None


def choose(
    profiles: list[dict],
    sizes: list[dict],
    user_options: dict | None,
    groups,
    unavailable: dict[str, str] | None = None,
) -> Choice:
    """Validate ``user_options`` against the config and the user's groups; return the choice.

    Raises
    ------
    OptionsError
        400 for unknown keys, unknown slugs or an unavailable profile; 403 for a
        profile or size restricted to groups the user is not in.
    """
    unavailable = unavailable or {}
    opts = dict(user_options or {})
    unknown = set(opts) - OPTION_KEYS
    if unknown:
        raise OptionsError(400, f"Unknown server option(s): {', '.join(sorted(map(str, unknown)))}. Allowed: profile, size.")

    def pick(items, key, what):
        slug = opts.get(key)
        if slug is None or slug == "":
            item = _default(items, groups, unavailable if key == "profile" else {})
            if item is None and items:
                raise OptionsError(403, f"No {what} is available to you; contact your admin")
            return item
        if not isinstance(slug, str):
            raise OptionsError(400, f"'{key}' must be a string")
        item = next((i for i in items if i["slug"] == slug), None)
        if item is None:
            raise OptionsError(400, f"Unknown {what} {slug!r}")
        if not allowed(item, groups):
            raise OptionsError(403, f"The {what} {item['display_name']!r} is restricted to the group(s) {', '.join(item['groups'])}")
        if key == "profile" and slug in unavailable:
            raise OptionsError(400, f"The {what} {item['display_name']!r} is not available here: {unavailable[slug]}")
        return item

    profile = pick(profiles, "profile", "profile")
    size = pick(sizes, "size", "size") if sizes else None
    if profile is None:
        raise OptionsError(400, "No profiles are configured")
    return Choice(profile, size)


def options_from_form(formdata: dict) -> dict:
    """Form fields (lists of strings) → user_options; unknown fields are kept so they get rejected."""
    out = {}
    for key, values in formdata.items():
        if key == "_xsrf":
            continue
        out[key] = values[0] if isinstance(values, list) and len(values) == 1 else values
    return out


def render_form(profiles: list[dict], sizes: list[dict], groups, unavailable: dict[str, str]) -> str:
    """The spawn form: visible profiles (unavailable ones disabled, with the reason) and sizes."""
    esc = html.escape
    default_profile = _default(profiles, groups, unavailable)
    rows = ['<div class="labdeck-options">', "<fieldset><legend>Profile</legend>"]
    for p in visible(profiles, groups):
        reason = unavailable.get(p["slug"])
        checked = " checked" if default_profile and p["slug"] == default_profile["slug"] else ""
        disabled = " disabled" if reason else ""
        note = f'<div class="labdeck-unavailable text-muted">Unavailable: {esc(reason)}</div>' if reason else ""
        rows.append(
            f'<div class="form-check labdeck-profile"><input class="form-check-input" type="radio" name="profile" '
            f'id="profile-{esc(p["slug"])}" value="{esc(p["slug"])}"{checked}{disabled}>'
            f'<label class="form-check-label" for="profile-{esc(p["slug"])}"><strong>{esc(p["display_name"])}</strong>'
            f'<div class="text-muted">{esc(p.get("description", ""))}</div>{note}</label></div>'
        )
    rows.append("</fieldset>")
    vis_sizes = visible(sizes, groups)
    if vis_sizes:
        default_size = _default(sizes, groups, {})
        rows.append('<fieldset><legend>Size</legend><select class="form-select" name="size" id="size">')
        for s in vis_sizes:
            sel = " selected" if default_size and s["slug"] == default_size["slug"] else ""
            rows.append(f'<option value="{esc(s["slug"])}"{sel}>{esc(s["display_name"])}</option>')
        rows.append("</select></fieldset>")
    rows.append("</div>")
    return "\n".join(rows)


def run_profiles(profiles: list[dict], groups, unavailable: dict[str, str]) -> list[dict]:
    """The profiles a person may run notebooks in (jupyter-scheduler's runtime environments).

    The spawn form's rules: visible to the person's groups and available on
    this backend. Only what a UI shows (slug, display name, description).
    """
    return [
        {"slug": p["slug"], "display_name": p["display_name"], "description": p.get("description", "")}
        for p in visible(profiles, groups)
        if p["slug"] not in unavailable
    ]
