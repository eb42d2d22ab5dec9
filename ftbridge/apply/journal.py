"""The apply journal: every state change of every action, committed at once, in a store.

One row per (run, action) holds the action's current state, its attempt count and the
platform's handle on the operation in flight (written before the apply waits on it, so a
crashed apply finds the operation again); an append-only list of events keeps the history.
Writes keep their order. An action's ``action_started`` is on disk before the platform is asked
anything; its handle and its outcome go in order without their caller waiting (see
:meth:`Journal.record`), so a crash can lose only the last of them, and a resume looks at the
platform for those.

:class:`JournalStore` is the port (an ABC beside its adapters, as everywhere in ftbridge);
:class:`SqliteJournalStore` is the default (one SQLite file per state directory, WAL) and
:class:`ftbridge.coordination.etcd_journal.EtcdJournalStore` the store several controllers share.
:class:`Journal` is what the apply, failover and everything else call: its public methods stay
as they were, whatever the store.

**Fencing.** A store may carry a :class:`Fence`: the token of the leadership under which this
process writes (an epoch for the local backend, the etcd leader key's creation revision for
etcd) and a local check (the leader's renew deadline). Every write first runs the check, then
commits only if the store's current token still equals ours, in the same transaction as the
write, so a deposed leader's writes are refused (:class:`StaleLeader`), never interleaved.

Fault injection (tests only): with ``FTBRIDGE_CRASH_AFTER_JOURNAL_WRITES=N`` in the
environment, the process sends itself SIGKILL right after its N-th journal write (committed,
or queued when its caller does not wait, which then is likely lost with the process).
That is a real, unannounced death of the real code at a known journal position, which is
how the crash test proves that ``--resume`` carries on correctly from any of them.
"""

from __future__ import annotations

import abc
import getpass
import json
import os
import signal
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from ftbridge import statefiles
from ftbridge.errors import LockBusy
from ftbridge.statefiles import is_storage_error, sqlite_storage_error, storage_error

JOURNAL_SCHEMA = 1
CRASH_ENV = "FTBRIDGE_CRASH_AFTER_JOURNAL_WRITES"

#: action states; the last three are final for a run (a resume retries failed and blocked)
PENDING, RUNNING, SUCCEEDED, SKIPPED, FAILED, BLOCKED = (
    "pending",
    "running",
    "succeeded",
    "skipped",
    "failed",
    "blocked",
)
DONE_STATES = frozenset({SUCCEEDED, SKIPPED})

T = TypeVar("T")

#: ``json.dumps(value, sort_keys=True)`` without making an encoder per call (two per record)
_sorted_json = json.JSONEncoder(sort_keys=True).encode


class StaleLeader(LockBusy):
    """This process no longer leads: its leadership's deadline passed or another leader's token
    replaced its own. Nothing was written; the process must stop acting (exit 9)."""


@dataclass(frozen=True)
class Fence:
    """The leadership a store's writes are made under.

    ``token``: compared, inside each write's transaction, with the store's current one.
    ``check``: called before each write; raises :class:`StaleLeader` once this process may no
    longer act (its lease could not be renewed before the deadline)."""

    token: int
    check: Callable[[], None]


@dataclass(frozen=True)
class RunRecord:
    id: int
    plan_id: str
    plan_path: str | None
    status: str  # running | done | failed
    pid: int | None
    started_at: float
    finished_at: float | None


@dataclass(frozen=True)
class ActionRecord:
    action_id: str
    state: str
    attempts: int
    operation: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None


@dataclass(frozen=True)
class ActionRow:
    """One action of a run as listed by :meth:`JournalStore.run_actions` (for history views)."""

    action_id: str
    position: int
    kind: str
    endpoint: str
    vm: str
    state: str
    attempts: int
    error: str | None
    updated_at: float


def action_update(
    state: str,
    *,
    attempts: int | None,
    operation: dict[str, Any] | None | bool,
    result: dict[str, Any] | None,
    error: str | None,
) -> dict[str, Any]:
    """The columns one state change sets (shared by the stores: one rule, one place).

    ``operation``: a handle to store, None to clear it, False to leave it."""
    out: dict[str, Any] = {"state": state, "updated_at": time.time()}
    if attempts is not None:
        out["attempts"] = attempts
    if operation is not False:
        out["operation"] = operation if isinstance(operation, dict) else None
    if result is not None:
        out["result"] = result
    if error is not None or state in DONE_STATES:
        out["error"] = error
    return out


def who() -> dict[str, Any]:
    """Who starts or resumes a run (every store journals it; ``ftbridge runs`` shows it): the
    process and its user's login name (the uid when there is none)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    return {"pid": os.getpid(), "user": user}


def event_detail(
    error: str | None, operation: dict[str, Any] | None | bool, result: dict[str, Any] | None, detail: dict[str, Any]
) -> dict[str, Any] | None:
    info = dict(detail)
    if error:
        info["error"] = error
    if isinstance(operation, dict):
        info["operation"] = operation
    if result:
        info["result"] = result
    return info or None


class JournalStore(abc.ABC):
    """Where the journal lives. Each write method is one transaction (fenced when a fence is set);
    reads never create anything."""

    #: set by the owner of the store (the watch controller) once it leads; None: unfenced
    fence: Fence | None = None
    #: shown in messages and status: a path or a URL and prefix
    location: str = ""

    # -- writes ---------------------------------------------------------------------------
    @abc.abstractmethod
    def start_run(
        self, plan_id: str, plan_path: str, fingerprint: str, actions: list[tuple[str, str, str, str]]
    ) -> int: ...

    @abc.abstractmethod
    def resume_run(self, run_id: int) -> None: ...

    @abc.abstractmethod
    def finish_run(self, run_id: int, status: str, summary: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def record(
        self,
        run_id: int,
        action_id: str,
        event: str,
        update: dict[str, Any],
        detail: dict[str, Any] | None,
        *,
        wait: bool = True,
    ) -> None:
        """Apply ``update`` (from :func:`action_update`) to the action and append the event.

        ``wait=False``: the store may return before the write is committed, provided it stays
        in order (every later write commits after it) and its failure is raised by a later
        write or by :meth:`flush`. A store may ignore it and always wait."""

    def flush(self) -> None:  # noqa: B027  (a store whose writes always wait has nothing to do)
        """Return once every write made so far is committed; raise the failure of one made
        without waiting that no later write has raised yet."""

    @abc.abstractmethod
    def set_meta(self, key: str, value: str | None) -> None:
        """A small named value (None deletes it); fenced like every write."""

    # -- reads ----------------------------------------------------------------------------
    @abc.abstractmethod
    def get_meta(self, key: str) -> str | None: ...

    @abc.abstractmethod
    def runs(self, *, limit: int | None = None, unfinished: bool = False) -> list[RunRecord]:
        """Runs, newest first."""

    @abc.abstractmethod
    def latest_run(self, plan_id: str) -> RunRecord | None: ...

    @abc.abstractmethod
    def actions(self, run_id: int) -> dict[str, ActionRecord]: ...

    @abc.abstractmethod
    def run_actions(self, run_id: int) -> list[ActionRow]:
        """Every action of a run in plan order, with what it is and where it stands."""

    @abc.abstractmethod
    def events(self, run_id: int | None = None) -> list[dict[str, Any]]: ...

    def event_times(self, run_id: int, kinds: Collection[str]) -> list[tuple[str | None, float, str]]:
        """(action id, time, event) of the run's events of these ``kinds``, in order: for
        summaries that need when, not what (a store may answer without decoding every event's
        detail; this default decodes them)."""
        return [(e["action_id"], float(e["at"]), e["event"]) for e in self.events(run_id) if e["event"] in kinds]

    @abc.abstractmethod
    def close(self) -> None: ...

    def delete_runs(self, run_ids: list[int]) -> tuple[int, int]:
        """Retention (:mod:`ftbridge.apply.retention` decides which runs): remove these runs with
        their actions and events in one transaction; returns (actions, events) removed."""
        raise NotImplementedError(f"{type(self).__name__} keeps every run (no retention)")

    def latest_unfinished(self, path_prefix: str) -> RunRecord | None:
        for r in self.runs(unfinished=True):
            if r.plan_path is not None and r.plan_path.startswith(path_prefix):
                return r
        return None

    def check_fence(self) -> int | None:
        """Run the fence's local check; the token to compare, or None when unfenced."""
        if self.fence is None:
            return None
        self.fence.check()
        return self.fence.token


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    plan_id TEXT NOT NULL,
    plan_path TEXT,
    fingerprint TEXT,
    status TEXT NOT NULL,
    pid INTEGER,
    started_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    summary TEXT
);
CREATE INDEX IF NOT EXISTS runs_plan ON runs (plan_id);
CREATE TABLE IF NOT EXISTS actions (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    action_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    kind TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    vm TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    operation TEXT,
    result TEXT,
    error TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, action_id)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL,
    action_id TEXT,
    at REAL NOT NULL,
    event TEXT NOT NULL,
    state TEXT,
    detail TEXT
);
"""

#: the meta key holding the local backend's epoch (the SQLite store's fencing token)
EPOCH_KEY = "epoch"
_RUN_COLS = "id, plan_id, plan_path, status, pid, started_at, finished_at"


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "database is locked" in text or "database is busy" in text


def _quiet_wait() -> float:
    """How long SQLite itself waits for a lock before we say that we wait (ordinary contention
    between this tool's own processes ends well within it)."""
    return min(1.0, statefiles.busy_timeout())


@dataclass(eq=False)
class _Write:
    """One caller's write waiting for a transaction (see :meth:`SqliteJournalStore._commit`)."""

    body: Callable[[sqlite3.Cursor], Any]
    token: int | None
    out: Any = None
    error: BaseException | None = None
    ok: bool = False  # committed
    done: bool = False  # its leader is through with it (committed, or error set)
    waits: bool = True  # its caller waits for it (False: it rides a later transaction, see _write)
    wake: threading.Lock = field(default_factory=threading.Lock)  # see _commit


class SqliteJournalStore(JournalStore):
    """One SQLite file per state directory (WAL, synchronous=FULL), shared by every run of every plan.

    The fencing token is the ``epoch`` in the meta table: each write reads it inside its
    ``BEGIN IMMEDIATE`` transaction and rolls back when it is not the fence's.

    **Group commit.** Each write is on disk before its caller goes on, but the actions of a run
    write at once from several threads, and one fsync'd transaction each made them queue behind
    each other (a 10,000-VM failover spent 4 CPU seconds and most of its threads' time there).
    Writes that arrive while a transaction commits wait for it to end; then one of them commits
    all of them in the next transaction, and each caller returns once that is durable. A write
    that fails (a stale fence, a bad row) is not taken down with the others: the batch is rolled
    back and each write is tried alone.

    **Writes nobody waits for** (``wait=False``: an operation's handle, an action's outcome) never
    open a transaction of their own: they ride the next one a waiting write opens (in a run, the
    next action's ``action_started``), or, when none comes within :attr:`flush_after` seconds, one
    a timer opens. A transaction is an fsync: one per write was most of the journal's cost (4.9 CPU
    seconds for 30,000 writes from one thread; riding along, the three writes of an action cost
    about one)."""

    #: the longest a write nobody waits for stays queued while no other write comes
    flush_after = 0.2

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        """``readonly``: for commands that only read (history, runs): nothing is created or
        written, so they work on a read-only or foreign state directory too."""
        self.path = path
        self.location = str(path)
        self.readonly = readonly
        self._lock = threading.Lock()  # the connection: one statement or transaction at a time
        self._queued = threading.Lock()  # guards _queue and _committing
        self._queue: list[_Write] = []
        self._committing = False
        self._failed: BaseException | None = None  # of a write nobody waited for; see _write
        self._timer: threading.Timer | None = None  # see _flush_soon
        self._closed = False
        with self._lock:
            self._conn = self._guard(self._open_ro if readonly else self._open)

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if is_storage_error(exc):
                raise storage_error(self.path, exc) from exc
            raise
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=_quiet_wait())
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (str(JOURNAL_SCHEMA),))
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_ro(self) -> sqlite3.Connection:
        uri = "file:" + urllib.parse.quote(str(self.path.resolve()))
        try:
            conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False, timeout=_quiet_wait())
            conn.execute("SELECT 1 FROM meta LIMIT 1").fetchall()
            return conn
        except sqlite3.OperationalError as exc:
            if "unable to open" not in str(exc):
                raise
        # WAL needs its shared-memory file beside the database; in a directory nobody here may
        # write there is none to make, so read the file as it stands (nothing here can change it)
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False)

    def _guard(self, step: Callable[[], T]) -> T:
        """Run one SQLite step: a disk error becomes :class:`StateStorageError` naming the
        journal; a journal another process holds is waited for, saying so once on the
        terminal, up to ``[state] busy_timeout``, then :class:`LockBusy` (exit 9)."""
        deadline: float | None = None
        while True:
            try:
                return step()
            except sqlite3.OperationalError as exc:
                if not _busy(exc):
                    found = sqlite_storage_error(self.path, exc)
                    if found is not None:
                        raise found from exc
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + statefiles.busy_timeout()
                    statefiles.notice(f"waiting for {self.path}, held by another process")
                if now >= deadline:
                    raise LockBusy(
                        f"{self.path}: held by another process for over {statefiles.busy_timeout():g}s; "
                        "nothing was changed",
                        hint=f"wait for it to finish ('fuser {self.path}' names it), or raise [state] busy_timeout",
                    ) from None
                time.sleep(min(0.05, max(0.0, deadline - now)))

    def _commit(self, body: Callable[[sqlite3.Cursor], T]) -> T:
        """Run ``body`` in a transaction, committed before this returns (see group commit in
        the class docstring); what ``body`` returns, or what it (or the commit) raised."""
        return self._write(body, wait=True).out  # type: ignore[no-any-return]

    def _write(self, body: Callable[[sqlite3.Cursor], Any], *, wait: bool, tell: bool = True) -> _Write:
        """Queue ``body``; with ``wait``, return once it is committed (raising what it raised).
        Without, return at once: it rides the next transaction, in order (see the class
        docstring), and its failure is raised by the next write or :meth:`flush`. ``tell``:
        raise such a failure first (False: for the flushes, which raise it after committing)."""
        if tell:
            self._raise_failed()
        me = _Write(body, self.check_fence(), waits=wait)
        with self._queued:
            self._queue.append(me)
            if not wait:
                if not self._committing:
                    self._flush_soon()
                return me
            lead = not self._committing  # nobody commits now: this thread does
            self._committing = True
            if not lead:
                me.wake.acquire()  # taken now, released by a leader: when done, or to lead
        if not lead:
            me.wake.acquire()
            lead = not me.done
        if lead:
            self._lead(me)
        if me.error is not None:
            raise me.error
        return me

    def _lead(self, me: _Write) -> None:
        """Commit every write queued so far (``me`` too), then hand over (:meth:`_hand_over`)."""
        with self._queued:
            batch, self._queue = self._queue, []
        done = False
        try:
            self._commit_batch(batch)
            done = True
        except BaseException as exc:  # interrupted while committing: what is not written says so
            for w in batch:
                if not w.ok and w.error is None:
                    w.error = exc
            raise
        finally:
            self._hand_over(batch, me, interrupted=not done)

    def _hand_over(self, batch: list[_Write], me: _Write, *, interrupted: bool) -> None:
        """Wake the callers of ``batch``; the first queued write whose caller waits leads the
        next transaction; writes nobody waits for, left alone in the queue, get a timer."""
        with self._queued:
            for w in batch:
                w.done = True
                if w is not me and not w.waits and w.error is not None and self._failed is None:
                    self._failed = w.error
                if w is not me and w.waits:
                    w.wake.release()
            nxt = next((w for w in self._queue if w.waits), None)
            if nxt is not None:
                nxt.wake.release()
                return
            self._committing = False
            if self._queue and not interrupted:
                self._flush_soon()

    def _flush_soon(self) -> None:
        """(``_queued`` held) Commit the queue within :attr:`flush_after` seconds unless a
        waiting write does it first."""
        if self._timer is None or not self._timer.is_alive():
            self._timer = threading.Timer(self.flush_after, self._on_timer)
            self._timer.daemon = True
            self._timer.name = "ftbridge-journal-flush"
            self._timer.start()

    def _on_timer(self) -> None:
        with self._queued:
            self._timer = None
            if self._committing or self._closed:
                return
        self._drain()

    def _drain(self) -> None:
        """Commit what is queued, in order; a failure is kept for the next write or
        :meth:`flush` to tell (a reader or the timer has nobody to tell it to)."""
        with self._queued:
            if not self._committing and not self._queue:
                return
        try:
            self._write(lambda _cur: None, wait=True, tell=False)  # in order: after what is queued
        except BaseException as exc:
            with self._queued:
                self._failed = self._failed or exc

    def _raise_failed(self) -> None:
        """A write nobody waited for failed: the next write (or flush) says so, once."""
        if self._failed is None:  # the common case, without the lock (it is set under it)
            return
        with self._queued:
            failed, self._failed = self._failed, None
        if failed is not None:
            raise failed

    def flush(self) -> None:
        self._drain()
        self._raise_failed()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            with self._queued:
                self._closed = True
                timer, self._timer = self._timer, None
            if timer is not None:
                timer.cancel()
            with self._lock:
                self._conn.close()

    def _commit_batch(self, batch: list[_Write]) -> None:
        """Every write of ``batch`` in one transaction per fencing token (there is one token
        unless the fence changed meanwhile); when that fails, each write alone, so that each
        caller gets its own answer."""
        groups: dict[int | None, list[_Write]] = {}
        for w in batch:
            groups.setdefault(w.token, []).append(w)
        with self._lock:
            for token, writes in groups.items():
                try:
                    outs = self._guard(partial(self._transaction, [w.body for w in writes], token))
                except Exception as exc:
                    if len(writes) == 1:
                        writes[0].error = exc
                        continue
                    for w in writes:
                        try:
                            w.out = self._guard(partial(self._transaction, [w.body], token))[0]
                            w.ok = True
                        except Exception as alone:
                            w.error = alone
                else:
                    for w, out in zip(writes, outs, strict=True):
                        w.out, w.ok = out, True

    def _transaction(self, bodies: list[Callable[[sqlite3.Cursor], Any]], token: int | None) -> list[Any]:
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            if token is not None:
                row = cur.execute("SELECT value FROM meta WHERE key = ?", (EPOCH_KEY,)).fetchone()
                if row is None or int(row[0]) != token:
                    raise StaleLeader(
                        f"journal write refused: epoch {token} is no longer current in {self.path} "
                        f"(now {row[0] if row else 'none'}): another controller leads"
                    )
            out = [body(cur) for body in bodies]
            cur.execute("COMMIT")
        except BaseException:
            # SQLite has already rolled back on some errors (a full disk, an I/O error): rolling
            # back again would replace the real error with "no transaction is active"
            if self._conn.in_transaction:
                self._conn.rollback()
            raise
        return out

    def bump_epoch(self) -> int:
        """A new epoch (unfenced: the local coordinator calls it while it holds the lock file)."""

        def body(cur: sqlite3.Cursor) -> int:
            row = cur.execute("SELECT value FROM meta WHERE key = ?", (EPOCH_KEY,)).fetchone()
            epoch = (int(row[0]) if row else 0) + 1
            cur.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (EPOCH_KEY, str(epoch)))
            return epoch

        fence, self.fence = self.fence, None
        try:
            return self._commit(body)
        finally:
            self.fence = fence

    def start_run(
        self, plan_id: str, plan_path: str, fingerprint: str, actions: list[tuple[str, str, str, str]]
    ) -> int:
        now = time.time()

        def body(cur: sqlite3.Cursor) -> int:
            cur.execute(
                "INSERT INTO runs (plan_id, plan_path, fingerprint, status, pid, started_at, updated_at) "
                "VALUES (?, ?, ?, 'running', ?, ?, ?)",
                (plan_id, plan_path, fingerprint, os.getpid(), now, now),
            )
            run_id = int(cur.lastrowid or 0)
            cur.executemany(
                "INSERT INTO actions (run_id, action_id, position, kind, endpoint, vm, state, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                [(run_id, aid, n, kind, ep, vm, now) for n, (aid, kind, ep, vm) in enumerate(actions)],
            )
            cur.execute(
                "INSERT INTO events (run_id, at, event, detail) VALUES (?, ?, 'run_started', ?)",
                (run_id, now, json.dumps({"plan_path": plan_path, **who()})),
            )
            return run_id

        return self._commit(body)

    def resume_run(self, run_id: int) -> None:
        now = time.time()

        def body(cur: sqlite3.Cursor) -> None:
            cur.execute(
                "UPDATE runs SET status = 'running', pid = ?, updated_at = ?, finished_at = NULL WHERE id = ?",
                (os.getpid(), now, run_id),
            )
            cur.execute(
                "UPDATE actions SET state = 'pending', updated_at = ? "
                "WHERE run_id = ? AND state IN ('failed', 'blocked')",
                (now, run_id),
            )
            cur.execute(
                "INSERT INTO events (run_id, at, event, detail) VALUES (?, ?, 'run_resumed', ?)",
                (run_id, now, json.dumps(who())),
            )

        self._commit(body)

    def finish_run(self, run_id: int, status: str, summary: dict[str, Any]) -> None:
        now = time.time()

        def body(cur: sqlite3.Cursor) -> None:
            cur.execute(
                "UPDATE runs SET status = ?, updated_at = ?, finished_at = ?, summary = ? WHERE id = ?",
                (status, now, now, json.dumps(summary, sort_keys=True), run_id),
            )
            cur.execute(
                "INSERT INTO events (run_id, at, event, detail) VALUES (?, ?, 'run_finished', ?)",
                (run_id, now, json.dumps({"status": status, **summary}, sort_keys=True)),
            )

        self._commit(body)

    def record(
        self,
        run_id: int,
        action_id: str,
        event: str,
        update: dict[str, Any],
        detail: dict[str, Any] | None,
        *,
        wait: bool = True,
    ) -> None:
        cols = {k: (_sorted_json(v) if isinstance(v, dict) else v) for k, v in update.items()}

        def body(cur: sqlite3.Cursor) -> None:
            sets = ", ".join(f"{k} = ?" for k in cols)
            cur.execute(
                f"UPDATE actions SET {sets} WHERE run_id = ? AND action_id = ?", (*cols.values(), run_id, action_id)
            )
            cur.execute(
                "INSERT INTO events (run_id, action_id, at, event, state, detail) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    action_id,
                    update["updated_at"],
                    event,
                    update["state"],
                    _sorted_json(detail) if detail else None,
                ),
            )

        self._write(body, wait=wait)

    def set_meta(self, key: str, value: str | None) -> None:
        if key == EPOCH_KEY:
            raise ValueError("the epoch is the coordinator's: use bump_epoch()")

        def body(cur: sqlite3.Cursor) -> None:
            if value is None:
                cur.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                cur.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

        self._commit(body)

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        self._drain()  # this process's own writes first, those it did not wait for too
        with self._lock:
            return self._guard(lambda: self._conn.execute(sql, args).fetchall())

    def _row(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        rows = self._rows(sql, args)
        return rows[0] if rows else None

    def get_meta(self, key: str) -> str | None:
        row = self._row("SELECT value FROM meta WHERE key = ?", (key,))
        return str(row[0]) if row else None

    def delete_runs(self, run_ids: list[int]) -> tuple[int, int]:
        if not run_ids:
            return 0, 0
        marks = ",".join("?" * len(run_ids))

        def body(cur: sqlite3.Cursor) -> tuple[int, int]:
            events = cur.execute(f"DELETE FROM events WHERE run_id IN ({marks})", run_ids).rowcount
            actions = cur.execute(f"DELETE FROM actions WHERE run_id IN ({marks})", run_ids).rowcount
            cur.execute(f"DELETE FROM runs WHERE id IN ({marks})", run_ids)
            return actions, events

        removed = self._commit(body)
        with self._lock:  # the freed pages are reused; the WAL goes back to nothing
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return removed

    def runs(self, *, limit: int | None = None, unfinished: bool = False) -> list[RunRecord]:
        sql = f"SELECT {_RUN_COLS} FROM runs" + (" WHERE status != 'done'" if unfinished else "") + " ORDER BY id DESC"
        args: tuple[Any, ...] = ()
        if limit is not None:
            sql += " LIMIT ?"
            args = (limit,)
        rows = self._rows(sql, args)
        return [RunRecord(*r) for r in rows]

    def latest_run(self, plan_id: str) -> RunRecord | None:
        row = self._row(f"SELECT {_RUN_COLS} FROM runs WHERE plan_id = ? ORDER BY id DESC LIMIT 1", (plan_id,))
        return RunRecord(*row) if row else None

    def latest_unfinished(self, path_prefix: str) -> RunRecord | None:
        row = self._row(
            f"SELECT {_RUN_COLS} FROM runs WHERE status != 'done' AND substr(plan_path, 1, ?) = ? "
            "ORDER BY id DESC LIMIT 1",
            (len(path_prefix), path_prefix),
        )
        return RunRecord(*row) if row else None

    def actions(self, run_id: int) -> dict[str, ActionRecord]:
        rows = self._rows(
            "SELECT action_id, state, attempts, operation, result, error FROM actions WHERE run_id = ? "
            "ORDER BY position",
            (run_id,),
        )
        return {
            r[0]: ActionRecord(
                r[0], r[1], r[2], json.loads(r[3]) if r[3] else None, json.loads(r[4]) if r[4] else None, r[5]
            )
            for r in rows
        }

    def run_actions(self, run_id: int) -> list[ActionRow]:
        rows = self._rows(
            "SELECT action_id, position, kind, endpoint, vm, state, attempts, error, updated_at FROM actions "
            "WHERE run_id = ? ORDER BY position",
            (run_id,),
        )
        return [ActionRow(*r) for r in rows]

    def event_times(self, run_id: int, kinds: Collection[str]) -> list[tuple[str | None, float, str]]:
        marks = ",".join("?" * len(kinds))
        rows = self._rows(
            f"SELECT action_id, at, event FROM events WHERE run_id = ? AND event IN ({marks}) ORDER BY seq",
            (run_id, *kinds),
        )
        return [(r[0], float(r[1]), r[2]) for r in rows]

    def events(self, run_id: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT seq, run_id, action_id, at, event, state, detail FROM events"
        args: tuple[Any, ...] = ()
        if run_id is not None:
            sql += " WHERE run_id = ?"
            args = (run_id,)
        rows = self._rows(sql + " ORDER BY seq", args)
        return [
            {
                "seq": r[0],
                "run_id": r[1],
                "action_id": r[2],
                "at": r[3],
                "event": r[4],
                "state": r[5],
                "detail": json.loads(r[6]) if r[6] else None,
            }
            for r in rows
        ]


class Journal:
    """The journal every service uses: by default one SQLite file per state directory, shared by
    every run of every plan; ``Journal(store=...)`` for another store (etcd, for controllers)."""

    def __init__(self, path: Path | None = None, *, store: JournalStore | None = None, readonly: bool = False) -> None:
        if store is None:
            if path is None:
                raise ValueError("Journal needs a path or a store")
            store = SqliteJournalStore(path, readonly=readonly)
        self.store = store
        self.path = path if path is not None else Path(store.location)
        self._writes = 0
        self._count_lock = threading.Lock()
        try:
            self._crash_after = int(os.environ.get(CRASH_ENV, "0") or 0)
        except ValueError:
            self._crash_after = 0

    @classmethod
    def existing(cls, path: Path, *, readonly: bool = False) -> Journal | None:
        """The journal if the file exists; reading it must not create one. ``readonly``: for
        those that only read (works on a read-only or foreign state directory)."""
        return cls(path, readonly=readonly) if path.exists() else None

    def close(self) -> None:
        self.store.close()

    # -- writing -------------------------------------------------------------------------
    def _commit(self, write: Callable[[], T], what: str = "") -> T:
        """One store write; counts as one journal write (see the crash hook, which names
        ``what`` on stderr before it kills the process)."""
        out = write()
        with self._count_lock:
            self._writes += 1
            crash = bool(self._crash_after and self._writes >= self._crash_after)
        if crash:  # fault injection: see the module docstring
            os.write(2, f"ftbridge: killed after journal write {self._writes} ({what})\n".encode())
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    def start_run(
        self, plan_id: str, plan_path: str, fingerprint: str, actions: Iterable[tuple[str, str, str, str]]
    ) -> int:
        """A new run with every action pending; returns its id. One write."""
        rows = list(actions)
        return self._commit(lambda: self.store.start_run(plan_id, plan_path, fingerprint, rows))

    def resume_run(self, run_id: int) -> None:
        """Take over a run: it is ours now (failed and blocked actions get another chance)."""
        self._commit(lambda: self.store.resume_run(run_id))

    def finish_run(self, run_id: int, status: str, summary: dict[str, Any]) -> None:
        self._commit(lambda: self.store.finish_run(run_id, status, summary))

    def record(
        self,
        run_id: int,
        action_id: str,
        state: str,
        event: str,
        *,
        attempts: int | None = None,
        operation: dict[str, Any] | None | bool = False,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        detail: dict[str, Any] | None = None,
        wait: bool = True,
    ) -> None:
        """One state change of one action (row and event in one transaction).

        ``operation``: a handle to store, None to clear it, False (default) to leave it.

        ``wait=False``: for what a resume can find out from the platform, an operation's handle
        and an action's outcome (the apply waits for them too for the kinds only the journal
        remembers, such as a test failover). The write keeps its place (every later write, such as the next action's
        ``action_started``, commits after it), but the caller goes on before it is on disk, so
        a crash can lose only the last few of them. A resume then decides from the live estate:
        an action running without a handle adopts what the platform still runs for its VM, and
        one whose operation ended is judged by its postcondition. The ``action_started`` that
        precedes every request to a platform is always waited for: it is what makes a crashed
        run look at the platform at all. A failed write is raised by a later one (or flush).
        """
        update = action_update(state, attempts=attempts, operation=operation, result=result, error=error)
        info = event_detail(error, operation, result, detail or {})
        self._commit(lambda: self.store.record(run_id, action_id, event, update, info, wait=wait), event)

    def flush(self) -> None:
        """Every write made so far committed (see ``wait`` in :meth:`record`)."""
        self.store.flush()

    def may_act(self) -> None:
        """Raise :class:`StaleLeader` when this process may no longer act (its store's fence
        check, as before a write). The apply asks just before each request that changes the
        estate: the ``action_started`` written before it was allowed, but the live reads and
        checks since may have outlasted the lease (a stopped or starved process finds out only
        here), and another controller may have taken the run over."""
        self.store.check_fence()

    # -- reading -------------------------------------------------------------------------
    def latest_run(self, plan_id: str) -> RunRecord | None:
        return self.store.latest_run(plan_id)

    def latest_unfinished(self, path_prefix: str) -> RunRecord | None:
        """The newest run not done whose plan file lies under ``path_prefix`` (documents written
        per invocation, such as a test failover's, are found again this way for ``--resume``)."""
        return self.store.latest_unfinished(path_prefix)

    def runs(self, *, limit: int | None = None, unfinished: bool = False) -> list[RunRecord]:
        """Runs, newest first (``unfinished``: only those not done)."""
        return self.store.runs(limit=limit, unfinished=unfinished)

    def actions(self, run_id: int) -> dict[str, ActionRecord]:
        return self.store.actions(run_id)

    def delete_runs(self, run_ids: list[int]) -> tuple[int, int]:
        """Retention: remove finished runs (see :mod:`ftbridge.apply.retention`). One write."""
        return self._commit(lambda: self.store.delete_runs(run_ids))

    def run_actions(self, run_id: int) -> list[ActionRow]:
        return self.store.run_actions(run_id)

    def events(self, run_id: int | None = None) -> list[dict[str, Any]]:
        return self.store.events(run_id)

    def event_times(self, run_id: int, kinds: Collection[str]) -> list[tuple[str | None, float, str]]:
        """(action id, time, event) of the run's events of these ``kinds``, in order."""
        return self.store.event_times(run_id, kinds)
