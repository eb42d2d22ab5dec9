"""Recovery-plan files: priority groups and start order, in the spirit of SRM's recovery plans.

.. code-block:: toml

    [[groups]]
    name = "databases"          # group 1 starts first; the next group waits for it
    vms = ["vc-ams/ams-sql*", "fra-oracle*"]   # globs on NAME or ENDPOINT/NAME, in start order

    [[groups]]
    name = "applications"
    vms = ["*"]

VMs no group names come last, in a group called ``rest``.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ftbridge.config import _explain
from ftbridge.errors import ConfigError
from ftbridge.loading import load_toml
from ftbridge.model import VM


class Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    vms: tuple[str, ...]


class RecoveryPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    groups: tuple[Group, ...] = ()

    @field_validator("groups")
    @classmethod
    def _unique_names(cls, groups: tuple[Group, ...]) -> tuple[Group, ...]:
        """Two groups of one name would start in an order nobody chose: refused."""
        seen: set[str] = set()
        for i, g in enumerate(groups):
            if g.name in seen or g.name == "rest":
                why = "is kept for the VMs no group names" if g.name == "rest" else "appears twice"
                raise ValueError(f"[{i}].name: group name {g.name!r} {why}")
            seen.add(g.name)
        return groups

    def place(self, vm: VM) -> tuple[int, str, int]:
        """(group index, group name, position in the group) for ordering."""
        for gi, g in enumerate(self.groups):
            for pi, pattern in enumerate(g.vms):
                if fnmatch.fnmatchcase(vm.name, pattern) or fnmatch.fnmatchcase(f"{vm.endpoint}/{vm.name}", pattern):
                    return gi, g.name, pi
        return len(self.groups), "rest", 0


def load_recovery_plan(path: str | Path | None) -> RecoveryPlan:
    if path is None:
        return RecoveryPlan()
    path = Path(path)
    data = load_toml(path, what="recovery plan")
    try:
        return RecoveryPlan.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(path, exc, RecoveryPlan)) from None
