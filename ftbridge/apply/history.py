"""Run history: what every apply, failover, test failover, failback and reprotect run did.

Read only, over the journal's public reading methods (``runs``, ``run_actions``, ``actions``,
``events``)
and the plan documents the runs executed (for bytes and VM names; the failover documents
live in the state directory, an apply's plan wherever the operator kept it: when it is gone
the journal still answers everything but bytes and names).

Which kind a run is follows from where its document lies: ``ftbridge failover run``,
``failover test``, ``failback`` and ``reprotect`` write theirs to their own folders under the
state directory (see :mod:`ftbridge.failover.run` and :mod:`ftbridge.failover.failback`);
anything else is an ``apply``. A test failover kept up with ``--keep`` and removed later
by ``--cleanup`` is two runs; the test's evidence names the cleanup run.

Figures: *duration* is the time the run was really running (a crash and a later
``--resume`` count once each, not the gap between them); a failover VM's *recovery time*
runs from the first step taken for it (its fence, else its restart or promotion) to the end
of that restart or promotion, and the run's from its start to its last VM up, as
``failover run`` reports them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftbridge.apply.journal import BLOCKED, FAILED, SKIPPED, SUCCEEDED, ActionRow, Journal, RunRecord
from ftbridge.timefmt import rfc3339

JOURNAL_FILE = "journal.sqlite"

#: what a run can be, in the order people meet them
RUN_KINDS: tuple[str, ...] = ("apply", "failover", "test-failover", "test-cleanup", "failback", "reprotect")

_ENDS = {"action_succeeded", "action_skipped", "action_failed", "action_blocked"}
#: the action that brings a VM up in a failover: from its own primary, or from a copy
_UP_KINDS = ("restart", "promote")


@dataclass(frozen=True)
class ActionEntry:
    """One action of a run: what it did to which VM, when, and how it ended."""

    action: str
    kind: str
    endpoint: str
    vm: str
    vm_name: str
    state: str
    attempts: int
    bytes: int | None
    started_at: float | None
    finished_at: float | None
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "kind": self.kind,
            "endpoint": self.endpoint,
            "vm": self.vm,
            "vm_name": self.vm_name,
            "state": self.state,
            "attempts": self.attempts,
            "bytes": self.bytes,
            "started_at": rfc3339(self.started_at),
            "finished_at": rfc3339(self.finished_at),
            "error": self.error,
            "result": self.result,
        }


@dataclass(frozen=True)
class Recovery:
    """A failover run's outcome for one VM: restarted from its own primary, or promoted from a copy."""

    endpoint: str
    vm: str
    vm_name: str
    state: str  # restarted | promoted | failed | not-run
    seconds: float | None
    secondary: str | None
    host: str | None
    forced: bool = False
    how: str = "promote"  # restart | promote

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "vm": self.vm,
            "vm_name": self.vm_name,
            "state": self.state,
            "recovery_s": None if self.seconds is None else round(self.seconds, 3),
            "how": self.how,
            "secondary": self.secondary,
            "host": self.host,
            "forced": self.forced,
        }


@dataclass(frozen=True)
class TestEvidence:
    """What an auditor asks of a test failover, per VM: which copy, started, verified, removed."""

    __test__ = False  # not a pytest class

    run: int
    endpoint: str
    vm: str
    vm_name: str
    secondary: str | None
    mechanism: str | None
    host: str | None
    test_id: str | None
    started_at: float | None
    verified_at: float | None
    cleaned_up_at: float | None
    cleanup_run: int | None
    state: str  # cleaned-up | kept | failed | cleanup-failed | running
    error: str | None = None

    @property
    def seconds(self) -> float | None:
        """From the start of the test to the copy verified up: the rehearsed recovery time."""
        if self.started_at is None or self.verified_at is None:
            return None
        return self.verified_at - self.started_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "endpoint": self.endpoint,
            "vm": self.vm,
            "vm_name": self.vm_name,
            "secondary": self.secondary,
            "mechanism": self.mechanism,
            "host": self.host,
            "test_id": self.test_id,
            "started_at": rfc3339(self.started_at),
            "verified_at": rfc3339(self.verified_at),
            "cleaned_up_at": rfc3339(self.cleaned_up_at),
            "cleanup_run": self.cleanup_run,
            "recovery_s": None if self.seconds is None else round(self.seconds, 3),
            "state": self.state,
            "error": self.error,
        }


@dataclass(frozen=True)
class RunInfo:
    """One line of ``ftbridge runs``."""

    run: int
    kind: str
    plan_id: str
    plan_path: str | None
    user: str | None
    result: str  # done | failed | interrupted | running
    started_at: float
    finished_at: float | None
    duration: float | None
    actions: int
    states: dict[str, int]
    bytes: int | None  # moved by the actions that did something; None: the plan file is gone
    vms: int
    recovery: float | None = None  # failover: start to last VM up
    resumed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "kind": self.kind,
            "plan_id": self.plan_id,
            "plan_path": self.plan_path,
            "user": self.user,
            "result": self.result,
            "started_at": rfc3339(self.started_at),
            "finished_at": rfc3339(self.finished_at),
            "duration_s": None if self.duration is None else round(self.duration, 3),
            "actions": self.actions,
            "states": self.states,
            "bytes": self.bytes,
            "vms": self.vms,
            "recovery_s": None if self.recovery is None else round(self.recovery, 3),
            "resumed": self.resumed,
        }


@dataclass(frozen=True)
class RunDetail:
    """``ftbridge runs show N``: the run, each action, and per VM its recovery or test evidence."""

    info: RunInfo
    actions: list[ActionEntry]
    recovery: list[Recovery]
    tests: list[TestEvidence]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.info.to_dict(),
            "action_list": [a.to_dict() for a in self.actions],
            "recovery": [r.to_dict() for r in self.recovery],
            "tests": [t.to_dict() for t in self.tests],
        }


# -- reading ---------------------------------------------------------------------------------
class History:
    """The run history of one state directory, read once (a journal is small next to a plan)."""

    def __init__(self, state_dir: str | Path) -> None:
        self.state_dir = Path(state_dir)
        self.journal_path = self.state_dir / JOURNAL_FILE
        self._runs: list[RunRecord] = []
        self._rows: dict[int, list[ActionRow]] = {}
        self._results: dict[int, dict[str, dict[str, Any]]] = {}
        self._events: dict[int, list[dict[str, Any]]] = {}
        self._docs: dict[int, dict[str, Any] | None] = {}
        self._cleanups: list[tuple[int, str, str, float | None]] | None = None
        # reading must neither create a journal nor write one (a read-only state dir is fine)
        journal = Journal.existing(self.journal_path, readonly=True)
        if journal is None:
            return
        try:
            self._runs = sorted(journal.runs(), key=lambda r: r.id)
            for r in self._runs:
                self._rows[r.id] = journal.run_actions(r.id)
                self._results[r.id] = {k: a.result for k, a in journal.actions(r.id).items() if a.result}
            for e in journal.events():
                self._events.setdefault(int(e["run_id"]), []).append(e)
        finally:
            journal.close()

    def runs(self, kinds: Iterable[str] | None = None) -> list[RunInfo]:
        """Every run, oldest first (only ``kinds`` when given)."""
        wanted = set(kinds) if kinds is not None else None
        out = [self._info(r) for r in self._runs]
        return [i for i in out if wanted is None or i.kind in wanted]

    def get(self, number: int) -> RunDetail | None:
        rec = next((r for r in self._runs if r.id == number), None)
        if rec is None:
            return None
        info = self._info(rec)
        actions = self._actions(rec)
        recovery = self._recovery(rec, actions) if info.kind == "failover" else []
        tests = self._tests(rec, actions) if info.kind == "test-failover" else []
        return RunDetail(info, actions, recovery, tests)

    def numbers(self) -> list[int]:
        return [r.id for r in self._runs]

    def kept_tests(self) -> list[TestEvidence]:
        """Test instances started with ``failover test --keep`` and not removed yet."""
        out: list[TestEvidence] = []
        for r in self._runs:
            if self._kind(r) != "test-failover":
                continue
            out += [t for t in self._tests(r, self._actions(r)) if t.state == "kept"]
        return out

    def last_tests(self) -> dict[tuple[str, str], TestEvidence]:
        """Each VM's newest test failover that verified its copy (RTO readiness)."""
        out: dict[tuple[str, str], TestEvidence] = {}
        for r in self._runs:
            if self._kind(r) != "test-failover":
                continue
            for t in self._tests(r, self._actions(r)):
                if t.verified_at is not None:
                    out[(t.endpoint, t.vm)] = t
        return out

    # -- one run -------------------------------------------------------------------------
    def _doc(self, rec: RunRecord) -> dict[str, Any] | None:
        if rec.id not in self._docs:
            doc = None
            if rec.plan_path:
                try:
                    loaded = json.loads(Path(rec.plan_path).read_text(encoding="utf-8"))
                    doc = loaded if isinstance(loaded, dict) else None
                except (OSError, ValueError):
                    doc = None
            self._docs[rec.id] = doc
        return self._docs[rec.id]

    def _plan_actions(self, rec: RunRecord) -> dict[str, dict[str, Any]]:
        doc = self._doc(rec)
        acts = doc.get("actions") if doc else None
        if not isinstance(acts, list):
            return {}
        return {str(a["id"]): a for a in acts if isinstance(a, dict) and "id" in a}

    def _kind(self, rec: RunRecord) -> str:
        from ftbridge.failover.failback import FAILBACK_DIR, REPROTECT_DIR
        from ftbridge.failover.run import FAILOVER_DIR, TEST_DIR

        folder = Path(rec.plan_path).parent if rec.plan_path else None
        kinds = {a.kind for a in self._rows.get(rec.id, [])}
        if folder == self.state_dir / TEST_DIR:
            return "test-cleanup" if kinds == {"cleanup_test"} else "test-failover"
        if folder == self.state_dir / FAILOVER_DIR:
            return "failover"
        if folder == self.state_dir / FAILBACK_DIR:
            return "failback"
        if folder == self.state_dir / REPROTECT_DIR:
            return "reprotect"
        return "apply"

    def _info(self, rec: RunRecord) -> RunInfo:
        events = self._events.get(rec.id, [])
        rows = self._rows.get(rec.id, [])
        plan = self._plan_actions(rec)
        states: dict[str, int] = {}
        for a in rows:
            states[a.state] = states.get(a.state, 0) + 1
        moved: int | None = None
        if plan or not rows:
            moved = sum(int(plan.get(a.action_id, {}).get("bytes", 0) or 0) for a in rows if a.state == SUCCEEDED)
        kind = self._kind(rec)
        recovery = None
        if kind == "failover":
            ups = [r for r in self._recovery(rec, self._actions(rec)) if r.state in ("promoted", "restarted")]
            end = _last_up(events, rows)
            if ups and end is not None:
                recovery = end - rec.started_at
        return RunInfo(
            run=rec.id,
            kind=kind,
            plan_id=rec.plan_id,
            plan_path=rec.plan_path,
            user=_user(events),
            result=_result(rec),
            started_at=rec.started_at,
            finished_at=rec.finished_at,
            duration=_active(events),
            actions=len(rows),
            states=dict(sorted(states.items())),
            bytes=moved,
            vms=len({(a.endpoint, a.vm) for a in rows}),
            recovery=recovery,
            resumed=sum(1 for e in events if e["event"] == "run_resumed"),
        )

    def _actions(self, rec: RunRecord) -> list[ActionEntry]:
        plan = self._plan_actions(rec)
        start: dict[str, float] = {}
        end: dict[str, float] = {}
        for e in self._events.get(rec.id, []):
            aid = e["action_id"]
            if not aid:
                continue
            if e["event"] == "action_started":
                start.setdefault(aid, float(e["at"]))
            elif e["event"] in _ENDS:
                end[aid] = float(e["at"])
        out = []
        results = self._results.get(rec.id, {})
        for a in self._rows.get(rec.id, []):
            p = plan.get(a.action_id, {})
            nbytes = p.get("bytes")
            out.append(
                ActionEntry(
                    action=a.action_id,
                    kind=a.kind,
                    endpoint=a.endpoint,
                    vm=a.vm,
                    vm_name=str(p.get("vm_name") or a.vm),
                    state=a.state,
                    attempts=a.attempts,
                    bytes=int(nbytes) if isinstance(nbytes, int) else None,
                    started_at=start.get(a.action_id),
                    finished_at=end.get(a.action_id) if a.state in (SUCCEEDED, SKIPPED, FAILED, BLOCKED) else None,
                    error=a.error,
                    result=dict(results.get(a.action_id) or {}),
                )
            )
        return out

    def _recovery(self, rec: RunRecord, actions: list[ActionEntry]) -> list[Recovery]:
        plan = self._plan_actions(rec)
        by_vm: dict[tuple[str, str], list[ActionEntry]] = {}
        for a in actions:
            by_vm.setdefault((a.endpoint, a.vm), []).append(a)
        out = []
        for (ep, vm), acts in by_vm.items():
            promote = next((a for a in acts if a.kind in _UP_KINDS), None)
            if promote is None:
                continue
            p = plan.get(promote.action, {})
            first = min((a.started_at for a in acts if a.started_at is not None), default=None)
            up = promote.state in (SUCCEEDED, SKIPPED)
            secs = promote.finished_at - first if up and promote.finished_at is not None and first else None
            done = "restarted" if promote.kind == "restart" else "promoted"
            state = done if up else ("failed" if promote.state in (FAILED, BLOCKED) else "not-run")
            out.append(
                Recovery(
                    endpoint=ep,
                    vm=vm,
                    vm_name=promote.vm_name,
                    state=state,
                    seconds=secs,
                    secondary=str(promote.result.get("secondary") or p.get("secondary") or "") or None,
                    host=str(promote.result.get("host") or p.get("host") or "") or None,
                    forced=bool(p.get("forced", False)),
                    how=promote.kind,
                )
            )
        return out

    def _tests(self, rec: RunRecord, actions: list[ActionEntry]) -> list[TestEvidence]:
        plan = self._plan_actions(rec)
        cleanups = {plan.get(a.action, {}).get("after"): a for a in actions if a.kind == "cleanup_test"}
        later = self._later_cleanups(rec.id)
        out = []
        for t in (a for a in actions if a.kind == "test_failover"):
            p = plan.get(t.action, {})
            test_id = str(t.result["test_id"]) if t.result.get("test_id") else None
            c = cleanups.get(t.action)
            cleaned_at, cleanup_run, error = None, None, t.error
            if c is not None and c.state in (SUCCEEDED, SKIPPED):
                cleaned_at = c.finished_at
            elif test_id is not None and (t.endpoint, test_id) in later:
                cleanup_run, cleaned_at = later[(t.endpoint, test_id)]
            verified = t.finished_at if t.state in (SUCCEEDED, SKIPPED) else None
            if t.state in (FAILED, BLOCKED):
                state = "failed"
            elif verified is None:
                state = "running"
            elif cleaned_at is not None:
                state = "cleaned-up"
            elif c is not None and c.state in (FAILED, BLOCKED):
                state, error = "cleanup-failed", c.error
            elif c is not None:
                state = "running"
            else:
                state = "kept"
            out.append(
                TestEvidence(
                    run=rec.id,
                    endpoint=t.endpoint,
                    vm=t.vm,
                    vm_name=t.vm_name,
                    secondary=p.get("secondary"),
                    mechanism=p.get("mechanism"),
                    host=str(t.result.get("host") or p.get("host") or "") or None,
                    test_id=test_id,
                    started_at=t.started_at,
                    verified_at=verified,
                    cleaned_up_at=cleaned_at,
                    cleanup_run=cleanup_run,
                    state=state,
                    error=error,
                )
            )
        return out

    def _later_cleanups(self, after_run: int) -> dict[tuple[str, str], tuple[int, float | None]]:
        """(endpoint, test id) -> (run, time) for test instances removed by cleanup runs after
        ``after_run`` (the first such removal counts)."""
        if self._cleanups is None:
            self._cleanups = []
            for r in self._runs:
                if self._kind(r) != "test-cleanup":
                    continue
                plan = self._plan_actions(r)
                for a in self._actions(r):
                    test_id = plan.get(a.action, {}).get("test_id")
                    if test_id and a.state in (SUCCEEDED, SKIPPED):
                        self._cleanups.append((r.id, a.endpoint, str(test_id), a.finished_at))
        out: dict[tuple[str, str], tuple[int, float | None]] = {}
        for run, endpoint, test_id, at in self._cleanups:
            if run > after_run:
                out.setdefault((endpoint, test_id), (run, at))
        return out


def _user(events: list[dict[str, Any]]) -> str | None:
    for e in events:
        if e["event"] == "run_started":
            detail = e.get("detail") or {}
            user = detail.get("user")
            return str(user) if user else None
    return None


def _result(rec: RunRecord) -> str:
    if rec.status in ("done", "failed", "interrupted"):
        return rec.status
    return "running" if rec.pid is not None and _alive(rec.pid) else "interrupted"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


def _active(events: list[dict[str, Any]]) -> float | None:
    """Seconds the run really ran: each start or resume to the last event before the next one."""
    total, seg_start, last = 0.0, None, None
    for e in events:
        at = float(e["at"])
        if e["event"] in ("run_started", "run_resumed"):
            if seg_start is not None and last is not None:
                total += last - seg_start
            seg_start = at
        last = at
    if seg_start is None or last is None:
        return None
    return total + (last - seg_start)


def _last_up(events: list[dict[str, Any]], rows: list[ActionRow]) -> float | None:
    promotes = {a.action_id for a in rows if a.kind in _UP_KINDS and a.state in (SUCCEEDED, SKIPPED)}
    ends = [
        float(e["at"])
        for e in events
        if e["action_id"] in promotes and e["event"] in ("action_succeeded", "action_skipped")
    ]
    return max(ends) if ends else None


__all__ = ["RUN_KINDS", "ActionEntry", "History", "Recovery", "RunDetail", "RunInfo", "TestEvidence"]
