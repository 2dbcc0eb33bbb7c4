"""``LabdeckSpawnerMixin``: labdeck's behaviour on top of any JupyterHub spawner.

It reads top-down in three layers, each a small module with one job:

- :mod:`~labdeck.spawner.choice` (``ProfileChoiceMixin``): the spawn form's
  profiles and sizes, checked against the user's groups before anything starts;
- :mod:`~labdeck.spawner.wiring` (``ServerWiringMixin``): the server's
  environment and labdeck's files, from the pure builders;
- this module: ``start()`` and ``progress()``. Credentials are issued
  *concurrently* with the backend's start (:mod:`~labdeck.spawner.brokercall`),
  so the broker cache is warm when the first cell runs and a misconfigured
  grant fails the spawn with a message a person can act on; labdeck's progress
  steps are merged with the backend's (:mod:`~labdeck.spawner.progress`).

No backend API is called here. Backends (``local/spawner.py``, ``kube/spawner.py``) implement
one hook, ``async labdeck_write_files(files: dict[str, str]) -> None``, and set
``labdeck_files_dir`` (where the server sees those files). Config goes to
``c.LabdeckSpawnerMixin.<trait>`` whichever layer declares the trait.

The mixin comes first in the MRO and always calls ``super()``.
"""

from __future__ import annotations

import asyncio
import time

from traitlets import Bool, Float

from labdeck.spawner import brokercall, progress
from labdeck.spawner.wiring import ServerWiringMixin


class LabdeckSpawnerMixin(ServerWiringMixin):
    """Credential wiring, onboarding and progress for labdeck user servers."""

    issue_credentials_at_start = Bool(
        True,
        config=True,
        help="""Ask the broker for the user's credentials while the server starts.

        This warms the broker's cache (the first SDK call is then fast) and makes
        a misconfigured grant fail the spawn with a readable reason instead of
        failing the user's first cell.

        .. versionadded:: 0.1
        """,
    )

    issue_credentials_at_login = Bool(
        True,
        config=True,
        help="""Ask the broker for the user's credentials as soon as they log in.

        The hub asks with a token of its own for that user (valid two minutes,
        deleted after the call), so the broker's cache holds the person's
        credentials before their spawn asks: a spawn right after login finds them
        ready instead of waiting on the cloud. A failure here is only logged
        (the spawn asks again and fails with the reason). Needs ``broker_url``.
        See :mod:`labdeck.hub.login`.

        .. versionadded:: 0.4
        """,
    )

    credential_timeout = Float(
        30,
        config=True,
        help="""Seconds to wait for the broker during a spawn before failing it.

        This includes waiting for a broker that refuses connections because it is
        (re)starting: the spawn retries until the broker answers or the time is up.

        .. versionadded:: 0.1
        """,
    )

    #: set by the backend: False lets ``labdeck_write_files`` run while the server
    #: starts (it must exist before anyone reaches the server, not before its
    #: process: the local backend); True when the start needs them (a pod mounts its Secret)
    labdeck_files_before_start = True
    #: a port a backend chose for the current start
    _labdeck_start_port = 0

    # --------------------------------------------------------------- progress

    def _progress_reset(self):
        self._labdeck_events: list[dict] = []
        self._labdeck_done = False

    def _progress(self, progress: int, message: str):
        if not hasattr(self, "_labdeck_events"):
            self._progress_reset()
        self._labdeck_events.append({"progress": progress, "message": message})
        self.log.info("[%s] %s", self._log_name, message)

    async def progress(self):
        """labdeck's own steps merged with the backend's events (never swallowed)."""
        if not hasattr(self, "_labdeck_events"):
            self._progress_reset()
        async for event in progress.merge(self._labdeck_events, lambda: self._labdeck_done, super().progress()):
            yield event

    # ----------------------------------------------------------------- start

    async def labdeck_write_files(self, files: dict[str, str]) -> None:
        raise NotImplementedError("Override in the backend subclass. Must be a coroutine.")

    async def labdeck_prepare_home(self) -> None:
        """Backend hook: make the home exist and hold the onboarding files (default: nothing)."""

    def labdeck_clouds(self) -> list[tuple[str, str]]:
        """``(provider, label)`` of every cloud a server of this user gets credentials for."""
        return [("aws", "S3")] + ([("gcp", "BigQuery")] if self.gcp_project else [])

    def labdeck_issue_credentials(self, token: str | None = None):
        """Ask the broker (as the hub reaches it) for this user's credentials, with ``token`` or the server's own."""
        url = self.broker_hub_url or self.broker_url
        providers = [p for p, _ in self.labdeck_clouds()]
        return brokercall.issue_all(url, token or self.api_token, self.credential_timeout, providers, self.log, self._log_name)

    async def start(self):
        self._progress_reset()
        self._labdeck_start_port = 0  # a backend's per-start choice (labdeck_metadata_port)
        t0 = time.monotonic()
        try:
            if self.labdeck_choice is None:
                # apply_user_options was replaced or skipped: never start unchecked
                self.labdeck_choose(self.user_options)
            self._progress(5, f"Checking profile: {self.labdeck_choice.profile['display_name']}")
            issuing = writing = None
            if self.issue_credentials_at_start and self.broker_url:
                # first: the broker works while the home is prepared and the server starts
                for _, label in self.labdeck_clouds():
                    self._progress(20, f"Issuing {label} credentials")
                issuing = asyncio.ensure_future(self.labdeck_issue_credentials())
            self._progress(10, "Preparing home")
            try:
                await self.labdeck_prepare_home()
                files = self.labdeck_files()
                if self.labdeck_files_before_start:
                    await self.labdeck_write_files(files)
                else:
                    writing = asyncio.ensure_future(self.labdeck_write_files(files))
                self._progress(30, "Starting server")
                result = await super().start()
            except BaseException:
                for task in (issuing, writing):
                    if task and not task.done():
                        task.cancel()
                    elif task and not task.cancelled():
                        task.exception()  # this start's error is raised; the task's is retrieved (not logged as lost)
                raise
            if writing:
                # before start() returns, i.e. before the hub routes anyone (or any kernel) to the server
                try:
                    await writing
                except Exception:
                    await self.stop(now=True)
                    raise
            if issuing:
                try:
                    await issuing
                except Exception as e:
                    self._progress(95, f"Spawn failed: {e}")
                    await self.stop(now=True)
                    raise RuntimeError(str(e)) from None
                self._progress(80, "Cloud credentials ready")
            self.log.info("labdeck start steps for %s took %.0f ms", self._log_name, 1000 * (time.monotonic() - t0))
            return result
        finally:
            self._labdeck_done = True
            # the next start validates its own options again
            self.labdeck_choice = None
