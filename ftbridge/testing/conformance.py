"""What every driver must do for the core to rely on it.

Subclass :class:`DriverConformance` in the driver's own test suite and provide fixtures:

- ``driver_factory`` (required): a callable returning a *new, unopened* driver for the
  endpoint under test. The kit opens and closes what it makes; a second instance stands in
  for "after a crash".
- ``bad_auth_factory`` (required): a callable returning an unopened driver with wrong
  credentials; ``open()`` must raise :class:`~ftbridge.errors.AuthenticationError`.
- ``driver_class`` (optional): the driver class, for the declarative checks. By default it is
  taken from ``driver_factory()``; override it when the factory needs a backend, so the
  declarative checks (name, contract versions, config model, declared vs implemented) run
  without one.
- One case per declared capability (required: a declared capability without its case
  *fails*):

| capability | fixture |
|---|---|
| move_disk | ``move_case`` (:class:`MoveCase`) |
| move_vm | ``move_vm_case`` (:class:`MoveVMCase`) |
| protect, unprotect | ``protect_case`` (:class:`ProtectCase`) |
| promote, fence, test_failover | ``failover_case`` (:class:`FailoverCase`) |
| reprotect | ``reprotect_case`` (:class:`ProtectCase`) |
| restart | ``restart_case`` (:class:`RestartCase`) |
| any of the above | ``pending_case`` (:class:`PendingCase`): ``pending_operations`` after a simulated crash |

``inventory``, ``health`` and ``replication_status`` need no case: they are checked against
the test estate (which must hold at least one VM with a secondary).

Every test runs for every driver: a capability the driver does not declare is checked too
(its methods raise :class:`~ftbridge.errors.UnsupportedOperation`), so nothing is skipped.
Each test asserts something a broken driver gets wrong; none depends on timing: a case that
needs an operation to stay running holds it until it is released.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import pytest

from ftbridge.drivers.base import (
    API_OLDEST,
    API_VERSION,
    CAPABILITY_METHODS,
    OPERATION_CAPABILITIES,
    Capability,
    Driver,
    DriverConfig,
    Failover,
    Operation,
    OperationStatus,
    OpState,
    ProgressEvent,
    PromoteResult,
    ProtectResult,
    RestartResult,
    SecondarySpec,
    StoragePlacement,
    TestFailoverResult,
    implemented,
    overrides,
)
from ftbridge.drivers.registry import declared_versions, list_drivers, load_driver
from ftbridge.errors import AuthenticationError, Conflict, FtbridgeError, NotFound, UnsupportedOperation
from ftbridge.inventory import Inventory, InventoryPart
from ftbridge.model import VM, EndpointInfo, HostState, PowerState, Secondary

#: How long the kit waits for one operation to end (it never asserts a duration).
TIMEOUT = 120.0
#: An id no platform gives a VM (and that every id parser accepts as "not found").
NO_SUCH_VM = "999999999"


@dataclass(frozen=True)
class MoveCase:
    """``move_disk``: move disk ``disk`` of VM ``vm`` to datastore ``target``."""

    vm: str
    disk: str
    target: str


@dataclass(frozen=True)
class MoveVMCase:
    """``move_vm``: move VM ``vm`` (config and movable disks) to ``target`` (and to ``host``)."""

    vm: str
    target: str
    host: str | None = None


@dataclass(frozen=True)
class ProtectCase:
    """``protect`` / ``reprotect``: give VM ``vm`` a secondary where ``spec`` says."""

    vm: str
    spec: SecondarySpec


@dataclass(frozen=True)
class FailoverCase:
    """``promote``, ``fence``, ``test_failover``: a *running* VM with a usable secondary.

    ``stop_primary`` makes the primary stop running the way a failure would (a lab's
    ``fail_host`` of the VM's host); the promote check needs it when the driver does not
    declare ``fence``. ``host``: where to promote or test (None: the platform's choice).
    """

    vm: str
    secondary: str
    host: str | None = None
    stop_primary: Callable[[], None] | None = None


@dataclass(frozen=True)
class RestartCase:
    """``restart``: a running VM whose primary files are on shared storage.

    ``fail_host`` fails the VM's host so the platform reports it *down* (a lab's
    ``fail_host``); ``host``: where to restart (None: the platform's choice).
    """

    vm: str
    fail_host: Callable[[], None]
    host: str | None = None


@dataclass(frozen=True)
class PendingCase:
    """``pending_operations`` after a crash: ``start(driver)`` starts an operation on ``vm``
    that stays running until ``release()`` is called (a lab that holds its tasks), so the kit
    can look for it from a new connection without racing it. ``release`` must be idempotent.
    """

    vm: str
    start: Callable[[Driver], Operation]
    release: Callable[[], None]


#: The fixture that holds the case of each capability that needs one.
CASE_FIXTURES: Mapping[Capability, str] = {
    Capability.MOVE_DISK: "move_case",
    Capability.MOVE_VM: "move_vm_case",
    Capability.PROTECT: "protect_case",
    Capability.UNPROTECT: "protect_case",
    Capability.PROMOTE: "failover_case",
    Capability.FENCE: "failover_case",
    Capability.TEST_FAILOVER: "failover_case",
    Capability.REPROTECT: "reprotect_case",
    Capability.RESTART: "restart_case",
}

_C = TypeVar("_C")
_MISSING = object()


def check_inventory(part: InventoryPart, endpoint: str, mechanisms: frozenset[str] | None = None) -> None:
    """Structural invariants of one endpoint's inventory; raises AssertionError with the reason.

    Every reference names an object of the same part; sizes are bytes as the platform counts
    them (``Disk.allocated <= Disk.size``, ``0 <= free <= capacity``, ``reserve <= capacity``).
    """
    host_ids = [h.id for h in part.hosts]
    ds_ids = [d.id for d in part.datastores]
    vm_ids = [v.id for v in part.vms]
    net_ids = [n.id for n in part.networks]
    for kind, ids in (("host", host_ids), ("datastore", ds_ids), ("vm", vm_ids), ("network", net_ids)):
        assert len(ids) == len(set(ids)), f"duplicate {kind} ids"
    hosts, dss, vms, nets = set(host_ids), set(ds_ids), set(vm_ids), set(net_ids)
    for h in part.hosts:
        assert h.endpoint == endpoint, f"host {h.id} has endpoint {h.endpoint!r}"
        assert h.memory >= 0, f"host {h.name}: memory {h.memory}"
    for d in part.datastores:
        assert d.endpoint == endpoint, f"datastore {d.id} has endpoint {d.endpoint!r}"
        assert d.capacity >= 0 and 0 <= d.free <= d.capacity, f"datastore {d.name}: free {d.free} of {d.capacity}"
        assert 0 <= d.reserve <= d.capacity, f"datastore {d.name}: reserve {d.reserve} of {d.capacity}"
        assert d.committed is None or d.committed >= 0, f"datastore {d.name}: committed {d.committed}"
        assert set(d.hosts) <= hosts, f"datastore {d.name} mounted by unknown hosts {set(d.hosts) - hosts}"
        assert d.kind, f"datastore {d.name} has no kind"
    for n in part.networks:
        assert n.endpoint == endpoint, f"network {n.id} has endpoint {n.endpoint!r}"
        assert set(n.hosts) <= hosts, f"network {n.name} on unknown hosts {set(n.hosts) - hosts}"
    for v in part.vms:
        assert v.endpoint == endpoint, f"VM {v.name} has endpoint {v.endpoint!r}"
        assert v.host is None or v.host in hosts, f"VM {v.name} on unknown host {v.host}"
        assert v.config_datastore is None or v.config_datastore in dss, f"VM {v.name} config on unknown datastore"
        assert len({d.id for d in v.disks}) == len(v.disks), f"VM {v.name} has duplicate disk ids"
        assert v.vcpus >= 1 and v.memory >= 0, f"VM {v.name}: {v.vcpus} vCPUs, {v.memory} bytes"
        for dk in v.disks:
            assert dk.datastore in dss, f"VM {v.name} disk {dk.id} on unknown datastore {dk.datastore}"
            assert dk.size >= 0, f"VM {v.name} disk {dk.id}: size {dk.size}"
            assert dk.allocated is None or 0 <= dk.allocated <= dk.size, (
                f"VM {v.name} disk {dk.id}: {dk.allocated} bytes allocated of {dk.size} provisioned"
            )
            assert dk.content, f"VM {v.name} disk {dk.id}: no content type"
            assert set(dk.shared_by) <= vms - {v.id}, f"VM {v.name} disk {dk.id} shared by unknown VMs"
        for dep in v.depends_on:
            assert dep.datastore in dss, f"VM {v.name} depends on unknown datastore {dep.datastore}"
        for nic in v.nics:
            assert nic.network is None or nic.network in nets, f"VM {v.name} NIC {nic.id} on unknown network"
        disk_ids = {d.id for d in v.disks}
        sec_ids = [s.id for s in v.secondaries]
        assert len(sec_ids) == len(set(sec_ids)), f"VM {v.name} has duplicate secondary ids"
        for s in v.secondaries:
            if mechanisms is not None:
                assert s.mechanism in mechanisms, f"VM {v.name}: undeclared mechanism {s.mechanism}"
            if s.target_endpoint is None:
                assert s.datastores <= dss, f"VM {v.name} secondary {s.id} on unknown datastores"
                assert s.host is None or s.host in hosts, f"VM {v.name} secondary {s.id} on unknown host"
            copied = {x.disk for x in s.disks}
            assert copied <= disk_ids, f"VM {v.name} secondary copies unknown disks"
            assert set(s.missing) <= disk_ids - copied, f"VM {v.name} secondary {s.id}: missing lists held disks"
            assert s.lag is None or s.lag >= 0, f"VM {v.name} secondary {s.id}: lag {s.lag}"


class DriverConformance:
    """Mix into a test class; provide ``driver_factory``, ``bad_auth_factory`` and the case of
    every capability the driver declares (see the module's documentation)."""

    #: Kit tests this driver is known to fail, each with the reason: a bug written down, not
    #: hidden. Each such test is expected to fail (strict xfail): the run's summary lists it
    #: with its reason, and the day it passes, the run fails until the entry is removed.
    known_gaps: ClassVar[Mapping[str, str]] = {}

    @pytest.fixture(autouse=True)
    def _known_gap(self, request: pytest.FixtureRequest) -> None:
        name = getattr(request.node, "originalname", request.node.name)
        unknown = set(self.known_gaps) - {n for n in dir(DriverConformance) if n.startswith("test_")}
        assert not unknown, f"known_gaps names no test of the kit: {sorted(unknown)}"
        if name in self.known_gaps:
            request.node.add_marker(pytest.mark.xfail(reason=f"known gap: {self.known_gaps[name]}", strict=True))

    # fixtures ----------------------------------------------------------------------------
    @pytest.fixture
    def driver_class(self, driver_factory: Callable[[], Driver]) -> type[Driver]:
        """The class under test (override to check declarations without a backend)."""
        return type(driver_factory())

    @pytest.fixture
    def driver(self, driver_factory: Callable[[], Driver]) -> Iterator[Driver]:
        drv = driver_factory()
        drv.open()
        try:
            yield drv
        finally:
            drv.close()

    def _case(self, request: pytest.FixtureRequest, cls: type[Driver], name: str, kind: type[_C]) -> _C:
        """The case fixture ``name``; a missing one fails the test: a declared capability
        the kit cannot exercise is not a capability anyone should rely on."""
        try:
            case = request.getfixturevalue(name)
        except pytest.FixtureLookupError:
            case = _MISSING
        if case is _MISSING:
            needs = sorted(c.value for c, f in CASE_FIXTURES.items() if f == name and c in cls.capabilities) or sorted(
                c.value for c in cls.capabilities & OPERATION_CAPABILITIES
            )
            pytest.fail(
                f"{cls.name} declares {', '.join(needs)} but its tests provide no "
                f"{name!r} fixture ({kind.__name__}): the conformance kit cannot check it",
                pytrace=False,
            )
        assert isinstance(case, kind), f"fixture {name!r} must return a {kind.__name__}, not {type(case).__name__}"
        return case

    def _open(self, factory: Callable[[], Driver]) -> Driver:
        drv = factory()
        drv.open()
        return drv

    # declarations: no backend ---------------------------------------------------------
    def test_name_matches_the_entry_point(self, driver_class: type[Driver]) -> None:
        cls = driver_class
        assert isinstance(getattr(cls, "name", None), str) and cls.name, "declare name = 'your-entry-point-name'"
        installed = {e.name: e for e in list_drivers()}
        assert cls.name in installed, (
            f"no driver named {cls.name!r} in the 'ftbridge.drivers' entry-point group: register the class in "
            f"pyproject.toml and install the distribution (pip install -e .)"
        )
        assert load_driver(cls.name) is cls, f"entry point {cls.name!r} loads {installed[cls.name].target}"

    def test_declares_contract_versions_this_core_speaks(self, driver_class: type[Driver]) -> None:
        cls = driver_class
        assert any("api_versions" in vars(k) for k in cls.__mro__ if k.__module__ != "ftbridge.drivers.base"), (
            f"{cls.name} declares no api_versions: say which contract versions it is written for, e.g. "
            f"api_versions = ({API_VERSION}, {API_VERSION})"
        )
        lo, hi = declared_versions(cls)
        assert lo <= API_VERSION and hi >= API_OLDEST, (
            f"{cls.name} declares contract versions {lo}..{hi}; this ftbridge speaks {API_OLDEST}..{API_VERSION}"
        )

    def test_config_model_rejects_unknown_keys(self, driver_class: type[Driver]) -> None:
        cfg = driver_class.Config
        assert issubclass(cfg, DriverConfig), "Config must subclass ftbridge.drivers.DriverConfig"
        assert cfg.model_config.get("extra") == "forbid", "Config must reject unknown keys (extra='forbid')"
        assert "driver" in cfg.model_fields

    def test_declared_capabilities_are_implemented(self, driver_class: type[Driver]) -> None:
        cls = driver_class
        assert cls.capabilities <= frozenset(Capability)
        for cap in cls.capabilities:
            assert implemented(cls, cap), (
                f"{cls.name} declares {cap.value} but does not implement {', '.join(CAPABILITY_METHODS[cap])}"
            )
        if Capability.INVENTORY in cls.capabilities or implemented(cls, Capability.INVENTORY):
            assert issubclass(cls, StoragePlacement), "inventory comes with StoragePlacement"

    def test_implemented_capabilities_are_declared(self, driver_class: type[Driver]) -> None:
        cls = driver_class
        for cap in Capability:
            if implemented(cls, cap):
                assert cap in cls.capabilities, f"{cls.name} implements {cap.value} but does not declare it"

    def test_operations_can_be_found_again(self, driver_class: type[Driver]) -> None:
        """A driver that starts long operations polls them by handle and finds running ones."""
        cls = driver_class
        starts = sorted(c.value for c in cls.capabilities & OPERATION_CAPABILITIES)
        if starts:
            assert overrides(cls, "poll"), f"{cls.name} declares {starts[0]} but does not implement poll()"
            assert overrides(cls, "pending_operations"), (
                f"{cls.name} declares {starts[0]} but keeps the default pending_operations(), which finds nothing: "
                f"a resumed apply would start its operations twice"
            )

    def test_mechanisms_declared_with_rules(self, driver_class: type[Driver]) -> None:
        cls = driver_class
        if cls.capabilities & {Capability.PROTECT, Capability.REPROTECT}:
            assert cls.mechanisms, "a driver that protects must declare its mechanisms"
        for name, rules in cls.mechanisms.items():
            assert rules.name == name and rules.description, f"mechanism {name!r}: name and description"

    def test_undeclared_operations_raise_unsupported(self, driver_factory: Callable[[], Driver]) -> None:
        """On an unopened driver: what it does not declare raises UnsupportedOperation, no I/O."""
        drv: Any = driver_factory()
        spec = SecondarySpec("x", {})
        calls: dict[str, Callable[[], object]] = {
            "move_disk": lambda: drv.move_disk("x", "x", "x"),
            "move_vm": lambda: drv.move_vm("x", "x"),
            "protect": lambda: drv.protect("x", spec),
            "unprotect": lambda: drv.unprotect("x", "x"),
            "replication_status": lambda: drv.replication_status("x"),
            "promote": lambda: drv.promote("x", "x"),
            "test_failover": lambda: drv.test_failover("x", "x"),
            "cleanup_test": lambda: drv.cleanup_test("x", "x"),
            "reprotect": lambda: drv.reprotect("x", spec),
            "fence": lambda: drv.fence("x"),
            "restart": lambda: drv.restart("x"),
        }
        try:
            for cap, methods in CAPABILITY_METHODS.items():
                if cap in type(drv).capabilities:
                    continue
                for meth in methods:
                    if meth in calls and hasattr(drv, meth):
                        with pytest.raises(UnsupportedOperation):
                            calls[meth]()
        finally:
            drv.close()  # never opened: close() must not mind

    # probe and inventory ---------------------------------------------------------------
    def test_probe_narrows_never_widens(self, driver: Driver) -> None:
        cls = type(driver)
        info = driver.probe()
        assert info.product and info.version, "probe() names the product and its version"
        assert info.capabilities <= cls.capabilities, "probe may narrow capabilities, never widen"
        if info.mechanisms is not None:
            assert set(info.mechanisms) <= set(cls.mechanisms), "probe may narrow mechanisms, never widen"
            assert len(set(info.mechanisms)) == len(info.mechanisms), "mechanisms listed twice"
        assert driver.probe().capabilities == info.capabilities, "probe() reads; it changes nothing"

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

    def test_inventory_is_repeatable_across_connections(
        self, driver: Driver, driver_factory: Callable[[], Driver]
    ) -> None:
        """Ids are stable: a new connection sees the same objects under the same ids."""
        assert isinstance(driver, StoragePlacement)
        other = self._open(driver_factory)
        try:
            assert isinstance(other, StoragePlacement)
            a, b = driver.inventory(), other.inventory()
        finally:
            other.close()
        assert _key(a) == _key(b)

    # errors ----------------------------------------------------------------------------
    def test_unknown_vm_is_not_found(self, driver: Driver) -> None:
        """Every VM operation the driver declares refuses an unknown VM with NotFound."""
        drv: Any = driver
        caps = type(driver).capabilities
        part = drv.inventory()
        ds = part.datastores[0].id if part.datastores else "x"
        spec = SecondarySpec(next(iter(type(driver).mechanisms), "x"), {"x": ds})
        calls: dict[Capability, Callable[[], object]] = {
            Capability.MOVE_DISK: lambda: drv.move_disk(NO_SUCH_VM, "x", ds),
            Capability.MOVE_VM: lambda: drv.move_vm(NO_SUCH_VM, ds),
            Capability.PROTECT: lambda: drv.protect(NO_SUCH_VM, spec),
            Capability.UNPROTECT: lambda: drv.unprotect(NO_SUCH_VM, "x"),
            Capability.REPLICATION_STATUS: lambda: drv.replication_status(NO_SUCH_VM),
            Capability.PROMOTE: lambda: drv.promote(NO_SUCH_VM, "x"),
            Capability.TEST_FAILOVER: lambda: drv.test_failover(NO_SUCH_VM, "x"),
            Capability.REPROTECT: lambda: drv.reprotect(NO_SUCH_VM, spec),
            Capability.FENCE: lambda: drv.fence(NO_SUCH_VM),
            Capability.RESTART: lambda: drv.restart(NO_SUCH_VM),
        }
        for cap, call in calls.items():
            if cap in caps:
                with pytest.raises(NotFound):
                    call()
                    pytest.fail(f"{cap.value} of an unknown VM did not raise NotFound")

    def test_bad_credentials_are_authentication_errors(self, bad_auth_factory: Callable[[], Driver]) -> None:
        drv = bad_auth_factory()
        try:
            with pytest.raises(AuthenticationError):
                drv.open()
        finally:
            drv.close()

    def test_close_is_idempotent(self, driver_factory: Callable[[], Driver]) -> None:
        driver_factory().close()  # never opened
        drv = self._open(driver_factory)
        drv.close()
        drv.close()

    def test_unknown_handle_is_an_ftbridge_error(self, driver: Driver) -> None:
        """A handle the platform does not know (a VM gone, a journal written by an older
        version of the driver) is an ftbridge error, NotFound at best: never a crash."""
        kinds = sorted(m for c in type(driver).capabilities & OPERATION_CAPABILITIES for m in CAPABILITY_METHODS[c])
        if not kinds:
            with pytest.raises(UnsupportedOperation):
                driver.poll(Operation(id="x", endpoint=driver.endpoint, kind="move_disk", vm="x"))
            return
        for kind in kinds:
            bogus = Operation(id="no-such-operation-424242", endpoint=driver.endpoint, kind=kind, vm=NO_SUCH_VM)
            try:
                driver.poll(bogus)
            except FtbridgeError:
                continue
            except Exception as exc:  # the point is to name it
                pytest.fail(f"poll() of an unknown {kind} handle raised {type(exc).__name__}: {exc}", pytrace=False)
            pytest.fail(f"poll() of an unknown {kind} handle on an unknown VM returned a status", pytrace=False)

    # placement -------------------------------------------------------------------------
    def test_move_disk_handle_survives_a_new_connection(
        self, driver: Driver, driver_factory: Callable[[], Driver], request: pytest.FixtureRequest
    ) -> None:
        cls = type(driver)
        if Capability.MOVE_DISK not in cls.capabilities:
            return  # test_undeclared_operations_raise_unsupported covers it
        case = self._case(request, cls, "move_case", MoveCase)
        assert isinstance(driver, StoragePlacement)
        op = driver.move_disk(case.vm, case.disk, case.target)
        _check_handle(op, driver, "move_disk", case.vm)
        saved = json.loads(json.dumps(op.to_dict()))  # what the journal keeps
        other = self._open(driver_factory)  # "after a crash": a new connection finds the operation
        try:
            assert isinstance(other, StoragePlacement)
            events: list[ProgressEvent] = []
            status = other.wait(Operation.from_dict(saved), progress=events.append, timeout=TIMEOUT)
            assert status.state is OpState.SUCCEEDED, status.message
            assert events, "wait() must report progress through the callback"
            assert all(0.0 <= e.progress <= 1.0 for e in events), [e.progress for e in events]
            assert status.progress == 1.0, "a finished operation reports progress 1.0"
            again = other.poll(Operation.from_dict(saved))
            assert again.state is OpState.SUCCEEDED, "an ended operation keeps reporting how it ended"
            disk = next(d for d in _vm(other, case.vm).disks if d.id == case.disk)
            assert disk.datastore == case.target
        finally:
            other.close()

    def test_move_vm(self, driver: Driver, request: pytest.FixtureRequest) -> None:
        cls = type(driver)
        if Capability.MOVE_VM not in cls.capabilities:
            return
        case = self._case(request, cls, "move_vm_case", MoveVMCase)
        assert isinstance(driver, StoragePlacement)
        op = driver.move_vm(case.vm, case.target, host_id=case.host)
        _check_handle(op, driver, "move_vm", case.vm)
        _succeeds(driver, op)
        vm = _vm(driver, case.vm)
        assert vm.config_datastore in (None, case.target), f"config still on {vm.config_datastore}"
        assert all(d.datastore == case.target for d in vm.disks if d.movable), vm.disks
        if case.host is not None:
            assert vm.host == case.host

    def test_protect_then_unprotect(self, driver: Driver, request: pytest.FixtureRequest) -> None:
        cls = type(driver)
        if not cls.capabilities & {Capability.PROTECT, Capability.UNPROTECT}:
            return
        case = self._case(request, cls, "protect_case", ProtectCase)
        assert isinstance(driver, StoragePlacement)
        if Capability.PROTECT not in cls.capabilities:  # unprotect alone: remove an existing copy
            sec = _vm(driver, case.vm).secondaries[0]
        else:
            sec = _protect_and_find(driver, case, driver.protect, "protect")
        if Capability.UNPROTECT in cls.capabilities:
            op = driver.unprotect(case.vm, sec.id)
            _check_handle(op, driver, "unprotect", case.vm)
            _succeeds(driver, op)
            assert sec.id not in {s.id for s in _vm(driver, case.vm).secondaries}

    def test_replication_status_agrees_with_the_inventory(self, driver: Driver) -> None:
        if Capability.REPLICATION_STATUS not in type(driver).capabilities:
            return
        assert isinstance(driver, StoragePlacement)
        protected = [v for v in driver.inventory().vms if v.secondaries]
        assert protected, "the test estate should have a VM with a secondary, to check replication_status"
        for vm in protected:
            fresh = driver.replication_status(vm.id)
            assert sorted(s.id for s in fresh) == sorted(s.id for s in vm.secondaries), vm.name
            for s in fresh:
                assert s.lag is None or s.lag >= 0

    # failover --------------------------------------------------------------------------
    def test_health_names_known_objects(self, driver: Driver) -> None:
        if Capability.HEALTH not in type(driver).capabilities:
            return
        assert isinstance(driver, Failover) and isinstance(driver, StoragePlacement)
        report = driver.health()
        part = driver.inventory()
        assert report.hosts, "health should report hosts"
        assert set(report.hosts) <= {h.id for h in part.hosts}
        assert set(report.datastores) <= {d.id for d in part.datastores}
        assert all(isinstance(s, HostState) for s in report.hosts.values())

    def test_fence_stops_the_primary(self, driver: Driver, request: pytest.FixtureRequest) -> None:
        cls = type(driver)
        if Capability.FENCE not in cls.capabilities:
            return
        case = self._case(request, cls, "failover_case", FailoverCase)
        assert isinstance(driver, Failover)
        assert _vm(driver, case.vm).power is PowerState.ON, "failover_case.vm must be running"
        op = driver.fence(case.vm)
        _check_handle(op, driver, "fence", case.vm)
        _succeeds(driver, op)
        assert _vm(driver, case.vm).power is not PowerState.ON, "fence succeeded but the VM still runs"
        _succeeds(driver, driver.fence(case.vm))  # idempotent: fencing a stopped VM succeeds

    def test_promote_refuses_while_the_primary_runs(self, driver: Driver, request: pytest.FixtureRequest) -> None:
        cls = type(driver)
        if Capability.PROMOTE not in cls.capabilities:
            return
        case = self._case(request, cls, "failover_case", FailoverCase)
        assert isinstance(driver, Failover)
        before = _vm(driver, case.vm)
        assert before.power is PowerState.ON, "failover_case.vm must be running"
        assert case.secondary in {s.id for s in before.secondaries}, "failover_case.secondary must be the VM's"
        with pytest.raises(Conflict):
            driver.promote(case.vm, case.secondary, host_id=case.host)
            pytest.fail("promote started while the primary runs: split brain")
        after = _vm(driver, case.vm)
        assert after.power is PowerState.ON and after.host == before.host, "a refused promote changes nothing"
        assert case.secondary in {s.id for s in after.secondaries}

    def test_promote_runs_the_vm_from_its_secondary(self, driver: Driver, request: pytest.FixtureRequest) -> None:
        cls = type(driver)
        if Capability.PROMOTE not in cls.capabilities:
            return
        case = self._case(request, cls, "failover_case", FailoverCase)
        assert isinstance(driver, Failover)
        sec = next(s for s in _vm(driver, case.vm).secondaries if s.id == case.secondary)
        if Capability.FENCE in cls.capabilities:
            _succeeds(driver, driver.fence(case.vm))
        else:
            assert case.stop_primary is not None, (
                f"{cls.name} does not declare fence: failover_case.stop_primary must stop the primary"
            )
            case.stop_primary()
        op = driver.promote(case.vm, case.secondary, host_id=case.host)
        _check_handle(op, driver, "promote", case.vm)
        result = PromoteResult.read(_succeeds(driver, op), vm_id=case.vm)
        part = driver.inventory()  # type: ignore[attr-defined]
        now = next((v for v in part.vms if v.id == result.vm_id), None)
        assert now is not None, f"promote says the VM runs as {result.vm_id}, which the inventory does not list"
        assert now.power is PowerState.ON, f"promoted VM {now.name} is {now.power.value}"
        if result.host is not None:
            assert result.host in {h.id for h in part.hosts} and now.host == result.host
        if sec.target_endpoint is None:  # it runs from the copy's storage (its disks may have new ids)
            on = sorted({d.datastore for d in now.disks})
            assert now.disks and set(on) <= sec.datastores, (
                f"promoted VM runs from {on}, the copy is on {sec.datastores}"
            )
        running = [v for v in part.vms if v.name == now.name and v.power is PowerState.ON]
        assert len(running) == 1, f"{len(running)} instances of {now.name} run: split brain"

    def test_test_failover_then_cleanup(self, driver: Driver, request: pytest.FixtureRequest) -> None:
        cls = type(driver)
        if Capability.TEST_FAILOVER not in cls.capabilities:
            return
        case = self._case(request, cls, "failover_case", FailoverCase)
        assert isinstance(driver, Failover) and isinstance(driver, StoragePlacement)
        before = driver.inventory()
        vm = _vm(driver, case.vm)
        op = driver.test_failover(case.vm, case.secondary, host_id=case.host)
        _check_handle(op, driver, "test_failover", case.vm)
        result = TestFailoverResult.read(_succeeds(driver, op))
        during = _vm(driver, case.vm)
        assert (during.power, during.host) == (vm.power, vm.host), "a test failover disturbs no production VM"
        assert [(d.id, d.datastore) for d in during.disks] == [(d.id, d.datastore) for d in vm.disks]
        assert case.secondary in {s.id for s in during.secondaries}, "a test failover keeps the secondary"
        clean = driver.cleanup_test(case.vm, result.test_id)
        _check_handle(clean, driver, "cleanup_test", case.vm)
        _succeeds(driver, clean)
        assert _key(driver.inventory()) == _key(before), "cleanup_test leaves the estate as it was before the test"
        try:  # idempotent: gone is gone
            _succeeds(driver, driver.cleanup_test(case.vm, result.test_id))
        except NotFound:
            pass

    def test_reprotect(self, driver: Driver, request: pytest.FixtureRequest) -> None:
        cls = type(driver)
        if Capability.REPROTECT not in cls.capabilities:
            return
        case = self._case(request, cls, "reprotect_case", ProtectCase)
        assert isinstance(driver, Failover) and isinstance(driver, StoragePlacement)
        _protect_and_find(driver, case, driver.reprotect, "reprotect")

    def test_restart_from_the_primary_files(self, driver: Driver, request: pytest.FixtureRequest) -> None:
        cls = type(driver)
        if Capability.RESTART not in cls.capabilities:
            return
        case = self._case(request, cls, "restart_case", RestartCase)
        assert isinstance(driver, Failover)
        before = _vm(driver, case.vm)
        assert before.power is PowerState.ON and before.host, "restart_case.vm must be running on a host"
        case.fail_host()
        op = driver.restart(case.vm, host_id=case.host)
        _check_handle(op, driver, "restart", case.vm)
        result = RestartResult.read(_succeeds(driver, op), vm_id=case.vm)
        now = _vm(driver, result.vm_id)  # the same id, or the one the platform registered it under
        assert now.power is PowerState.ON, f"restarted VM is {now.power.value}"
        assert now.host != before.host, "restarted on the host that failed"
        if result.host is not None:
            assert now.host == result.host
        if case.host is not None:
            assert now.host == case.host
        assert sorted((d.datastore, d.path) for d in now.disks) == sorted(
            (d.datastore, d.path) for d in before.disks
        ), "restart runs the VM from its own files: no disk moves"
        again = RestartResult.read(_succeeds(driver, driver.restart(result.vm_id, host_id=case.host)), vm_id=now.id)
        assert (again.vm_id, _vm(driver, again.vm_id).host) == (now.id, now.host), "idempotent: it runs already"

    def test_pending_operations_after_a_crash(
        self, driver: Driver, driver_factory: Callable[[], Driver], request: pytest.FixtureRequest
    ) -> None:
        """The crash came between starting an operation and journaling its handle: a new
        connection must find the operation through pending_operations, poll it to its end,
        and then no longer list it."""
        cls = type(driver)
        if not cls.capabilities & OPERATION_CAPABILITIES:
            assert driver.pending_operations(NO_SUCH_VM) == []
            return
        case = self._case(request, cls, "pending_case", PendingCase)
        try:
            op = case.start(driver)
            assert op.vm == case.vm and op.endpoint == driver.endpoint
            other = self._open(driver_factory)  # the handle is lost; only the platform knows
            try:
                found = other.pending_operations(case.vm)
                status = other.poll(op)  # RUNNING now means it was running when we looked
                assert status.state is OpState.RUNNING, (
                    "the pending case's operation ended before release(): it must hold it, or this check proves "
                    f"nothing ({status.state.value}: {status.message})"
                )
                mine = [o for o in found if o.id == op.id]
                assert mine, f"pending_operations({case.vm!r}) does not list running operation {op.id}: {found}"
                assert mine[0].vm == case.vm and mine[0].endpoint == other.endpoint
                assert other.poll(mine[0]).state is OpState.RUNNING
                case.release()
                end = other.wait(mine[0], timeout=TIMEOUT)
                assert end.state is OpState.SUCCEEDED, end.message
                assert op.id not in {o.id for o in other.pending_operations(case.vm)}, "an ended operation is listed"
            finally:
                other.close()
        finally:
            case.release()


# helpers --------------------------------------------------------------------------------
def _key(part: InventoryPart) -> list[tuple[Any, ...]]:
    return (
        sorted(
            (
                v.id,
                v.name,
                v.host,
                v.power.value,
                tuple((d.id, d.datastore) for d in v.disks),
                tuple(sorted(s.id for s in v.secondaries)),
            )
            for v in part.vms
        )
        + sorted(("host", h.id, h.name) for h in part.hosts)
        + sorted(("ds", d.id, d.name) for d in part.datastores)
    )


def _vm(driver: Driver, vm_id: str) -> VM:
    assert isinstance(driver, StoragePlacement)
    vm = next((v for v in driver.inventory().vms if v.id == vm_id), None)
    assert vm is not None, f"the inventory lists no VM {vm_id!r}"
    return vm


def _check_handle(op: Operation, driver: Driver, kind: str, vm: str) -> None:
    assert isinstance(op, Operation), f"{kind} must return an Operation, not {type(op).__name__}"
    assert op.id and op.endpoint == driver.endpoint, op
    assert op.kind == kind and op.vm == vm, f"{kind} on {vm} returned a handle for {op.kind} on {op.vm}"
    assert all(isinstance(v, str) for v in op.data.values()), "Operation.data holds strings (it is journaled)"
    assert Operation.from_dict(json.loads(json.dumps(op.to_dict()))) == op


def _succeeds(driver: Driver, op: Operation) -> OperationStatus:
    status = driver.wait(op, timeout=TIMEOUT)
    assert status.state is OpState.SUCCEEDED, f"{op.kind} of {op.vm} failed: {status.message}"
    assert status.progress == 1.0, "a finished operation reports progress 1.0"
    assert all(isinstance(v, str) for v in status.result.values()), "OperationStatus.result holds strings"
    return status


def _protect_and_find(
    driver: StoragePlacement, case: ProtectCase, start: Callable[[str, SecondarySpec], Operation], kind: str
) -> Secondary:
    assert isinstance(driver, Driver)
    before = {s.id for s in _vm(driver, case.vm).secondaries}
    op = start(case.vm, case.spec)
    _check_handle(op, driver, kind, case.vm)
    named = ProtectResult.read(_succeeds(driver, op))
    new = [s for s in _vm(driver, case.vm).secondaries if s.id not in before]
    assert len(new) == 1, f"expected one new secondary, got {new}"
    sec = new[0]
    if named is not None:
        assert named.secondary_id == sec.id, f"{kind} names secondary {named.secondary_id}, the inventory {sec.id}"
    assert sec.mechanism == case.spec.mechanism
    assert {x.disk: x.datastore for x in sec.disks} == dict(case.spec.disks)
    if case.spec.host is not None:
        assert sec.host == case.spec.host
    if Capability.REPLICATION_STATUS in type(driver).capabilities:
        assert sec.id in {s.id for s in driver.replication_status(case.vm)}, "replication_status misses it"
    return sec
