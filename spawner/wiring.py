"""``ServerWiringMixin``: what a user server gets from labdeck, its environment and files.

The traits that describe the clouds and services a server reaches (the broker,
S3, BigQuery, runs, viewer) and the glue that turns them into the server's
environment and labdeck's files through the pure builders of
:mod:`labdeck.spawner.builders`, including what a process *without* that
environment needs (RStudio's sessions, a clean-env child): the server's token
in a file only the person can read, the SDKs' default paths
(``~/.aws/config``, Google's ADC file, a block of ``~/.Renviron``) and the port
of the metadata endpoint R's gargle reads. No I/O here: backends write the
files (``labdeck_write_files``).
"""

from __future__ import annotations

import json

from traitlets import List, Unicode, default

from labdeck.hub import contract

from labdeck.spawner import builders, profiles
from labdeck.spawner.choice import ProfileChoiceMixin


class ServerWiringMixin(ProfileChoiceMixin):
    """The server's environment and labdeck files, for the chosen profile (part of ``LabdeckSpawnerMixin``)."""

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
