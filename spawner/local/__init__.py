"""The local backend: user servers as processes on this machine (``make up``, a team VM).

Read a spawn top-down from :class:`LabdeckLocalProcessSpawner` (:mod:`.spawner`):

- :mod:`.process` - JupyterHub's local process spawner with the wait taken out: the
  start queue (:mod:`.startqueue`), the warm pool (:mod:`.warmpool`, whose members are
  :mod:`labdeck.spawner.userserver.zygote` forks) and fast readiness;
- :mod:`.asuser` - each person's server as their own OS user; :mod:`.accounts` creates
  and checks those accounts and their homes (run as root by the hub);
- :mod:`.limits` - a server's size as a limit: one cgroup per server (:mod:`.cgroups`).

The public class path ``labdeck.spawner.local.LabdeckLocalProcessSpawner`` stays valid;
it is imported on first use, so that processes that only need a helper module (the
zygote, ``accounts install``) never import JupyterHub's spawner.
"""


def __getattr__(name):
    if name == "LabdeckLocalProcessSpawner":
        from .spawner import LabdeckLocalProcessSpawner

        return LabdeckLocalProcessSpawner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
