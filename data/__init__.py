"""Data in JupyterLab: the person's S3 as a file-browser drive, BigQuery tables and queries in a panel.

A jupyter_server extension (enabled by the single-user image's
``jupyter_server_config.d/labdeck.json``, which ``make deps`` installs too)
and its prebuilt JupyterLab extension ``@labdeck/data`` (``data/labextension``).

- :mod:`.s3paths` - pure: where a drive path lies in the person's grants;
- :mod:`.s3contents` - the S3 drive's contents manager (s3fs under Jupyter's contents API);
- :mod:`.s3errors` - S3 refusals as readable HTTP errors;
- :mod:`.handlers` - the drive's routes (contents, streamed files, home <-> S3 copies);
- :mod:`.bigquery` - the BigQuery panel's routes (datasets, tables, jobs, cancel);
- :mod:`.grants` - the person's grants, asked of the broker with the server's own token.

Which features a server offers comes from the hub (``singleuser.data`` values,
through the configurer, as ``LABDECK_S3_DRIVE`` / ``LABDECK_BIGQUERY_PANEL``);
without a bucket, or without a Google project, that half stays off.
"""

from __future__ import annotations

import os

from labdeck.hub import contract


def features(env=os.environ) -> dict:
    """Which data features this server offers (pure in ``env``)."""
    on = {"1", "true", "yes", "on"}
    s3 = bool(env.get(contract.ENV_S3_BUCKET)) and env.get(contract.ENV_S3_DRIVE, "1").lower() in on
    bq = bool(env.get("GOOGLE_CLOUD_PROJECT")) and env.get(contract.ENV_BIGQUERY_PANEL, "1").lower() in on
    return {
        "s3": {"enabled": s3, "drive": "S3", "bucket": env.get(contract.ENV_S3_BUCKET, "") if s3 else ""},
        "bigquery": {"enabled": bq, "project": env.get("GOOGLE_CLOUD_PROJECT", "") if bq else ""},
    }


def _load_jupyter_server_extension(serverapp):
    from jupyter_server.utils import url_path_join

    from .grants import BrokerGrants
    from .handlers import DataConfigHandler

    base = serverapp.web_app.settings["base_url"]
    config = features()
    grants = BrokerGrants()
    settings = {"labdeck_data_config": config, "labdeck_grants": grants}
    handlers = [(url_path_join(base, "labdeck/data/config"), DataConfigHandler)]
    if config["s3"]["enabled"]:
        from .handlers import s3_handlers
        from .s3contents import S3ContentsManager

        settings["labdeck_s3_contents"] = S3ContentsManager(config=serverapp.config, log=serverapp.log, grants=grants)
        handlers += s3_handlers(base)
    if config["bigquery"]["enabled"]:
        from .bigquery import bigquery_handlers

        settings["labdeck_bigquery"] = {}
        handlers += bigquery_handlers(base)
    serverapp.web_app.settings.update(settings)
    serverapp.web_app.add_handlers(".*$", handlers)
    serverapp.log.info("labdeck data: S3 drive %s, BigQuery panel %s",
                       "on" if config["s3"]["enabled"] else "off", "on" if config["bigquery"]["enabled"] else "off")


def _jupyter_server_extension_points():
    return [{"module": "labdeck.data"}]
