"""Pure helpers that turn a pod manifest (a plain JSON dict) into a local process launch.

No API calls here: the kubelet fetches Secrets/ConfigMaps and passes their ``data`` in.
Like kubespawner/kube/objects.py, these take plain values and return plain values, so they are
testable without a cluster.

What a pod's container becomes:

- ``argv``: ``command + args`` from the spec; without ``command``, the image's entrypoint
  comes from a map keyed by image (the kubelet's ``default_commands``), then ``args``.
  ``$(VAR)`` references are expanded from the container env, as Kubernetes does.
- ``env``: a small base (PATH, LANG, HOSTNAME, KUBERNETES_SERVICE_*), then ``envFrom``,
  then ``env`` (``value``, ``secretKeyRef``, ``configMapKeyRef``, ``fieldRef``,
  ``resourceFieldRef``).
- volumes: files under a per-pod directory, honouring ``items`` and ``defaultMode``/``mode``.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

#: file mode for Secret volumes without ``defaultMode`` (Kubernetes uses 0644; we are stricter)
SECRET_DEFAULT_MODE = 0o600
CONFIGMAP_DEFAULT_MODE = 0o644
WILDCARD_IP = "0.0.0.0"

_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class PodSpecError(ValueError):
    """The pod cannot be run locally as specified (missing secret key, no command, ...)."""


def expand_vars(text: str, env: Mapping[str, str]) -> str:
    """Expand ``$(NAME)`` from ``env`` like Kubernetes: unknown refs stay, ``$$`` escapes ``$``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _VAR_REF.sub(sub, text)


def decode_data(obj: Mapping[str, Any], kind: str) -> dict[str, bytes]:
    """The key → bytes content of a Secret (``data`` is base64, ``stringData``) or ConfigMap."""
    out: dict[str, bytes] = {}
    if kind == "Secret":
        for k, v in (obj.get("data") or {}).items():
            out[k] = base64.b64decode(v)
        for k, v in (obj.get("stringData") or {}).items():
            out[k] = v.encode()
    else:
        for k, v in (obj.get("binaryData") or {}).items():
            out[k] = base64.b64decode(v)
        for k, v in (obj.get("data") or {}).items():
            out[k] = v.encode()
    return out


def field_value(pod: Mapping[str, Any], path: str) -> str:
    """Resolve a downward-API ``fieldPath`` (``metadata.name``, ``status.podIP``, labels…)."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
    }
    if path not in simple:
        raise PodSpecError(f"unsupported fieldRef {path!r}")
    return simple[path] or ""


def resource_value(container: Mapping[str, Any], resource: str) -> str:
    """A ``resourceFieldRef`` value: the raw quantity string (no divisor), or ``"0"``."""
    kind, _, name = resource.partition(".")
    return str(((container.get("resources") or {}).get(kind) or {}).get(name, "0"))


Lookup = Callable[[str, str], "Mapping[str, bytes] | None"]
"""(kind, name) → decoded data, or None if missing; kind is "Secret" or "ConfigMap"."""


def build_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    lookup: Lookup,
    base: Mapping[str, str],
) -> dict[str, str]:
    """The container's environment: ``base``, then ``envFrom``, then ``env`` (later wins)."""
    env = dict(base)
    for src in container.get("envFrom") or []:
        prefix = src.get("prefix", "")
        for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
            ref = src.get(key)
            if not ref:
                continue
            data = lookup(kind, ref["name"])
            if data is None:
                if ref.get("optional"):
                    continue
                raise PodSpecError(f"{kind} {ref['name']!r} not found (envFrom)")
            for k, v in data.items():
                env[prefix + k] = v.decode(errors="replace")
    for item in container.get("env") or []:
        name = item["name"]
        if "valueFrom" not in item:
            env[name] = expand_vars(item.get("value") or "", env)
            continue
        vf = item["valueFrom"]
        if "fieldRef" in vf:
            env[name] = field_value(pod, vf["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in vf:
            env[name] = resource_value(container, vf["resourceFieldRef"]["resource"])
        else:
            for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                ref = vf.get(key)
                if not ref:
                    continue
                data = lookup(kind, ref["name"])
                if data is None or ref["key"] not in data:
                    if ref.get("optional"):
                        break
                    raise PodSpecError(f"{kind} {ref['name']!r} key {ref['key']!r} not found")
                env[name] = data[ref["key"]].decode(errors="replace")
                break
            else:
                raise PodSpecError(f"unsupported valueFrom for {name}: {sorted(vf)}")
    return env


def build_argv(
    container: Mapping[str, Any],
    env: Mapping[str, str],
    default_commands: Mapping[str, Sequence[str]],
) -> list[str]:
    """``command + args`` with ``$(VAR)`` expanded; the image's entrypoint from the map."""
    command = list(container.get("command") or [])
    if not command:
        image = container.get("image", "")
        entry = default_commands.get(image)
        if entry is None:
            entry = default_commands.get(image.rsplit(":", 1)[0]) if ":" in image else None
        if entry is None:
            entry = default_commands.get("*")
        if entry is None:
            raise PodSpecError(
                f"container {container.get('name')!r} has no command and image {image!r} "
                "is not in the kubelet's default_commands"
            )
        command = list(entry)
    argv = command + list(container.get("args") or [])
    return [expand_vars(a, env) for a in argv]


def rewrite_wildcard(values: Sequence[str] | Mapping[str, str], ip: str) -> Any:
    """Replace ``0.0.0.0`` by the pod IP in args or env values, so pods sharing a host do
    not fight over one port (KubeSpawner binds the wildcard address)."""
    if isinstance(values, Mapping):
        return {k: v.replace(WILDCARD_IP, ip) for k, v in values.items()}
    return [v.replace(WILDCARD_IP, ip) for v in values]


def _write_file(path: Path, content: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def project_items(
    target: Path,
    data: Mapping[str, bytes],
    items: Sequence[Mapping[str, Any]] | None,
    default_mode: int,
    what: str,
) -> None:
    """Write ``data`` into ``target`` as files: every key, or only ``items`` (key → path, mode)."""
    target.mkdir(parents=True, exist_ok=True)
    if items:
        for it in items:
            if it["key"] not in data:
                raise PodSpecError(f"{what}: key {it['key']!r} not found")
            rel = Path(it["path"])
            if rel.is_absolute() or ".." in rel.parts:
                raise PodSpecError(f"{what}: bad item path {it['path']!r}")
            _write_file(target / rel, data[it["key"]], it.get("mode", default_mode))
    else:
        for k, v in data.items():
            _write_file(target / k, v, default_mode)


@dataclass
class Mount:
    """One volumeMount resolved to a host path."""

    source: Path
    target: str
    read_only: bool = False


@dataclass
class VolumePlan:
    """Where each volume of a pod lives on the host, plus problems to report as events."""

    paths: dict[str, Path] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def materialize_volumes(
    pod: Mapping[str, Any],
    pod_dir: Path,
    lookup: Lookup,
    pvc_dir: Callable[[str], Path],
) -> VolumePlan:
    """Create every volume of ``pod`` under ``pod_dir/volumes`` (PVCs and hostPath elsewhere).

    Raises :class:`PodSpecError` when a required Secret/ConfigMap (or key) is missing, so the
    caller can retry like a kubelet does (FailedMount).
    """
    plan = VolumePlan()
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        name = vol["name"]
        target = pod_dir / "volumes" / name
        if "secret" in vol or "configMap" in vol:
            kind = "Secret" if "secret" in vol else "ConfigMap"
            src = vol.get("secret") or vol.get("configMap") or {}
            ref = src.get("secretName") or src.get("name")
            data = lookup(kind, ref)
            if data is None:
                if not src.get("optional"):
                    raise PodSpecError(f'{kind.lower()} "{ref}" not found')
                data = {}
            default = SECRET_DEFAULT_MODE if kind == "Secret" else CONFIGMAP_DEFAULT_MODE
            project_items(
                target, data, src.get("items"), src.get("defaultMode", default),
                f"volume {name}",
            )
        elif "projected" in vol:
            src = vol["projected"]
            default = src.get("defaultMode", SECRET_DEFAULT_MODE)
            target.mkdir(parents=True, exist_ok=True)
            for s in src.get("sources") or []:
                for kind, key in (("Secret", "secret"), ("ConfigMap", "configMap")):
                    if key in s:
                        data = lookup(kind, s[key]["name"])
                        if data is None:
                            if not s[key].get("optional"):
                                raise PodSpecError(f"{kind} {s[key]['name']!r} not found")
                            continue
                        project_items(target, data, s[key].get("items"), default, name)
                if "downwardAPI" in s:
                    _downward(pod, target, s["downwardAPI"].get("items") or [], default)
                if "serviceAccountToken" in s:
                    plan.warnings.append(f"volume {name}: serviceAccountToken not issued")
        elif "downwardAPI" in vol:
            src = vol["downwardAPI"]
            target.mkdir(parents=True, exist_ok=True)
            _downward(pod, target, src.get("items") or [], src.get("defaultMode", 0o644))
        elif "persistentVolumeClaim" in vol:
            target = pvc_dir(vol["persistentVolumeClaim"]["claimName"])
            target.mkdir(parents=True, exist_ok=True)
        elif "hostPath" in vol:
            target = Path(vol["hostPath"]["path"])
        else:
            if "emptyDir" not in vol:
                plan.warnings.append(f"volume {name}: type not supported, using an empty dir")
            target.mkdir(parents=True, exist_ok=True)
            os.chmod(target, 0o777)  # as Kubernetes makes an emptyDir: any uid the pod runs as writes it
        plan.paths[name] = target
    return plan


def _downward(pod: Mapping[str, Any], target: Path, items: Sequence[Mapping], mode: int) -> None:
    for it in items:
        if "fieldRef" in it:
            value = field_value(pod, it["fieldRef"]["fieldPath"])
            _write_file(target / it["path"], value.encode(), it.get("mode", mode))


def resolve_mounts(container: Mapping[str, Any], plan: VolumePlan) -> list[Mount]:
    """The container's ``volumeMounts`` as (host source, container target) pairs."""
    mounts = []
    for vm in container.get("volumeMounts") or []:
        if vm["name"] not in plan.paths:
            raise PodSpecError(f"volumeMount {vm['name']!r} has no volume")
        source = plan.paths[vm["name"]]
        if vm.get("subPath"):
            source = source / vm["subPath"]
            if not source.exists():
                source.mkdir(parents=True)
        mounts.append(Mount(source, vm["mountPath"], bool(vm.get("readOnly"))))
    return mounts


def mount_order(mounts: Sequence[Mount]) -> list[Mount]:
    """Mounts in a safe order: parents before children, and a mount that would hide another
    mount's *source* (an emptyDir at ``/tmp`` over a kubelet directory under ``/tmp``) last."""

    def hides_a_source(m: Mount) -> bool:
        t = Path(m.target)
        return any(o is not m and (t == Path(o.source) or t in Path(o.source).parents) for o in mounts)

    return sorted(mounts, key=lambda m: (hides_a_source(m), len(Path(m.target).parts)))


def run_as(pod: Mapping[str, Any], container: Mapping[str, Any]) -> list[str]:
    """``setpriv`` argv that drops to the pod's ``runAsUser``/``runAsGroup`` (the container's
    ``securityContext`` over the pod's), with ``fsGroup`` and ``supplementalGroups`` as groups;
    ``[]`` when neither names a user."""
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    sc = {**pod_sc, **(container.get("securityContext") or {})}
    uid = sc.get("runAsUser")
    if uid is None:
        return []
    gid = sc.get("runAsGroup", uid)
    groups = [g for g in (pod_sc.get("fsGroup"), *(pod_sc.get("supplementalGroups") or [])) if g is not None]
    for v in (uid, gid, *groups):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise PodSpecError(f"securityContext: unsupported uid/gid {v!r}")
    argv = ["setpriv", f"--reuid={uid}", f"--regid={gid}"]
    argv.append(f"--groups={','.join(str(g) for g in dict.fromkeys(groups))}" if groups else "--clear-groups")
    argv += capability_args(container.get("securityContext") or {})
    return [*argv, "--"]


def capability_args(sc: Mapping[str, Any]) -> list[str]:
    """``setpriv`` options for a container's ``capabilities`` and ``allowPrivilegeEscalation: false``, as a
    container runtime applies them: the bounding set (``drop: [ALL]`` then ``add``), no inheritable or
    ambient capabilities, ``no_new_privs``."""
    out = []
    caps = sc.get("capabilities") or {}
    drop = [c.upper() for c in caps.get("drop") or []]
    add = [c.upper() for c in caps.get("add") or []]
    for c in (*drop, *add):
        if c != "ALL" and not re.fullmatch(r"[A-Z_]+", c):
            raise PodSpecError(f"securityContext: unsupported capability {c!r}")
    if drop or add:
        if "ALL" in drop:
            bounding = ["-all", *(f"+{c.lower().removeprefix('cap_')}" for c in add)]
        else:
            bounding = [*(f"-{c.lower().removeprefix('cap_')}" for c in drop), *(f"+{c.lower().removeprefix('cap_')}" for c in add)]
        out += ["--inh-caps=-all", f"--bounding-set={','.join(bounding)}"]
    if sc.get("allowPrivilegeEscalation") is False:
        out.append("--no-new-privs")
    return out


def mount_script(mounts: Sequence[Mount], working_dir: str | None) -> str:
    """A /bin/sh script that bind-mounts ``mounts`` and execs ``"$@"`` (run under
    ``unshare --mount``). Mount targets must already exist (the kubelet creates them)."""
    lines = ["set -e", "mount --make-rprivate / 2>/dev/null || true"]
    for m in mount_order(mounts):
        src, dst = shlex.quote(str(m.source)), shlex.quote(m.target)
        lines.append(f"mount --bind {src} {dst}")
        if m.read_only:
            lines.append(f"mount -o remount,bind,ro {dst}")
    if working_dir:
        lines.append(f"cd {shlex.quote(working_dir)}")
    lines.append('exec "$@"')
    return "\n".join(lines) + "\n"


def rewrite_paths(
    values: Mapping[str, str] | Sequence[str], mounts: Sequence[Mount]
) -> Any:
    """Without mount namespaces: replace mount paths in env values / args by host paths
    (longest mount path first)."""
    ordered = sorted(mounts, key=lambda m: len(m.target), reverse=True)

    def fix(v: str) -> str:
        # a mount path as a whole word: at the start or after space, quote, "=" or ":",
        # followed by "/", the end, space, quote, ":" or ";"
        for m in ordered:
            t = re.escape(m.target.rstrip("/"))
            v = re.sub(rf"(?<![^\s=:'\"]){t}(?![^/\s:'\";])", lambda _: str(m.source), v)
        return v

    if isinstance(values, Mapping):
        return {k: fix(v) for k, v in values.items()}
    return [fix(v) for v in values]


def image_entry(mapping: Mapping[str, Any], image: str) -> Any:
    """The entry of ``mapping`` for ``image``: the exact ``repo:tag``, else the repository, else ``"*"``."""
    if image in mapping:
        return mapping[image]
    repo = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    if repo in mapping:
        return mapping[repo]
    return mapping.get("*")


def service_addresses(services: Sequence[Mapping[str, Any]], pods: Sequence[tuple[Mapping[str, str], str]]) -> dict[str, list[str]]:
    """Service name → addresses of the ready pods its selector matches (what Endpoints would list).

    ``pods`` are (labels, ip) of *ready* pods. The Endpoints API refuses loopback addresses,
    so the harness cannot use the endpoints controller's result for its 127.x pod IPs.
    """
    out: dict[str, list[str]] = {}
    for svc in services:
        selector = (svc.get("spec") or {}).get("selector") or {}
        if not selector:
            continue
        ips = sorted({ip for labels, ip in pods if all(labels.get(k) == v for k, v in selector.items())})
        if ips:
            out[svc["metadata"]["name"]] = ips
    return out


def hosts_file(addresses: Mapping[str, Sequence[str]], namespace: str, pod_name: str, pod_ip: str) -> str:
    """A pod's ``/etc/hosts``: itself, and each Service of ``namespace`` by a ready pod address.

    What cluster DNS answers for ``<svc>``, ``<svc>.<ns>``, ``<svc>.<ns>.svc`` and
    ``<svc>.<ns>.svc.cluster.local`` - except that the names resolve to the *pod*
    addresses behind the Service (there is no kube-proxy and no cluster IP), so a
    Service only works here when its ``port`` equals its ``targetPort``.
    """
    lines = ["127.0.0.1\tlocalhost", f"{pod_ip}\t{pod_name}"]
    for name in sorted(addresses):
        names = f"{name} {name}.{namespace} {name}.{namespace}.svc {name}.{namespace}.svc.cluster.local"
        for ip in list(addresses[name])[:1]:  # one address per name: getaddrinfo returns the first anyway
            lines.append(f"{ip}\t{names}")
    return "\n".join(lines) + "\n"


def http_probe_url(container: Mapping[str, Any], probe: Mapping[str, Any], pod_ip: str) -> str | None:
    """``http://<pod ip>:<port><path>`` of an ``httpGet`` probe (named ports resolved), else None."""
    get = (probe or {}).get("httpGet")
    if not get:
        return None
    port = get.get("port")
    if isinstance(port, str) and not port.isdigit():
        named = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
        if port not in named:
            raise PodSpecError(f"probe port {port!r} is not a named port of container {container.get('name')!r}")
        port = named[port]
    return f"http://{pod_ip}:{port}{get.get('path') or '/'}"
