"""What every driver must do for the core to rely on it.

Subclass :class:`DriverConformance` and provide fixtures:

``driver_factory`` (required)
    A callable returning a *new, unopened* driver for the endpoint under test. The kit opens
    and closes what it makes; a second instance stands in for "after a crash".
``bad_auth_factory`` (optional)
    A callable returning an unopened driver with wrong credentials; ``open()`` must raise
    :class:`~ftbridge.errors.AuthenticationError`.
``move_case`` / ``protect_case`` (optional, required when the capability is declared)
    A :class:`MoveCase` / :class:`ProtectCase` the platform accepts.

Each test asserts something a broken driver would get wrong; none depends on timing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from ftbridge.drivers.base import (
    API_VERSION,
    Capability,
    Driver,
    Failover,
    Operation,
    OpState,
    ProgressEvent,
    SecondarySpec,
    StoragePlacement,
    implemented,
)
from ftbridge.errors import AuthenticationError, FtbridgeError, NotFound, UnsupportedOperation
from ftbridge.inventory import Inventory, InventoryPart
from ftbridge.model import EndpointInfo


@dataclass(frozen=True)
class MoveCase:
    vm: str
    disk: str
    target: str


@dataclass(frozen=True)
class ProtectCase:
    vm: str
    spec: SecondarySpec


def check_inventory(part: InventoryPart, endpoint: str, mechanisms: frozenset[str] | None = None) -> None:
    """Structural invariants of one endpoint's inventory; raises AssertionError with the reason."""
    host_ids = [h.id for h in part.hosts]
    ds_ids = [d.id for d in part.datastores]
    vm_ids = [v.id for v in part.vms]
    for kind, ids in (("host", host_ids), ("datastore", ds_ids), ("vm", vm_ids)):
        assert len(ids) == len(set(ids)), f"duplicate {kind} ids"
    hosts, dss = set(host_ids), set(ds_ids)
    for h in part.hosts:
        assert h.endpoint == endpoint, f"host {h.id} has endpoint {h.endpoint!r}"
    for d in part.datastores:
        assert d.endpoint == endpoint
        assert d.capacity >= 0 and 0 <= d.free <= d.capacity, f"datastore {d.name}: free {d.free} of {d.capacity}"
        assert set(d.hosts) <= hosts, f"datastore {d.name} mounted by unknown hosts {set(d.hosts) - hosts}"
        assert d.kind, f"datastore {d.name} has no kind"
    for v in part.vms:
        assert v.endpoint == endpoint
        assert v.host is None or v.host in hosts, f"VM {v.name} on unknown host {v.host}"
        assert v.config_datastore is None or v.config_datastore in dss, f"VM {v.name} config on unknown datastore"
        assert len({d.id for d in v.disks}) == len(v.disks), f"VM {v.name} has duplicate disk ids"
        for dk in v.disks:
            assert dk.datastore in dss, f"VM {v.name} disk {dk.id} on unknown datastore {dk.datastore}"
            assert dk.size >= 0
        disk_ids = {d.id for d in v.disks}
        for s in v.secondaries:
            if mechanisms is not None:
                assert s.mechanism in mechanisms, f"VM {v.name}: undeclared mechanism {s.mechanism}"
            if s.target_endpoint is None:
                assert s.datastores <= dss, f"VM {v.name} secondary {s.id} on unknown datastores"
                assert s.host is None or s.host in hosts
            assert {x.disk for x in s.disks} <= disk_ids, f"VM {v.name} secondary copies unknown disks"


class DriverConformance:
    """Mix into a test class; provide ``driver_factory`` (and the optional fixtures)."""

    # fixtures ----------------------------------------------------------------------------
    @pytest.fixture
    def driver(self, driver_factory: Callable[[], Driver]) -> Iterator[Driver]:
        drv = driver_factory()
        drv.open()
        try:
            yield drv
        finally:
            drv.close()

    def _need(self, request: pytest.FixtureRequest, name: str) -> object:
        try:
            return request.getfixturevalue(name)
        except pytest.FixtureLookupError:
            pytest.skip(f"the driver's tests provide no {name} fixture")

    # declarations --------------------------------------------------------------------------
    def test_declares_name_api_and_config(self, driver: Driver) -> None:
        cls = type(driver)
        assert isinstance(cls.name, str) and cls.name
        assert cls.api_version == API_VERSION
        assert cls.Config.model_config.get("extra") == "forbid", "Config must reject unknown keys"

    def test_declared_capabilities_are_implemented(self, driver: Driver) -> None:
        cls = type(driver)
        for cap in cls.capabilities:
            assert implemented(cls, cap), f"{cls.name} declares {cap.value} but does not implement it"

    def test_implemented_capabilities_are_declared(self, driver: Driver) -> None:
        cls = type(driver)
        for cap in Capability:
            if implemented(cls, cap):
                assert cap in cls.capabilities, f"{cls.name} implements {cap.value} but does not declare it"

    def test_undeclared_operations_raise_unsupported(self, driver: Driver) -> None:
        cls = type(driver)
        calls: dict[Capability, Callable[[], object]] = {
            Capability.MOVE_DISK: lambda: driver.move_disk("x", "x", "x"),  # type: ignore[attr-defined]
            Capability.PROTECT: lambda: driver.protect("x", SecondarySpec("x", {})),  # type: ignore[attr-defined]
            Capability.PROMOTE: lambda: driver.promote("x", "x"),  # type: ignore[attr-defined]
        }
        for cap, call in calls.items():
            if cap not in cls.capabilities and hasattr(driver, cap.value):
                with pytest.raises(UnsupportedOperation):
                    call()

    def test_mechanisms_declared_with_rules(self, driver: Driver) -> None:
        cls = type(driver)
        if Capability.PROTECT in cls.capabilities:
            assert cls.mechanisms, "a driver that protects must declare its mechanisms"
        for name, rules in cls.mechanisms.items():
            assert rules.name == name and rules.description

    # probe and inventory ---------------------------------------------------------------
    def test_probe(self, driver: Driver) -> None:
        info = driver.probe()
        assert info.version
        assert info.capabilities <= type(driver).capabilities, "probe may narrow capabilities, never widen"

    def test_inventory_invariants(self, driver: Driver) -> None:
        assert isinstance(driver, StoragePlacement)
        part = driver.inventory()
        assert part.vms, "the test estate should have VMs"
        check_inventory(part, driver.endpoint, frozenset(type(driver).mechanisms))

    def test_inventory_json_round_trip(self, driver: Driver) -> None:
        assert isinstance(driver, StoragePlacement)
        part = driver.inventory()
        inv = Inventory([EndpointInfo(driver.endpoint, type(driver).name)], part.hosts, part.datastores, part.vms)
        again = Inventory.from_dict(json.loads(json.dumps(inv.to_dict())))
        assert again.to_dict() == inv.to_dict()
        assert again.fingerprint() == inv.fingerprint()

    def test_inventory_is_repeatable(self, driver: Driver) -> None:
        assert isinstance(driver, StoragePlacement)
        a, b = driver.inventory(), driver.inventory()

        def key(p: InventoryPart) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
            return sorted((v.id, tuple((d.id, d.datastore) for d in v.disks)) for v in p.vms)

        assert key(a) == key(b)

    # errors ----------------------------------------------------------------------------
    def test_unknown_vm_is_not_found(self, driver: Driver) -> None:
        cls = type(driver)
        if Capability.MOVE_DISK not in cls.capabilities:
            pytest.skip("no move_disk")
        part = driver.inventory()  # type: ignore[attr-defined]
        with pytest.raises(NotFound):
            driver.move_disk("no-such-vm-424242", "0", part.datastores[0].id)  # type: ignore[attr-defined]

    def test_bad_credentials_are_authentication_errors(self, request: pytest.FixtureRequest) -> None:
        factory = self._need(request, "bad_auth_factory")
        drv = factory()  # type: ignore[operator]
        try:
            with pytest.raises(AuthenticationError) as info:
                drv.open()
            assert isinstance(info.value, FtbridgeError)
        finally:
            drv.close()

    def test_close_is_idempotent(self, driver_factory: Callable[[], Driver]) -> None:
        drv = driver_factory()
        drv.open()
        drv.close()
        drv.close()

    # operations ----------------------------------------------------------------------------
    def test_move_disk_handle_survives_a_new_connection(
        self, driver: Driver, driver_factory: Callable[[], Driver], request: pytest.FixtureRequest
    ) -> None:
        if Capability.MOVE_DISK not in type(driver).capabilities:
            pytest.skip("no move_disk")
        case: MoveCase = self._need(request, "move_case")  # type: ignore[assignment]
        op = driver.move_disk(case.vm, case.disk, case.target)  # type: ignore[attr-defined]
        saved = json.loads(json.dumps(op.to_dict()))  # what the journal keeps
        other = driver_factory()  # "after a crash": a new connection finds the operation
        other.open()
        try:
            events: list[ProgressEvent] = []
            status = other.wait(Operation.from_dict(saved), progress=events.append, timeout=120)
            assert status.state is OpState.SUCCEEDED, status.message
            assert events, "wait() must report progress through the callback"
            assert all(0.0 <= e.progress <= 1.0 for e in events), [e.progress for e in events]
            assert status.progress == 1.0, "a finished operation reports progress 1.0"
            vm = next(v for v in other.inventory().vms if v.id == case.vm)  # type: ignore[attr-defined]
            disk = next(d for d in vm.disks if d.id == case.disk)
            assert disk.datastore == case.target
        finally:
            other.close()

    def test_protect_then_unprotect(self, driver: Driver, request: pytest.FixtureRequest) -> None:
        cls = type(driver)
        if Capability.PROTECT not in cls.capabilities:
            pytest.skip("no protect")
        case: ProtectCase = self._need(request, "protect_case")  # type: ignore[assignment]
        assert isinstance(driver, StoragePlacement)
        before = {s.id for v in driver.inventory().vms if v.id == case.vm for s in v.secondaries}
        status = driver.wait(driver.protect(case.vm, case.spec), timeout=120)
        assert status.state is OpState.SUCCEEDED, status.message
        vm = next(v for v in driver.inventory().vms if v.id == case.vm)
        new = [s for s in vm.secondaries if s.id not in before]
        assert len(new) == 1, f"expected one new secondary, got {new}"
        sec = new[0]
        assert sec.mechanism == case.spec.mechanism
        assert {x.disk: x.datastore for x in sec.disks} == dict(case.spec.disks)
        if Capability.UNPROTECT in cls.capabilities:
            status = driver.wait(driver.unprotect(case.vm, sec.id), timeout=120)
            assert status.state is OpState.SUCCEEDED, status.message
            vm = next(v for v in driver.inventory().vms if v.id == case.vm)
            assert sec.id not in {s.id for s in vm.secondaries}

    def test_health_names_known_objects(self, driver: Driver) -> None:
        if Capability.HEALTH not in type(driver).capabilities:
            pytest.skip("no health")
        assert isinstance(driver, Failover) and isinstance(driver, StoragePlacement)
        report = driver.health()
        part = driver.inventory()
        assert set(report.hosts) <= {h.id for h in part.hosts}
        assert set(report.datastores) <= {d.id for d in part.datastores}
        assert report.hosts, "health should report hosts"

    def test_unknown_handle_is_an_ftbridge_error(self, driver: Driver) -> None:
        bogus = Operation(id="no-such-operation-424242", endpoint=driver.endpoint, kind="move_disk", vm="x")
        with pytest.raises(FtbridgeError):
            driver.poll(bogus)
