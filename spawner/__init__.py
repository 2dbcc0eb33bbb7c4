"""labdeck spawners: one mixin on top of a real JupyterHub spawner."""
