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
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from ftbridge.config import _explain
from ftbridge.errors import ConfigError
from ftbridge.model import VM


class Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    vms: tuple[str, ...]


class RecoveryPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    groups: tuple[Group, ...] = ()

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
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read recovery plan: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}") from exc
    try:
        return RecoveryPlan.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(path, exc, RecoveryPlan)) from None
