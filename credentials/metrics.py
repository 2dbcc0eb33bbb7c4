"""The credential broker's Prometheus metrics (rules in :mod:`labdeck.hub.metrics`).

- ``labdeck_broker_credentials_issued_total{provider,result}``: fresh issuances
  (upstream calls: STS AssumeRole, IAM generateAccessToken, the local
  emulators), ``result`` = ``success`` | ``error``;
- ``labdeck_broker_issue_duration_seconds{provider}``: how long each fresh
  issuance took, successful or not (10 ms – 30 s buckets);
- ``labdeck_broker_cache_hits_total{provider}``: credential requests answered
  without an upstream call of their own (from the cache, or by joining an
  issuance already in flight). Hit ratio =
  hits / (hits + issued);
- ``labdeck_broker_upstream_errors_total{provider,kind}``: failed upstream
  calls, ``kind`` one of :data:`~.providers.base.UPSTREAM_ERROR_KINDS`.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from labdeck.hub.metrics import LATENCY_BUCKETS

from .providers.base import UPSTREAM_ERROR_KINDS


class BrokerMetrics:
    """The broker's metrics in ``registry``, created at zero for ``providers`` (their names)."""

    def __init__(self, registry, providers):
        self.issued = Counter(
            "labdeck_broker_credentials_issued", "Fresh credential issuances (upstream calls) by provider and result",
            ["provider", "result"], registry=registry,
        )  # fmt: skip
        self.duration = Histogram(
            "labdeck_broker_issue_duration_seconds", "Duration of fresh credential issuances",
            ["provider"], buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.cache_hits = Counter(
            "labdeck_broker_cache_hits", "Credential requests served without an upstream call of their own",
            ["provider"], registry=registry,
        )  # fmt: skip
        self.upstream_errors = Counter(
            "labdeck_broker_upstream_errors", "Failed upstream calls by provider and kind",
            ["provider", "kind"], registry=registry,
        )  # fmt: skip
        for p in providers:
            for result in ("success", "error"):
                self.issued.labels(p, result)
            self.duration.labels(p)
            self.cache_hits.labels(p)
            for kind in UPSTREAM_ERROR_KINDS:
                self.upstream_errors.labels(p, kind)

    def issuance(self, provider: str, seconds: float, error_kind: str | None = None) -> None:
        self.duration.labels(provider).observe(seconds)
        self.issued.labels(provider, "error" if error_kind else "success").inc()
        if error_kind:
            self.upstream_errors.labels(provider, error_kind if error_kind in UPSTREAM_ERROR_KINDS else "refused").inc()

    def cache_hit(self, provider: str) -> None:
        self.cache_hits.labels(provider).inc()
