"""labdeck's spawner for Kubernetes: KubeSpawner with the same mixin.

What it adds to KubeSpawner, all through :mod:`labdeck.spawner.kube.objects`:
a per-server Secret with labdeck's SDK config files (mounted read-only at
``/etc/labdeck``) and the server's API token (referenced by ``secretKeyRef``,
so the token is not in the pod spec); profile → image/resources/node
selector; a non-root, no-escalation security context; no service-account
token in user pods. The Secret is deleted when the server stops.
"""

from __future__ import annotations

import asyncio

from jupyterhub.utils import exponential_backoff
from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from traitlets import Bool, Integer, Unicode, default

from labdeck.hub import contract

from labdeck.spawner.kube import podpool, objects, warmpods
from labdeck.spawner import onboarding, profiles, readiness
from labdeck.spawner.mixin import LabdeckSpawnerMixin


class LabdeckKubeSpawner(LabdeckSpawnerMixin, KubeSpawner):
    """A KubeSpawner user pod with labdeck's credential wiring."""

    labdeck_files_dir = "/etc/labdeck"
    _labdeck_files: dict | None = None

    wait_ready_in_start = Bool(
        True,
        config=True,
        help="""Return from ``start()`` only when the server answers on ``<prefix>api`` (as the local spawner does).

        JupyterHub then sees the server ready at its first check instead of
        after its polling back-off (up to 5 s between checks; ~2 s of a pod's
        spawn in ``bench/kube.py``). Bounded by ``http_timeout``; a pod whose
        container ended stops the wait at once.

        .. versionadded:: 0.3
        """,
    )

    warm_pool_enabled = Bool(
        False,
        config=True,
        help="""Servers are warm pods: started ahead of demand, claimed at spawn (``singleuser.warmPool.enabled``).

        A warm pod has nothing personal in it until a spawn claims it; the
        claim gives it the person's uid (``warm_uid_base`` + the hub's user
        id), home (a 0700 directory of the shared ``warm_homes_claim``
        volume), environment, API token and labdeck's files, and the pod's
        agent drops to that uid and runs the server. With no warm pod free a
        pod is started for the claim, so every server looks the same. Runs'
        servers keep the ordinary pod. README "Warm pods on Kubernetes" has
        the design and its security argument.

        .. versionadded:: 0.3
        """,
    )

    warm_pool_size = Integer(
        2,
        config=True,
        help="""Warm pods kept free, for the default profile and size (``singleuser.warmPool.size``).

        Other profiles and sizes start a pod for each claim (no pods wait for them).

        .. versionadded:: 0.3
        """,
    )

    warm_homes_claim = Unicode(
        "",
        config=True,
        help="""The ReadWriteMany PersistentVolumeClaim holding every person's home, mounted at ``/home`` of warm pods.

        Its root must be owned by root; the first warm pod makes it mode 1733.

        .. versionadded:: 0.3
        """,
    )

    warm_homes_key = Unicode(
        "",
        config=True,
        help="""Secret key naming homes (an HMAC of the user name), so nobody can guess or take another's home.

        The chart generates it and keeps it across upgrades (``singleuser.homes-key`` of the hub Secret).
        Changing it gives every person a new, empty home.

        .. versionadded:: 0.3
        """,
    )

    warm_uid_base = Integer(
        100000,
        config=True,
        help="""A warm-pod server runs as ``warm_uid_base`` + the hub's id of its user (every person a uid of their own).

        .. versionadded:: 0.3
        """,
    )

    warm_owner_secret = Unicode(
        "",
        config=True,
        help="""A Secret that owns free warm pods, so they are deleted with it (the chart: the hub Secret, i.e. on ``helm uninstall``).

        A claim removes the owner: a person's server is never deleted with the release, as a cold pod is not.

        .. versionadded:: 0.3
        """,
    )

    warm_pod_prefix = Unicode(
        "warm",
        config=True,
        help="""Name prefix of warm pods (the chart: ``<release>-singleuser-warm``).

        .. versionadded:: 0.3
        """,
    )

    @default("cmd")
    def _cmd_default(self):
        # copies onboarding files into the (persistent) home, then execs jupyterhub-singleuser
        return ["labdeck-singleuser"]

    @default("default_url")
    def _default_url_default(self):
        return "/lab"

    @default("automount_service_account_token")
    def _automount_default(self):
        return False

    @default("container_security_context")
    def _container_security_context_default(self):
        return objects.container_security_context()

    def get_env(self):
        env = super().get_env()
        # the pod's labdeck-singleuser copies these (the admin's dirs are paths in the user image)
        env[contract.ENV_ONBOARDING_DIRS] = onboarding.dirs_env_value(list(self.onboarding_dirs))
        return env

    async def load_user_options(self):
        # labdeck validates and applies `profile`/`size` itself (LabdeckSpawnerMixin.labdeck_choose
        # via apply_user_options, then labdeck_apply_choice). KubeSpawner's own version checks
        # user_options["profile"] against its (unused, empty) profile_list and fails every
        # spawn that names a profile with "No such profile".
        return

    def labdeck_apply_choice(self, choice):
        super().labdeck_apply_choice(choice)
        for trait, value in objects.profile_overrides(choice.profile, choice.size).items():
            setattr(self, trait, value)

    @property
    def labdeck_secret_name(self) -> str:
        return objects.secret_name(self.pod_name)

    async def labdeck_write_files(self, files):
        self._labdeck_files = dict(files)
        if self._labdeck_warm():
            return  # given to the pod's agent at claim (a warm pod's volumes are fixed)
        manifest = objects.make_secret(
            self.labdeck_secret_name,
            self.namespace,
            files,
            self.api_token,
            self._build_common_labels({}),
        )
        await self._labdeck_delete_secret()
        await self.api.create_namespaced_secret(self.namespace, manifest)

    async def get_pod_manifest(self):
        pod = await super().get_pod_manifest()
        if self._labdeck_files is None:
            return pod
        return objects.with_labdeck_files(pod, self.labdeck_secret_name, self.labdeck_files_dir, list(self._labdeck_files))

    async def _labdeck_delete_secret(self):
        try:
            await self.api.delete_namespaced_secret(self.labdeck_secret_name, self.namespace)
        except ApiException as e:
            if e.status != 404:
                raise

    # ------------------------------------------------------------ warm pods

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.warm_pool_enabled and self.warm_pool_size > 0:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return
            recipe = self._labdeck_default_recipe()
            self._labdeck_pool(recipe, self.warm_pool_size)

    def _labdeck_pool(self, recipe: warmpods.Recipe, size: int) -> podpool.WarmPodPool:
        return podpool.pool_for(
            self.api, self.namespace, recipe, size, self._labdeck_pool_template(recipe), self.warm_pod_prefix,
            logger=self.log, owner_secret=self.warm_owner_secret,
        )  # fmt: skip

    def _labdeck_warm(self) -> bool:
        return self.warm_pool_enabled and not contract.is_run_server(self.name)

    def _labdeck_recipe(self, values: dict | None = None) -> warmpods.Recipe:
        get = (lambda k: values[k] if values and k in values else getattr(self, k))  # noqa: E731
        num = (lambda k, t: None if get(k) is None else t(get(k)))  # noqa: E731
        return warmpods.Recipe(
            image=get("image"), pull_policy=self.image_pull_policy,
            cpu_limit=num("cpu_limit", float), cpu_guarantee=num("cpu_guarantee", float),
            mem_limit=num("mem_limit", int), mem_guarantee=num("mem_guarantee", int),
            node_selector=tuple(sorted((get("node_selector") or {}).items())),
        )  # fmt: skip

    def _labdeck_default_recipe(self) -> warmpods.Recipe:
        """The recipe of the default profile and size: the one a pool keeps pods of."""
        from jupyterhub.traitlets import ByteSpecification

        try:
            choice = profiles.choose(self.profiles, self.sizes, {}, set(), self.labdeck_unavailable())
        except profiles.OptionsError:
            return self._labdeck_recipe()
        over = objects.profile_overrides(choice.profile, choice.size)
        for key in ("mem_limit", "mem_guarantee"):
            if isinstance(over.get(key), str):
                over[key] = ByteSpecification().validate(self, over[key])
        return self._labdeck_recipe(over)

    def _labdeck_pool_template(self, recipe: warmpods.Recipe):
        # what every server shares: the admin's environment without templates (those name a person)
        env = {k: v for k, v in self.environment.items() if isinstance(v, str) and "{" not in v and k != "HOME"}
        labels = dict(self.common_labels)
        pull = [s if isinstance(s, str) else s.get("name") for s in self.image_pull_secrets or []]

        def template(name: str) -> dict:
            return warmpods.make_pool_pod(
                name, recipe, labels=labels, homes_claim=self.warm_homes_claim, env=env,
                service_account=self.service_account or "", priority_class=self.priority_class_name or "",
                pull_secrets=pull, bind=self.ip or "0.0.0.0", min_uid=min(self.warm_uid_base, 2**31 - 2),
            )  # fmt: skip

        return template

    def labdeck_warm_home(self) -> str:
        if not self.warm_homes_key:
            raise RuntimeError("LabdeckKubeSpawner.warm_homes_key is empty: warm pods need the homes key (the chart generates it)")
        return f"{contract.KUBE_WARM_HOMES}/{warmpods.home_name(self.user.name, self.warm_homes_key.encode())}"

    def labdeck_claim_message(self) -> dict:
        """Everything personal a warm pod gets, and only at claim (pure but for the spawner's own getters)."""
        home = self.labdeck_warm_home()
        uid = warmpods.person_uid(self.user.id, self.warm_uid_base)
        env = {**self.get_env(), "HOME": home}
        return warmpods.claim_message(argv=[*self.cmd, *self.get_args()], env=env, home=home, uid=uid, gid=uid, files=self._labdeck_files or {})

    async def _start(self):
        warm = self._labdeck_warm()
        url = await (self._labdeck_claim() if warm else super()._start())
        if not warm and self._labdeck_files is not None and self.pod_id:
            # the pod owns its Secret (a cold pod's; a warm pod gets its files at claim, no Secret):
            # deleted with the pod even when stop() never runs
            patch = objects.secret_owner_patch(self.pod_name, self.pod_id)
            await self.api.patch_namespaced_secret(self.labdeck_secret_name, self.namespace, patch)
        if self.wait_ready_in_start and self.server is not None:
            await readiness.wait_http(f"{url.rstrip('/')}{self.server.base_url}api", self.http_timeout, alive=self._labdeck_pod_alive)
        return url

    def _labdeck_pod_alive(self) -> bool:
        pod = self.pod_reflector.pods.get(f"{self.namespace}/{self.pod_name}") if self.pod_reflector else None
        return pod is not None and not any("terminated" in (c.get("state") or {}) for c in pod["status"].get("containerStatuses") or [])

    async def _labdeck_claim(self) -> str:
        """A warm pod for this server: claimed from the pool (or started for this claim); its URL."""
        await self.load_user_options()
        waits = [self._start_watching_pods()] + ([self._start_watching_events()] if self.events_enabled else [])
        await asyncio.gather(*waits)
        recipe = self._labdeck_recipe()
        default = self._labdeck_default_recipe()
        size = self.warm_pool_size if recipe == default else 0
        pool = self._labdeck_pool(recipe, size)
        message = self.labdeck_claim_message()
        labels = self._build_pod_labels(self._expand_all(self.extra_labels))
        annotations = self._build_common_annotations(self._expand_all(self.extra_annotations))
        try:
            name, ip, warm = await pool.claim(message, labels, annotations, timeout=self.start_timeout, on_event=lambda m: self._progress(40, m))
        except podpool.WarmClaimError as e:
            raise RuntimeError(f"Could not start a server: {e}") from None
        self.pod_name = name
        self.dns_name = self.dns_name_template.format(namespace=self.namespace, name=name)
        self.log.info("Claimed %s pod %s for %s", "warm" if warm else "new", name, self._log_name)
        self._progress(50, "Claimed a warm pod" if warm else "Started a pod")
        ref_key = f"{self.namespace}/{name}"
        await exponential_backoff(
            lambda: ref_key in self.pod_reflector.pods, f"pod {ref_key} not seen as a user pod", timeout=self.k8s_api_request_retry_timeout,
        )  # fmt: skip
        self.pod_id = self.pod_reflector.pods[ref_key]["metadata"]["uid"]
        return f"http://{ip}:{self.port}"

    async def start(self):
        if contract.is_run_server(self.name):
            # a run's server needs no home volume of its own (input and output are in S3)
            self.storage_pvc_ensure = False
            self.volumes = objects.ephemeral_home(list(self.volumes))
        return await super().start()

    async def stop(self, now=False):
        await super().stop(now=now)
        await self._labdeck_delete_secret()
        if self.warm_pool_enabled:
            try:  # the pod owned it (garbage collected); without a collector, gone now
                await self.api.delete_namespaced_secret(warmpods.key_secret_name(self.pod_name), self.namespace)
            except ApiException as e:
                if e.status != 404:
                    raise
