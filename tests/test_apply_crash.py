"""Crash safety: SIGKILL ``ftbridge apply`` at 20+ journal positions, resume each time.

The fault-injection hook (``FTBRIDGE_CRASH_AFTER_JOURNAL_WRITES=N``, see
:mod:`ftbridge.apply.journal`) makes the real process kill itself with SIGKILL right after its
N-th journal write (and says which kind on stderr). Because several actions run at once, other
threads are anywhere when it dies: between starting an operation and journaling its handle, half
way through waiting, and so on. A handle or an outcome is journaled without its caller waiting,
so a kill right after one most likely loses it: the resume must find that out from the platform.
After every kill the next run is ``apply --resume``; at the end the estate must equal an
uninterrupted run's, the sim platform must never have seen a VM lose its last verified copy,
and every action must have reached the platform exactly once.
"""

from __future__ import annotations

import itertools
import json
import re
import signal
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "data"))

import plankit as K  # noqa: E402

from ftbridge.apply.journal import CRASH_ENV  # noqa: E402


def journal_position(where: Path) -> tuple[int, str]:
    """(events written so far, the last one's kind)."""
    db = where / "state" / "journal.sqlite"
    if not db.exists():
        return 0, ""
    with sqlite3.connect(db) as c:
        row = c.execute("SELECT seq, event FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    return (int(row[0]), str(row[1])) if row else (0, "")


def op_counts(where: Path, doc: dict) -> Counter[str]:  # type: ignore[type-arg]
    """How many finished platform operations each plan action caused."""
    ops = [o for o in K.sim_ops(where) if o["state"] == "succeeded"]
    counts: Counter[str] = Counter()
    for a in doc["actions"]:
        for o in ops:
            if o["vm"] != a["vm"] or o["kind"] != a["kind"] or not o["estate"] == a["endpoint"]:
                continue
            p = o["params"]
            same = (
                (a["kind"] == "move_disk" and p["target"] == a["to"] and p["disks"] == [a["disk"]])
                or (a["kind"] == "move_vm" and p["target"] == a["to"])
                or (a["kind"] == "protect" and p["spec"] == a["spec"])
                or (a["kind"] == "unprotect" and p["secondary_id"] == a["secondary"])
            )
            counts[a["id"]] += same
    return counts


@pytest.mark.parametrize("limits", ["parallel", "serial"])
def test_sigkill_at_many_journal_positions_then_resume(tmp_path: Path, limits: str) -> None:
    """``parallel``: the default limits, so other threads die anywhere (operations started but
    not yet journaled are found by ``pending_operations``); ``serial``: one action per endpoint,
    so kills land after every kind of journal write (started, handle stored, done)."""
    extra = "concurrency_per_endpoint = 1" if limits == "serial" else ""
    ref, crash = tmp_path / "ref", tmp_path / "crash"
    ref_cfg = K.copy_demo(ref, op_seconds=0.01, extra=extra)
    crash_cfg = K.copy_demo(crash, op_seconds=0.01, extra=extra)
    plan = tmp_path / "plan.json"
    r = K.ftb("-c", str(ref_cfg), "plan", "--out", str(plan))
    assert r.returncode == 0, r.stderr
    doc = json.loads(plan.read_text())

    # the reference: one uninterrupted run
    r = K.ftb("-c", str(ref_cfg), "apply", str(plan), "--yes")
    assert r.returncode == 0, r.stderr

    # the same plan on a twin estate, killed again and again
    positions: list[tuple[int, str]] = []
    killed_after: set[str] = set()  # the kinds of write the process died right after
    steps = itertools.cycle([2, 3, 1, 4, 2, 5, 3, 2, 6, 3, 8, 4, 11, 2, 7])
    resume = False
    for _ in range(200):
        args = ["-c", str(crash_cfg), "apply", str(plan), "--yes", *(["--resume"] if resume else [])]
        r = K.ftb(*args, env={CRASH_ENV: str(next(steps))})
        if r.returncode == -signal.SIGKILL:
            positions.append(journal_position(crash))
            killed_after |= set(re.findall(r"killed after journal write \d+ \((\w*)\)", r.stderr))
            state = K.normalized_state(crash)
            assert all(s["violations"] == [] for s in state.values()), state
            if not resume:
                # without --resume, an unfinished run is refused, with the way forward
                again = K.ftb("-c", str(crash_cfg), "apply", str(plan), "--yes")
                assert again.returncode == 8 and "--resume" in again.stderr
            resume = True
            continue
        assert r.returncode == 0, r.stderr
        break
    else:
        raise AssertionError("apply never finished")

    assert len(positions) >= 20 and len(set(positions)) >= 20, positions
    if limits == "serial":
        # right after each kind of write, those the caller waits for (action_started) and those
        # it does not (a handle, an outcome: then most likely lost with the process)
        assert {"action_started", "op_started", "action_succeeded"} <= killed_after, killed_after
    end, expected = K.normalized_state(crash), K.normalized_state(ref)
    for name in expected:
        assert end[name]["running"] == [] and end[name]["violations"] == []
    assert end == expected, "the end state differs from an uninterrupted run"
    # no action reached the platform twice (nor was lost)
    assert op_counts(ref, doc) == op_counts(crash, doc) == Counter({a["id"]: 1 for a in doc["actions"]})
    # and the journal agrees: every action done, the run finished
    with sqlite3.connect(crash / "state" / "journal.sqlite") as c:
        states = dict(c.execute("SELECT action_id, state FROM actions").fetchall())
        status = c.execute("SELECT status FROM runs").fetchall()
    assert set(states.values()) <= {"succeeded", "skipped"} and len(states) == len(doc["actions"])
    assert status == [("done",)]
