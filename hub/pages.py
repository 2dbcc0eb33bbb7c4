"""What the hub's pages say: the home-page banner and the notes a local hub adds to every page.

Text for people, kept apart from the configurer (:mod:`labdeck.hub.configurer`),
which puts it into ``JupyterHub.template_vars``.
"""

from __future__ import annotations

import html

DEFAULT_BANNER = (
    "labdeck is for <strong>exploration and prototyping</strong>. "
    "Anything that must run again becomes a parameterized, recorded run or moves to a code-first pipeline."
)

#: every page of a local hub whose servers share one OS user
NOT_ISOLATED_HTML = (
    "<strong>Servers here are not isolated from each other</strong>: they all run as one OS user, "
    "so people can read each other's files. Ask your admin to run labdeck as root (one OS user per person)."
)

#: every page of a local hub that cannot enforce server sizes (not root, or no cgroups)
NOT_LIMITED_HTML = (
    "<strong>Server sizes are not enforced here</strong>: one server can use all of this machine's memory and CPU. "
    "Ask your admin to run labdeck as root (one cgroup per server)."
)


def banner_html(text: str | None) -> str:
    """The home-page banner: labdeck's default (HTML), or an admin's text (escaped)."""
    if text is None:
        return DEFAULT_BANNER
    return html.escape(text)
