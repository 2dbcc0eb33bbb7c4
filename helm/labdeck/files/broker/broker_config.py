"""Credential broker config of the labdeck Helm chart (``labdeck broker --config``).

Thin wiring: the mounted values (``labdeck.hub.values``) go through the
broker's configurer (``labdeck.hub.configure_services``), the one the
embedded default calls too. The broker's hub API token arrives as
``JUPYTERHUB_API_TOKEN`` (from the hub Secret), never through this file.
"""

from labdeck.hub import values as v
from labdeck.hub.configure_services import configure_broker
from labdeck.hub.modes import chart_mode

_values = v.load_values()
get_config().merge(configure_broker(_values, chart_mode(_values)))  # noqa: F821 - provided by traitlets
