"""Place labdeck's SDK wiring at the default paths in a home, never clobbering the person's own files.

Runs *as the person*: locally inside ``python -m labdeck.spawner.local.accounts
install`` (or the hub's own user when servers are not OS users), on Kubernetes
in ``labdeck-singleuser`` before the server starts (from the Secret's
``home-files.json``). The spec comes from :func:`labdeck.spawner.builders.home_files`:

- kind ``"file"``: written whole (0600, atomically) when the file is absent or
  still carries :data:`~labdeck.spawner.builders.MANAGED`; a file without the
  marker is the person's own and is kept as it is;
- kind ``"block"``: labdeck's marked block is replaced and every other line is kept.

Paths are home-relative; a path that leaves the home, and any symbolic link on
the way (directory or file), is refused: nothing is written through a link.
"""

from __future__ import annotations

import json
import os
import stat

from labdeck.hub import contract

from labdeck.spawner.builders import MANAGED, RENVIRON_BEGIN, RENVIRON_END


class HomeFileError(ValueError):
    """A spec entry that must not be written (bad path or kind)."""


def _check_path(rel: str) -> list[str]:
    parts = rel.split("/")
    if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise HomeFileError(f"refusing home file path {rel!r}")
    return parts


def _open_dir(home_fd: int, parts: list[str]) -> int:
    """An fd of the directory ``parts`` under ``home_fd``, created 0700 where missing, never through a link."""
    fd = os.dup(home_fd)
    try:
        for part in parts:
            try:
                os.mkdir(part, 0o700, dir_fd=fd)
            except FileExistsError:
                pass
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def _read(dir_fd: int, name: str) -> str | None:
    """The file's text; None when absent. Raises for a link or a non-regular file."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(f"{name} is not a regular file")
        return f.read().decode("utf-8", errors="replace")


def _write(dir_fd: int, name: str, content: str, mode: int = 0o600) -> None:
    tmp = f".{name}.labdeck-tmp"
    try:
        os.unlink(tmp, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dir_fd)
    with os.fdopen(fd, "w") as f:
        f.write(content)
    os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def merge_block(existing: str | None, block: str) -> str:
    """``existing`` with labdeck's block replaced by ``block`` (appended when there is none); other lines kept."""
    kept, inside = [], False
    for line in (existing or "").splitlines():
        if line.strip() == RENVIRON_BEGIN:
            inside = True
            if kept and not kept[-1].strip():
                kept.pop()  # the blank line labdeck put before its block
        elif inside and line.strip() == RENVIRON_END:
            inside = False
        elif not inside:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    head = "\n".join(kept) + "\n\n" if kept else ""
    return head + block


def install(home: str, spec: dict[str, dict]) -> dict[str, str]:
    """Place ``spec`` in ``home``; return path → ``"written"`` or ``"kept"`` (the person's own file)."""
    result = {}
    home_fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for rel in sorted(spec):
            entry = spec[rel]
            parts = _check_path(rel)
            kind, content = entry.get("kind"), entry.get("content")
            if kind not in ("file", "block") or not isinstance(content, str):
                raise HomeFileError(f"refusing home file {rel!r}: bad kind or content")
            dir_fd = _open_dir(home_fd, parts[:-1])
            try:
                name = parts[-1]
                try:
                    existing = _read(dir_fd, name)
                except OSError:
                    result[rel] = "kept"  # a link or something else the person put there
                    continue
                if kind == "file":
                    if existing is not None and MANAGED not in existing:
                        result[rel] = "kept"
                        continue
                    new = content
                else:
                    new = merge_block(existing, content)
                if new != existing:
                    _write(dir_fd, name, new)
                result[rel] = "written"
            finally:
                os.close(dir_fd)
    finally:
        os.close(home_fd)
    return result


def install_from_dir(files_dir: str, home: str) -> dict[str, str]:
    """Place the ``home-files.json`` of a server's labdeck directory (nothing when there is none)."""
    try:
        with open(os.path.join(files_dir, contract.HOME_FILES_FILE)) as f:
            spec = json.load(f)
    except FileNotFoundError:
        return {}
    return install(home, spec)
