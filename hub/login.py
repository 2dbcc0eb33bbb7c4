"""Credentials issued when a person logs in, so that their spawn finds them ready.

``issue_credentials_at_login`` is the hub's ``Authenticator.post_auth_hook``
(set by the configurer in every mode). JupyterHub runs that hook before it
creates or updates the user (groups from the login are synced after it), so
the hook only schedules the work for when the login's response has gone: then
the user exists with the groups their grants depend on. The work:

1. a token of that user's own, with only the scopes the broker needs to know
   who it is and their groups (``read:users:groups!user``; identify is always
   included), valid ``TOKEN_SECONDS``;
2. the broker's credential route for every cloud the user's servers get
   (the same call a spawn makes, :meth:`LabdeckSpawnerMixin.labdeck_issue_credentials`):
   the broker issues and caches them; the reply goes nowhere;
3. the token is deleted.

A spawn in the meantime shares the same upstream call (the broker's cache is
single-flight per person and provider), so it never waits longer than it would
have. Failures are logged and change nothing: the spawn asks again and reports
its own error. Nothing secret is logged.
"""

from __future__ import annotations

import asyncio

NOTE = "labdeck: credentials issued at login"
TOKEN_SECONDS = 120
SCOPES = ["read:users:groups!user"]

_TASKS: set[asyncio.Task] = set()


def issue_credentials_at_login(authenticator, handler, auth_model):
    """``Authenticator.post_auth_hook``: schedule :func:`issue_for` once the login has finished."""
    name = (auth_model or {}).get("name")
    if not name or handler is None:
        return auth_model
    finished = handler.on_finish

    def after_login():
        finished()
        task = asyncio.ensure_future(issue_for(handler, name, authenticator.log))
        _TASKS.add(task)  # kept until done (the loop holds tasks weakly)
        task.add_done_callback(_TASKS.discard)

    handler.on_finish = after_login
    return auth_model


async def issue_for(handler, name: str, log) -> bool:
    """Issue ``name``'s credentials into the broker's cache; True if the broker issued them."""
    user = handler.find_user(name)
    if user is None:  # the login did not go through after all
        return False
    spawner = user.spawner
    if not getattr(spawner, "issue_credentials_at_login", False) or not getattr(spawner, "broker_url", ""):
        return False
    token = user.new_api_token(note=NOTE, expires_in=TOKEN_SECONDS, scopes=SCOPES)
    try:
        await spawner.labdeck_issue_credentials(token)
    except Exception as e:  # brokercall's messages carry no secret
        log.warning("Credentials for %s were not issued at login (%s); the spawn asks again", name, e)
        return False
    finally:
        _drop_token(handler.db, token)
    log.info("Credentials for %s issued at login", name)
    return True


def _drop_token(db, token: str) -> None:
    from jupyterhub import orm

    orm_token = orm.APIToken.find(db, token)
    if orm_token is not None:
        db.delete(orm_token)
        db.commit()
