"""The Kubernetes backend: KubeSpawner with labdeck's mixin (``helm install``).

- :mod:`.spawner` - :class:`LabdeckKubeSpawner`, the one place that talks to the API;
- :mod:`.objects` - pure builders of the objects it adds (the per-server Secret, profile
  overrides), as KubeSpawner's own ``objects.py``;
- :mod:`.warmpods` - pure builders of warm pods and their claims; :mod:`.podpool` keeps
  the hub's pool of them; :mod:`.podagent` is a warm pod's first process.

``labdeck.spawner.kube.LabdeckKubeSpawner`` stays valid and is imported on first use, so
that the pod agent (in the user image, without KubeSpawner) imports nothing of it.
"""


def __getattr__(name):
    if name == "LabdeckKubeSpawner":
        from .spawner import LabdeckKubeSpawner

        return LabdeckKubeSpawner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
