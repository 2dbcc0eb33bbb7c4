"""labdeck's spawner for the embedded default: user servers as local processes.

Servers run as the hub's own OS user with ``homes/<user>`` under the state
directory as their home. That is for one machine and demos: users are not
isolated from each other's *files* here (Kubernetes is where they are), but
their cloud credentials are isolated in both modes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from traitlets import Unicode, default

from labdeck.hub import contract
from labdeck.spawner import homefiles, onboarding
from labdeck.spawner.local.process import FastLocalProcessSpawner
from labdeck.spawner.local.limits import LimitsMixin
from labdeck.spawner.local.asuser import OSUsersMixin
from labdeck.spawner.mixin import LabdeckSpawnerMixin


def local_capabilities() -> dict[str, str]:
    """Capability → why it is missing on this machine (absent key: available)."""
    missing = {}
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        specs = KernelSpecManager().find_kernel_specs()
    except Exception:
        specs = {}
    if "ir" not in specs:
        missing["r"] = "R and IRkernel are not installed here (run `make r-kernel`)"
    if not shutil.which("rserver"):
        missing["rstudio"] = "RStudio needs the labdeck image (Kubernetes); RStudio Server is not installed here"
    else:
        try:
            import jupyter_rsession_proxy  # noqa: F401
        except ImportError:
            missing["rstudio"] = "jupyter-rsession-proxy is not installed here"
    return missing


class LabdeckLocalProcessSpawner(LabdeckSpawnerMixin, LimitsMixin, OSUsersMixin, FastLocalProcessSpawner):
    """A local-process user server with labdeck's credential wiring (limits: .limits; start queue, warm pool: .process)."""

    homes_dir = Unicode(
        config=True,
        help="""Directory holding one home per user (``<homes_dir>/<username>``).

        Defaults to ``$LABDECK_STATE_DIR/homes``.

        .. versionadded:: 0.1
        """,
    )

    @default("homes_dir")
    def _homes_dir_default(self):
        return os.path.join(os.environ.get(contract.ENV_STATE_DIR, ".labdeck"), "homes")

    @default("home_dir")
    def _home_dir_default(self):
        homes = Path(self.homes_dir).resolve()
        home = (homes / self.user.name).resolve()
        if home.parent != homes:
            # usernames are validated at login; this is a second line of defence
            raise ValueError("refusing a home directory outside LabdeckLocalProcessSpawner.homes_dir")
        return str(home)

    @default("cmd")
    def _cmd_default(self):
        # jupyterhub-singleuser without the wasted imports (labdeck.spawner.userserver.singleuser)
        return [os.path.join(self.server_bin, "labdeck-server")]

    @default("default_url")
    def _default_url_default(self):
        return "/lab"

    @default("credential_command")
    def _credential_command_default(self):
        return [os.path.join(self.server_bin, "labdeck-credentials")]

    @property
    def labdeck_files_dir(self):
        return os.path.join(self.home_dir, ".labdeck")

    #: the files are written while the server starts; start() returns only after both
    labdeck_files_before_start = False

    def labdeck_metadata_port(self):
        # a free loopback port per start (as JupyterHub picks the server's own), in the server's
        # environment and the person's ~/.Renviron; the endpoint checks each caller's uid
        if not self._labdeck_start_port:
            from jupyterhub.utils import random_port

            self._labdeck_start_port = random_port()
        return self._labdeck_start_port

    def labdeck_r_env(self):
        # R in a clean environment (RStudio) finds the server's Python (reticulate's boto3) and the aws CLI
        return {"RETICULATE_PYTHON": os.path.join(self.server_bin, "python")}, self.server_bin

    def get_args(self):
        args = super().get_args()
        if hasattr(os, "geteuid") and os.geteuid() == 0 and not self.os_users:
            args.append("--allow-root")
        return args

    def labdeck_unavailable(self):
        missing = local_capabilities()
        out = {}
        for p in self.profiles:
            reasons = [missing[r] for r in p.get("requires", []) if r in missing]
            if reasons:
                out[p["slug"]] = "; ".join(reasons)
        return out

    async def labdeck_prepare_home(self):
        if self.os_users:
            return await self.os_users_prepare_home()
        os.makedirs(self.home_dir, mode=0o700, exist_ok=True)
        copied = onboarding.copy_missing(self.onboarding_dirs, self.home_dir)
        if copied:
            self.log.info("Onboarding files for %s: %s", self.user.name, ", ".join(copied))

    async def labdeck_write_files(self, files):
        if self.os_users:
            return await self.os_users_write_files(files)
        os.makedirs(self.home_dir, mode=0o700, exist_ok=True)
        os.makedirs(self.labdeck_files_dir, mode=0o700, exist_ok=True)
        for name, content in files.items():
            path = os.path.join(self.labdeck_files_dir, name)
            tmp = path + ".tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(content)
            os.replace(tmp, path)
        homefiles.install_from_dir(self.labdeck_files_dir, self.home_dir)
