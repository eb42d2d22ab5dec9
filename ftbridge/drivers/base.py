"""The driver contract: what a platform driver is, can do, and returns.

A driver is one connection to one endpoint on one platform. It is built from validated config
(no I/O in ``__init__``), opened, used by the core's services, and closed. It never prints and
never exits: progress goes through callbacks, results come back as data, and only whole-call
failures raise, as :mod:`ftbridge.errors` types translated in one place per driver.

A driver class combines :class:`Driver` with the capability families its platform offers
(:class:`StoragePlacement`, :class:`Failover`) and declares what it implements in
``capabilities``. Optional operations it lacks raise :class:`UnsupportedOperation`; the
conformance kit (:mod:`ftbridge.testing`) checks declarations against implementations.
Platform extras with no place here live on the driver with an ``ex_`` prefix.
"""

from __future__ import annotations

import abc
import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from ftbridge.errors import OperationTimeout, UnsupportedOperation
from ftbridge.inventory import InventoryPart
from ftbridge.model import HostState, Secondary

#: The contract version this core speaks. The registry refuses a driver written for another.
API_VERSION = 1


class Capability(str, enum.Enum):
    INVENTORY = "inventory"
    MOVE_DISK = "move_disk"
    MOVE_VM = "move_vm"
    PROTECT = "protect"
    UNPROTECT = "unprotect"
    REPLICATION_STATUS = "replication_status"
    HEALTH = "health"
    PROMOTE = "promote"
    TEST_FAILOVER = "test_failover"
    REPROTECT = "reprotect"
    FENCE = "fence"
    RESTART = "restart"


#: Which method implements each capability (the conformance kit and the docs matrix read it).
CAPABILITY_METHODS: Mapping[Capability, tuple[str, ...]] = {
    Capability.INVENTORY: ("inventory",),
    Capability.MOVE_DISK: ("move_disk",),
    Capability.MOVE_VM: ("move_vm",),
    Capability.PROTECT: ("protect",),
    Capability.UNPROTECT: ("unprotect",),
    Capability.REPLICATION_STATUS: ("replication_status",),
    Capability.HEALTH: ("health",),
    Capability.PROMOTE: ("promote",),
    Capability.TEST_FAILOVER: ("test_failover", "cleanup_test"),
    Capability.REPROTECT: ("reprotect",),
    Capability.FENCE: ("fence",),
    Capability.RESTART: ("restart",),
}


class DriverConfig(BaseModel):
    """Base of every driver's ``Config``: one ``[endpoints.NAME]`` table. Unknown keys fail."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    driver: str


@dataclass(frozen=True, slots=True)
class MechanismRules:
    """A secondary mechanism as the planner must respect it. Declared by the driver class.

    These are the platform's placement rules in data, so the core plans for vSphere FT,
    pvesr or an oVirt disk copy without knowing what any of them is.
    """

    name: str
    description: str
    #: datastore kinds a secondary may live on (None: any)
    secondary_kinds: frozenset[str] | None = None
    #: datastore kinds the primary must be on for this mechanism (pvesr: zfspool)
    primary_kinds: frozenset[str] | None = None
    #: the secondary runs on (or is pinned to) a host other than the primary's
    needs_other_host: bool = False
    #: the secondary's datastores must be mounted by its host
    host_must_mount: bool = False
    #: the secondary keeps its own config file on a datastore
    has_config: bool = False
    #: a shared tie-breaker/metadata datastore is part of the spec (vSphere FT)
    needs_metadata_datastore: bool = False
    #: the primary's storage cannot move while this secondary exists (FT: off, move, on)
    blocks_primary_move: bool = False
    #: the secondary's datastores must share a host with the primary's (same cluster / data
    #: center: an oVirt disk copies only within its data center)
    same_hosts: bool = False
    #: a point-in-time copy: a lagging one is fixed by making a fresh copy, then dropping the
    #: old one (continuous mechanisms such as FT or pvesr lag for reasons a plan cannot fix)
    refreshable: bool = False
    max_vms_per_host: int | None = None
    max_vcpus_per_host: int | None = None
    max_vcpus_per_vm: int | None = None
    max_disks: int | None = None
    #: how many secondaries of this mechanism one VM may have (vSphere FT: 1, so replacing one
    #: means off, then on at the new place, in the window the plan opens for that)
    max_secondaries_per_vm: int | None = None
    #: seconds of writes a failover to this copy may lose at best: 0 for a lockstep or
    #: synchronous copy, the shortest schedule for a scheduled replication; None: not declared
    #: (a ``refreshable`` copy is as old as its last refresh, which the policy's RPO bounds)
    rpo: float | None = None
    #: seconds until the VM runs again from this copy once its primary is lost: 0 for a
    #: lockstep takeover, a restart's duration otherwise; None: not declared
    rto: float | None = None


@dataclass(frozen=True, slots=True)
class BackendInfo:
    """What ``probe()`` found: the platform's version and what this site supports now."""

    product: str
    version: str
    capabilities: frozenset[Capability]
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SecondarySpec:
    """Where to create a secondary: the planner's decision, the driver's input."""

    mechanism: str
    disks: Mapping[str, str]  # primary disk id -> datastore id
    config_datastore: str | None = None
    host: str | None = None
    metadata_datastore: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mechanism": self.mechanism,
            "disks": dict(self.disks),
            "config_datastore": self.config_datastore,
            "host": self.host,
            "metadata_datastore": self.metadata_datastore,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SecondarySpec:
        return cls(
            mechanism=d["mechanism"],
            disks=dict(d["disks"]),
            config_datastore=d.get("config_datastore"),
            host=d.get("host"),
            metadata_datastore=d.get("metadata_datastore"),
        )


@dataclass(frozen=True, slots=True)
class Operation:
    """A handle on a long operation that survives a crash of the caller.

    ``id`` is the platform's own handle (a vSphere task moref, a PVE UPID, an oVirt correlation
    id); ``data`` holds whatever else the driver needs to find it again (node name, job id).
    The journal stores :meth:`to_dict` before waiting, and :meth:`Driver.poll` takes it back.
    """

    id: str
    endpoint: str
    kind: str
    vm: str
    data: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "endpoint": self.endpoint, "kind": self.kind, "vm": self.vm, "data": dict(self.data)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Operation:
        return cls(id=d["id"], endpoint=d["endpoint"], kind=d["kind"], vm=d["vm"], data=dict(d.get("data", {})))


class OpState(str, enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class OperationStatus:
    state: OpState
    progress: float = 0.0  # 0..1; 1.0 once the operation has ended, either way
    message: str = ""
    retryable: bool = False  # when FAILED: may the same operation be tried again?
    result: Mapping[str, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.state is not OpState.RUNNING


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    operation: Operation
    progress: float
    message: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass(frozen=True, slots=True)
class HealthReport:
    """What an endpoint can see of itself right now."""

    hosts: Mapping[str, HostState]
    datastores: Mapping[str, bool]  # id -> accessible
    quorum: bool | None = None  # None: the platform has no such notion
    notes: tuple[str, ...] = ()


class Driver(abc.ABC):
    """One connection to one endpoint. Subclass it with the capability families you offer."""

    name: ClassVar[str]  # equals the entry-point name
    api_version: ClassVar[int] = API_VERSION
    Config: ClassVar[type[DriverConfig]] = DriverConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: secondary mechanisms this driver can create or read, first = default
    mechanisms: ClassVar[Mapping[str, MechanismRules]] = {}
    #: False for drivers not exercised in the project's CI
    supported: ClassVar[bool] = True
    #: a sensible number of concurrent long operations against one endpoint
    default_concurrency: ClassVar[int] = 4

    def __init__(self, config: DriverConfig, *, endpoint: str) -> None:
        self.config = config
        self.endpoint = endpoint

    @abc.abstractmethod
    def open(self) -> None:
        """Connect and authenticate. Raises AuthenticationError / BackendUnavailable."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection. Idempotent; never raises."""

    @abc.abstractmethod
    def probe(self) -> BackendInfo:
        """The platform's version, and the capabilities this site really supports now."""

    def poll(self, op: Operation) -> OperationStatus:
        """The current state of an operation, found by its handle (after a crash too)."""
        raise UnsupportedOperation(f"driver {self.name} starts no long operations")

    def pending_operations(self, vm_id: str) -> list[Operation]:
        """Operations still running on a VM, for resuming when no handle was journaled."""
        return []

    def wait(
        self,
        op: Operation,
        *,
        progress: ProgressCallback | None = None,
        timeout: float = 3600.0,
        interval: float = 0.2,
    ) -> OperationStatus:
        """Poll until the operation ends; report progress through the callback."""
        deadline = time.monotonic() + timeout
        delay = min(interval, 0.05)
        while True:
            status = self.poll(op)
            if progress is not None:
                progress(ProgressEvent(op, status.progress, status.message))
            if status.done:
                return status
            if time.monotonic() > deadline:
                raise OperationTimeout(
                    f"operation {op.kind} on {op.vm} ({op.id}) still running after {timeout:.0f}s",
                    endpoint=self.endpoint,
                )
            time.sleep(delay)
            delay = min(delay * 2, interval)

    def __enter__(self) -> Driver:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StoragePlacement(abc.ABC):
    """Where a VM's files are, and moving them. Long operations return an :class:`Operation`."""

    endpoint: str

    @abc.abstractmethod
    def inventory(self) -> InventoryPart:
        """Hosts, datastores and VMs with disks and secondaries, in as few calls as possible."""

    def move_disk(self, vm_id: str, disk_id: str, datastore_id: str) -> Operation:
        """Move one primary disk; the source is deleted only after the copy succeeded."""
        raise UnsupportedOperation("move_disk is not supported", endpoint=self.endpoint)

    def move_vm(self, vm_id: str, datastore_id: str, *, host_id: str | None = None) -> Operation:
        """Move a VM's config and every disk to one datastore (and optionally a host)."""
        raise UnsupportedOperation("move_vm is not supported", endpoint=self.endpoint)

    def protect(self, vm_id: str, spec: SecondarySpec) -> Operation:
        """Create a secondary exactly where ``spec`` says. Its ``result`` names the secondary id."""
        raise UnsupportedOperation("protect is not supported", endpoint=self.endpoint)

    def unprotect(self, vm_id: str, secondary_id: str) -> Operation:
        """Remove one secondary. The core calls this only once a replacement is verified."""
        raise UnsupportedOperation("unprotect is not supported", endpoint=self.endpoint)

    def replication_status(self, vm_id: str) -> tuple[Secondary, ...]:
        """A VM's secondaries with fresh state and lag (cheaper than a full inventory)."""
        raise UnsupportedOperation("replication_status is not supported", endpoint=self.endpoint)


class Failover(abc.ABC):
    """Bringing VMs up from their secondaries."""

    endpoint: str

    @abc.abstractmethod
    def health(self) -> HealthReport:
        """Which hosts and datastores are reachable now."""

    def promote(self, vm_id: str, secondary_id: str, *, host_id: str | None = None, force: bool = False) -> Operation:
        """Run the VM from this secondary. Refuses while the primary runs unless ``force``."""
        raise UnsupportedOperation("promote is not supported", endpoint=self.endpoint)

    def test_failover(self, vm_id: str, secondary_id: str, *, host_id: str | None = None) -> Operation:
        """Start the secondary isolated (no production network); result has ``test_id``."""
        raise UnsupportedOperation("test_failover is not supported", endpoint=self.endpoint)

    def cleanup_test(self, vm_id: str, test_id: str) -> Operation:
        """Remove everything ``test_failover`` created."""
        raise UnsupportedOperation("test_failover is not supported", endpoint=self.endpoint)

    def reprotect(self, vm_id: str, spec: SecondarySpec) -> Operation:
        """After a promote: give the VM a new secondary where ``spec`` says."""
        raise UnsupportedOperation("reprotect is not supported", endpoint=self.endpoint)

    def fence(self, vm_id: str) -> Operation:
        """Make sure the primary does not run, so a copy may be promoted without split brain.

        The operation fails (or this raises :class:`~ftbridge.errors.Conflict`) when the driver
        cannot prove it: a host that is merely unreachable, with no power management the
        platform accepts, is not fenced. The core then refuses the promotion unless forced.
        """
        raise UnsupportedOperation("fence is not supported", endpoint=self.endpoint)

    def restart(self, vm_id: str, *, host_id: str | None = None) -> Operation:
        """Start the VM from its own primary files on a surviving host (``host_id``, or the
        platform's choice when None): no data is lost, unlike promoting a copy that lags.

        The core calls this only when the VM's host is proven down (or fenced by a successful
        :meth:`fence`) and its primary storage is intact and mounted by the target host.
        Idempotent: if the VM already runs, on any host, the operation succeeds at once. The
        result's ``host`` names the host it runs on.
        """
        raise UnsupportedOperation("restart is not supported", endpoint=self.endpoint)


def implemented(cls: type, capability: Capability) -> bool:
    """Does ``cls`` override every method the capability needs (vs the contract's default)?"""
    for meth in CAPABILITY_METHODS[capability]:
        impl = getattr(cls, meth, None)
        if impl is None or getattr(impl, "__isabstractmethod__", False):
            return False
        for base in (StoragePlacement, Failover):
            if getattr(base, meth, None) is impl:
                return False
    return True
