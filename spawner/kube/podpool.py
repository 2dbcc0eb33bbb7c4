"""The hub's pool of warm pods (``singleuser.warmPool``): kept full ahead of demand, claimed at spawn.

One :class:`WarmPodPool` per recipe (image and resources, :class:`labdeck.spawner.kube.warmpods.Recipe`)
and namespace, shared by every spawner of the hub process (:func:`pool_for`), like the local
warm pool (:mod:`labdeck.spawner.local.warmpool`). Its loop, once a second (and right after a claim):

- lists the pool's free pods (labels ``labdeck.dev/warm-pool=<recipe>``, ``labdeck.dev/warm=ready``),
  deletes those that ended, and creates new ones up to ``size``: for each, a Secret holding a
  fresh random claim key, the pod, then the pod made the Secret's owner (the garbage
  collector deletes the key with the pod);
- asks each running pod's agent ``GET /ready`` (it answers once it has imported the server);
  ready pods wait in a queue.

:meth:`WarmPodPool.claim` takes the first ready pod off the queue (before any ``await``: no
other spawn of this hub sees it), swaps its labels to the person's with a JSON patch that
first *tests* the pod is still free (another hub replica, or an admin's edit, makes it fail
whole), then sends the pod's agent the claim message with that pod's key. With no ready pod
it creates one for this claim and claims it as soon as its agent answers (a "cold" warm pod:
the same pod, only not started ahead), so every server of a warm-pool hub looks the same.
A pod whose claim fails is deleted, never offered again.

Keys live in the hub's memory (and in each pod's Secret, which the hub reads back after a
restart); they never appear in a log, a label or a pod spec.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import deque

from kubernetes_asyncio.client.rest import ApiException

from labdeck.hub import contract

from labdeck.spawner.kube import warmpods

log = logging.getLogger("labdeck.podpool")

#: seconds between two passes of the pool loop
INTERVAL = 1.0


class WarmClaimError(Exception):
    """A claim that did not give the person a server (the spawn fails with this message)."""


class WarmPodPool:
    """Warm pods of one recipe in one namespace."""

    def __init__(self, api, namespace: str, recipe: warmpods.Recipe, size: int, template, prefix: str, logger=None, owner_secret: str = ""):
        """``template(name) -> pod dict`` builds a pod of this recipe (:func:`warmpods.make_pool_pod` with the hub's settings);
        free pods are owned by ``owner_secret`` (the release's hub Secret), so ``helm uninstall`` removes them."""
        self.owner_secret = owner_secret
        self._owner_uid = ""
        self.api = api
        self.namespace = namespace
        self.recipe = recipe
        self.size = size
        self.template = template
        self.prefix = prefix
        self.log = logger or log
        self.keys: dict[str, str] = {}
        self.ready: deque[tuple[str, str]] = deque()  # (pod name, pod ip)
        self.claimed: set[str] = set()
        self.claims = 0
        self._task: asyncio.Task | None = None
        self._kick = asyncio.Event()
        self._reconciling = asyncio.Lock()
        self._http = None

    # ------------------------------------------------------------------ loop

    def ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    def kick(self) -> None:
        self._kick.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # keep the pool going; spawns fall back to a pod of their own
                self.log.warning("warm pool %s: %s", self.recipe.id, e)
            self._kick.clear()
            try:
                await asyncio.wait_for(self._kick.wait(), INTERVAL)
            except asyncio.TimeoutError:
                pass

    def _selector(self) -> str:
        return f"{warmpods.LABEL_POOL}={self.recipe.id},{warmpods.LABEL_STATE}={warmpods.READY}"

    async def reconcile(self) -> None:
        async with self._reconciling:  # the loop's pass and a claim's look for freshly ready pods never overlap
            await self._reconcile()

    async def _reconcile(self) -> None:
        pods = await self.api.list_namespaced_pod(self.namespace, label_selector=self._selector(), _preload_content=False)
        if pods.status != 200:
            raise ApiException(status=pods.status, reason="listing warm pods")
        items = json.loads(await pods.read())["items"]
        alive = []
        for pod in items:
            name = pod["metadata"]["name"]
            if name in self.claimed or pod["metadata"].get("deletionTimestamp"):
                continue
            if pod["status"].get("phase") in ("Failed", "Succeeded"):
                await self._delete(name)
                continue
            alive.append(pod)
        queued = {n for n, _ in self.ready}
        for pod in alive:
            name, ip = pod["metadata"]["name"], pod["status"].get("podIP")
            if name in queued or not ip or pod["status"].get("phase") != "Running":
                continue
            if await self._agent_ready(ip):
                if name not in self.keys and not await self._read_key(name):
                    await self._delete(name)  # a pod whose key is gone can never be claimed
                    continue
                self.ready.append((name, ip))
                queued.add(name)
                self.log.info("warm pool: pod %s ready (%d ready)", name, len(self.ready))
        live = {p["metadata"]["name"] for p in alive}
        self.ready = deque((n, ip) for n, ip in self.ready if n in live)
        for _ in range(self.size - len(alive)):
            await self.create()

    async def create(self) -> str:
        """A new free pod: its key Secret, the pod, then the pod owns the Secret."""
        name = f"{self.prefix}-{secrets.token_hex(4)}"
        key = secrets.token_urlsafe(32)
        pod = self.template(name)
        if self.owner_secret:
            if not self._owner_uid:
                self._owner_uid = (await self.api.read_namespaced_secret(self.owner_secret, self.namespace)).metadata.uid
            pod = warmpods.owned_by_secret(pod, self.owner_secret, self._owner_uid)
        labels = {k: v for k, v in pod["metadata"]["labels"].items() if k != warmpods.LABEL_STATE}
        secret = warmpods.make_key_secret(name, key, labels)
        await self.api.create_namespaced_secret(self.namespace, secret)
        self.keys[name] = key
        try:
            created = await self.api.create_namespaced_pod(self.namespace, pod, _preload_content=False)
            uid = json.loads(await created.read())["metadata"]["uid"]
            await self.api.patch_namespaced_secret(warmpods.key_secret_name(name), self.namespace, warmpods.owner_patch(name, uid))
        except Exception:
            self.keys.pop(name, None)
            await self._delete(name)
            raise
        return name

    async def _read_key(self, name: str) -> bool:
        """After a hub restart: the key of a pod an earlier hub process created."""
        try:
            s = await self.api.read_namespaced_secret(warmpods.key_secret_name(name), self.namespace)
        except ApiException:
            return False
        import base64

        value = (s.data or {}).get(warmpods.KEY_ITEM)
        if not value:
            return False
        self.keys[name] = base64.b64decode(value).decode()
        return True

    async def _delete(self, name: str) -> None:
        self.keys.pop(name, None)
        for call, obj in ((self.api.delete_namespaced_pod, name), (self.api.delete_namespaced_secret, warmpods.key_secret_name(name))):
            try:
                await call(obj, self.namespace, grace_period_seconds=0)
            except ApiException as e:
                if e.status != 404:
                    self.log.warning("warm pool: deleting %s: %s", obj, e.reason)

    # ------------------------------------------------------------------ agent

    def _client(self):
        if self._http is None:
            from tornado.httpclient import AsyncHTTPClient

            self._http = AsyncHTTPClient(force_instance=True, max_clients=128)
        return self._http

    async def _agent_ready(self, ip: str) -> bool:
        from tornado.httpclient import HTTPClientError

        try:
            r = await self._client().fetch(f"http://{ip}:{contract.WARM_CLAIM_PORT}/ready", request_timeout=1, connect_timeout=1)
            return r.code == 200
        except (HTTPClientError, OSError, asyncio.TimeoutError):
            return False

    async def _send_claim(self, ip: str, key: str, message: dict, timeout: float) -> tuple[int, str]:
        """``(HTTP status, answer)`` of the agent; status 0 when it could not be reached."""
        from tornado.httpclient import HTTPClientError

        try:
            r = await self._client().fetch(
                f"http://{ip}:{contract.WARM_CLAIM_PORT}/claim", method="POST", body=json.dumps(message),
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                request_timeout=timeout, connect_timeout=timeout,
            )  # fmt: skip
            return r.code, r.body.decode(errors="replace")
        except HTTPClientError as e:
            body = e.response.body.decode(errors="replace") if e.response is not None and e.response.body else ""
            return (e.code if e.code != 599 else 0), body
        except (OSError, asyncio.TimeoutError) as e:
            return 0, f"ER {type(e).__name__}"

    async def _wait_ready(self, name: str, deadline: float) -> str:
        """The IP of pod ``name`` once its agent answers (a pod created for one claim)."""
        while time.monotonic() < deadline:
            try:
                pod = await self.api.read_namespaced_pod(name, self.namespace)
            except ApiException as e:
                if e.status == 404:
                    raise WarmClaimError(f"pod {name} disappeared before its claim") from None
                raise
            if pod.status.phase in ("Failed", "Succeeded"):
                raise WarmClaimError(f"pod {name} ended before its claim ({pod.status.phase})")
            ip = pod.status.pod_ip
            if ip and pod.status.phase == "Running" and await self._agent_ready(ip):
                return ip
            await asyncio.sleep(0.1)
        raise WarmClaimError(f"pod {name} was not ready in time")

    # ------------------------------------------------------------------ claim

    async def claim(self, message: dict, labels: dict, annotations: dict, timeout: float, on_event=None) -> tuple[str, str, bool]:
        """Give one pod to one person: ``(pod name, pod ip, taken from the pool)``; raises :class:`WarmClaimError`.

        ``message`` is :func:`warmpods.claim_message`; ``labels``/``annotations`` the person's pod's.
        """
        deadline = time.monotonic() + timeout
        for _ in range(self.size + 3):
            if not self.ready and self.size > 0:
                try:
                    await self.reconcile()  # pods whose agent got ready since the last pass
                except Exception as e:  # the pool's trouble is no reason to fail a spawn: start a pod for it
                    self.log.warning("warm pool %s: %s", self.recipe.id, e)
            warm = bool(self.ready)
            if warm:
                name, ip = self.ready.popleft()  # before any await: no other spawn of this hub gets it
            else:
                if on_event:
                    on_event("No warm pod free: starting one")
                name = await self.create()
            self.claimed.add(name)
            self.kick()  # refill in the background
            try:
                if not warm:
                    ip = await self._wait_ready(name, deadline)
                patch = warmpods.claim_patch(labels, annotations, self.recipe.id)
                try:
                    await self.api.patch_namespaced_pod(name, self.namespace, patch)
                except ApiException as e:
                    if e.status in (404, 409, 422):  # gone, or claimed by someone else first
                        self.log.info("warm pool: pod %s was taken or gone (%s); trying another", name, e.status)
                        continue
                    raise
                status, answer = await self._send_claim(ip, self.keys.get(name, ""), message, max(1.0, deadline - time.monotonic()))
                if (status, answer) == (200, "OK"):
                    self.claims += 1
                    self.keys.pop(name, None)
                    return name, ip, warm
                # the agent's answers name a reason, never the claim's content
                self.log.warning("warm pool: pod %s did not take its claim (%s %s); deleting it", name, status, answer[:80])
                await self._delete(name)
                if status == 0 or status >= 500:
                    continue  # that pod died, went away or failed (it is deleted): another pod
                raise WarmClaimError(f"the warm pod refused the claim ({status} {answer[:80]})")
            finally:
                self.claimed.discard(name)
        self.log.warning("warm pool %s: no pod took the claim after %d tries", self.recipe.id, self.size + 3)
        raise WarmClaimError("no warm pod could be claimed")

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.ready.clear()


_POOLS: dict[tuple[str, str], WarmPodPool] = {}


def pool_for(api, namespace: str, recipe: warmpods.Recipe, size: int, template, prefix: str, logger=None, owner_secret: str = "") -> WarmPodPool:
    """The hub-wide pool of ``recipe`` in ``namespace`` (created on first use, started in the background)."""
    key = (namespace, recipe.id)
    pool = _POOLS.get(key)
    if pool is None:
        pool = _POOLS[key] = WarmPodPool(api, namespace, recipe, size, template, prefix, logger=logger, owner_secret=owner_secret)
    pool.size = size
    if size > 0:
        pool.ensure_started()
    return pool
