"""An example driver: the shape, not a platform. Each TODO is one job."""

from __future__ import annotations

from ftbridge.drivers import (
    BackendInfo,
    Capability,
    Driver,
    InventoryPart,
    MechanismRules,
    Operation,
    OperationStatus,
    StoragePlacement,
)
from ftbridge_example.config import ExampleConfig


class ExampleDriver(Driver, StoragePlacement):
    name = "example"
    Config = ExampleConfig
    capabilities = frozenset({Capability.INVENTORY, Capability.MOVE_DISK})
    mechanisms = {"example-copy": MechanismRules(name="example-copy", description="a copy on another pool")}

    def open(self) -> None:
        raise NotImplementedError("TODO: connect and authenticate; translate errors")

    def close(self) -> None:
        pass  # TODO: log out; never raise

    def probe(self) -> BackendInfo:
        raise NotImplementedError("TODO: version, and the capabilities this site supports")

    def inventory(self) -> InventoryPart:
        raise NotImplementedError("TODO: hosts, datastores, VMs in as few calls as possible")

    def move_disk(self, vm_id: str, disk_id: str, datastore_id: str) -> Operation:
        raise NotImplementedError("TODO: start the move, return the platform's handle")

    def poll(self, op: Operation) -> OperationStatus:
        raise NotImplementedError("TODO: find the operation by op.id, from a fresh connection too")
