"""The apply journal: every state change of every action, in SQLite (WAL), committed at once.

One row per (run, action) holds the action's current state, its attempt count and the
platform's handle on the operation in flight (written *before* the apply waits on it, so a
crashed apply finds the operation again); an append-only ``events`` table keeps the history.

Fault injection (tests only): with ``FTBRIDGE_CRASH_AFTER_JOURNAL_WRITES=N`` in the
environment, the process sends itself SIGKILL right after its N-th committed journal write.
That is a real, unannounced death of the real code at a known journal position, which is
how the crash test proves that ``--resume`` carries on correctly from any of them.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


class Journal:
    """One SQLite file per state directory, shared by every run of every plan."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0)
        self._lock = threading.Lock()
        self._writes = 0
        try:
            self._crash_after = int(os.environ.get(CRASH_ENV, "0") or 0)
        except ValueError:
            self._crash_after = 0
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
            self._conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (str(JOURNAL_SCHEMA),))

    @classmethod
    def existing(cls, path: Path) -> Journal | None:
        """The journal if the file exists; reading it must not create one."""
        return cls(path) if path.exists() else None

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- writing -------------------------------------------------------------------------
    def _commit(
        self,
        statements: Iterable[tuple[str, tuple[Any, ...]]] = (),
        body: Callable[[sqlite3.Cursor], Any] | None = None,
    ) -> Any:
        """One transaction; counts as one journal write (see the crash hook)."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    cur.execute(sql, args)
                out = body(cur) if body is not None else None
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            self._writes += 1
            if self._crash_after and self._writes >= self._crash_after:
                os.kill(os.getpid(), signal.SIGKILL)  # fault injection: see the module docstring
        return out

    def start_run(
        self, plan_id: str, plan_path: str, fingerprint: str, actions: Iterable[tuple[str, str, str, str]]
    ) -> int:
        """A new run with every action pending; returns its id. One write."""
        now = time.time()
        rows = list(actions)

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
                [(run_id, aid, n, kind, ep, vm, now) for n, (aid, kind, ep, vm) in enumerate(rows)],
            )
            cur.execute(
                "INSERT INTO events (run_id, at, event, detail) VALUES (?, ?, 'run_started', ?)",
                (run_id, now, json.dumps({"plan_path": plan_path, "pid": os.getpid()})),
            )
            return run_id

        return int(self._commit(body=body))

    def resume_run(self, run_id: int) -> None:
        """Take over a run: it is ours now (failed and blocked actions get another chance)."""
        now = time.time()
        self._commit(
            [
                (
                    "UPDATE runs SET status = 'running', pid = ?, updated_at = ?, finished_at = NULL WHERE id = ?",
                    (os.getpid(), now, run_id),
                ),
                (
                    "UPDATE actions SET state = 'pending', updated_at = ? "
                    "WHERE run_id = ? AND state IN ('failed', 'blocked')",
                    (now, run_id),
                ),
                (
                    "INSERT INTO events (run_id, at, event, detail) VALUES (?, ?, 'run_resumed', ?)",
                    (run_id, now, json.dumps({"pid": os.getpid()})),
                ),
            ]
        )

    def finish_run(self, run_id: int, status: str, summary: dict[str, Any]) -> None:
        now = time.time()
        self._commit(
            [
                (
                    "UPDATE runs SET status = ?, updated_at = ?, finished_at = ?, summary = ? WHERE id = ?",
                    (status, now, now, json.dumps(summary, sort_keys=True), run_id),
                ),
                (
                    "INSERT INTO events (run_id, at, event, detail) VALUES (?, ?, 'run_finished', ?)",
                    (run_id, now, json.dumps({"status": status, **summary}, sort_keys=True)),
                ),
            ]
        )

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
    ) -> None:
        """One state change of one action (row and event in one transaction).

        ``operation``: a handle to store, None to clear it, False (default) to leave it.
        """
        now = time.time()
        sets = ["state = ?", "updated_at = ?"]
        args: list[Any] = [state, now]
        if attempts is not None:
            sets.append("attempts = ?")
            args.append(attempts)
        if operation is not False:
            sets.append("operation = ?")
            args.append(json.dumps(operation, sort_keys=True) if isinstance(operation, dict) else None)
        if result is not None:
            sets.append("result = ?")
            args.append(json.dumps(result, sort_keys=True))
        if error is not None or state in DONE_STATES:
            sets.append("error = ?")
            args.append(error)
        info = dict(detail or {})
        if error:
            info["error"] = error
        if isinstance(operation, dict):
            info["operation"] = operation
        if result:
            info["result"] = result
        self._commit(
            [
                (
                    f"UPDATE actions SET {', '.join(sets)} WHERE run_id = ? AND action_id = ?",
                    (*args, run_id, action_id),
                ),
                (
                    "INSERT INTO events (run_id, action_id, at, event, state, detail) VALUES (?, ?, ?, ?, ?, ?)",
                    (run_id, action_id, now, event, state, json.dumps(info, sort_keys=True) if info else None),
                ),
            ]
        )

    # -- reading -------------------------------------------------------------------------
    def latest_run(self, plan_id: str) -> RunRecord | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT id, plan_id, plan_path, status, pid, started_at, finished_at FROM runs WHERE plan_id = ? "
                "ORDER BY id DESC LIMIT 1",
                (plan_id,),
            ).fetchone()
        return RunRecord(*row) if row else None

    def latest_unfinished(self, path_prefix: str) -> RunRecord | None:
        """The newest run not done whose plan file lies under ``path_prefix`` (documents written
        per invocation, such as a test failover's, are found again this way for ``--resume``)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id, plan_id, plan_path, status, pid, started_at, finished_at FROM runs "
                "WHERE status != 'done' AND substr(plan_path, 1, ?) = ? ORDER BY id DESC LIMIT 1",
                (len(path_prefix), path_prefix),
            ).fetchone()
        return RunRecord(*row) if row else None

    def actions(self, run_id: int) -> dict[str, ActionRecord]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT action_id, state, attempts, operation, result, error FROM actions WHERE run_id = ? "
                "ORDER BY position",
                (run_id,),
            ).fetchall()
        return {
            r[0]: ActionRecord(
                r[0], r[1], r[2], json.loads(r[3]) if r[3] else None, json.loads(r[4]) if r[4] else None, r[5]
            )
            for r in rows
        }

    def events(self, run_id: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT seq, run_id, action_id, at, event, state, detail FROM events"
        args: tuple[Any, ...] = ()
        if run_id is not None:
            sql += " WHERE run_id = ?"
            args = (run_id,)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY seq", args).fetchall()
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
