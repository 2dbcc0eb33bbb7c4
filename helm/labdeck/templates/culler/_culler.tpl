{{- /*
# culler

No objects here, on purpose. `jupyterhub-idle-culler` runs as a
**hub-managed service**: `files/hub/jupyterhub_config.py` adds it to
`c.JupyterHub.services` with a `command`, so the hub starts it as a
subprocess of the hub pod, hands it an API token, and grants it the role
`labdeck-idle-culler` (`list:users`, `read:users:activity`, `read:servers`,
`delete:servers`). It needs no Deployment, Service or NetworkPolicy of its
own, and it restarts with the hub. Values: `culler.*` (`timeout`, `every`,
`maxAge`, `concurrency`, `removeNamedServers`).
*/}}
