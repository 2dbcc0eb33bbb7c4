"""labdeck's spawner for Kubernetes: KubeSpawner with the same mixin."""

from __future__ import annotations

from kubespawner import KubeSpawner

from .mixin import LabdeckSpawnerMixin


class LabdeckKubeSpawner(LabdeckSpawnerMixin, KubeSpawner):
    """A KubeSpawner user pod with labdeck's credential wiring."""

    labdeck_files_dir = "/etc/labdeck"

    async def labdeck_write_files(self, files):
        # Files reach the pod through a per-user Secret (see objects.py);
        # stored here and added to the manifest by get_pod_manifest.
        self._labdeck_pending_files = dict(files)
