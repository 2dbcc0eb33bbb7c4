"""labdeck spawners: one mixin on top of a real JupyterHub spawner.

Read top-down:

- shared by every backend (this folder): :mod:`.mixin` (``LabdeckSpawnerMixin``: ``start()``
  with credentials issued alongside, and progress) over its two layers, :mod:`.choice` (the
  form's profiles and sizes, checked per user) and :mod:`.wiring` (the server's environment
  and files); :mod:`.profiles` (what a person may pick), :mod:`.brokercall` (the one
  call to the credential broker), :mod:`.builders` (pure builders of env and files),
  :mod:`.homefiles` and :mod:`.onboarding` (what is placed in a home), :mod:`.progress`
  and :mod:`.readiness` (what a person sees while waiting, and seeing the server answer
  at once);
- :mod:`.local` - the local backend: processes, OS users, warm pool, start queue, limits;
- :mod:`.kube` - the Kubernetes backend: KubeSpawner, its objects, warm pods;
- :mod:`.userserver` - what runs inside a user server's process.
"""
