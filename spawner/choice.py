"""``ProfileChoiceMixin``: the spawn form's profiles and sizes, checked on the server.

The spawner side of :mod:`labdeck.spawner.profiles` (whose pure functions do
the rendering and the checking): the ``profiles`` and ``sizes`` traits, the
form, and the ``apply_user_options`` hook that validates a person's (or a
forged) choice against their groups before anything starts, like
KubeSpawner's ``_validate_user_options``/``_load_profile`` steps.

A refused choice changes nothing: JupyterHub saved the new ``user_options``
before the hook ran, so the last accepted options are put back (see
:meth:`ProfileChoiceMixin._labdeck_forget_refused_options`, the one place a
labdeck spawner commits JupyterHub's database session).
"""

from __future__ import annotations

from tornado import web
from traitlets import Dict, List, default, validate
from traitlets.config import Configurable

from labdeck.spawner import profiles


class ProfileChoiceMixin(Configurable):
    """Profiles and sizes on the spawn form, enforced per user (part of ``LabdeckSpawnerMixin``)."""

    profiles = List(
        Dict(),
        config=True,
        help="""Profiles offered on the spawn form (KubeSpawner's ``profile_list`` idea, for every backend).

        Each is a dict with ``slug``, ``display_name``, ``description``,
        ``default``, ``groups`` (empty: everyone; otherwise only members of these
        JupyterHub groups may use it — enforced on the server, a forged choice
        gets a 403), ``requires`` (local capabilities: ``r``, ``rstudio``),
        ``default_url``, and for Kubernetes ``image``, ``node_selector`` and
        ``kubespawner_override``.

        .. code-block:: python

            c.LabdeckSpawnerMixin.profiles = [
                {"slug": "jupyterlab", "display_name": "JupyterLab (Python)", "default": True},
                {"slug": "gpu", "display_name": "GPU", "groups": ["ml"], "image": "..."},
            ]

        .. versionadded:: 0.1
        """,
    )

    @default("profiles")
    def _profiles_default(self):
        return [dict(p) for p in profiles.DEFAULT_PROFILES]

    sizes = List(
        Dict(),
        config=True,
        help="""Server sizes offered on the spawn form: ``slug``, ``display_name``,
        ``cpu_limit``, ``mem_limit``, ``cpu_guarantee``, ``mem_guarantee``,
        ``default``, ``groups``.

        Enforced as resource limits on Kubernetes, and by the local spawner as
        cgroup limits when it runs as root (``LimitsMixin.enforce_limits``);
        otherwise recorded only (``CPU_LIMIT``, ``MEM_LIMIT`` in the server's environment).
        An empty list hides the size choice.

        .. versionadded:: 0.1
        """,
    )

    @default("sizes")
    def _sizes_default(self):
        return [dict(s) for s in profiles.DEFAULT_SIZES]

    @validate("profiles", "sizes")
    def _validate_profiles_and_sizes(self, proposal):
        normalize = profiles.normalize_profiles if proposal.trait.name == "profiles" else profiles.normalize_sizes
        try:
            return normalize(proposal.value)
        except profiles.ProfileConfigError as e:
            raise ValueError(f"LabdeckSpawnerMixin.{e}") from None

    #: the validated profile/size for the current start
    labdeck_choice = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # the options of the last accepted start: JupyterHub stores new options
        # in its database *before* apply_user_options can refuse them
        orm = getattr(self, "orm_spawner", None)
        self._labdeck_accepted_options = dict(getattr(orm, "user_options", None) or {})

    def labdeck_groups(self) -> set[str]:
        return {g.name for g in getattr(self.user, "groups", [])}

    def labdeck_unavailable(self) -> dict[str, str]:
        """slug → why this backend cannot run that profile (default: it can run all)."""
        return {}

    @default("options_form")
    def _options_form_default(self):
        def form(spawner):
            return profiles.render_form(spawner.profiles, spawner.sizes, spawner.labdeck_groups(), spawner.labdeck_unavailable())

        return form

    def options_from_form(self, formdata):
        return profiles.options_from_form(formdata)

    @default("apply_user_options")
    def _apply_user_options_default(self):
        def apply(spawner, user_options):
            spawner.labdeck_choose(user_options)

        return apply

    def labdeck_choose(self, user_options) -> profiles.Choice:
        """Validate the options against profiles, sizes and the user's groups, then apply them."""
        try:
            choice = profiles.choose(self.profiles, self.sizes, user_options, self.labdeck_groups(), self.labdeck_unavailable())
        except profiles.OptionsError as e:
            self.log.warning("Refused server options for %s: %s", self._log_name, e.message)
            self._labdeck_forget_refused_options()
            raise web.HTTPError(e.status, e.message, reason="Forbidden" if e.status == 403 else "Bad Request") from None
        self.labdeck_choice = choice
        self._labdeck_accepted_options = dict(user_options or {})
        self.labdeck_apply_choice(choice)
        return choice

    def labdeck_apply_choice(self, choice: profiles.Choice) -> None:
        """Apply a validated choice to this spawner's traits (backends extend this)."""
        if choice.profile.get("default_url"):
            self.default_url = choice.profile["default_url"]
        if choice.size:
            for key in ("cpu_limit", "mem_limit", "cpu_guarantee", "mem_guarantee"):
                if choice.size.get(key) is not None:
                    setattr(self, key, choice.size[key])

    def _labdeck_forget_refused_options(self) -> None:
        """Put the last accepted options back, so a refused choice changes nothing.

        This is the one place a labdeck spawner writes and commits JupyterHub's
        ORM session, because JupyterHub leaves no other way:

        - ``User.spawn`` stores the requested ``user_options`` on the
          ``orm_spawner`` and commits them *before* ``apply_user_options`` (or
          ``start``) can refuse them; no hook runs earlier. Left there, a forged
          choice becomes the user's recorded choice (the admin page shows it)
          and the default of their next option-less start.
        - The hub commits again only in its failure path, ``User.stop``, and
          that first awaits ``spawner.poll()``. Meanwhile any other request
          that finishes rolls back the shared session's dirty objects
          (``BaseHandler.finish``), which would silently drop an uncommitted
          restore. Hence JupyterHub's own rule in ``User.spawn``: "always
          commit db changes before await".

        Everything else a start changes reaches the database through the hub
        itself (``orm_spawner.state = spawner.get_state()`` after ``start()``
        and in ``User.stop``; the server's URL from ``start()``'s return value).
        """
        self.user_options = dict(self._labdeck_accepted_options)
        orm = getattr(self, "orm_spawner", None)
        if orm is None:
            return
        from sqlalchemy.orm import object_session

        orm.user_options = dict(self._labdeck_accepted_options)
        session = object_session(orm)
        if session is not None:
            session.commit()
