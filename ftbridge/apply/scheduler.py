"""Running a plan's actions in dependency order within the concurrency limits.

An action starts when everything it depends on succeeded (or was already done), when its
VM has nothing else running (platforms lock a VM per operation), and when its endpoint and
every datastore it touches are below their limits. An action whose dependency failed is
``blocked``: it is not run, and says which dependency stopped it. Workers come from a thread
pool; the main thread only decides what starts next.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from ftbridge.apply.events import ApplyEvent, EventSink
from ftbridge.apply.journal import BLOCKED, DONE_STATES, FAILED, RUNNING, Journal
from ftbridge.apply.steps import Executor, Outcome
from ftbridge.planning.planfile import PlanAction


@dataclass(frozen=True)
class Limits:
    per_endpoint: dict[str, int]
    per_datastore: int

    def workers(self) -> int:
        return max(1, min(64, sum(self.per_endpoint.values())))


def run_actions(
    actions: list[PlanAction],
    states: dict[str, str],
    executor: Executor,
    limits: Limits,
    journal: Journal,
    run_id: int,
    emit: EventSink,
    *,
    stop: threading.Event | None = None,
) -> dict[str, Outcome]:
    """Run every action not done yet; returns the outcome of each action it touched.

    ``stop``: once set, nothing new starts (those actions stay pending, absent from the
    outcomes) and this returns when the running ones have returned. An action that raises (a
    journal that cannot be written) sets it, so the others stop at their next wait."""
    outcomes: dict[str, Outcome] = {}
    ep_busy: Counter[str] = Counter()
    ds_busy: Counter[tuple[str, str]] = Counter()
    vm_busy: set[tuple[str, str]] = set()
    pending = [a for a in actions if states.get(a.id) not in DONE_STATES]

    def can_start(a: PlanAction) -> bool:
        if (a.endpoint, a.vm) in vm_busy or ep_busy[a.endpoint] >= limits.per_endpoint.get(a.endpoint, 1):
            return False
        return all(ds_busy[(a.endpoint, d)] < limits.per_datastore for d in a.datastores)

    def take(a: PlanAction, sign: int) -> None:
        ep_busy[a.endpoint] += sign
        for d in a.datastores:
            ds_busy[(a.endpoint, d)] += sign
        if sign > 0:
            vm_busy.add((a.endpoint, a.vm))
        else:
            vm_busy.discard((a.endpoint, a.vm))

    with ThreadPoolExecutor(max_workers=limits.workers(), thread_name_prefix="ftbridge-apply") as pool:
        running: dict[Future[Outcome], PlanAction] = {}
        while pending or running:
            if stop is not None and stop.is_set():
                pending = []  # start nothing new: the rest stays pending in the journal
            waiting: list[PlanAction] = []
            for a in pending:
                stopped = [d for d in a.depends_on if states.get(d) in (FAILED, BLOCKED)]
                if stopped:
                    verb = "failed" if states[stopped[0]] == FAILED else "was not run"
                    why = f"not run: it waits for {stopped[0]}, which {verb}"
                    states[a.id] = BLOCKED
                    journal.record(run_id, a.id, BLOCKED, "action_blocked", error=why)
                    emit(
                        ApplyEvent(
                            "action_blocked",
                            action=a.id,
                            kind=a.kind,
                            vm=a.vm_name,
                            endpoint=a.endpoint,
                            state=BLOCKED,
                            message=why,
                        )
                    )
                    outcomes[a.id] = Outcome(a.id, BLOCKED, 0, why)
                    continue
                if any(states.get(d) not in DONE_STATES for d in a.depends_on) or not can_start(a):
                    waiting.append(a)
                    continue
                states[a.id] = RUNNING
                take(a, +1)
                running[pool.submit(executor.run, a)] = a
            pending = waiting
            if not running:
                break  # nothing runs and nothing can start: only blocked actions were left
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                a = running.pop(fut)
                take(a, -1)
                try:
                    outcome = fut.result()
                except BaseException:
                    if stop is not None:
                        stop.set()
                    raise
                states[a.id] = outcome.state
                outcomes[a.id] = outcome
    return outcomes
