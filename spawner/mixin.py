"""``LabdeckSpawnerMixin``: labdeck's behaviour on top of any JupyterHub spawner.

What it adds, without calling any backend API itself:

- the environment and files that point the standard SDK credential chains at
  the credential broker (built by :mod:`labdeck.spawner.builders`), including
  what a process *without* that environment needs (RStudio's sessions, a
  clean-env child): the server's token in a file only the person can read, the
  SDKs' default paths (``~/.aws/config``, Google's ADC file, a block of
  ``~/.Renviron``) and the port of the metadata endpoint R's gargle reads;
- credential issuance *concurrently* with the backend's start, so the broker
  cache is warm when the first cell runs and a misconfigured grant fails the
  spawn with a message a person can act on;
- progress events for its own steps, merged with the backend's.

Backends (``local.py``, ``kube.py``) implement one hook:
``async labdeck_write_files(files: dict[str, str]) -> None``, and set
``labdeck_files_dir`` (where the server sees those files).

The mixin comes first in the MRO and always calls ``super()``.
"""

from __future__ import annotations

import asyncio
import time

from tornado import web
from traitlets import Bool, Dict, Float, List, Unicode, default, validate
from traitlets.config import Configurable

from labdeck.hub import contract

from labdeck.spawner import brokercall, builders, profiles, progress


class LabdeckSpawnerMixin(Configurable):
    """Credential wiring, onboarding and progress for labdeck user servers."""

    broker_url = Unicode(
        config=True,
        help="""Base URL of the credential broker as seen from a user server.

        For example ``http://127.0.0.1:8090/services/broker/`` locally or
        ``http://labdeck-broker:8090/services/broker/`` on Kubernetes. Set as
        ``LABDECK_BROKER_URL`` in the server, where the in-server client uses it.

        .. versionadded:: 0.1
        """,
    )

    broker_hub_url = Unicode(
        config=True,
        help="""Base URL of the credential broker as seen from the hub (defaults to ``broker_url``).

        .. versionadded:: 0.1
        """,
    )

    aws_region = Unicode("us-east-1", config=True, help="``AWS_DEFAULT_REGION`` of user servers.\n\n.. versionadded:: 0.1")

    s3_bucket = Unicode(
        config=True,
        help="""The data bucket; ``LABDECK_S3_HOME`` becomes ``s3://<bucket>/home/<user>/``.

        .. versionadded:: 0.1
        """,
    )

    aws_endpoint_url = Unicode(
        config=True,
        help="""``AWS_ENDPOINT_URL`` for user servers: the local S3/STS emulator. Empty on real AWS.

        .. versionadded:: 0.1
        """,
    )

    gcp_project = Unicode(
        config=True,
        help="""``GOOGLE_CLOUD_PROJECT`` of user servers. Empty: BigQuery is not wired.

        When set, servers get a ``GOOGLE_APPLICATION_CREDENTIALS`` file that
        ``google.auth.default()`` picks up and refreshes through the broker.

        .. versionadded:: 0.1
        """,
    )

    bigquery_dataset_template = Unicode(
        contract.DEFAULT_DATASET_TEMPLATE,
        config=True,
        help="""The user's own dataset (``LABDECK_BQ_DATASET``); must match the broker's ``GCPProvider.dataset_template``.

        .. versionadded:: 0.1
        """,
    )

    bigquery_emulator_host = Unicode(
        config=True,
        help="""``BIGQUERY_EMULATOR_HOST`` for user servers: labdeck's local BigQuery endpoint. Empty on real GCP.

        .. versionadded:: 0.1
        """,
    )

    runs_url = Unicode(
        config=True,
        help="""URL of the runs service as seen from a user server (``LABDECK_RUNS_URL``).

        ``labdeck run NOTEBOOK`` inside a server uses it with the server's own token.

        .. versionadded:: 0.1
        """,
    )

    viewer_url = Unicode(
        config=True,
        help="""URL of the viewer service as seen from a user server (``LABDECK_VIEWER_URL``).

        The Lab's "Share read-only link…" dialog (``labdeck.runs.lab_shares``)
        calls its share API with the server's own token.

        .. versionadded:: 0.2
        """,
    )

    credential_command = List(
        Unicode(),
        ["labdeck-credentials"],
        config=True,
        help="""Command (argv) of the in-server credential client, as the server can run it.

        ``aws`` is appended for the AWS ``credential_process`` and
        ``gcp-subject`` for the Google credentials file.

        .. versionadded:: 0.1
        """,
    )

    issue_credentials_at_start = Bool(
        True,
        config=True,
        help="""Ask the broker for the user's credentials while the server starts.

        This warms the broker's cache (the first SDK call is then fast) and makes
        a misconfigured grant fail the spawn with a readable reason instead of
        failing the user's first cell.

        .. versionadded:: 0.1
        """,
    )

    credential_timeout = Float(
        30,
        config=True,
        help="""Seconds to wait for the broker during a spawn before failing it.

        This includes waiting for a broker that refuses connections because it is
        (re)starting: the spawn retries until the broker answers or the time is up.

        .. versionadded:: 0.1
        """,
    )

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

    @validate("profiles", "sizes")
    def _validate_profiles_and_sizes(self, proposal):
        normalize = profiles.normalize_profiles if proposal.trait.name == "profiles" else profiles.normalize_sizes
        try:
            return normalize(proposal.value)
        except profiles.ProfileConfigError as e:
            raise ValueError(f"LabdeckSpawnerMixin.{e}") from None

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


    onboarding_dirs = List(
        Unicode(),
        config=True,
        help="""Directories whose files are copied into a user's home on first start.

        Existing files are never overwritten, so a person's edits survive. Later
        directories override earlier ones for the same path; the default is
        labdeck's own (``Welcome.ipynb``). Append a directory to extend the set,
        or replace the list to replace it.

        .. versionadded:: 0.1
        """,
    )

    @default("onboarding_dirs")
    def _onboarding_dirs_default(self):
        from labdeck.spawner.onboarding import default_onboarding_dir

        return [default_onboarding_dir()]

    #: set by the backend: where the server sees labdeck's files
    labdeck_files_dir = ""
    #: set by the backend: False lets ``labdeck_write_files`` run while the server
    #: starts (it must exist before anyone reaches the server, not before its
    #: process: the local backend); True when the start needs them (a pod mounts its Secret)
    labdeck_files_before_start = True
    #: the validated profile/size for the current start
    labdeck_choice = None
    #: a port a backend chose for the current start
    _labdeck_start_port = 0

    # ------------------------------------------------------------- profiles

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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # the options of the last accepted start: JupyterHub stores new options
        # in its database *before* apply_user_options can refuse them
        orm = getattr(self, "orm_spawner", None)
        self._labdeck_accepted_options = dict(getattr(orm, "user_options", None) or {})

    def _labdeck_forget_refused_options(self) -> None:
        """Put the last accepted options back, so a refused choice changes nothing."""
        self.user_options = dict(self._labdeck_accepted_options)
        orm = getattr(self, "orm_spawner", None)
        if orm is None:
            return
        from sqlalchemy.orm import object_session

        orm.user_options = dict(self._labdeck_accepted_options)
        session = object_session(orm)
        if session is not None:
            session.commit()

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

    # ---------------------------------------------------------------- builders

    def _broker_hub_url(self) -> str:
        return self.broker_hub_url or self.broker_url

    def labdeck_env(self) -> dict[str, str]:
        env = builders.server_env(
            username=self.user.name,
            files_dir=self.labdeck_files_dir,
            broker_url=self.broker_url,
            aws_region=self.aws_region,
            s3_bucket=self.s3_bucket,
            aws_endpoint_url=self.aws_endpoint_url,
            gcp_project=self.gcp_project,
            bq_dataset=builders.bigquery_dataset(self.user.name, self.bigquery_dataset_template) if self.gcp_project else "",
            bigquery_emulator_host=self.bigquery_emulator_host,
            metadata_port=self.labdeck_metadata_port() if self.gcp_project else 0,
        )
        if self.runs_url:
            env[contract.ENV_RUNS_URL] = self.runs_url
            # jupyter-scheduler's runtime environments (labdeck.runs.jupyter_scheduler): the spawn form's rules
            import json

            env[contract.ENV_RUN_PROFILES] = json.dumps(
                profiles.run_profiles(self.profiles, self.labdeck_groups(), self.labdeck_unavailable()), separators=(",", ":")
            )
        if self.viewer_url:
            env[contract.ENV_VIEWER_URL] = self.viewer_url
        if self.labdeck_choice is not None:
            env[contract.ENV_PROFILE] = self.labdeck_choice.profile["slug"]
            if self.labdeck_choice.size:
                env[contract.ENV_SIZE] = self.labdeck_choice.size["slug"]
        return env

    def labdeck_metadata_port(self) -> int:
        """Loopback port of the server's metadata endpoint for R (default: the fixed in-pod port)."""
        return contract.METADATA_PORT

    def labdeck_r_env(self) -> tuple[dict[str, str], str]:
        """Backend hook: extra ``~/.Renviron`` variables and a directory to put first on R's ``PATH``."""
        return {}, ""

    def labdeck_home_wiring(self) -> bool:
        """Whether this server writes the SDK wiring into the home and its token into its labdeck files.

        A run's server does not: it is unattended (its kernel inherits the
        server's environment), and locally its token, revoked when the run ends,
        would replace the one the person's own server's RStudio sessions use.
        """
        return not contract.is_run_server(self.name or "")

    def labdeck_files(self) -> dict[str, str]:
        wiring = self.labdeck_home_wiring()
        home = None
        if wiring:
            r_env, path_prepend = self.labdeck_r_env()
            home = builders.home_files(
                env=self.labdeck_env(),
                files_dir=self.labdeck_files_dir,
                broker_url=self.broker_url,
                region=self.aws_region,
                credential_command=list(self.credential_command),
                r_env=r_env,
                path_prepend=path_prepend,
            )
        return builders.server_files(
            region=self.aws_region,
            credential_command=list(self.credential_command),
            broker_url=self.broker_url,
            gcp=bool(self.gcp_project),
            files_dir=self.labdeck_files_dir,
            api_token=(self.api_token or "") if wiring else "",
            home_files=home,
        )

    def get_env(self):
        env = super().get_env()
        env.update(self.labdeck_env())
        return env

    # --------------------------------------------------------------- progress

    def _progress_reset(self):
        self._labdeck_events: list[dict] = []
        self._labdeck_done = False

    def _progress(self, progress: int, message: str):
        if not hasattr(self, "_labdeck_events"):
            self._progress_reset()
        self._labdeck_events.append({"progress": progress, "message": message})
        self.log.info("[%s] %s", self._log_name, message)

    async def progress(self):
        """labdeck's own steps merged with the backend's events (never swallowed)."""
        if not hasattr(self, "_labdeck_events"):
            self._progress_reset()
        async for event in progress.merge(self._labdeck_events, lambda: self._labdeck_done, super().progress()):
            yield event

    # ----------------------------------------------------------------- start

    async def labdeck_write_files(self, files: dict[str, str]) -> None:
        raise NotImplementedError("Override in the backend subclass. Must be a coroutine.")

    async def labdeck_prepare_home(self) -> None:
        """Backend hook: make the home exist and hold the onboarding files (default: nothing)."""

    async def _issue_credentials(self, provider: str = "aws") -> None:
        """Ask the broker for this user's credentials with the server's own token."""
        url = self._broker_hub_url().rstrip("/") + f"/{provider}/credentials"
        await brokercall.issue(url, self.api_token, self.credential_timeout, provider, self.log, self._log_name)

    async def _issue_all(self, steps) -> None:
        results = await asyncio.gather(*(self._issue_credentials(p) for p, _ in steps), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    async def start(self):
        self._progress_reset()
        self._labdeck_start_port = 0  # a backend's per-start choice (labdeck_metadata_port)
        t0 = time.monotonic()
        try:
            if self.labdeck_choice is None:
                # apply_user_options was replaced or skipped: never start unchecked
                self.labdeck_choose(self.user_options)
            self._progress(5, f"Checking profile: {self.labdeck_choice.profile['display_name']}")
            issuing = writing = None
            if self.issue_credentials_at_start and self.broker_url:
                # first: the broker works while the home is prepared and the server starts
                steps = [("aws", "S3")] + ([("gcp", "BigQuery")] if self.gcp_project else [])
                for _, label in steps:
                    self._progress(20, f"Issuing {label} credentials")
                issuing = asyncio.ensure_future(self._issue_all(steps))
            self._progress(10, "Preparing home")
            try:
                await self.labdeck_prepare_home()
                files = self.labdeck_files()
                if self.labdeck_files_before_start:
                    await self.labdeck_write_files(files)
                else:
                    writing = asyncio.ensure_future(self.labdeck_write_files(files))
                self._progress(30, "Starting server")
                result = await super().start()
            except BaseException:
                for task in (issuing, writing):
                    if task:
                        task.cancel()
                raise
            if writing:
                # before start() returns, i.e. before the hub routes anyone (or any kernel) to the server
                try:
                    await writing
                except Exception:
                    await self.stop(now=True)
                    raise
            if issuing:
                try:
                    await issuing
                except Exception as e:
                    self._progress(95, f"Spawn failed: {e}")
                    await self.stop(now=True)
                    raise RuntimeError(str(e)) from None
                self._progress(80, "Cloud credentials ready")
            self.log.info("labdeck start steps for %s took %.0f ms", self._log_name, 1000 * (time.monotonic() - t0))
            return result
        finally:
            self._labdeck_done = True
            # the next start validates its own options again
            self.labdeck_choice = None
