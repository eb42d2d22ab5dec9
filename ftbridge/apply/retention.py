"""Retention: the journal's runs and ftbridge's own plan documents do not grow without bound.

What goes: runs that finished (``done``) longer ago than the retention, with their actions and
events, and the plan documents ftbridge wrote itself in its state directory (``plans/``, the
failover, test, failback and reprotect documents) that no remaining run names and that are as
old. What stays, whatever its age:

* a run that is not done (running, interrupted or failed): ``--resume`` may still need it;
* the newest run, and its plan document;
* a test failover whose copies still run (``--keep``): ``--cleanup`` needs its record;
* each VM's newest verified test failover: it is the evidence of the VM's RTO readiness;
* the newest plan document in ``plans/``, and any file outside the state directory (a plan
  written with ``--out`` belongs to whoever asked for it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftbridge.apply.history import JOURNAL_FILE, History
from ftbridge.apply.journal import Journal

#: the folders of the state directory that hold documents ftbridge writes itself
DOC_DIRS = ("plans", "failover", "failover-tests", "failback", "reprotect")
_BATCH = 500  # runs per DELETE (SQLite's limit on bound parameters is far above)


@dataclass
class Pruned:
    """What :func:`prune` removed (or, with ``dry_run``, would remove), and what it kept and why."""

    runs: list[int] = field(default_factory=list)
    actions: int = 0
    events: int = 0
    files: list[str] = field(default_factory=list)
    kept: dict[int, str] = field(default_factory=dict)
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "runs": self.runs,
            "actions": self.actions,
            "events": self.events,
            "files": self.files,
            "kept": [{"run": k, "why": v} for k, v in sorted(self.kept.items())],
        }


def prune(state_dir: Path, older_than: float, *, now: float | None = None, dry_run: bool = False) -> Pruned:
    """Remove what finished more than ``older_than`` seconds ago (see the module docstring)."""
    state_dir = Path(state_dir)
    cutoff = (time.time() if now is None else now) - older_than
    out = Pruned(dry_run=dry_run)
    history = History(state_dir)
    journal = Journal.existing(state_dir / JOURNAL_FILE)
    survivors: set[str] = set()
    if journal is not None:
        try:
            runs = sorted(journal.runs(), key=lambda r: r.id)
            kept = _protected(runs[-1].id if runs else None, history)
            old = [r for r in runs if r.finished_at is not None and r.finished_at < cutoff]
            for r in old:
                if r.status != "done":
                    kept.setdefault(r.id, f"not done ({r.status}): --resume may need it")
            out.kept = {k: v for k, v in kept.items() if any(r.id == k for r in old)}
            out.runs = [r.id for r in old if r.id not in kept]
            gone = set(out.runs)
            survivors = {str(Path(r.plan_path).resolve()) for r in runs if r.plan_path and r.id not in gone}
            if not dry_run:
                for i in range(0, len(out.runs), _BATCH):
                    actions, events = journal.delete_runs(out.runs[i : i + _BATCH])
                    out.actions += actions
                    out.events += events
            else:
                for number in out.runs:
                    out.actions += len(journal.run_actions(number))
                    out.events += len(journal.events(number))
        finally:
            journal.close()
    out.files = _old_documents(state_dir, cutoff, survivors, dry_run)
    return out


def _protected(newest: int | None, history: History) -> dict[int, str]:
    kept: dict[int, str] = {}
    for t in history.last_tests().values():
        kept[t.run] = "a VM's newest verified test failover (its RTO evidence)"
    for t in history.kept_tests():
        kept[t.run] = "its test copies still run (--keep): --cleanup needs it"
    if newest is not None:
        kept[newest] = "the newest run"
    return kept


def _old_documents(state_dir: Path, cutoff: float, survivors: set[str], dry_run: bool) -> list[str]:
    """ftbridge's own documents older than ``cutoff`` that no remaining run names (not the
    newest of each folder), removed unless ``dry_run``."""
    removed: list[str] = []
    for name in DOC_DIRS:
        folder = state_dir / name
        if not folder.is_dir():
            continue
        docs = sorted((p for p in folder.glob("*.json") if p.is_file()), key=lambda p: p.stat().st_mtime)
        for p in docs[:-1]:  # the newest document of each folder stays
            if p.stat().st_mtime >= cutoff or str(p.resolve()) in survivors:
                continue
            if not dry_run:
                p.unlink(missing_ok=True)
            removed.append(str(p))
    return removed
