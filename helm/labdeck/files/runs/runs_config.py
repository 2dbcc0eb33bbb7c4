"""The runs service's config in the labdeck Helm chart (``--config``).

Thin wiring: the mounted values (``labdeck.hub.values``) go through the
runs service's configurer (``labdeck.hub.configure_services``), the one
the embedded default calls too. Its hub API token arrives as
``JUPYTERHUB_API_TOKEN`` (from the hub Secret), never through this file.
"""

from labdeck.hub import values as v
from labdeck.hub.configure_services import configure_runs
from labdeck.hub.modes import chart_mode

_values = v.load_values()
get_config().merge(configure_runs(_values, chart_mode(_values)))  # noqa: F821 - provided by traitlets
