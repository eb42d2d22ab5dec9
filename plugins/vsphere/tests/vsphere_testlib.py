"""Helpers shared by the vSphere tests (a uniquely named module: test dirs are not packages)."""

from __future__ import annotations

from ftbridge.inventory import InventoryPart


class Names:
    """Ids by name in one inventory (lab morefs are not written in the estate)."""

    def __init__(self, part: InventoryPart) -> None:
        self.part = part
        self.vm = {v.name: v for v in part.vms}
        self.host = {h.name: h.id for h in part.hosts}
        self.ds = {d.name: d.id for d in part.datastores}
        self.ds_name = {d.id: d.name for d in part.datastores}
        self.host_name = {h.id: h.name for h in part.hosts}
