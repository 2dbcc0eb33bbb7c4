"""labdeck's spawner for Kubernetes: KubeSpawner with the same mixin.

What it adds to KubeSpawner, all through :mod:`labdeck.spawner.objects`:
a per-server Secret with labdeck's SDK config files (mounted read-only at
``/etc/labdeck``) and the server's API token (referenced by ``secretKeyRef``,
so the token is not in the pod spec); profile → image/resources/node
selector; a non-root, no-escalation security context; no service-account
token in user pods. The Secret is deleted when the server stops.
"""

from __future__ import annotations

from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from traitlets import default

from labdeck.hub import contract

from . import objects, onboarding
from .mixin import LabdeckSpawnerMixin


class LabdeckKubeSpawner(LabdeckSpawnerMixin, KubeSpawner):
    """A KubeSpawner user pod with labdeck's credential wiring."""

    labdeck_files_dir = "/etc/labdeck"
    _labdeck_files: dict | None = None

    @default("cmd")
    def _cmd_default(self):
        # copies onboarding files into the (persistent) home, then execs jupyterhub-singleuser
        return ["labdeck-singleuser"]

    @default("default_url")
    def _default_url_default(self):
        return "/lab"

    @default("automount_service_account_token")
    def _automount_default(self):
        return False

    @default("container_security_context")
    def _container_security_context_default(self):
        return objects.container_security_context()

    def get_env(self):
        env = super().get_env()
        # the pod's labdeck-singleuser copies these (the admin's dirs are paths in the user image)
        env[contract.ENV_ONBOARDING_DIRS] = onboarding.dirs_env_value(list(self.onboarding_dirs))
        return env

    async def load_user_options(self):
        # labdeck validates and applies `profile`/`size` itself (LabdeckSpawnerMixin.labdeck_choose
        # via apply_user_options, then labdeck_apply_choice). KubeSpawner's own version checks
        # user_options["profile"] against its (unused, empty) profile_list and fails every
        # spawn that names a profile with "No such profile".
        return

    def labdeck_apply_choice(self, choice):
        super().labdeck_apply_choice(choice)
        for trait, value in objects.profile_overrides(choice.profile, choice.size).items():
            setattr(self, trait, value)

    @property
    def labdeck_secret_name(self) -> str:
        return objects.secret_name(self.pod_name)

    async def labdeck_write_files(self, files):
        self._labdeck_files = dict(files)
        manifest = objects.make_secret(
            self.labdeck_secret_name,
            self.namespace,
            files,
            self.api_token,
            self._build_common_labels({}),
        )
        await self._labdeck_delete_secret()
        await self.api.create_namespaced_secret(self.namespace, manifest)

    async def get_pod_manifest(self):
        pod = await super().get_pod_manifest()
        if self._labdeck_files is None:
            return pod
        return objects.with_labdeck_files(pod, self.labdeck_secret_name, self.labdeck_files_dir, list(self._labdeck_files))

    async def _labdeck_delete_secret(self):
        try:
            await self.api.delete_namespaced_secret(self.labdeck_secret_name, self.namespace)
        except ApiException as e:
            if e.status != 404:
                raise

    async def start(self):
        if contract.is_run_server(self.name):
            # a run's server needs no home volume of its own (input and output are in S3)
            self.storage_pvc_ensure = False
            self.volumes = objects.ephemeral_home(list(self.volumes))
        return await super().start()

    async def stop(self, now=False):
        await super().stop(now=now)
        await self._labdeck_delete_secret()
