"""The credential broker: a JupyterHub service that issues short-lived, per-user cloud credentials.

Run as ``labdeck broker --config FILE`` (a traitlets ``.py`` or ``.json``
config file). The hub registers it as an external service; it reads its own
hub API token and URL from ``JUPYTERHUB_API_TOKEN`` / ``JUPYTERHUB_API_URL``
like any JupyterHub service, and needs the scopes ``read:users`` and
``read:users:groups`` to look up the groups of a caller.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

from tornado import web
from traitlets import Dict, Integer, List, Unicode, validate

from labdeck.hub import contract
from labdeck.hub.service import HealthHandler, LabdeckServiceApp

from .cache import CredentialCache
from .grants import GrantConfigError, grants_view, resolve_grants, validate_grant_config
from .handlers import CredentialsHandler, GrantsHandler, TokenExchangeHandler, WhoAmIHandler
from .metrics import BrokerMetrics
from .providers.base import CredentialProvider, Identity, UpstreamError

#: provider names usable in ``BrokerApp.providers`` → "module:Class" (imported on use)
PROVIDER_CLASSES: dict[str, str] = {
    "aws": "labdeck.credentials.providers.aws:AWSProvider",
    "gcp": "labdeck.credentials.providers.gcp:GCPProvider",
    "local-gcp": "labdeck.credentials.providers.local_gcp:LocalGCPProvider",
}


def provider_class(key: str) -> type[CredentialProvider]:
    """The provider class registered under ``key``."""
    import importlib

    module, _, name = PROVIDER_CLASSES[key].partition(":")
    return getattr(importlib.import_module(module), name)


class BrokerApp(LabdeckServiceApp):
    """Issue short-lived credentials to the user servers of a JupyterHub."""

    name = "labdeck-broker"
    description = __doc__

    default_port = contract.SERVICE_PORTS[contract.BROKER]
    default_prefix = contract.service_prefix(contract.BROKER)

    providers = List(
        Unicode(),
        ["aws"],
        config=True,
        help=f"""Credential providers to enable, by name.

        Known names: {', '.join(sorted(PROVIDER_CLASSES))}. Each provider serves
        ``<base_url><provider.name>/credentials`` and is configured through its
        own class section (e.g. ``c.AWSProvider.role_arn``).

        .. versionadded:: 0.1
        """,
    )

    grants = Dict(
        config=True,
        help="""What users and groups may touch, beyond their own home and dataset.

        .. code-block:: python

            c.BrokerApp.grants = {
                "everyone": {"s3": [{"prefix": "shared/", "access": "ro"}]},
                "groups": {"analysts": {"s3": [{"prefix": "shared/analysts/", "access": "ro"}]}},
                "users": {"alice": {"s3": [{"prefix": "projects/x/", "access": "rw"}]}},
            }

        Group membership is read from the hub on every fresh issuance, so adding
        or removing a user from a group takes effect at their next credential
        refresh. Prefixes granted to a group under an everyone-readable prefix
        are denied to everyone else.

        .. versionadded:: 0.1
        """,
    )

    @validate("grants")
    def _validate_grants(self, proposal):
        try:
            validate_grant_config(proposal.value)
        except GrantConfigError as e:
            raise ValueError(f"BrokerApp.grants: {e}") from None
        return proposal.value

    grants_file = Unicode(
        config=True,
        help="""A JSON or YAML file with the grants (same shape as ``grants``), re-read when it changes.

        When set, it replaces ``grants``. Editing it takes effect at each user's
        next credential refresh, without restarting the broker or any server.
        A file that fails validation is refused (logged) and the previous grants stay.

        .. versionadded:: 0.1
        """,
    )

    upstream_timeout_seconds = Integer(
        30,
        config=True,
        help="""Give up on one fresh issuance (all its upstream calls) after this many seconds.

        The caller then gets a readable 503 (and still-valid cached credentials
        keep being served), instead of waiting on a hung STS/IAM endpoint.

        .. versionadded:: 0.1
        """,
    )

    cache_margin_seconds = Integer(
        1200,
        config=True,
        help="""Serve a cached credential only while it has more than this many seconds left.

        Must exceed the SDKs' own refresh windows (botocore: 15 minutes), or
        every SDK refresh would get a credential it immediately refreshes again.
        Must be smaller than the providers' ``ttl_seconds``.

        .. versionadded:: 0.1
        """,
    )

    refresh_ahead_seconds = Integer(
        300,
        config=True,
        help="""Re-issue a cached credential in the background this many seconds before it would stop being served.

        A credential stops being served ``cache_margin_seconds`` before it expires;
        the broker re-issues it ahead of that (with the person's current groups and
        grants), so an SDK's refresh or a spawn finds a fresh credential instead
        of waiting on the cloud. Only credentials served within
        ``refresh_idle_seconds`` are refreshed. 0 turns it off.

        .. versionadded:: 0.4
        """,
    )

    refresh_idle_seconds = Integer(
        4 * 3600,
        config=True,
        help="""Refresh ahead only the credentials someone asked for within this many seconds.

        A running server's SDKs ask at each of their own refreshes; credentials of
        people who stopped working are left to expire.

        .. versionadded:: 0.4
        """,
    )

    @property
    def classes(self):
        return [BrokerApp, *(provider_class(k) for k in self.providers if k in PROVIDER_CLASSES)]

    # ------------------------------------------------------------------ setup

    def initialize(self, argv=None):
        super().initialize(argv)
        unknown = [p for p in self.providers if p not in PROVIDER_CLASSES]
        if unknown:
            raise ValueError(f"BrokerApp.providers: unknown provider(s) {unknown}; known: {sorted(PROVIDER_CLASSES)}")
        self.providers_by_name: dict[str, CredentialProvider] = {}
        for key in self.providers:
            prov = provider_class(key)(parent=self, log=self.log)
            self.providers_by_name[prov.name] = prov
            if prov.ttl_seconds <= self.cache_margin_seconds:
                self.log.warning(
                    "%s.ttl_seconds (%s) <= BrokerApp.cache_margin_seconds (%s): every request issues fresh credentials",
                    type(prov).__name__,
                    prov.ttl_seconds,
                    self.cache_margin_seconds,
                )
        self.cache = CredentialCache(margin=self.cache_margin_seconds)
        self._file_grants: dict = {}
        self._grants_mtime = None
        self.started = time.time()
        self.requests_served = 0
        self.metrics = BrokerMetrics(self.registry, sorted(self.providers_by_name))

    def make_app(self) -> web.Application:
        prefix = self.base_url
        return web.Application(
            [
                (prefix + r"whoami", WhoAmIHandler),
                (prefix + r"grants", GrantsHandler),
                (prefix + contract.BROKER_CREDENTIALS_ROUTE.format(provider=r"([a-z0-9-]+)"), CredentialsHandler),
                (prefix + contract.BROKER_TOKEN_ROUTE.format(provider=r"([a-z0-9-]+)"), TokenExchangeHandler),
                *self.base_handlers(),
                (prefix.rstrip("/") + r"/?", HealthHandler, {"app": self}),
            ],
            broker=self,
            log_function=self.log_request,
        )

    # ------------------------------------------------------------- behaviour

    async def identify(self, token: str) -> Identity | None:
        """The user a token belongs to, with their current groups; None if invalid."""
        model = await self.hub_user(token)
        if model is None:
            return None
        return Identity(name=model["name"], groups=tuple(sorted(model["groups"])))

    def current_grants(self) -> dict:
        """``grants``, or the grants file's content if it is set (re-read when its mtime changes)."""
        if not self.grants_file:
            return self.grants
        try:
            mtime = os.stat(self.grants_file).st_mtime_ns
        except OSError:
            self.log.error("Grants file %s is missing; keeping the previous grants", self.grants_file)
            return self._file_grants
        if mtime != self._grants_mtime:
            try:
                with open(self.grants_file) as f:
                    text = f.read()
                import yaml

                data = yaml.safe_load(text) or {}
                validate_grant_config(data)
            except (OSError, ValueError, yaml.YAMLError) as e:
                self.log.error("Refusing grants file %s: %s", self.grants_file, e)
                self._grants_mtime = mtime
                return self._file_grants
            self._file_grants = data
            self._grants_mtime = mtime
            self.log.info("Loaded grants from %s", self.grants_file)
        return self._file_grants

    async def serve(self, stop: asyncio.Event) -> None:
        refreshing = asyncio.ensure_future(self.refresh_loop(stop)) if self.refresh_ahead_seconds > 0 else None
        try:
            await super().serve(stop)
        finally:
            if refreshing:
                refreshing.cancel()

    async def refresh_loop(self, stop: asyncio.Event) -> None:
        """Every ``refresh_ahead_seconds / 5`` (at most a minute), :meth:`refresh_due`."""
        every = max(1.0, min(60.0, self.refresh_ahead_seconds / 5))
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), every)
            except asyncio.TimeoutError:
                await self.refresh_due()

    async def refresh_due(self) -> int:
        """Re-issue the credentials in use that stop being served within ``refresh_ahead_seconds``; how many."""
        done = 0
        if self.refresh_ahead_seconds <= 0:
            return done
        for provider_name, name in self.cache.due(self.refresh_ahead_seconds, self.refresh_idle_seconds):
            provider = self.providers_by_name.get(provider_name)
            if provider is None:
                continue
            # the person's groups now, and the grants now: a refresh never extends a revoked grant
            ident = Identity(name=name, groups=await self.groups_of(name))  # sorted, as identify() gives them
            try:
                await self.credentials(provider, ident, refresh=True)
                done += 1
            except Exception as e:  # UpstreamError's text is free of secrets
                self.log.warning("Refreshing the %s credentials of %s ahead of time failed (%s); the next request asks again", provider_name, name, e)
        if done:
            self.log.info("Refreshed %d credential(s) ahead of their expiry", done)
        return done

    async def credentials(self, provider: CredentialProvider, ident: Identity, refresh: bool = False) -> dict:
        grants = resolve_grants(self.current_grants(), ident.name, ident.groups)
        fingerprint = hashlib.sha256(repr(grants).encode()).hexdigest()
        issued_here = []

        async def issue():
            issued_here.append(True)
            t0 = time.perf_counter()
            kind = None
            try:
                return await asyncio.wait_for(provider.issue(ident, grants), self.upstream_timeout_seconds)
            except asyncio.TimeoutError:
                kind = "timeout"
                raise UpstreamError(
                    f"The {provider.name.upper()} credential service did not answer within {self.upstream_timeout_seconds} s; try again shortly",
                    kind=kind,
                ) from None
            except UpstreamError as e:
                kind = e.kind
                raise
            except Exception:
                kind = "refused"
                raise
            finally:
                self.metrics.issuance(provider.name, time.perf_counter() - t0, kind)

        if refresh:  # ahead of time (refresh_due): not a request anyone made
            return provider.render(await self.cache.refresh((provider.name, ident.name), fingerprint, issue))
        cred = await self.cache.get((provider.name, ident.name), fingerprint, issue)
        if not issued_here:
            self.metrics.cache_hit(provider.name)
        self.requests_served += 1
        return provider.render(cred)

    def describe(self, ident: Identity) -> dict:
        grants = resolve_grants(self.current_grants(), ident.name, ident.groups)
        return {
            "name": ident.name,
            "groups": list(ident.groups),
            "grants": [g for g in grants.sources],
            **{name: p.describe(ident) for name, p in self.providers_by_name.items()},
        }

    def grants_view(self, ident: Identity) -> dict:
        """The caller's browsable grants (``GET grants``): S3 prefixes and BigQuery datasets."""
        grants = resolve_grants(self.current_grants(), ident.name, ident.groups)
        described = {name: p.describe(ident) for name, p in self.providers_by_name.items()}
        return grants_view(ident.name, grants, described)

    def health(self) -> dict:
        return {
            **super().health(),
            "providers": sorted(self.providers_by_name),
            "uptime_s": round(time.time() - self.started, 1),
            "requests_served": self.requests_served,
            "upstream_calls": self.cache.upstream_calls,
            "stale_served": self.cache.stale_served,
        }


def main(argv=None):
    BrokerApp.launch_instance(argv)
