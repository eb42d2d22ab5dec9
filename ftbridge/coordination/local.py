"""The local backend: today's lock file, plus an epoch in the SQLite journal.

One machine, one state directory: the controller that holds ``locks/watch.lock`` (``flock``,
dropped by the kernel when its holder dies) leads. Each new leadership bumps the ``epoch`` in the
journal's meta table, and every journal write compares it (see
:class:`ftbridge.apply.journal.SqliteJournalStore`), so a controller that lost the lock and did
not notice cannot write. It has no quorum anywhere but here: ``auto_failover`` is refused.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import IO

from ftbridge.apply.journal import EPOCH_KEY, JournalStore, SqliteJournalStore, StaleLeader
from ftbridge.coordination.base import Coordinator, Leadership, Notify, _ignore


class LocalCoordinator(Coordinator):
    backend = "local"

    def __init__(self, state_dir: Path, name: str, *, settle: float = 0.0, notify: Notify = _ignore) -> None:
        super().__init__(name, settle=settle, notify=notify)
        self.state_dir = state_dir
        self.lock_path = state_dir / "locks" / "watch.lock"
        self._file: IO[str] | None = None
        self._store: SqliteJournalStore | None = None

    def store(self) -> JournalStore:
        if self._store is None:
            self._store = SqliteJournalStore(self.state_dir / "journal.sqlite")
        return self._store

    def campaign(self) -> Leadership | None:
        if self.leading is not None:
            return self.leading
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.lock_path, "a+", encoding="utf-8")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return None
        store = self.store()
        assert isinstance(store, SqliteJournalStore)
        epoch = store.bump_epoch()
        lead = Leadership(self.name, time.time(), epoch, self.backend)
        f.seek(0)
        f.truncate()
        f.write(json.dumps({**lead.to_dict(), "pid": os.getpid()}) + "\n")
        f.flush()
        self._file = f
        return self._won(lead, 0.0)

    def leader(self) -> Leadership | None:
        if self.leading is not None:
            return self.leading
        if not self.lock_path.exists():
            return None
        with open(self.lock_path, encoding="utf-8") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = f.read().strip()
                try:
                    data = json.loads(text)
                except ValueError:
                    return None
                return Leadership(str(data["holder"]), float(data["since"]), int(data["epoch"]), self.backend)
            fcntl.flock(f, fcntl.LOCK_UN)
        return None  # nobody holds the lock

    def check(self) -> None:
        if self.leading is None or self._file is None:
            raise StaleLeader(f"controller {self.name} does not hold {self.lock_path}")

    def resign(self) -> None:
        if self._file is not None:
            try:
                self._file.seek(0)
                self._file.truncate()
                fcntl.flock(self._file, fcntl.LOCK_UN)
            finally:
                self._file.close()
                self._file = None
        self._lost("resigned")

    def quorum_outside(self, site: str) -> tuple[bool, str]:
        return False, (
            "coordination.backend is 'local': the lock lives on this controller's machine, so no "
            f"quorum survives outside site {site} (use backend 'etcd' with members in three sites)"
        )

    def close(self) -> None:
        self.resign()
        if self._store is not None:
            self._store.close()
            self._store = None


__all__ = ["EPOCH_KEY", "LocalCoordinator"]
