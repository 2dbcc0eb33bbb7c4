"""A small local BigQuery REST endpoint backed by DuckDB.

Used by the embedded default (``labdeck up``) and the tests, with the unmodified
``google-cloud-bigquery`` client pointed at it through ``BIGQUERY_EMULATOR_HOST``
and a bearer token from :mod:`labdeck.emulators.bigquery.tokens`.

Modules, one job each:

- :mod:`.app` - the tornado application and the REST handlers of datasets,
  tables, tabledata and insertAll;
- :mod:`.base` - what every handler shares (authentication, JSON replies, logging);
- :mod:`.jobs_api` - jobs.insert/get/list/cancel, jobs.query, getQueryResults
  and load uploads;
- :mod:`.access` - pure grant checks against the token's claims;
- :mod:`.translate` - pure BigQuery -> DuckDB SQL (sqlglot) and the tables a
  statement reads and writes;
- :mod:`.schema` - pure type mapping and ``{"f": [{"v": ...}]}`` row encoding;
- :mod:`.engine` - DuckDB storage and execution (one lock, no file access from SQL);
- :mod:`.jobs` - running and recording query/load jobs;
- :mod:`.uploads` - multipart and resumable upload parsing, and reading the uploaded data;
- :mod:`.seed` - the deterministic demo dataset;
- ``__main__`` - the command line.

Why our own endpoint and not ``bqemulator``
-------------------------------------------
Compared side by side (recorded in issue 14, Dec 2026) on the same 37
google-cloud-bigquery operations (client 3.47.0, as pinned in
``images/singleuser/requirements.txt``): this endpoint (DuckDB 2.0.0,
sqlglot 30.30.0) passed 35; ``bqemulator`` 1.4.0 from PyPI passed 20. In
bqemulator, uploads under 5 MiB fail, so ``load_table_from_dataframe``,
``load_table_from_json`` and pandas-gbq ``to_gbq`` fail; it has no
authentication and no hook for one (we enforce per-user grants from the
broker's token on every request); DuckDB file functions in SQL read the
server's own files (``engine`` refuses them); it downloads at start (no
network here); and it cannot be installed beside our ``sqlglot`` pin. Keep
this endpoint unless those change; do not redo the comparison without a new
bqemulator release.
"""
