"""One apply per estate at a time: an ``fcntl`` lock file per endpoint.

Locks are taken in sorted endpoint order (so two applies over overlapping endpoints cannot
deadlock), without waiting: the second apply fails at once with :class:`LockBusy` naming the
process that holds the lock. The kernel drops a lock when its holder dies, SIGKILL included,
so a crashed apply never leaves a stale lock behind; the files themselves stay (removing a
lock file while someone may open it is how lock files go wrong).
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path
from types import TracebackType
from typing import IO

from ftbridge.errors import LockBusy


def _file_name(endpoint: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", endpoint) + ".lock"


class EstateLock:
    """Exclusive locks on the given endpoints, held for the ``with`` block."""

    def __init__(self, lock_dir: Path, endpoints: list[str], *, holder: str = "ftbridge apply") -> None:
        self.lock_dir = lock_dir
        self.endpoints = sorted(set(endpoints))
        self.holder = holder
        self._files: list[IO[str]] = []

    def acquire(self) -> None:
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        try:
            for ep in self.endpoints:
                path = self.lock_dir / _file_name(ep)
                f = open(path, "a+", encoding="utf-8")
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    f.seek(0)
                    who = f.read().strip() or "another process"
                    f.close()
                    raise LockBusy(
                        f"endpoint {ep} is locked by another run ({who}); nothing was changed",
                        hint=f"wait for it to finish; lock file {path}",
                    ) from None
                f.seek(0)
                f.truncate()
                f.write(f"pid {os.getpid()}: {self.holder}\n")
                f.flush()
                self._files.append(f)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        while self._files:
            f = self._files.pop()
            try:
                f.seek(0)
                f.truncate()
                fcntl.flock(f, fcntl.LOCK_UN)
            finally:
                f.close()

    def __enter__(self) -> EstateLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
