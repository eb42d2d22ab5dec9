"""The failover plan file's shape (what :meth:`FailoverPlan.to_dict` writes), checked before it is read.

Kept apart from :mod:`ftbridge.failover.plan` (which makes plans) so the reader's rules are in
one place: types as JSON holds them (a number is not a string, ``1`` is not ``true``), lists
where lists belong (``"steps": {}`` is refused), only the keys a step has, kinds the run knows,
times and group positions not negative. Every error is one :class:`PlanError` line naming the
file and the key.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from ftbridge.errors import PlanError
from ftbridge.failover.plan import Blocked, Step
from ftbridge.loading import validation_line
from ftbridge.timefmt import checked_time


class _Doc(BaseModel):
    model_config = ConfigDict(extra="ignore")
    schema_version: int
    kind: Literal["failover"]
    scope: str
    created_at: Annotated[str | float, AfterValidator(checked_time)]
    inventory_fingerprint: str
    estate_id: str = ""
    steps: list[Step]
    blocked: list[Blocked]
    managed: list[Blocked] = []


_STEP_KEYS = {f.name for f in dataclasses.fields(Step)}
_BLOCKED_KEYS = {f.name for f in dataclasses.fields(Blocked)}


def check_failover_plan(data: dict[str, Any], *, source: str) -> None:
    """Raise :class:`PlanError` unless ``data`` is a failover plan as ftbridge writes it."""
    try:
        # JSON mode: strict types, and objects accepted for the step dataclasses
        doc = _Doc.model_validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        raise PlanError(validation_line(source, exc.errors()[0])) from None
    for key, allowed in (("steps", _STEP_KEYS), ("blocked", _BLOCKED_KEYS), ("managed", _BLOCKED_KEYS)):
        for i, item in enumerate(data.get(key, [])):
            unknown = sorted(set(item) - allowed)
            if unknown:
                raise PlanError(f"{source}: {key}[{i}].{unknown[0]}: unknown key")
    for i, step in enumerate(doc.steps):
        where = f"{source}: steps[{i}]"
        if step.kind not in ("restart", "promote"):
            raise PlanError(f"{where}.kind: expected restart or promote")
        if step.kind == "promote" and not step.secondary:
            raise PlanError(f"{where}.secondary: a promote names the secondary it runs")
        for name in ("lag", "ha_grace", "group_index", "order"):
            value = getattr(step, name)
            if value is not None and value < 0:
                raise PlanError(f"{where}.{name}: must be at least 0")
