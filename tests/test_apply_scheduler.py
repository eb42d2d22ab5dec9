"""The scheduler on its own: order (edges and stage barriers), limits, blocking, the stop seam,
and the work it does per action (counted, never timed).

The runner here stands in for the executor (the scheduler's collaborator, not the code under
test): it checks, as each action starts, every rule the scheduler must keep, and records it.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from ftbridge.apply import affinity
from ftbridge.apply.events import ApplyEvent
from ftbridge.apply.journal import BLOCKED, FAILED, PENDING, SUCCEEDED, Journal
from ftbridge.apply.scheduler import Limits, run_actions
from ftbridge.apply.steps import Outcome
from ftbridge.planning.planfile import PlanAction

_ADAPTER: TypeAdapter[PlanAction] = TypeAdapter(PlanAction)


def act(n: int, *, ep: str = "e1", vm: str | None = None, ds: tuple[str, ...] = (), deps: tuple[int, ...] = (),
        stage: int | None = None) -> PlanAction:  # fmt: skip
    return _ADAPTER.validate_python(
        {
            "id": f"a{n}",
            "kind": "promote",
            "endpoint": ep,
            "vm": vm or f"v{n}",
            "vm_name": vm or f"v{n}",
            "bytes": 0,
            "datastores": list(ds),
            "depends_on": [f"a{d}" for d in deps],
            "stage": stage,
            "closes": [],
            "reason": "test",
            "secondary": "s",
            "mechanism": "m",
        }
    )


class Checking:
    """Runs nothing; fails the actions named in ``fail``; checks the rules at each start."""

    def __init__(self, actions: list[PlanAction], limits: Limits, fail: Collection[str] = ()) -> None:
        self.by_id = {a.id: a for a in actions}
        self.limits, self.fail = limits, fail
        self.lock = threading.Lock()
        self.done: set[str] = set()
        self.ended: set[str] = set()
        self.ep: Counter[str] = Counter()
        self.ds: Counter[tuple[str, str]] = Counter()
        self.vms: set[tuple[str, str]] = set()
        self.started: list[str] = []
        self.broken: list[str] = []
        self.staged = Counter(a.stage for a in actions if a.stage is not None)
        self.staged_done: Counter[int] = Counter()

    def run(self, a: PlanAction) -> Outcome:
        with self.lock:
            self.started.append(a.id)
            if (a.endpoint, a.vm) in self.vms:
                self.broken.append(f"{a.id}: its VM runs another action")
            self.vms.add((a.endpoint, a.vm))
            self.ep[a.endpoint] += 1
            if self.ep[a.endpoint] > self.limits.per_endpoint[a.endpoint]:
                self.broken.append(f"{a.id}: endpoint over its limit")
            for d in a.datastores:
                self.ds[(a.endpoint, d)] += 1
                if self.ds[(a.endpoint, d)] > self.limits.per_datastore:
                    self.broken.append(f"{a.id}: datastore {d} over its limit")
            if not set(a.depends_on) <= self.done:
                self.broken.append(f"{a.id}: started before its dependencies")
            if a.stage is not None and any(self.staged_done[k] < n for k, n in self.staged.items() if k < a.stage):
                self.broken.append(f"{a.id}: started before the stages before it were done")
        with self.lock:
            self.vms.discard((a.endpoint, a.vm))
            self.ep[a.endpoint] -= 1
            for d in a.datastores:
                self.ds[(a.endpoint, d)] -= 1
            if a.id in self.fail:
                return Outcome(a.id, FAILED, 1, "boom")
            self.done.add(a.id)
            if a.stage is not None:
                self.staged_done[a.stage] += 1
            return Outcome(a.id, SUCCEEDED, 1, "ok")


def schedule(
    tmp_path: Path,
    actions: list[PlanAction],
    limits: Limits,
    *,
    fail: Collection[str] = (),
    states: dict[str, str] | None = None,
    stop: threading.Event | None = None,
    on: Any = None,
) -> tuple[dict[str, Outcome], Checking, Counter[str], list[ApplyEvent], Journal, int]:
    journal = Journal(tmp_path / "journal.sqlite")
    run_id = journal.start_run("p", "plan.json", "f", [(a.id, a.kind, a.endpoint, a.vm) for a in actions])
    runner = Checking(actions, limits, fail)
    looked: Counter[str] = Counter()
    events: list[ApplyEvent] = []

    def sink(e: ApplyEvent) -> None:
        events.append(e)
        if on is not None:
            on(e)

    out = run_actions(
        actions,
        states if states is not None else {a.id: PENDING for a in actions},
        runner,
        limits,
        journal,
        run_id,
        sink,
        stop=stop,
        probe=lambda aid: looked.update((aid,)),
    )
    return out, runner, looked, events, journal, run_id


def contended(n: int) -> list[PlanAction]:
    """``n`` actions in 3 stages on 2 endpoints: two per VM, 7 datastores, a chain every tenth."""
    out = []
    for i in range(1, n + 1):
        stage = (i - 1) * 3 // n
        ep = "e1" if i % 3 else "e2"
        deps = (i - 1,) if i % 10 == 0 and (i - 2) * 3 // n == stage else ()
        out.append(act(i, ep=ep, vm=f"v{(i + 1) // 2}", ds=(f"d{i % 7}",), deps=deps, stage=stage))
    return out


def test_every_rule_holds_and_each_action_is_examined_a_bounded_number_of_times(tmp_path: Path) -> None:
    """3,000 actions that contend for VMs, endpoints and datastores: a scheduler that rescans
    what waits after each completion examines an action hundreds of times; this one a few."""
    n = 3000
    actions = contended(n)
    limits = Limits({"e1": 2, "e2": 3}, per_datastore=1)
    out, runner, looked, _, journal, _ = schedule(tmp_path, actions, limits)
    journal.close()
    assert runner.broken == []
    assert {o.state for o in out.values()} == {SUCCEEDED} and len(out) == n
    assert sorted(looked) == sorted(a.id for a in actions)
    # each examination either starts the action or parks it on a resource that is full; it is
    # woken only when that resource frees a unit
    assert max(looked.values()) <= 8, looked.most_common(3)
    assert sum(looked.values()) <= 3 * n, sum(looked.values())


def test_a_failure_in_a_stage_blocks_the_next_stages_naming_the_cause(tmp_path: Path) -> None:
    actions = [
        act(1, stage=0),
        act(2, stage=0),
        act(3, stage=0),
        act(4),  # no stage (a fence): waits for nothing
        act(5, stage=1, deps=(4,)),
        act(6, stage=1),
        act(7, stage=2),
    ]
    out, runner, _, events, journal, run_id = schedule(tmp_path, actions, Limits({"e1": 1}, 4), fail={"a2"})
    assert runner.broken == []
    got = {k: (o.state, o.message) for k, o in out.items()}
    assert got == {
        "a1": (SUCCEEDED, "ok"),
        "a2": (FAILED, "boom"),
        "a3": (SUCCEEDED, "ok"),  # its own stage still runs
        "a4": (SUCCEEDED, "ok"),
        "a5": (BLOCKED, "not run: it waits for a2, which failed"),
        "a6": (BLOCKED, "not run: it waits for a2, which failed"),
        "a7": (BLOCKED, "not run: it waits for a5, which was not run"),
    }
    assert set(runner.started) == {"a1", "a2", "a3", "a4"}
    rec = journal.actions(run_id)
    assert {k: rec[k].state for k in ("a5", "a6", "a7")} == {"a5": BLOCKED, "a6": BLOCKED, "a7": BLOCKED}
    assert rec["a7"].error == "not run: it waits for a5, which was not run"
    assert [e.action for e in events if e.event == "action_blocked"] == ["a5", "a6", "a7"]
    journal.close()


def as_edges(actions: list[PlanAction]) -> list[PlanAction]:
    """The same plan written the old way: every action of a stage depends on each action of the
    stage before (schema 1)."""
    by_stage: dict[int, list[str]] = {}
    for a in actions:
        if a.stage is not None:
            by_stage.setdefault(a.stage, []).append(a.id)
    stages = sorted(by_stage)
    prev = {b: by_stage[a] for a, b in zip(stages, stages[1:], strict=False)}
    out = []
    for a in actions:
        deps = list(a.depends_on) + (prev.get(a.stage, []) if a.stage is not None else [])
        out.append(a.model_copy(update={"depends_on": sorted(set(deps), key=lambda x: int(x[1:])), "stage": None}))
    return out


@pytest.mark.parametrize("fail", [set(), {"a2"}, {"a4"}, {"a6"}])
def test_stages_run_as_the_all_pairs_edges_they_replace(tmp_path: Path, fail: set[str]) -> None:
    actions = [
        act(1, stage=0, ds=("d1",)),
        act(2, stage=0, ds=("d1",)),
        act(3, vm="v5"),  # a fence of the next stage's VM
        act(4, vm="v5", stage=1, deps=(3,)),
        act(5, stage=1),
        act(6, stage=3),  # stage numbers may skip: the barrier is to the previous one present
        act(7, stage=3, deps=(6,)),
    ]
    limits = Limits({"e1": 2}, 1)
    staged, r1, *_ = schedule(tmp_path / "staged", actions, limits, fail=fail)
    edged, r2, *_ = schedule(tmp_path / "edged", as_edges(actions), limits, fail=fail)
    assert r1.broken == [] and r2.broken == []
    assert {k: (o.state, o.message) for k, o in staged.items()} == {k: (o.state, o.message) for k, o in edged.items()}
    assert len(staged) == len(actions)


def test_resume_counts_actions_done_before_and_retries_failed_ones(tmp_path: Path) -> None:
    actions = [act(1, stage=0), act(2, stage=0), act(3, stage=1), act(4, stage=1, deps=(3,))]
    states = {"a1": SUCCEEDED, "a2": FAILED, "a3": BLOCKED, "a4": BLOCKED}
    out, runner, *_ = schedule(tmp_path, actions, Limits({"e1": 1}, 1), states=states)
    assert runner.started == ["a2", "a3", "a4"]  # a2 is tried again before its stage opens
    assert {o.state for o in out.values()} == {SUCCEEDED} and "a1" not in out


def test_a_dependency_that_failed_before_and_is_not_run_again_blocks_at_once(tmp_path: Path) -> None:
    """Only part of a plan given (a1 is not): what waits for a1, directly or through a stage,
    is blocked, each naming what it waits for."""
    actions = [act(2, deps=(1,), stage=0), act(3, stage=1), act(4, deps=(3,))]
    out, runner, *_ = schedule(tmp_path, actions, Limits({"e1": 1}, 1), states={"a1": FAILED})
    assert runner.started == []
    assert {k: o.message for k, o in out.items()} == {
        "a2": "not run: it waits for a1, which failed",
        "a3": "not run: it waits for a2, which was not run",
        "a4": "not run: it waits for a3, which was not run",
    }


def test_an_action_that_raises_stops_the_run_after_the_running_ones_end(tmp_path: Path) -> None:
    """Not an outcome (a journal that cannot be written): the scheduler sets ``stop``, starts
    nothing more, lets what runs end, and raises it; no worker thread is left behind."""
    actions = [act(i) for i in range(1, 7)]
    limits = Limits({"e1": 3}, 3)
    started: list[str] = []
    others_in = threading.Barrier(3)  # a1 raises only once a2 and a3 run beside it
    lock = threading.Lock()

    class Raising:
        def run(self, a: PlanAction) -> Outcome:
            with lock:
                started.append(a.id)
            if a.id in ("a1", "a2", "a3"):
                others_in.wait(60)
            if a.id == "a1":
                raise OSError("disk full")
            stop.wait(60)  # the scheduler sets it once it sees a1's exception
            return Outcome(a.id, SUCCEEDED, 1, "ok")

    journal = Journal(tmp_path / "journal.sqlite")
    run_id = journal.start_run("p", "plan.json", "f", [(a.id, a.kind, a.endpoint, a.vm) for a in actions])
    stop = threading.Event()
    before = {t.name for t in threading.enumerate()}
    with pytest.raises(OSError, match="disk full"):
        run_actions(actions, {a.id: PENDING for a in actions}, Raising(), limits, journal, run_id,
                    lambda e: None, stop=stop)  # fmt: skip
    assert stop.is_set()
    assert sorted(started) == ["a1", "a2", "a3"]  # nothing started after the failure
    assert {t.name for t in threading.enumerate()} - before == set()


def _two_cpus() -> set[int]:
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        pytest.skip("one CPU only: pinned and unpinned look the same here")
    return cpus


@pytest.mark.parametrize("one_cpu", [True, False])
@pytest.mark.parametrize("raises", [False, True])
def test_one_cpu_runs_the_scheduler_and_its_workers_on_one_cpu_and_gives_them_back(
    tmp_path: Path, one_cpu: bool, raises: bool
) -> None:
    """``Limits.one_cpu`` (every platform in this interpreter): each worker runs on one CPU,
    the same for all; the calling thread has its CPUs back afterwards, even when an action
    raised. Without it nothing is narrowed."""
    before = _two_cpus()
    actions = [act(i) for i in range(1, 9)]
    seen: list[set[int]] = []
    lock = threading.Lock()

    class Recording:
        def run(self, a: PlanAction) -> Outcome:
            with lock:
                seen.append(os.sched_getaffinity(0))
            if raises and a.id == "a8":
                raise OSError("disk full")
            return Outcome(a.id, SUCCEEDED, 1, "ok")

    journal = Journal(tmp_path / "journal.sqlite")
    run_id = journal.start_run("p", "plan.json", "f", [(a.id, a.kind, a.endpoint, a.vm) for a in actions])
    limits = Limits({"e1": 4}, 4, one_cpu=one_cpu)
    try:
        run_actions(actions, {a.id: PENDING for a in actions}, Recording(), limits, journal, run_id, lambda e: None)
    except OSError:
        assert raises
    journal.close()
    assert len(seen) == 8
    if one_cpu:
        assert len({frozenset(s) for s in seen}) == 1 and len(seen[0]) == 1 and seen[0] <= before
    else:
        assert all(s == before for s in seen)
    assert os.sched_getaffinity(0) == before


def test_the_cpu_pinned_to_is_the_one_the_thread_runs_on() -> None:
    """``one_cpu`` keeps the apply on the CPU it runs on (so two pinned processes spread): read
    from /proc, checked here against a thread pinned to each CPU in turn."""
    before = _two_cpus()
    try:
        for cpu in sorted(before):
            os.sched_setaffinity(0, {cpu})
            os.sched_yield()  # moved there by now: a pinned thread runs nowhere else
            assert affinity._current_cpu() == cpu
    finally:
        os.sched_setaffinity(0, before)
