"""JupyterHub config for labdeck's embedded default (``labdeck up`` points the hub here).

Thin wiring only: everything is built by ``labdeck.hub.config.local_config``
from the state directory the supervisor prepared.
"""

from labdeck.hub.config import local_config
from labdeck.hub.local.state import SECRET_NAMES, StateDir, state_dir

_state = StateDir(state_dir())
_secrets = {name: _state.read_secret(name) for name in SECRET_NAMES if _state.secret_path(name).exists()}
c.merge(local_config(_state.read_settings(), _secrets))  # noqa: F821 (c is provided by JupyterHub)
