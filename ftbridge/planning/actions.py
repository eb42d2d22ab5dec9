"""What a plan is made of: actions, the findings it cannot fix, and the plan itself.

Plain dataclasses, because the planner builds tens of thousands of them for a large estate;
the plan *file* is validated with pydantic at the edge (:mod:`ftbridge.planning.planfile`).
Every action says why it exists (``reason``), which audit findings it closes (``closes``) and
what must finish before it may start (``depends_on``): the apply needs no other knowledge
of the planner's intent to run the plan safely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The action kinds a plan may hold. The apply refuses a plan naming any other.
ACTION_KINDS: tuple[str, ...] = ("move_disk", "move_vm", "protect", "unprotect")

#: Why a finding is left unfixed, in categories a person can filter on.
UNFIXABLE_CATEGORIES: tuple[str, ...] = (
    "capacity",  # no target has the room
    "limits",  # a mechanism's declared limits (vCPUs, VMs per host, disks)
    "placement",  # no target satisfies the mounting / kind / separation rules
    "unavailable",  # a host or datastore the fix needs is down
    "manual",  # the audit rule itself is not something a plan fixes
)


@dataclass(slots=True)
class Action:
    """One step of a plan. ``detail`` holds the kind's own fields (flattened in the file)."""

    id: str
    kind: str
    endpoint: str
    vm: str
    vm_name: str
    reason: str
    bytes: int = 0
    datastores: list[str] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)
    closes: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "endpoint": self.endpoint,
            "vm": self.vm,
            "vm_name": self.vm_name,
            **self.detail,
            "bytes": self.bytes,
            "datastores": sorted(self.datastores),
            "depends_on": sorted(set(self.depends_on), key=_id_order),
            "closes": sorted(set(self.closes)),
            "reason": self.reason,
        }


def before(a: str, b: str) -> bool:
    """Was action ``a`` planned before action ``b``? (the planner's ids: "a" and a number,
    padded to five digits and longer beyond)"""
    return (len(a), a) < (len(b), b)


def _id_order(action_id: str) -> tuple[int, str]:
    if action_id[1:].isdigit() and action_id.isascii():  # the planner's own ids: "a" and a number
        return (int(action_id[1:]), action_id)
    digits = "".join(ch for ch in action_id if ch.isdigit())
    return (int(digits) if digits else 0, action_id)


@dataclass(frozen=True, slots=True)
class Unfixable:
    """A finding the plan leaves open, and the sentence that tells a person why."""

    finding: str
    rule: str
    endpoint: str
    category: str
    reason: str
    vm: str | None = None
    vm_name: str | None = None
    datastore: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "finding": self.finding,
            "rule": self.rule,
            "endpoint": self.endpoint,
            "vm": self.vm,
            "vm_name": self.vm_name,
            "datastore": self.datastore,
            "category": self.category,
            "reason": self.reason,
        }


@dataclass
class PlanResult:
    """The planner's output before it becomes a file (see :func:`ftbridge.planning.plan_document`)."""

    actions: list[Action]
    unfixable: list[Unfixable]
    findings_total: int
    findings_fixable: int
    closed: set[str] = field(default_factory=set)
    policies_used: list[str] = field(default_factory=list)

    @property
    def bytes_moved(self) -> int:
        return sum(a.bytes for a in self.actions)
