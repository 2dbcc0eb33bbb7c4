"""Config of labdeck's services in the embedded default (each is started with ``--config`` here).

Thin wiring, like :mod:`labdeck.hub.local.jupyterhub_config`: the runner's
settings become chart-shaped values and go through the service's configurer
(:mod:`labdeck.hub.configure_services`), the one the chart's
``files/<service>/<service>_config.py`` call. The service is the one named
by ``JUPYTERHUB_SERVICE_NAME`` (the runner sets it, as JupyterHub does).
"""

import os

from labdeck.hub.configure_services import configure_service
from labdeck.hub.local.state import StateDir, state_dir
from labdeck.hub.local.values import local_values
from labdeck.hub.modes import local_mode

_settings = StateDir(state_dir()).read_settings()
# no secret is needed: tokens reach the services through their environment
get_config().merge(configure_service(os.environ["JUPYTERHUB_SERVICE_NAME"], local_values(_settings), local_mode(_settings, {})))  # noqa: F821
