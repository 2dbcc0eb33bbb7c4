"""The S3 drive's contents manager: Jupyter's contents API on the data bucket, through s3fs.

``S3ContentsManager`` is a jupyter_server ``AsyncContentsManager`` over
s3fs (fsspec), with the person's own credentials (the server's standard AWS
chain: ``credential_process = labdeck-credentials``), so S3 itself decides
every read and write. On top of that:

- the drive shows only the person's grants (:mod:`.s3paths`): virtual folders
  lead to each granted prefix, other paths are refused before S3 is asked;
- folders are key prefixes: listing needs no directory-marker objects (a new
  empty folder gets one, as the S3 console makes);
- S3's refusals (``AccessDenied``) become a 403 whose message says what S3
  refused, and a refused rename or delete changes nothing;
- large files never sit whole in the server's memory: uploads arrive in
  JupyterLab's chunks, are spooled to a private temporary file and streamed
  to S3 (multipart), downloads stream (:mod:`.handlers`), and opening a file
  larger than ``max_open_bytes`` in an editor is refused with a hint.

Checkpoints ("Revert to checkpoint") are local copies in a private folder of
the person's home, not objects in their prefixes.
"""

from __future__ import annotations

import asyncio
import base64
import mimetypes
import os
import tempfile
from datetime import datetime, timezone

import nbformat
from jupyter_server.services.contents.filecheckpoints import AsyncGenericFileCheckpoints
from jupyter_server.services.contents.manager import AsyncContentsManager, copy_pat
from tornado.web import HTTPError
from traitlets import Any, Integer, Unicode, default

from labdeck.hub import contract
from . import s3paths
from .s3errors import s3_call


class S3Checkpoints(AsyncGenericFileCheckpoints):
    """Checkpoints of S3 files as local files in a private folder (``~/.local/share/labdeck/s3-checkpoints``)."""

    @default("root_dir")
    def _root_dir_default(self):
        root = os.path.join(os.path.expanduser("~"), ".local", "share", "labdeck", "s3-checkpoints")
        os.makedirs(root, mode=0o700, exist_ok=True)
        return root


class S3ContentsManager(AsyncContentsManager):
    """Jupyter's contents API on the person's granted S3 prefixes (see the module docstring)."""

    bucket = Unicode(
        config=True,
        help="""The data bucket the drive shows.

        Default: ``LABDECK_S3_BUCKET``, which the spawner sets in every server.

        .. versionadded:: 0.1
        """,
    )

    @default("bucket")
    def _bucket_default(self):
        return os.environ.get(contract.ENV_S3_BUCKET, "")

    max_open_bytes = Integer(
        64 * 1024 * 1024,
        config=True,
        help="""Largest S3 file the drive opens in an editor or notebook tab, in bytes.

        Opening sends the whole file through the server and into the browser;
        larger files are refused with a message that says to download them
        (which streams) or read them from a kernel. Uploads and downloads of
        any size stream and are not limited by this.

        .. versionadded:: 0.1
        """,
    )

    grants = Any(help="An async callable returning the person's grants view (the broker's ``grants`` reply).")
    fs = Any(help="The s3fs ``S3FileSystem`` (asynchronous); created on first use.")

    @default("checkpoints_class")
    def _checkpoints_class_default(self):
        return S3Checkpoints

    @default("fs")
    def _fs_default(self):
        import s3fs

        # no listings cache: the person's kernels write to the same prefixes
        return s3fs.S3FileSystem(asynchronous=True, use_listings_cache=False, skip_instance_cache=True)

    # ------------------------------------------------------------ helpers

    async def _s3(self):
        if getattr(self.fs, "_s3", None) is None:
            await self.fs.set_session()
        return self.fs

    async def place(self, path: str) -> s3paths.Place:
        view = (await self.grants()).get("s3") or {}
        if not view.get("bucket"):
            raise HTTPError(503, "No S3 bucket is configured for this server")
        self.bucket = view["bucket"]
        try:
            return s3paths.locate(path, view.get("prefixes") or [], view.get("denied") or [])
        except s3paths.Refused as e:
            raise HTTPError(403, str(e)) from None

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def full(self, key: str) -> str:
        return f"{self.bucket}/{key}"

    def _base(self, path: str, kind: str, writable: bool, modified=None, size=None, mimetype=None) -> dict:
        # a folder is a key prefix with no time of its own: it is shown as current
        when = modified or datetime.now(timezone.utc)
        return {"name": path.rsplit("/", 1)[-1], "path": path, "type": kind, "writable": writable,
                "created": when, "last_modified": when, "size": size, "mimetype": mimetype,
                "content": None, "format": None, "hash": None, "hash_algorithm": None}

    def _entry(self, path: str, info: dict, writable: bool) -> dict:
        if info.get("type") == "directory":
            return self._base(path, "directory", writable)
        kind = "notebook" if path.endswith(".ipynb") else "file"
        mime = None if kind == "notebook" else (mimetypes.guess_type(path)[0] or "application/octet-stream")
        return self._base(path, kind, writable, info.get("LastModified") or None, info.get("size"), mime)

    async def _info(self, place: s3paths.Place) -> dict:
        fs = await self._s3()
        if place.is_grant_root:
            return {"type": "directory"}  # a granted prefix exists for its grantee, objects or not
        async with s3_call("read", self.url(place.key)):
            return await fs._info(self.full(place.key))

    async def _listing(self, place: s3paths.Place) -> list[dict]:
        view = (await self.grants())["s3"]
        prefixes, denied = view.get("prefixes") or [], view.get("denied") or []
        hide = s3paths.hidden_children(place.path, denied)
        entries: dict[str, dict] = {}
        if place.kind == s3paths.S3:
            fs = await self._s3()
            try:
                async with s3_call("list", self.url(place.key + "/")):
                    found = await fs._ls(self.full(place.key), detail=True, refresh=True)
            except HTTPError as e:
                if e.status_code != 404:
                    raise
                found = []  # a granted prefix with no objects yet (a new person's home) is an empty folder
            for info in found:
                name = info["name"].rstrip("/").rsplit("/", 1)[-1]
                if info["name"].rstrip("/") == self.full(place.key) or not name or name in hide:
                    continue  # the folder's own marker object, or a restricted prefix
                if not self.allow_hidden and name.startswith("."):
                    continue
                child = s3paths.join(place.path, name)
                entries[name] = self._entry(child, info, place.writable)
        for name in s3paths.grant_children(place.path, prefixes):
            if name not in entries:
                child = s3paths.join(place.path, name)
                entries[name] = self._base(child, "directory", (await self.place(child)).writable)
        return [entries[n] for n in sorted(entries)]

    # ------------------------------------------------------------ contents API

    async def dir_exists(self, path):
        try:
            place = await self.place(path)
            return place.kind == s3paths.VIRTUAL or (await self._info(place)).get("type") == "directory"
        except HTTPError:
            return False

    async def file_exists(self, path):
        try:
            place = await self.place(path)
            return place.kind == s3paths.S3 and (await self._info(place)).get("type") == "file"
        except HTTPError:
            return False

    async def is_hidden(self, path):
        return any(part.startswith(".") for part in path.strip("/").split("/") if part)

    async def get(self, path, content=True, type=None, format=None, require_hash=False):
        place = await self.place(path)
        info = {"type": "directory"} if place.kind == s3paths.VIRTUAL else await self._info(place)
        if info.get("type") == "directory":
            if type not in (None, "directory"):
                raise HTTPError(400, f"{path} is a folder, not a {type}")
            model = self._base(place.path, "directory", place.writable)
            if content:
                model.update(content=await self._listing(place), format="json")
            return model
        if type == "directory":
            raise HTTPError(400, f"{path} is not a folder")
        model = self._entry(place.path, info, place.writable)
        if type == "file" and model["type"] == "notebook":
            model.update(type="file", mimetype="application/json")
        if not content and not require_hash:
            return model
        if (info.get("size") or 0) > self.max_open_bytes:
            raise HTTPError(413, f"{path} is {info['size'] / 1e6:.0f} MB, too large to open here; "
                                 "download it, or read it from a kernel (e.g. pandas with s3://…)")
        fs = await self._s3()
        async with s3_call("read", self.url(place.key)):
            data = await fs._cat_file(self.full(place.key))
        if require_hash:
            import hashlib

            model.update(hash=hashlib.sha256(data).hexdigest(), hash_algorithm="sha256")
        if not content:
            return model
        if model["type"] == "notebook":
            try:
                nb = nbformat.reads(data.decode("utf-8"), as_version=4)
            except Exception as e:  # noqa: BLE001 - any unreadable notebook is a 400 for a person
                raise HTTPError(400, f"Unreadable notebook {path}: {e}") from None
            self.mark_trusted_cells(nb, path)
            model.update(content=nb, format="json")
            self.validate_notebook_model(model)
            return model
        if format != "base64":
            try:
                model.update(content=data.decode("utf-8"), format="text")
                return model
            except UnicodeDecodeError:
                if format == "text":
                    raise HTTPError(400, f"{path} is not UTF-8 text") from None
        model.update(content=base64.b64encode(data).decode("ascii"), format="base64")
        return model

    async def save(self, model, path=""):
        place = await self.place(path)
        if place.kind == s3paths.VIRTUAL or place.is_grant_root and model.get("type") != "directory":
            raise HTTPError(403, f"{path or 'The drive root'} is not an S3 location you can write to")
        if "type" not in model:
            raise HTTPError(400, "No file type provided")
        fs = await self._s3()
        chunk = model.get("chunk")
        if chunk is not None:
            return await self._save_chunk(place, model, int(chunk))
        kind = model["type"]
        if kind == "directory":
            async with s3_call("create a folder at", self.url(place.key + "/")):
                await fs._call_s3("put_object", Bucket=self.bucket, Key=place.key + "/", Body=b"")
            return await self.get(place.path, content=False)
        if "content" not in model or model["content"] is None:
            raise HTTPError(400, "No file content provided")
        if kind == "notebook":
            nb = nbformat.from_dict(model["content"])
            self.check_and_sign(nb, path)
            data = nbformat.writes(nb, version=nbformat.NO_CONVERT).encode("utf-8")
        elif model.get("format") == "base64":
            data = base64.b64decode(model["content"].encode("ascii"))
        else:
            data = model["content"].encode("utf-8")
        async with s3_call("write", self.url(place.key)):
            await fs._pipe_file(self.full(place.key), data)
        return await self.get(place.path, content=False)

    async def _save_chunk(self, place, model, chunk: int) -> dict:
        """JupyterLab uploads large files in numbered chunks (1, 2, …, -1 for the last): spool, then stream."""
        spool = self._spool_path(place.key)
        mode = "wb" if chunk == 1 else "ab"
        if chunk != 1 and not os.path.exists(spool):
            raise HTTPError(400, f"Upload of {place.path} lost its earlier chunks; upload it again")
        data = base64.b64decode(model.get("content") or "") if model.get("format") == "base64" else (model.get("content") or "").encode("utf-8")
        fd = os.open(spool, os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if mode == "wb" else os.O_APPEND), 0o600)
        with os.fdopen(fd, mode) as f:
            f.write(data)
        if chunk != -1:
            model = self._base(place.path, "file", place.writable)
            return model
        try:
            fs = await self._s3()
            async with s3_call("write", self.url(place.key)):
                await fs._put_file(spool, self.full(place.key))
        finally:
            os.unlink(spool)
        return await self.get(place.path, content=False)

    def _spool_path(self, key: str) -> str:
        import hashlib

        spool_dir = os.path.join(tempfile.gettempdir(), f"labdeck-s3-uploads-{os.getuid()}")
        os.makedirs(spool_dir, mode=0o700, exist_ok=True)
        return os.path.join(spool_dir, hashlib.sha256(key.encode()).hexdigest())

    async def _keys(self, place: s3paths.Place) -> list[str]:
        """Every key of a file or folder (a folder's keys, its marker included)."""
        info = await self._info(place)
        if info.get("type") == "file":
            return [place.key]
        fs = await self._s3()
        async with s3_call("list", self.url(place.key + "/")):
            found = await fs._find(self.full(place.key), withdirs=False)
        keys = {f.split("/", 1)[1] for f in found}
        marker = place.key + "/"
        try:
            async with s3_call("read", self.url(marker)):
                await fs._call_s3("head_object", Bucket=self.bucket, Key=marker)
            keys.add(marker)
        except HTTPError as e:
            if e.status_code != 404:
                raise
        return sorted(keys)

    async def _delete_keys(self, keys: list[str], what: str) -> None:
        # one DeleteObject per key (IAM checks s3:DeleteObject per key either way; moto, unlike
        # S3, refuses the multi-object delete to a role that may delete each key), 16 at a time
        fs = await self._s3()
        for i in range(0, len(keys), 16):
            async def one(key):
                async with s3_call("delete", self.url(key)):
                    await fs._call_s3("delete_object", Bucket=self.bucket, Key=key)

            await asyncio.gather(*(one(k) for k in keys[i:i + 16]))

    async def delete_file(self, path):
        place = await self.place(path)
        if place.kind == s3paths.VIRTUAL or place.is_grant_root:
            raise HTTPError(403, f"{path} is where one of your grants starts; it cannot be deleted")
        keys = await self._keys(place)
        if not keys:
            raise HTTPError(404, f"{path} does not exist")
        # one key first: a refusal (read-only prefix) then leaves everything as it was
        await self._delete_keys(keys[:1], place.key)
        await self._delete_keys(keys[1:], place.key)

    async def rename_file(self, old_path, new_path):
        old, new = await self.place(old_path), await self.place(new_path)
        for p in (old, new):
            if p.kind == s3paths.VIRTUAL or p.is_grant_root:
                raise HTTPError(403, f"{p.path or 'The drive root'} cannot be renamed or replaced")
        if await self.file_exists(new.path) or await self.dir_exists(new.path):
            raise HTTPError(409, f"{new.path} already exists")
        keys = await self._keys(old)
        fs = await self._s3()
        copied = []
        try:
            for key in keys:
                target = new.key + key[len(old.key):]
                async with s3_call("write", self.url(target)):
                    await fs._call_s3("copy_object", Bucket=self.bucket, Key=target,
                                      CopySource={"Bucket": self.bucket, "Key": key})
                copied.append(target)
            await self._delete_keys(keys[:1], old.key)
        except BaseException:
            if copied:  # undo: nothing changes when S3 refuses a part of the move
                await self._delete_keys(copied, new.key)
            raise
        await self._delete_keys(keys[1:], old.key)

    async def copy(self, from_path, to_path=None):
        src = await self.place(from_path)
        info = await self._info(src) if src.kind == s3paths.S3 else {"type": "directory"}
        if info.get("type") != "file":
            raise HTTPError(400, "Can't copy directories")
        from_dir, _, from_name = src.path.rpartition("/")
        to_path = from_dir if to_path is None else to_path.strip("/")
        if await self.dir_exists(to_path):
            name = await self.increment_filename(copy_pat.sub(".", from_name), to_path, insert="-Copy")
            to_path = s3paths.join(to_path, name)
        dest = await self.place(to_path)
        if dest.kind == s3paths.VIRTUAL or dest.is_grant_root:
            raise HTTPError(403, f"{to_path} is not an S3 location you can write to")
        fs = await self._s3()
        async with s3_call("write", self.url(dest.key)):
            await fs._call_s3("copy_object", Bucket=self.bucket, Key=dest.key,
                              CopySource={"Bucket": self.bucket, "Key": src.key})
        return await self.get(dest.path, content=False)
