"""Every configurable trait of every labdeck Configurable has help text."""

import pytest
from traitlets.config import Configurable

import labdeck.credentials.app as broker_app
from labdeck.data.s3contents import S3Checkpoints, S3ContentsManager
from labdeck.hub.auth import LabdeckDevAuthenticator
from labdeck.hub.oidc import LabdeckOIDCAuthenticator
from labdeck.runs.app import RunsApp
from labdeck.runs.viewer import ViewerApp
from labdeck.spawner.kube.spawner import LabdeckKubeSpawner
from labdeck.spawner.local.spawner import LabdeckLocalProcessSpawner
from labdeck.spawner.mixin import LabdeckSpawnerMixin


def labdeck_classes():
    classes = {LabdeckSpawnerMixin, LabdeckLocalProcessSpawner, LabdeckKubeSpawner, LabdeckDevAuthenticator, broker_app.BrokerApp, RunsApp, ViewerApp, LabdeckOIDCAuthenticator,
               S3ContentsManager, S3Checkpoints}
    classes |= {broker_app.provider_class(k) for k in broker_app.PROVIDER_CLASSES}
    return sorted(classes, key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", labdeck_classes(), ids=lambda c: c.__name__)
def test_every_labdeck_trait_has_help(cls):
    assert issubclass(cls, Configurable)
    missing = []
    for name, trait in cls.class_traits(config=True).items():
        # only traits labdeck declares, not those inherited from JupyterHub/KubeSpawner
        owner = next(k for k in cls.__mro__ if name in k.__dict__)
        if not owner.__module__.startswith("labdeck."):
            continue
        if not (trait.help or "").strip():
            missing.append(f"{owner.__name__}.{name}")
    assert not missing, f"traits without help: {missing}"
