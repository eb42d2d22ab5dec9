"""Running a plan's actions in dependency order within the concurrency limits.

An action starts when everything it depends on succeeded (or was already done), when its
VM has nothing else running (platforms lock a VM per operation), and when its endpoint and
every datastore it touches are below their limits. An action of a ``stage`` (a recovery
group, plan schema 2) also waits for every action of the previous stage the plan has, as if
it depended on each of them. An action whose dependency (or previous stage) failed or was
not run is ``blocked``: it is not run, and says which action stopped it. Workers come from a
thread pool; the main thread only decides what starts next. When every endpoint's platform
runs in this interpreter (``Limits.one_cpu``), the main thread and the workers run on one CPU
(:mod:`ftbridge.apply.affinity` says why).

Why it is built the way it is: the cost of deciding must not grow with the plan (a failover
of 10,000 VMs is one plan). So nothing is rescanned: each action counts what it still waits
for (its unfinished dependencies, plus one for an unfinished previous stage); a finished
action decrements its dependents' counts, and a count reaching zero puts the action in a
ready heap (ordered by its place in the plan: the plan's order is the priority). A ready
action that cannot start for a resource (its VM, its endpoint, one of its datastores) waits in
that resource's own heap and is looked at again only when that resource frees a unit. Each
action is thus examined a bounded number of times, at O(log n) each, plus its edges.
"""

from __future__ import annotations

import heapq
import queue
import threading
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ftbridge.apply import affinity
from ftbridge.apply.events import ApplyEvent, EventSink
from ftbridge.apply.journal import BLOCKED, DONE_STATES, FAILED, RUNNING, Journal
from ftbridge.apply.steps import Outcome
from ftbridge.planning.planfile import PlanAction

#: a resource an action holds while it runs: ("vm", endpoint, vm), ("ep", endpoint) or
#: ("ds", endpoint, datastore)
Resource = tuple[str, ...]


@dataclass(frozen=True)
class Limits:
    per_endpoint: dict[str, int]
    per_datastore: int
    #: run the scheduler and its workers on one CPU: every endpoint's platform runs in this
    #: interpreter (:attr:`ftbridge.drivers.base.Driver.in_process`; see :mod:`.affinity`)
    one_cpu: bool = False

    def workers(self) -> int:
        return max(1, min(64, sum(self.per_endpoint.values())))


class Runner(Protocol):
    """What the scheduler needs of an executor (:class:`ftbridge.apply.steps.Executor`): run
    one action to its outcome, in a worker thread; never raises (a failure is an outcome)."""

    def run(self, a: PlanAction) -> Outcome: ...


class _Workers:
    """The worker threads (started as work comes, up to ``size``): each runs the actions it is
    handed and puts each outcome, or what the action raised, on one queue that the main thread
    reads. Waiting for the next outcomes costs the same however many actions run (a thread
    pool's ``wait(FIRST_COMPLETED)`` hooked a waiter on every running future, each time)."""

    def __init__(self, size: int, executor: Runner, actions: list[PlanAction]) -> None:
        self.size, self.executor, self.actions = size, executor, actions
        self.todo: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self.done: queue.SimpleQueue[tuple[int, Outcome | None, BaseException | None]] = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        self.in_flight = 0

    def submit(self, i: int) -> None:
        self.in_flight += 1
        if len(self.threads) < min(self.size, self.in_flight):
            t = threading.Thread(target=self._work, name=f"ftbridge-apply_{len(self.threads)}", daemon=True)
            t.start()
            self.threads.append(t)
        self.todo.put(i)

    def finished(self) -> list[tuple[int, Outcome | None, BaseException | None]]:
        """The actions that ended since the last call (waits for one at least), in plan order."""
        out = [self.done.get()]
        while True:
            try:
                out.append(self.done.get_nowait())
            except queue.Empty:
                break
        self.in_flight -= len(out)
        return sorted(out, key=lambda x: x[0])

    def _work(self) -> None:
        while (i := self.todo.get()) is not None:
            try:
                self.done.put((i, self.executor.run(self.actions[i]), None))
            except BaseException as exc:  # the main thread re-raises it
                self.done.put((i, None, exc))

    def close(self) -> None:
        for _ in self.threads:
            self.todo.put(None)
        for t in self.threads:
            t.join()


#: counts the times the scheduler looked at an action to decide whether it starts (tests use it
#: to prove the work per action does not grow with the plan)
Probe = Callable[[str], None]


def _no_probe(action_id: str) -> None:
    return None


def run_actions(
    actions: list[PlanAction],
    states: dict[str, str],
    executor: Runner,
    limits: Limits,
    journal: Journal,
    run_id: int,
    emit: EventSink,
    *,
    stop: threading.Event | None = None,
    probe: Probe = _no_probe,
) -> dict[str, Outcome]:
    """Run every action not done yet; returns the outcome of each action it touched.

    ``states``: each action's journaled state (updated in place). ``stop``: once set, no new
    action starts; the call returns when the running ones finished, and the actions never
    started stay pending (absent from the outcomes, not recorded blocked). An action that
    raises instead of returning an outcome sets it, and the exception propagates. ``probe`` is called
    with an action's id each time the scheduler examines whether it can start.
    """
    return _Schedule(actions, states, executor, limits, journal, run_id, emit, stop, probe).run()


class _Schedule:
    def __init__(
        self,
        actions: list[PlanAction],
        states: dict[str, str],
        executor: Runner,
        limits: Limits,
        journal: Journal,
        run_id: int,
        emit: EventSink,
        stop: threading.Event | None,
        probe: Probe,
    ) -> None:
        self.states, self.executor, self.limits = states, executor, limits
        self.journal, self.run_id, self.emit, self.stop, self.probe = journal, run_id, emit, stop, probe
        self.outcomes: dict[str, Outcome] = {}
        self.todo = [a for a in actions if states.get(a.id) not in DONE_STATES]
        self.pos = {a.id: i for i, a in enumerate(self.todo)}
        n = len(self.todo)
        #: per action (by position): what it still waits for before it may be examined
        self.waits = [0] * n
        self.dependents: list[list[int]] = [[] for _ in range(n)]
        self.final = [False] * n  # done, failed or blocked in this call
        self.started = [False] * n
        # stages: the barrier between one stage and the next one present
        self.stage_of: list[int | None] = [a.stage for a in self.todo]
        present = sorted({a.stage for a in actions if a.stage is not None})
        self.next_stage = dict(zip(present, present[1:], strict=False))
        self.prev_stage = {b: a for a, b in self.next_stage.items()}
        #: stage -> positions of its members to run; -> how many of them are not done yet
        self.members: dict[int, list[int]] = defaultdict(list)
        self.left: Counter[int] = Counter()
        self.gate_closed: set[int] = set()  # stages whose previous stage is not all done
        self.ready: list[int] = []
        self.parked: dict[Resource, list[int]] = defaultdict(list)
        self.freed: set[Resource] = set()
        self.ep_busy: Counter[str] = Counter()
        self.ds_busy: Counter[tuple[str, str]] = Counter()
        self.vm_busy: set[tuple[str, str]] = set()

    # -- set-up ------------------------------------------------------------------------------
    def _wire(self) -> list[tuple[int, str]]:
        """Count each action's waits; returns the actions blocked from the start, with why."""
        blocked_now: list[tuple[int, str]] = []
        for i, a in enumerate(self.todo):
            if a.stage is not None:
                self.members[a.stage].append(i)
                self.left[a.stage] += 1
            for d in dict.fromkeys(a.depends_on):
                j = self.pos.get(d)
                if j is not None:
                    self.waits[i] += 1
                    self.dependents[j].append(i)
                elif self.states.get(d) in DONE_STATES:
                    continue
                elif self.states.get(d) in (FAILED, BLOCKED):  # not in this call: it will not run now
                    blocked_now.append((i, d))
                else:
                    self.waits[i] += 1  # nothing will finish it in this call: stays pending
        for stage in self.members:
            prev = self.prev_stage.get(stage)
            if prev is not None and self.left[prev] > 0:
                self.gate_closed.add(stage)
                for i in self.members[stage]:
                    self.waits[i] += 1
        return blocked_now

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> dict[str, Outcome]:
        for i, dep in self._wire():
            if not self.final[i]:
                self._block(i, dep)
                self._spread(i)
        for i in range(len(self.todo)):
            if self.waits[i] == 0 and not self.final[i]:
                heapq.heappush(self.ready, i)
        with affinity.one_cpu(self.limits.one_cpu):  # the workers, started inside, inherit it
            self._loop(_Workers(self.limits.workers(), self.executor, self.todo))
        return self.outcomes

    def _loop(self, pool: _Workers) -> None:
        try:
            running = 0
            while True:
                if not self._stopped():
                    for i in self._startable():  # their resources are held already
                        self.started[i] = True
                        self.states[self.todo[i].id] = RUNNING
                        pool.submit(i)
                        running += 1
                if not running:
                    break  # nothing runs and nothing can start (or we were told to stop)
                for i, outcome, error in pool.finished():
                    running -= 1
                    self._take(i, -1)
                    if outcome is None:  # not an outcome (a journal that cannot be written):
                        if self.stop is not None:  # the others stop at their next wait
                            self.stop.set()
                        raise error or RuntimeError(f"action {self.todo[i].id} gave no outcome")
                    self.states[self.todo[i].id] = outcome.state
                    self.outcomes[self.todo[i].id] = outcome
                    self._finished(i, outcome.state in DONE_STATES)
        finally:
            pool.close()  # waits for the actions still running, as a thread pool's exit does

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _startable(self) -> list[int]:
        """Ready actions that can start now, in plan order, holding their resources; the others
        wait on what holds them."""
        out: list[int] = []
        while True:
            while self.ready:
                i = heapq.heappop(self.ready)
                self.probe(self.todo[i].id)
                busy = self._blocker(self.todo[i])
                if busy is not None:
                    heapq.heappush(self.parked[busy], i)
                    continue
                self._take(i, +1)  # held now: the next candidate sees them taken
                out.append(i)
            # a resource freed since: wake its first waiter while it has room (the waiter may
            # then wait on another resource; that one wakes it in turn)
            woke = False
            for r in list(self.freed):
                if self.parked[r] and self._free(r):
                    heapq.heappush(self.ready, heapq.heappop(self.parked[r]))
                    woke = True
                else:
                    self.freed.discard(r)
            if not woke:
                return out

    # -- resources ---------------------------------------------------------------------------
    def _blocker(self, a: PlanAction) -> Resource | None:
        if (a.endpoint, a.vm) in self.vm_busy:
            return ("vm", a.endpoint, a.vm)
        if self.ep_busy[a.endpoint] >= self.limits.per_endpoint.get(a.endpoint, 1):
            return ("ep", a.endpoint)
        for d in a.datastores:
            if self.ds_busy[(a.endpoint, d)] >= self.limits.per_datastore:
                return ("ds", a.endpoint, d)
        return None

    def _free(self, r: Resource) -> bool:
        if r[0] == "vm":
            return (r[1], r[2]) not in self.vm_busy
        if r[0] == "ep":
            return self.ep_busy[r[1]] < self.limits.per_endpoint.get(r[1], 1)
        return self.ds_busy[(r[1], r[2])] < self.limits.per_datastore

    def _take(self, i: int, sign: int) -> None:
        a = self.todo[i]
        self.ep_busy[a.endpoint] += sign
        for d in a.datastores:
            self.ds_busy[(a.endpoint, d)] += sign
        if sign > 0:
            self.vm_busy.add((a.endpoint, a.vm))
        else:
            self.vm_busy.discard((a.endpoint, a.vm))
            self.freed.update(
                [("vm", a.endpoint, a.vm), ("ep", a.endpoint)] + [("ds", a.endpoint, d) for d in a.datastores]
            )

    # -- finishing ---------------------------------------------------------------------------
    def _finished(self, i: int, done: bool) -> None:
        """Action ``i`` ended: release what waited for it, or block it when it did not succeed."""
        self.final[i] = True
        if not done:
            if not self._stopped():
                self._spread(i)
            return
        for j in self.dependents[i]:
            self._release(j)
        stage = self.stage_of[i]
        if stage is not None:
            self.left[stage] -= 1
            nxt = self.next_stage.get(stage)
            if self.left[stage] == 0 and nxt is not None and nxt in self.gate_closed:
                self.gate_closed.discard(nxt)
                for j in self.members[nxt]:
                    self._release(j)

    def _release(self, j: int) -> None:
        self.waits[j] -= 1
        if self.waits[j] == 0 and not self.final[j]:
            heapq.heappush(self.ready, j)

    def _spread(self, i: int) -> None:
        """Block everything that waits, directly or through others, for action ``i``."""
        todo = deque([i])  # breadth first: a stage is blocked by the first of the stage before
        while todo:
            k = todo.popleft()
            culprit = self.todo[k].id
            stage = self.stage_of[k]
            nxt = self.next_stage.get(stage) if stage is not None else None
            after = self.members[nxt] if nxt is not None and nxt in self.gate_closed else []
            for j in [*self.dependents[k], *after]:
                if not self.final[j] and not self.started[j]:
                    self._block(j, culprit)
                    todo.append(j)

    def _block(self, i: int, dep: str) -> None:
        a = self.todo[i]
        verb = "failed" if self.states.get(dep) == FAILED else "was not run"
        why = f"not run: it waits for {dep}, which {verb}"
        self.final[i] = True
        self.states[a.id] = BLOCKED
        self.journal.record(self.run_id, a.id, BLOCKED, "action_blocked", error=why)
        self.emit(
            ApplyEvent.about(
                "action_blocked",
                a,
                state=BLOCKED,
                message=why,
            )
        )
        self.outcomes[a.id] = Outcome(a.id, BLOCKED, 0, why)
