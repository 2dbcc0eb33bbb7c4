"""A small local BigQuery REST endpoint backed by DuckDB."""
