"""The sim platform's persistent state: an SQLite database beside the estate, shared by processes.

Every command (plan, apply, audit, a killed apply and its resume, a ``watch`` controller) sees
one estate. The state is the dict :mod:`ftbridge.sim.platform` works on, stored one row per
object (a host, a datastore, a network, a VM, an operation, a test instance, a fault counter:
``obj(kind, id, value JSON, rev)``) plus a few small ``meta`` rows (faults, sequence, ...).

Why this shape: an operation touches a handful of objects, so it writes a handful of rows in one
transaction (``BEGIN IMMEDIATE``), whatever the size of the estate. Each process keeps the state
in memory and, at the start of each transaction, loads only the rows other processes changed
since (every write bumps ``rev``; deletions leave a row in ``gone``). WAL mode lets readers
(inventory, audit, health) read the last committed state while a writer works; ``synchronous =
NORMAL`` survives a killed process (a crash test kills the process, not the power).

A writer that cannot get the database (another process is in a write transaction, perhaps
stopped) says so on stderr after about a second and gives up after ``busy_seconds`` with
:class:`~ftbridge.errors.LockBusy` (exit 9). A state the user cannot write (a read-only or
foreign-owned directory) opens read-only: reads work, changes fail naming the path.

A JSON state file from an older ftbridge (``*.simstate.json`` beside the estate) is imported once
into the new database and renamed ``*.migrated``; a ``state`` path in the config that holds such a
file is refused with a one-line message (``ftbridge sim reset`` starts the estate afresh).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ftbridge.errors import BackendError, ConfigError, LockBusy
from ftbridge.estate import Estate
from ftbridge.gcpause import gc_paused

STATE_VERSION = 1
#: state keys stored one row per object; every other key is one ``meta`` row
COLLECTIONS = ("hosts", "datastores", "networks", "vms", "ops", "tests", "attempts")
#: deletions kept for other processes to replay; a process further behind reloads everything
GONE_KEPT = 10_000
log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS obj(kind TEXT NOT NULL, id TEXT NOT NULL, value TEXT NOT NULL, rev INTEGER NOT NULL,
    UNIQUE(kind, id));
CREATE INDEX IF NOT EXISTS obj_rev ON obj(rev);
CREATE TABLE IF NOT EXISTS gone(kind TEXT NOT NULL, id TEXT NOT NULL, rev INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS gone_rev ON gone(rev);
"""


def seed_state(estate: Estate) -> dict[str, Any]:
    """The initial state of an estate: plain dicts, keyed by id."""
    return {
        "version": STATE_VERSION,
        "estate": estate.name,
        "flavor": estate.flavor,
        "password_sha256": estate.password_sha256,
        "hosts": {
            h.id: {"name": h.name, "cluster": h.cluster, "state": h.state.value, "memory": h.memory}
            for h in estate.hosts
        },
        "datastores": {
            d.id: {
                "name": d.name,
                "kind": d.kind,
                "shared": d.shared,
                "hosts": list(d.hosts),
                "capacity": d.capacity,
                "free": d.free,
                "accessible": d.accessible,
                "content": None if d.content is None else sorted(d.content),
                "thin": d.thin,
                "reserve": d.reserve,
            }
            for d in estate.datastores
        },
        "networks": {
            n.id: {"name": n.name, "kind": n.kind, "vlan": n.vlan, "hosts": list(n.hosts)} for n in estate.networks
        },
        "vms": {
            v.id: {
                "name": v.name,
                "host": v.host,
                "power": v.power.value,
                "vcpus": v.vcpus,
                "memory": v.memory,
                "tags": list(v.tags),
                "ha": v.ha,
                "config_datastore": v.config_datastore,
                "cluster": v.cluster,
                "uuid": v.uuid,
                "managed_by": v.managed_by,
                "depends_on": [{"kind": d.kind, "datastore": d.datastore, "path": d.path} for d in v.depends_on],
                "nics": [{"id": n.id, "network": n.network, "mac": n.mac, "model": n.model} for n in v.nics],
                "disks": [
                    {
                        "id": d.id,
                        "size": d.size,
                        "datastore": d.datastore,
                        "kind": d.kind,
                        "movable": d.movable,
                        "content": d.content,
                        "allocated": d.allocated,
                        "thin": d.thin,
                        "shared_by": list(d.shared_by),
                    }
                    for d in v.disks
                ],
                "secondaries": [
                    {
                        "id": s.id,
                        "mechanism": s.mechanism,
                        "host": s.host,
                        "state": s.state.value,
                        "lag": s.lag,
                        "config_datastore": s.config_datastore,
                        "metadata_datastore": s.metadata_datastore,
                        "disks": {x.disk: x.datastore for x in s.disks},
                        "missing": list(s.missing),
                    }
                    for s in v.secondaries
                ],
            }
            for v in estate.vms
        },
        "ops": {},
        "tests": {},
        "faults": {
            "hosts_down": [],
            "hosts_down_at": {},
            "hosts_unreachable": [],
            "datastores_down": [],
            "fail_sync": [],
            "hold_sync": [],
            "fail_rate": 0.0,
            "fail_permanent": [],
            "slow": 0.0,
            "seed": 0,
            "refuse_connections": False,
            "hold": False,  # operations stay running until released (tests that must not race)
        },
        "attempts": {},
        "violations": [],
        "seq": 0,
    }


# an update keeps the row (and its rowid: objects load in the order they were added)
_UPSERT = (
    "INSERT INTO obj(kind, id, value, rev) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(kind, id) DO UPDATE SET value = excluded.value, rev = excluded.rev"
)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class Tracked(dict[str, Any]):
    """A collection of the state that notes which entries a transaction looked up or replaced.

    Only those can have changed (the platform's rules change an object after finding it by id),
    so a commit serialises and compares only them, not the estate.
    """

    __slots__ = ("touched",)

    def __init__(self) -> None:
        super().__init__()
        self.touched: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.touched.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.touched.add(key)
        return super().get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self.touched.add(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.touched.add(key)
        super().__delitem__(key)

    def pop(self, key: str, *default: Any) -> Any:
        self.touched.add(key)
        return super().pop(key, *default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self.touched.add(key)
        return super().setdefault(key, default)


def is_json_state(path: Path) -> bool:
    """An older ftbridge's state: a JSON document, not an SQLite database."""
    try:
        with open(path, "rb") as f:
            return f.read(1) == b"{"
    except OSError:
        return False


class SimStore:
    """One sim estate's state database, with this process's copy of the state in memory.

    Thread-safe: calls from the threads of one process take turns (each call is milliseconds).
    """

    def __init__(
        self, path: Path, *, busy_seconds: float = 30.0, legacy: Path | None = None, read_only: bool = False
    ) -> None:
        self.path = path
        self.busy_seconds = busy_seconds
        self.legacy = legacy  # an older ftbridge's JSON state to import, when this one is new
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._force_ro = read_only
        self.read_only = read_only
        self._seeding = False
        self._make: Callable[[], dict[str, Any]] | None = None  # how to seed it again after a reset
        self._ino: tuple[int, int] | None = None  # the file this connection reads
        self._why_ro = ""
        self._state: dict[str, Any] | None = None
        self._rev = -1
        self._blobs: dict[str, dict[str, str]] = {}
        self._meta: dict[str, str] = {}

    # connection ------------------------------------------------------------------------------
    def files(self) -> list[Path]:
        return [self.path, *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm", "-journal"))]

    def exists(self) -> bool:
        return self.path.exists()

    def _writable(self) -> str:
        """Why this process cannot write the state here ('' when it can)."""
        d = self.path.parent
        if not d.exists():
            probe = next((p for p in d.parents if p.exists()), d)
            return "" if os.access(probe, os.W_OK) else f"{probe} is not writable"
        if not os.access(d, os.W_OK | os.X_OK):
            return f"directory {d} is not writable"
        if self.path.exists() and not os.access(self.path, os.W_OK):
            return "file is not writable"
        return ""

    def connect(self) -> None:
        if self._conn is not None:
            return
        self._why_ro = "opened read-only" if self._force_ro else self._writable()
        self.read_only = bool(self._why_ro)
        try:
            if self.read_only:
                if not self.path.exists():
                    return  # nothing stored yet: the caller reads the seed, in memory only
                self._conn = self._open_ro()
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0)
                self._conn = conn
                self._wait(lambda: conn.execute("PRAGMA journal_mode=WAL"), "set up")
                conn.execute("PRAGMA synchronous=NORMAL")
                self._wait(lambda: conn.executescript(_SCHEMA), "set up")
            st = os.stat(self.path)
            self._ino = (st.st_ino, st.st_dev)
        except sqlite3.DatabaseError as exc:
            self.close()
            # only now look at the bytes: opening and closing the database file outside SQLite
            # would drop the POSIX locks SQLite holds on it in this process
            if getattr(exc, "sqlite_errorname", "") == "SQLITE_NOTADB" and is_json_state(self.path):
                raise ConfigError(
                    f"{self.path}: sim state written by an older ftbridge (JSON); run `ftbridge sim reset` "
                    "(or `ftbridge demo --reset`) to start the estate afresh, or set another state path"
                ) from None
            raise self._error(exc) from exc

    def _ensure(self) -> None:
        """Connected to the file now at ``path``: after ``sim reset`` another process's file is a
        new one (seeded again, as the first command after a reset does)."""
        if self._conn is not None:
            try:
                st = os.stat(self.path)
                same = (st.st_ino, st.st_dev) == self._ino
            except FileNotFoundError:
                same = False
            if not same:
                self.close()
                if self._make is not None:
                    self._seed(self._make)
        self.connect()

    def _open_ro(self) -> sqlite3.Connection:
        uri = self.path.resolve().as_uri()
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None, check_same_thread=False, timeout=0)
        try:
            self._wait(lambda: conn.execute("SELECT 1 FROM meta LIMIT 1"), "read", conn)
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            if getattr(exc, "sqlite_errorname", "") not in ("SQLITE_READONLY_DIRECTORY", "SQLITE_CANTOPEN"):
                raise
            # WAL needs its -shm file, which a directory nobody may write cannot hold; then nobody
            # else can change the database either: read it as it is
            return sqlite3.connect(
                f"{uri}?immutable=1", uri=True, isolation_level=None, check_same_thread=False, timeout=0
            )

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            self._ino = None
            self._state = None
            self._rev = -1

    def _error(self, exc: sqlite3.Error) -> BackendError:
        return BackendError(f"{self.path}: cannot use the sim state: {exc}")

    def _wait(self, step: Callable[[], Any], what: str, conn: sqlite3.Connection | None = None) -> Any:
        """Run ``step``; while another process holds the database, retry, say so after about a
        second, and give up after ``busy_seconds`` with LockBusy (exit 9)."""
        assert self._conn is not None or conn is not None
        start = time.monotonic()
        said = False
        delay = 0.001
        while True:
            try:
                return step()
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorname", "") not in ("SQLITE_BUSY", "SQLITE_LOCKED") and (
                    "locked" not in str(exc)
                ):
                    raise
            waited = time.monotonic() - start
            if waited >= self.busy_seconds:
                raise LockBusy(
                    f"{self.path}: another process holds the sim state for writing; gave up after "
                    f"{self.busy_seconds:g}s",
                    hint="is a stopped ftbridge process holding it? resume or end it",
                )
            if not said and waited >= 1.0:
                said = True
                log.warning(
                    "%s: waiting for another process to release the sim state (to %s; up to %gs)",
                    self.path,
                    what,
                    self.busy_seconds,
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    # state in memory ---------------------------------------------------------------------
    def _load_all(self, conn: sqlite3.Connection) -> None:
        with gc_paused():  # a whole estate's objects at once (see ftbridge.gcpause)
            self._load_rows(conn)

    def _load_rows(self, conn: sqlite3.Connection) -> None:
        state: dict[str, Any] = {k: Tracked() for k in COLLECTIONS}
        self._blobs = {k: {} for k in COLLECTIONS}
        self._meta = {}
        for key, value in conn.execute("SELECT key, value FROM meta"):
            if key not in ("rev", "gone_floor"):
                self._meta[key] = value
                state[key] = json.loads(value)
        for kind, oid, value in conn.execute("SELECT kind, id, value FROM obj ORDER BY rowid"):  # estate order
            dict.__setitem__(state[kind], oid, json.loads(value))
            self._blobs[kind][oid] = value
        self._state = state

    def _rev_of(self, conn: sqlite3.Connection) -> tuple[int, int]:
        rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('rev', 'gone_floor')").fetchall())
        return int(rows.get("rev", -1)), int(rows.get("gone_floor", 0))

    def _refresh(self) -> None:
        """Bring this process's copy up to the last committed state (inside a transaction)."""
        assert self._conn is not None
        conn = self._conn
        rev, floor = self._rev_of(conn)
        if self._state is not None and rev == self._rev:
            return
        if self._state is None or self._rev < floor or rev < self._rev:
            self._load_all(conn)
        else:
            state = self._state
            for key, value in conn.execute("SELECT key, value FROM meta WHERE key NOT IN ('rev', 'gone_floor')"):
                if self._meta.get(key) != value:
                    self._meta[key] = value
                    state[key] = json.loads(value)
            changed = "SELECT kind, id, value FROM obj WHERE rev > ? ORDER BY rowid"
            for kind, oid, value in conn.execute(changed, (self._rev,)):
                dict.__setitem__(state[kind], oid, json.loads(value))
                self._blobs[kind][oid] = value
            for kind, oid in conn.execute("SELECT kind, id FROM gone WHERE rev > ?", (self._rev,)):
                if (
                    oid in self._blobs[kind]
                    and not conn.execute("SELECT 1 FROM obj WHERE kind = ? AND id = ?", (kind, oid)).fetchone()
                ):
                    dict.pop(state[kind], oid, None)
                    del self._blobs[kind][oid]
        self._rev = rev

    def _flush(self, new: bool = False) -> None:
        """Write what this transaction changed: looked-up objects whose JSON differs, deletions,
        changed meta rows; then bump ``rev``."""
        assert self._conn is not None and self._state is not None
        conn, state = self._conn, self._state
        rev = self._rev + 1
        wrote = False
        for kind in COLLECTIONS:
            coll: Tracked = state[kind]
            blobs = self._blobs[kind]
            keys = list(coll) if new else coll.touched
            for key in keys:
                if dict.__contains__(coll, key):
                    text = _dumps(dict.__getitem__(coll, key))
                    if blobs.get(key) != text:
                        conn.execute(_UPSERT, (kind, key, text, rev))
                        blobs[key] = text
                        wrote = True
                elif key in blobs:
                    conn.execute("DELETE FROM obj WHERE kind = ? AND id = ?", (kind, key))
                    conn.execute("INSERT INTO gone VALUES (?, ?, ?)", (kind, key, rev))
                    del blobs[key]
                    wrote = True
            coll.touched.clear()
        for key, value in state.items():
            if key in COLLECTIONS:
                continue
            text = _dumps(value)
            if self._meta.get(key) != text:
                conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, text))
                self._meta[key] = text
                wrote = True
        if wrote:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('rev', ?)", (str(rev),))
            if rev % 1000 == 0 and rev > GONE_KEPT:  # forget old deletions, now and then
                conn.execute("DELETE FROM gone WHERE rev <= ?", (rev - GONE_KEPT,))
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('gone_floor', ?)", (str(rev - GONE_KEPT),))
            self._rev = rev

    # transactions --------------------------------------------------------------------------
    def seed(self, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The state, seeded with ``make()`` (or the older JSON state) if nothing is stored yet."""
        with self._lock:
            return self._seed(make)

    def _seed(self, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        self._make = make
        self.connect()
        if self._conn is None:  # read-only and nothing stored: the seed, in memory only
            if self._state is None:
                self._state = self._from_plain(self._legacy_state() or make())
            return self._state
        with self.read() as state:
            if "version" in state:
                return state
        if self.read_only:
            raise BackendError(f"{self.path}: sim state is empty and {self._why_ro}")
        with self._transaction() as state:
            if "version" in state:  # another process seeded it meanwhile
                return state
            legacy = self._legacy_state()
            plain = legacy or make()
            for key, value in plain.items():
                if key in COLLECTIONS:
                    for oid, obj in value.items():
                        dict.__setitem__(state[key], oid, obj)
                else:
                    state[key] = value
            self._seeding = True
        if legacy is not None and self.legacy is not None:
            try:
                self.legacy.rename(self.legacy.with_name(self.legacy.name + ".migrated"))
            except OSError:
                pass  # another process renamed it, or cannot: it is ignored once the database holds state
        return state

    def _legacy_state(self) -> dict[str, Any] | None:
        if self.legacy is None or not is_json_state(self.legacy):
            return None
        try:
            data = json.loads(self.legacy.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.legacy}: older sim state unreadable ({exc}); run `ftbridge sim reset`") from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ConfigError(f"{self.legacy}: not a sim state this ftbridge can import; run `ftbridge sim reset`")
        return data

    @staticmethod
    def _from_plain(plain: dict[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {}
        for key, value in plain.items():
            if key in COLLECTIONS:
                coll = Tracked()
                dict.update(coll, value)
                state[key] = coll
            else:
                state[key] = value
        for key in COLLECTIONS:
            state.setdefault(key, Tracked())
        return state

    @contextmanager
    def read(self) -> Iterator[dict[str, Any]]:
        """The last committed state (a reader never waits for a writer in WAL mode)."""
        with self._lock:
            self._ensure()
            conn = self._conn
            if conn is None:
                assert self._state is not None, "seed() first"
                yield self._state
                return
            if not conn.in_transaction:  # else: inside this thread's own write, already caught up
                self._catch_up(conn)
            assert self._state is not None
            yield self._state

    def _catch_up(self, conn: sqlite3.Connection) -> None:
        try:
            self._wait(lambda: conn.execute("BEGIN"), "read")
            try:
                self._wait(self._refresh, "read")
            finally:
                conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from exc

    @contextmanager
    def _transaction(self) -> Iterator[dict[str, Any]]:
        self._seeding = False
        conn = self._conn
        assert conn is not None
        try:
            self._wait(lambda: conn.execute("BEGIN IMMEDIATE"), "change it")
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from exc
        try:
            self._refresh()
            assert self._state is not None
            for kind in COLLECTIONS:
                self._state[kind].touched.clear()
            yield self._state
        except BaseException:
            self._commit()
            raise
        self._commit()

    def _commit(self) -> None:
        conn = self._conn
        assert conn is not None
        try:
            self._flush(new=self._seeding)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._state, self._rev = None, -1  # this copy holds changes the database does not
            if isinstance(exc, sqlite3.DatabaseError):
                raise self._error(exc) from exc
            raise

    @contextmanager
    def write(self) -> Iterator[dict[str, Any]]:
        """One operation: lock (``BEGIN IMMEDIATE``), catch up, let the caller change the state,
        write what changed, commit. Changes made before an exception are kept (a fault counter,
        a recorded violation), as the platform would keep them."""
        with self._lock:
            self._ensure()
            if self.read_only:
                raise BackendError(f"{self.path}: cannot change the sim state: {self._why_ro}")
            with self._transaction() as state:
                yield state

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the write lock without changing anything (tests: freeze a process outside a call)."""
        with self._lock:
            self._ensure()
            conn = self._conn
            assert conn is not None
            self._wait(lambda: conn.execute("BEGIN IMMEDIATE"), "hold it")
            try:
                yield
            finally:
                conn.execute("ROLLBACK")

    def remove(self) -> bool:
        with self._lock:
            self.close()
        existed = self.path.exists() or (self.legacy is not None and self.legacy.exists())
        gone = self.files()
        if self.legacy is not None:
            gone += [self.legacy, self.legacy.with_name(self.legacy.name + ".lock")]
        for p in gone:
            try:
                p.unlink(missing_ok=True)
            except OSError as exc:
                raise BackendError(f"{p}: cannot remove the sim state: {exc.strerror}") from exc
        return existed


def dump(path: Path) -> dict[str, Any]:
    """A stored state as plain dicts (tests and tools; read-only)."""
    store = SimStore(path, read_only=True)
    try:
        with store.read() as state:
            return json.loads(_dumps(state))  # type: ignore[no-any-return]
    finally:
        store.close()
