"""What runs inside a user server's process, in every backend.

- :mod:`.singleuser` - ``labdeck-server``: ``jupyterhub-singleuser`` without the wasted
  imports (:mod:`.lazyimports`);
- :mod:`.zygote` - a process that has imported a user server but belongs to nobody, forked
  per person by the local warm pool (the pod agent reuses its import step);
- :mod:`.launchers` - the JupyterLab launcher tiles a server can actually start;
- :mod:`.oomwatch` - says in the server why a kernel died when it went past its limit.
"""
