"""A small local BigQuery REST endpoint backed by DuckDB.

Used by the embedded default (``labdeck up``) and the tests, with the unmodified
``google-cloud-bigquery`` client pointed at it through ``BIGQUERY_EMULATOR_HOST``
and a bearer token from :mod:`labdeck.emulators.bigquery.tokens`.

Modules, one job each:

- :mod:`.app` - tornado handlers for the REST subset (datasets, tables,
  tabledata, insertAll, jobs.insert/get/query/getQueryResults, load uploads);
- :mod:`.access` - pure grant checks against the token's claims;
- :mod:`.translate` - pure BigQuery -> DuckDB SQL (sqlglot) and the tables a
  statement reads and writes;
- :mod:`.schema` - pure type mapping and ``{"f": [{"v": ...}]}`` row encoding;
- :mod:`.engine` - DuckDB storage and execution (one lock, no file access from SQL);
- :mod:`.jobs` - running and recording query/load jobs;
- :mod:`.uploads` - multipart and resumable upload parsing;
- :mod:`.seed` - the deterministic demo dataset;
- ``__main__`` - the command line.
"""
