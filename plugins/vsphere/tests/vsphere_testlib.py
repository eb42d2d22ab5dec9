"""Helpers shared by the vSphere tests (a uniquely named module: test dirs are not packages)."""

from __future__ import annotations

import os
from pathlib import Path

from ftbridge.inventory import InventoryPart

REPO = Path(__file__).resolve().parents[3]


class Names:
    """Ids by name in one inventory (lab morefs are not written in the estate)."""

    def __init__(self, part: InventoryPart) -> None:
        self.part = part
        self.vm = {v.name: v for v in part.vms}
        self.host = {h.name: h.id for h in part.hosts}
        self.ds = {d.name: d.id for d in part.datastores}
        self.ds_name = {d.id: d.name for d in part.datastores}
        self.host_name = {h.id: h.name for h in part.hosts}


def shared_real() -> Path | None:
    """``shared/real`` of the project: ``$FTBRIDGE_SHARED/real``, else the first ``shared/real``
    beside the repository or one of its parents (a worktree sits deeper than the clone)."""
    env = os.environ.get("FTBRIDGE_SHARED")
    if env:
        p = Path(env) / "real"
        return p if p.is_dir() else None
    for parent in REPO.parents:
        p = parent / "shared" / "real"
        if p.is_dir():
            return p
    return None
