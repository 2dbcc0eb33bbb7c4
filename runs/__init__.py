"""Notebooks as reproducible runs: parameterized, scheduled executions with immutable outputs.

Pure parts (no I/O, importable anywhere, also inside a user's kernel):
:mod:`.paths` (notebook paths, output keys), :mod:`.params` (parameters),
:mod:`.cron` (cron validation and fire times), :mod:`.records` (run records
and notebook metadata), :mod:`.shares` (share ids and who may view).

I/O: :mod:`.store` (sqlite), :mod:`.launcher` (hub API and kernels),
:mod:`.scheduler` (queue, limits, timeouts, schedules), :mod:`.driver` (runs
papermill inside the user's server), :mod:`.app`/:mod:`.handlers` (the
``runs`` service), :mod:`.viewer` (the read-only ``viewer`` service),
:mod:`.client` (``labdeck run``).

This package must stay cheap to import: the driver runs in user kernels.
"""
