"""Username normalization and validation, shared by every labdeck authenticator.

A username ends up in paths (``homes/<user>``), S3 keys (``home/<user>/``),
IAM/STS names and Kubernetes objects. The rules are strict on purpose so that
none of those can be steered by a hostile name: lowercase letters, digits and
``. _ @ -``; starting with a letter or digit; at most 64 characters; no ``..``.
Names that need escaping for a particular system go through
``jupyterhub.slugs.safe_slug`` there, never through a new escaper.
"""

from __future__ import annotations

import re
import unicodedata

MAX_LENGTH = 64
_VALID = re.compile(r"^[a-z0-9][a-z0-9._@-]*$")


class InvalidUsername(ValueError):
    """The username is not acceptable; the message says why, for a person."""


def normalize_username(name: str) -> str:
    """Unicode-normalize (NFKC) and lowercase; surrounding whitespace is kept so validation can reject it."""
    return unicodedata.normalize("NFKC", name).lower()


def check_username(name: str) -> str:
    """Return ``name`` if it is a valid labdeck username, else raise :class:`InvalidUsername`.

    The message is safe to show to the person who typed the name: it
    describes the rule that failed and never echoes control characters.
    """
    if not isinstance(name, str) or not name:
        raise InvalidUsername("Username must not be empty.")
    if len(name) > MAX_LENGTH:
        raise InvalidUsername(f"Username is too long ({len(name)} characters; at most {MAX_LENGTH}).")
    if any(unicodedata.category(ch)[0] in "CZ" for ch in name):
        raise InvalidUsername("Username must not contain spaces or control characters.")
    if "/" in name or "\\" in name:
        raise InvalidUsername("Username must not contain '/' or '\\'.")
    if ".." in name:
        raise InvalidUsername("Username must not contain '..'.")
    if not _VALID.match(name):
        raise InvalidUsername(
            "Username may contain only lowercase letters, digits and '.', '_', '@', '-', and must start with a letter or digit."
        )
    return name
