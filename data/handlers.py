"""HTTP handlers of the S3 drive in the person's server (``<base>/labdeck/s3/…``).

- ``labdeck/s3/api/contents/<path>`` (and its ``/checkpoints``): Jupyter's own
  contents handlers, on the S3 contents manager instead of the home's — the
  REST shape JupyterLab's ``Drive`` speaks;
- ``labdeck/s3/files/<path>``: a file's bytes, streamed from S3 in 1 MiB
  pieces (downloads and "open in a new tab"; never whole in memory);
- ``labdeck/s3/transfer``: copy one file between the home folder and S3
  (``{"from": "S3:shared/demo/trips.csv", "to": "data"}``), streamed through
  a private temporary file, never over an existing name;
- ``labdeck/data/config``: which data features this server has (for the Lab extension).

Every route needs the server's usual authentication (token or cookie + XSRF)
and the ``contents`` permission, like the home's contents API.
"""

from __future__ import annotations

import json
import mimetypes
import os
import posixpath
import tempfile
from urllib.parse import quote

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.services.contents.handlers import CheckpointsHandler, ContentsHandler, ModifyCheckpointsHandler
from jupyter_server.utils import ensure_async, url_escape, url_path_join
from tornado import web

from . import s3paths
from .s3errors import s3_call

DRIVE = "S3"
CHUNK = 1024 * 1024


class S3Drive:
    """Handlers' access to the S3 contents manager (``settings["labdeck_s3_contents"]``)."""

    @property
    def contents_manager(self):
        return self.settings["labdeck_s3_contents"]


class S3ContentsHandler(S3Drive, ContentsHandler):
    def location_url(self, path):
        return url_path_join(self.base_url, "labdeck/s3/api/contents", url_escape(path))


class S3CheckpointsHandler(S3Drive, CheckpointsHandler):
    pass


class S3ModifyCheckpointsHandler(S3Drive, ModifyCheckpointsHandler):
    pass


class S3FilesHandler(S3Drive, JupyterHandler):
    """``GET labdeck/s3/files/<path>[?download=1]``: the object's bytes, streamed."""

    auth_resource = "contents"

    @web.authenticated
    @authorized
    async def get(self, path):
        cm = self.contents_manager
        place = await cm.place(path)
        if place.kind != s3paths.S3:
            raise web.HTTPError(400, f"{path or 'The drive root'} is a folder")
        info = await cm._info(place)
        if info.get("type") != "file":
            raise web.HTTPError(400, f"{path} is a folder")
        name = posixpath.basename(place.key)
        self.set_header("Content-Type", mimetypes.guess_type(name)[0] or "application/octet-stream")
        self.set_header("Content-Length", str(info.get("size") or 0))
        self.set_header("Cache-Control", "no-store")
        if self.get_query_argument("download", ""):
            self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(name)}")
        fs = await cm._s3()
        async with s3_call("read", cm.url(place.key)):
            f = await fs.open_async(cm.full(place.key), "rb")
            try:
                while chunk := await f.read(CHUNK):
                    self.write(chunk)
                    await self.flush()
            finally:
                await f.close()
        self.finish()


class TransferHandler(S3Drive, APIHandler):
    """``POST labdeck/s3/transfer`` ``{"from", "to"}``: copy a file between the home and S3 (``S3:`` paths)."""

    auth_resource = "contents"

    @web.authenticated
    @authorized
    async def post(self):
        from labdeck.hub.service import json_body

        body = json_body(self.request, {"from", "to"})
        src, to = body.get("from"), body.get("to", "")
        if not isinstance(src, str) or not isinstance(to, str) or not src:
            raise web.HTTPError(400, "'from' (a file) and 'to' (a folder) must be paths")
        s3, home = self.contents_manager, self.serverapp.contents_manager
        name = posixpath.basename(src.rstrip("/"))
        if src.startswith(DRIVE + ":") == to.startswith(DRIVE + ":"):
            raise web.HTTPError(400, "Copy between the home folder and S3: exactly one of 'from' and 'to' starts with S3:")
        if src.startswith(DRIVE + ":"):
            place = await s3.place(src[len(DRIVE) + 1:])
            if place.kind != s3paths.S3 or (await s3._info(place)).get("type") != "file":
                raise web.HTTPError(400, f"{src} is not a file (copy folders one file at a time)")
            to = to.strip("/")
            if not await ensure_async(home.dir_exists(to)):
                raise web.HTTPError(404, f"No folder {to} in your home")
            target = posixpath.join(to, await ensure_async(home.increment_filename(name, to, insert="-Copy"))) if await ensure_async(home.exists(posixpath.join(to, name))) else posixpath.join(to, name)
            os_target = home._get_os_path(target)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os_target), prefix=".labdeck-transfer-")
            os.close(fd)
            try:
                fs = await s3._s3()
                async with s3_call("read", s3.url(place.key)):
                    await fs._get_file(s3.full(place.key), tmp)
                os.replace(tmp, os_target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            model = await ensure_async(home.get(target, content=False))
        else:
            src = src.strip("/")
            if not await ensure_async(home.file_exists(src)):
                raise web.HTTPError(404, f"No file {src} in your home (copy folders one file at a time)")
            to_dir = to[len(DRIVE) + 1:].strip("/")
            dest = s3paths.join(to_dir, name)
            if await s3.file_exists(dest) or await s3.dir_exists(dest):
                dest = s3paths.join(to_dir, await s3.increment_filename(name, to_dir, insert="-Copy"))
            place = await s3.place(dest)
            if place.kind != s3paths.S3 or place.is_grant_root:
                raise web.HTTPError(403, f"{to} is not an S3 location you can write to")
            fs = await s3._s3()
            async with s3_call("write", s3.url(place.key)):
                await fs._put_file(home._get_os_path(src), s3.full(place.key))
            model = await s3.get(place.path, content=False)
            model["path"] = f"{DRIVE}:{model['path']}"
        self.set_status(201)
        self.finish(json.dumps(model, default=str))


class DataConfigHandler(APIHandler):
    """``GET labdeck/data/config``: which data features this server offers (read by the Lab extension)."""

    @web.authenticated
    async def get(self):
        self.finish(json.dumps(self.settings["labdeck_data_config"]))


def s3_handlers(base: str) -> list:
    from jupyter_server.base.handlers import path_regex

    root = url_path_join(base, "labdeck/s3")
    cid = r"(?P<checkpoint_id>[\w-]+)"
    return [
        (root + r"/api/contents%s/checkpoints" % path_regex, S3CheckpointsHandler),
        (root + rf"/api/contents{path_regex}/checkpoints/{cid}", S3ModifyCheckpointsHandler),
        (root + r"/api/contents%s" % path_regex, S3ContentsHandler),
        (root + r"/files/(.*)", S3FilesHandler),
        (root + r"/transfer", TransferHandler),
    ]
