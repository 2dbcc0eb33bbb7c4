"""JupyterHub config of the labdeck Helm chart: the mounted values through labdeck's one configurer.

The same ``labdeck.hub.configurer.configure`` builds the embedded default's
config; only the mode differs (addresses, secrets, backend: see
``labdeck.hub.modes.MODE_TABLE``). ``hub.extraConfig`` snippets run last.
"""

import sys

from labdeck.hub import values as v
from labdeck.hub.configurer import configure
from labdeck.hub.modes import chart_mode

c = get_config()  # noqa: F821 - provided by traitlets when JupyterHub loads this file
values = v.load_values()
try:
    c.merge(configure(values, chart_mode(values, v.get_secret_value)))
except v.ValuesError as e:
    sys.exit(f"FATAL: {e}")
for snippet_name, code in sorted(v.get_config("hub.extraConfig", {}).items()):
    exec(compile(code, f"hub.extraConfig.{snippet_name}", "exec"), {"c": c})  # noqa: S102 - admin-supplied config
