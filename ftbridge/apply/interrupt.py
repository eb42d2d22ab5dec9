"""Stopping a run on request (Ctrl-C, SIGTERM) without losing track of anything.

Whoever runs an apply may hand it a :class:`threading.Event`, either as ``apply_plan(stop=...)``
or, for the commands that reach the apply through a failover, failback or cleanup service, for
the duration of a ``with stopping(event):`` block (the CLI does this around every run). Once the
event is set:

* the scheduler starts no new action (they stay ``pending`` in the journal);
* an action waiting on an operation stops waiting. Every wait in the executor goes through its
  ``sleep``, and every operation's handle is journaled *before* its first wait, so the action is
  left ``running`` with its handle: the operation goes on on the platform and ``--resume`` waits
  for it, exactly as after a crash;
* the run is marked ``interrupted`` in the journal, and :class:`RunInterrupted` says what is
  left: the actions done, those in flight (with their operations) and those not started.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ftbridge.apply.journal import BLOCKED, DONE_STATES, FAILED, PENDING, RUNNING
from ftbridge.errors import FtbridgeError

if TYPE_CHECKING:
    from ftbridge.apply.journal import Journal
    from ftbridge.planning.planfile import PlanAction


class Interrupted(BaseException):
    """Raised inside a worker by its sleep once the run is told to stop. A BaseException, like
    KeyboardInterrupt, so that the executor's catch-all for bugs does not journal it as a failure:
    the action keeps its journaled state (``running``, with its operation's handle)."""


@dataclass(frozen=True)
class InFlight:
    action: str
    kind: str
    vm_name: str
    operation: str | None  # the platform's operation id the journal holds, None if not started


class RunInterrupted(FtbridgeError):
    """The run stopped because it was asked to (exit 130 for SIGINT, 143 for SIGTERM: the CLI
    picks by signal). ``run`` is None when nothing had started."""

    exit_code = 130

    def __init__(
        self,
        run: int | None = None,
        *,
        plan_id: str = "",
        actions: int = 0,
        done: list[str] | None = None,
        in_flight: list[InFlight] | None = None,
        failed: list[str] | None = None,
        not_started: list[str] | None = None,
    ) -> None:
        self.run = run
        self.plan_id = plan_id
        self.actions = actions
        self.done = list(done or [])
        self.in_flight = list(in_flight or [])
        self.failed = list(failed or [])
        self.not_started = list(not_started or [])
        super().__init__(self.left())

    def left(self) -> str:
        if self.run is None:
            return "nothing had started (the plan was still being checked); nothing was changed"
        parts = [f"{len(self.done)} of {self.actions} actions done"]
        if self.in_flight:
            names = ", ".join(f"{f.action} {f.kind} {f.vm_name}" for f in self.in_flight[:3])
            more = ", ..." if len(self.in_flight) > 3 else ""
            parts.append(
                f"{len(self.in_flight)} in flight ({names}{more}: their operations go on, journaled; "
                "--resume waits for them)"
            )
        if self.failed:
            parts.append(f"{len(self.failed)} failed or blocked")
        parts.append(f"{len(self.not_started)} not started")
        return f"run {self.run}: " + ", ".join(parts)

    def to_dict(self) -> dict[str, object]:
        return {
            "run": self.run,
            "plan_id": self.plan_id,
            "actions": self.actions,
            "done": len(self.done),
            "in_flight": [
                {"action": f.action, "kind": f.kind, "vm_name": f.vm_name, "operation": f.operation}
                for f in self.in_flight
            ],
            "failed": self.failed,
            "not_started": self.not_started,
        }

    @classmethod
    def of_run(cls, plan_id: str, actions: list[PlanAction], journal: Journal, run_id: int) -> RunInterrupted:
        """What the journal says is left of a run that stopped."""
        recs = journal.actions(run_id)
        state = {a.id: recs[a.id].state if a.id in recs else PENDING for a in actions}
        return cls(
            run_id,
            plan_id=plan_id,
            actions=len(actions),
            done=[a.id for a in actions if state[a.id] in DONE_STATES],
            in_flight=[
                InFlight(a.id, a.kind, a.vm_name, str((recs[a.id].operation or {}).get("id") or "") or None)
                for a in actions
                if state[a.id] == RUNNING
            ],
            failed=[a.id for a in actions if state[a.id] in (FAILED, BLOCKED)],
            not_started=[a.id for a in actions if state[a.id] == PENDING],
        )


_STOP: ContextVar[threading.Event | None] = ContextVar("ftbridge_stop", default=None)


@contextmanager
def stopping(event: threading.Event) -> Iterator[threading.Event]:
    """Every apply run in this block (and this thread) stops when ``event`` is set."""
    token = _STOP.set(event)
    try:
        yield event
    finally:
        _STOP.reset(token)


def current_stop() -> threading.Event | None:
    """The stop event of the enclosing :func:`stopping` block, if any."""
    return _STOP.get()


def stoppable(stop: threading.Event, sleep: Callable[[float], None]) -> Callable[[float], None]:
    """``sleep`` that raises :class:`Interrupted` once ``stop`` is set (at once, mid-sleep, for
    the real clock; before and after the call for an injected one)."""

    def wait(seconds: float) -> None:
        if stop.is_set():
            raise Interrupted
        if sleep is time.sleep:
            stop.wait(seconds)
        else:
            sleep(seconds)
        if stop.is_set():
            raise Interrupted

    return wait


__all__ = ["InFlight", "Interrupted", "RunInterrupted", "current_stop", "stoppable", "stopping"]
