"""JupyterHub config of labdeck's embedded default (``labdeck up`` points the hub here).

Thin wiring: the runner's settings become chart-shaped values
(:func:`labdeck.hub.local.values.local_values`) and go through the same
configurer as the chart, in the local mode.
"""

from labdeck.hub.configurer import configure
from labdeck.hub.local.team import OIDC_SECRET
from labdeck.hub.local.state import SECRET_NAMES, StateDir, state_dir
from labdeck.hub.local.values import local_values
from labdeck.hub.modes import local_mode

_state = StateDir(state_dir())
_settings = _state.read_settings()
_secrets = {name: _state.read_secret(name) for name in SECRET_NAMES if _state.secret_path(name).exists()}
# the OIDC client secret goes from its 0600 file into the config, in memory only
_auth_secrets = {OIDC_SECRET: _state.read_secret(OIDC_SECRET)} if _state.secret_path(OIDC_SECRET).exists() else {}
c.merge(configure(local_values(_settings, _auth_secrets), local_mode(_settings, _secrets)))  # noqa: F821 (c is provided by JupyterHub)
