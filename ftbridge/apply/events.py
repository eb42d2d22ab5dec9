"""What the apply reports while it runs: events for a callback (services never print).

The CLI turns them into progress bars on a terminal or JSON lines with ``-o json``; tests
collect them. A callback may be called from worker threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class Acted(Protocol):
    """What an event names of the action it is about (a :class:`~ftbridge.planning.planfile.PlanAction`)."""

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def vm_name(self) -> str: ...
    @property
    def endpoint(self) -> str: ...


@dataclass(frozen=True)
class ApplyEvent:
    """``event``: run_started, action_started, action_progress, action_retry, action_resumed,
    op_started, op_adopted, action_succeeded, action_skipped, action_failed, action_blocked,
    run_finished, note."""

    event: str
    action: str | None = None
    kind: str | None = None
    vm: str | None = None
    endpoint: str | None = None
    state: str | None = None
    attempt: int | None = None
    progress: float | None = None
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def about(cls, event: str, a: Acted, **fields: Any) -> ApplyEvent:
        """An event about action ``a``: its id, kind, VM and endpoint, plus ``fields``."""
        return cls(event, action=a.id, kind=a.kind, vm=a.vm_name, endpoint=a.endpoint, **fields)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.event}
        for key in ("action", "kind", "vm", "endpoint", "state", "attempt", "progress"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.message:
            out["message"] = self.message
        if self.data:
            out.update(self.data)
        return out


EventSink = Callable[[ApplyEvent], None]


def ignore(_event: ApplyEvent) -> None:
    """The default sink."""
