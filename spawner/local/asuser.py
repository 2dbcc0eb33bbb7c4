"""``OSUsersMixin``: the local spawner runs each person's server as their own OS user (see :mod:`labdeck.spawner.local.accounts`).

Off (the default, and whenever the hub is not root): servers run as the hub's
own user, as ``SimpleLocalProcessSpawner`` does. On (``os_users``, set by
``labdeck up`` when it runs as root): the account ``labdeck-<name>`` and its
0700 home are ensured before each start, labdeck's files and the onboarding
files are written *by the person's uid*, and the server (with its kernels,
terminals and runs, which are its children) runs with that uid, its own group
only and umask 077. The warm pool gets the same identity through ``warm_ids``.
"""

from __future__ import annotations

import asyncio
import os
import sys

from traitlets import Bool, Unicode, default
from traitlets.config import Configurable

from labdeck.spawner.local import accounts


class OSUsersMixin(Configurable):
    """One OS user per person for a local-process spawner (comes before the backend in the MRO)."""

    os_users = Bool(
        False,
        config=True,
        help="""Run each person's server as their own OS user ``labdeck-<name>`` (the hub must run as root).

        Accounts are created with ``useradd`` at the first start (own group, no
        supplementary groups, home ``<homes_dir>/<name>`` mode 0700). Names that
        are not valid Linux user names get a hash suffix
        (``jupyterhub.slugs.safe_slug``, 32 characters at most). An existing
        account whose comment does not name the hub user is never used.
        Removing a user from the hub deletes neither the account nor the home.
        ``labdeck up`` turns this on when it runs as root (``LABDECK_OS_USERS=0``
        turns it off).

        .. versionadded:: 0.2
        """,
    )

    server_bin = Unicode(
        config=True,
        help="""Directory of the interpreter and scripts user servers run (``jupyterhub-singleuser``, ``labdeck-credentials``).

        Defaults to this virtualenv's ``bin``. With ``os_users``, ``labdeck up``
        points it at an environment every user can execute when this one is
        private (see ``labdeck.hub.local.serverenv``); it leads the servers' ``PATH``.

        .. versionadded:: 0.2
        """,
    )

    @default("server_bin")
    def _server_bin_default(self):
        return os.path.dirname(sys.executable)

    _labdeck_account: accounts.Account | None = None

    def labdeck_account(self) -> accounts.Account:
        """The person's account (created the first time, re-homed after the state directory moved). Root only."""
        if self._labdeck_account is None or self._labdeck_account.hub_name != self.user.name:
            self._labdeck_account = accounts.ensure_account(self.user.name, self.home_dir, log=self.log)
        return self._labdeck_account

    def make_preexec_fn(self, name):
        if not self.os_users:
            return super().make_preexec_fn(name)
        return accounts.preexec(self.labdeck_account())

    def warm_ids(self):
        if not self.os_users:
            return super().warm_ids() if hasattr(super(), "warm_ids") else None
        return self.labdeck_account().ids

    def warm_umask(self):
        # what accounts.preexec sets for a cold start; a warm-pool claim must get the same
        if not self.os_users:
            return super().warm_umask() if hasattr(super(), "warm_umask") else None
        return accounts.UMASK

    def user_env(self, env):
        env = super().user_env(env)
        if self.os_users:
            env.update(accounts.user_env(self.labdeck_account()))
            env["PATH"] = os.pathsep.join([self.server_bin, "/usr/local/bin", "/usr/bin", "/bin"])
        return env

    async def os_users_prepare_home(self):
        """The backend's ``labdeck_prepare_home`` with ``os_users``: account and 0700 home (files come next)."""

        def prepare():
            account = self.labdeck_account()
            accounts.ensure_home(account)
            return account

        try:
            await asyncio.to_thread(prepare)
        except accounts.AccountRefused as e:
            # the admin's log line says what to run; the person's page says to ask (no traceback, no "Unhandled error")
            self.log.error("Cannot start %s's server: %s", self.user.name, e.admin_message)
            from jupyterhub.spawner import SpawnException

            error = SpawnException(e.person_message, reason="os-user", log_message=e.admin_message, status_code=503)
            error.jupyterhub_message = e.person_message  # what the spawn page shows (jupyterhub.utils.format_exception)
            raise error from None

    async def os_users_write_files(self, files):
        """The backend's ``labdeck_write_files`` with ``os_users``: written, with the onboarding files, as the person."""
        payload = {
            "home": self.home_dir,
            "files_dir": self.labdeck_files_dir,
            "files": files,
            "onboarding_dirs": list(self.onboarding_dirs),
        }
        argv = [os.path.join(self.server_bin, "python"), "-m", "labdeck.spawner.local.accounts", "install"]
        result = await asyncio.to_thread(accounts.run_as, self.labdeck_account(), argv, payload)
        if result.get("copied"):
            self.log.info("Onboarding files for %s: %s", self.user.name, ", ".join(result["copied"]))
