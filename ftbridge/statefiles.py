"""The files ftbridge keeps (state directory, plans, reports): written whole or not at all, and
a full, read-only or forbidden disk told to the user as such.

Why one module: every writer used to open its own ``*.tmp`` and let the ``OSError`` escape, so a
full disk became exit 70 ("internal error") and left the temporary file behind. Here a write goes
to a temporary file beside the target, is flushed to disk, then renamed over the target (a reader
never sees half a file); on any failure the temporary file is removed, and an error of the disk
(:data:`STORAGE_ERRNOS`) becomes one :class:`~ftbridge.errors.StateStorageError` (exit 11) that
names the path and says which: disk full, read-only file system, or permission denied.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path

from ftbridge.errors import StateStorageError

#: the errors that are the disk's or the file system's, not ftbridge's
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})

log = logging.getLogger(__name__)

#: how long to wait for a state file another process holds (``[state] busy_timeout``)
DEFAULT_BUSY_TIMEOUT = 60.0
_busy_timeout = DEFAULT_BUSY_TIMEOUT
_notice: Callable[[str], None] = log.warning


def busy_timeout() -> float:
    """Seconds to wait for a state file (the journal) another process holds before giving up."""
    return _busy_timeout


def configure(*, busy_timeout: float | None = None, notice: Callable[[str], None] | None = None) -> None:
    """Process-wide settings, set once by the CLI: the wait bound from the config, and how a wait
    is told to the person at the terminal (the core never prints; default: a log warning)."""
    global _busy_timeout, _notice
    if busy_timeout is not None:
        _busy_timeout = max(0.0, float(busy_timeout))
    if notice is not None:
        _notice = notice


def notice(message: str) -> None:
    """Tell the user something while the command waits (one line)."""
    _notice(message)


_WHY = {
    errno.ENOSPC: "disk full (no space left on device)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def is_storage_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS


def storage_error(path: str | Path, exc: OSError, doing: str = "cannot write") -> StateStorageError:
    """The user's view of an ``OSError`` of the disk: ``<path>: cannot write: disk full ...``."""
    why = _WHY.get(exc.errno or 0, exc.strerror or str(exc))
    return StateStorageError(f"{path}: {doing + ': ' if doing else ''}{why}", remedy=_remedy(exc.errno))


def _remedy(code: int | None) -> str:
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "free some space there"
    if code == errno.EROFS:
        return "remount it read-write (or point [state] dir in the config at a writable directory)"
    return "run as its owner (or point [state] dir in the config at a directory you may write)"


def why_readonly(path: Path) -> str:
    """Why SQLite may not write ``path``: the file system is read-only, or this user may not."""
    probe = path if path.exists() else path.parent
    try:
        if os.statvfs(probe).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except OSError:
        pass
    return "permission denied"


def sqlite_storage_error(path: Path, exc: sqlite3.Error) -> StateStorageError | None:
    """A SQLite error that is the disk's (full, read-only, not permitted) as a
    :class:`StateStorageError` naming the database, else None (a real bug or a busy database)."""
    text = str(exc).lower()
    if "disk is full" in text or "database or disk is full" in text:
        code = errno.ENOSPC
        why = _WHY[code]
    elif "readonly database" in text or "unable to open database" in text or "read-only" in text:
        why = why_readonly(path)
        code = errno.EROFS if why == "read-only file system" else errno.EACCES
    elif "disk i/o error" in text:
        # SQLite says "disk I/O error" when a write of its WAL or shared memory fails: the
        # directory tells which (a tmpfs or a quota that filled up is the usual cause)
        why = "disk I/O error (the disk may be full)"
        code = errno.ENOSPC
    else:
        return None
    return StateStorageError(f"{path}: cannot write: {why}", remedy=_remedy(code))


def atomic_write(path: Path, data: str | bytes | Iterable[bytes], *, encoding: str = "utf-8") -> None:
    """Write ``data`` to ``path`` whole or not at all; the directory is made when missing.
    ``data`` may be an iterable of byte chunks, written as they come: a big file (a million-VM
    plan, 115 MB) need not be held in memory whole. An exception from the iterable leaves the
    old file as it was.

    Raises :class:`StateStorageError` (naming ``path``) on a full, read-only or forbidden disk;
    no temporary file is left behind either way."""
    chunks: Iterable[bytes] = (
        (data.encode(encoding),) if isinstance(data, str) else (data,) if isinstance(data, bytes) else data
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
            raise storage_error(path, exc) from exc
        raise


__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "STORAGE_ERRNOS",
    "busy_timeout",
    "configure",
    "notice",
    "atomic_write",
    "is_storage_error",
    "sqlite_storage_error",
    "storage_error",
    "why_readonly",
]
