"""The driver contract: what a platform driver is, can do, and returns.

A driver is one connection to one endpoint on one platform. A driver class combines
:class:`Driver` with the capability families its platform offers (:class:`StoragePlacement`,
:class:`Failover`) and declares what it implements in ``capabilities``. Optional operations it
lacks keep the contract's default, which raises :class:`~ftbridge.errors.UnsupportedOperation`.
Platform extras with no place here live on the driver with an ``ex_`` prefix.

The conformance kit (:mod:`ftbridge.testing`) checks every promise written here; the
documentation site renders these docstrings as the contract reference.

Lifecycle and call order:
    1. ``__init__(config, endpoint=...)``: the validated ``[endpoints.NAME]`` table; no I/O.
    2. :meth:`Driver.open` once. If it raises, the core calls :meth:`Driver.close` and stops.
    3. :meth:`Driver.probe` first (the inventory service reads what the site supports now),
       then any other method, any number of times, in any order the core's services need:
       :meth:`StoragePlacement.inventory` before planning; an operation method, then
       :meth:`Driver.poll` on its handle until it ends; after a crash, a *new* instance (a new
       process) polls handles an earlier one returned, or asks
       :meth:`Driver.pending_operations` when none was journaled.
    4. :meth:`Driver.close` once at the end (also after a failed ``open()``).

Threading:
    The core never calls one driver instance from two threads at once: calls to one endpoint
    are serialised (the apply executor holds a lock per endpoint; the inventory service gives
    each endpoint one worker). Successive calls may come from *different* threads, so a driver
    keeps no thread-local state. Different endpoints, hence different instances, run in
    parallel. A driver therefore needs no locking of its own, but may not assume it is alone:
    other processes (another ftbridge, a person in the platform's UI) change the estate too.

Errors:
    Every error a driver raises is an :mod:`ftbridge.errors` type, translated from its SDK's
    exceptions in one function by type and status code, chained with ``from``. Whole-call
    failures raise (:class:`~ftbridge.errors.AuthenticationError`,
    :class:`~ftbridge.errors.BackendUnavailable`, :class:`~ftbridge.errors.NotFound` for an
    unknown id, :class:`~ftbridge.errors.Conflict` for what the platform refuses now);
    the outcome of a long operation comes back as data, in :class:`OperationStatus`.

Versions:
    The contract is versioned (:data:`API_VERSION`). A driver declares the range it is written
    for in :attr:`Driver.api_versions`; the registry loads it when that range meets the range
    this core speaks (:data:`API_OLDEST` to :data:`API_VERSION`) and warns when the best common
    version is deprecated (:data:`API_DEPRECATED`).
"""

from __future__ import annotations

import abc
import enum
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, field_validator

from ftbridge.configtypes import strict_bool
from ftbridge.errors import OperationTimeout, UnsupportedOperation
from ftbridge.inventory import InventoryPart
from ftbridge.model import HostState, Secondary

#: The newest contract version this core speaks.
#:
#: * 1: the first contract (probe narrowed mechanisms in ``details["mechanisms"]``).
#: * 2: :attr:`BackendInfo.mechanisms`, typed operation results (:class:`PromoteResult` ...),
#:   :attr:`Capability.RESTART`, the documented duties of ``pending_operations`` and ``fence``.
API_VERSION = 2
#: The oldest contract version this core still loads.
API_OLDEST = 1
#: Versions this core still loads but will stop loading, with the release that drops each.
#: A version is dropped only in a major release, after a release that deprecated it, so a
#: plugin that depends on ``ftbridge>=X,<NEXT_MAJOR`` never meets a core that refuses it.
API_DEPRECATED: Mapping[int, str] = {1: "1.0"}


class Capability(str, enum.Enum):
    """What a driver can do; each names the method(s) in :data:`CAPABILITY_METHODS`."""

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

#: Capabilities whose methods start long operations (a driver declaring one implements
#: :meth:`Driver.poll` and :meth:`Driver.pending_operations`).
OPERATION_CAPABILITIES: frozenset[Capability] = frozenset(
    {
        Capability.MOVE_DISK,
        Capability.MOVE_VM,
        Capability.PROTECT,
        Capability.UNPROTECT,
        Capability.PROMOTE,
        Capability.TEST_FAILOVER,
        Capability.REPROTECT,
        Capability.FENCE,
        Capability.RESTART,
    }
)


class DriverConfig(BaseModel):
    """Base of every driver's ``Config``: one ``[endpoints.NAME]`` table. Unknown keys fail.

    Subclass it with your keys; use :class:`~ftbridge.configtypes.Secret` for anything secret
    and :class:`~ftbridge.configtypes.ConfigPath` for files (relative to the config file).
    Give each field a ``description``: ``ftbridge drivers show`` prints it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    _bools = field_validator("*", mode="before")(strict_bool)

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
    #: the secondary is a running VM on its host (a lockstep FT secondary): it already holds its
    #: memory there, so a failover to it needs no room on that host beyond what it has
    hot_standby: bool = False


@dataclass(frozen=True, slots=True)
class BackendInfo:
    """What :meth:`Driver.probe` found: the platform's version and what this site supports now.

    ``capabilities`` and ``mechanisms`` *narrow* the class's declarations to this site (a
    cluster without shared storage, a licence without FT, a PVE cluster without ZFS). They
    travel with the endpoint into the inventory (``EndpointInfo.capabilities`` and
    ``.mechanisms``) and the planner plans nothing the site said it cannot do.
    """

    #: the platform's product name ("Proxmox VE", "VMware vCenter Server")
    product: str
    #: the platform's version as it reports it; never empty
    version: str
    #: a subset of the class's ``capabilities``: never wider
    capabilities: frozenset[Capability]
    #: the secondary mechanisms this site offers, preferred first, each a key of the class's
    #: ``mechanisms``; ``None`` means every declared one
    mechanisms: tuple[str, ...] | None = None
    #: free-form facts for people (build, vendor, licence); the core reads nothing from it
    #: (contract 1 drivers put their mechanisms under ``"mechanisms"``: read, deprecated)
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SecondarySpec:
    """Where to create a secondary: the planner's decision, the driver's input.

    ``disks`` maps every primary disk id the copy must hold to the datastore id it goes to;
    ``config_datastore`` is set for mechanisms that keep their own config
    (:attr:`MechanismRules.has_config`), ``host`` for those with a host of their own
    (:attr:`MechanismRules.needs_other_host`), ``metadata_datastore`` for vSphere FT's
    tie-breaker.
    """

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
    id); ``data`` holds whatever else the driver needs to find it again (node name, job id),
    as strings. The journal stores :meth:`to_dict` before waiting, and :meth:`Driver.poll` of a
    new driver instance, in a new process, takes it back: nothing in it may point into the
    memory of the instance that made it.
    """

    id: str
    endpoint: str
    kind: str  # the method that started it: "move_disk", "promote", ...
    vm: str  # the VM id it was started on
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
    """Where an operation is now, as :meth:`Driver.poll` reports it.

    ``result`` is what a *succeeded* operation tells the core, as strings (it is journaled).
    Operations whose result the core reads build it from a typed result and the core reads it
    back through the same type: :class:`ProtectResult`, :class:`PromoteResult`,
    :class:`TestFailoverResult`, :class:`RestartResult`.
    """

    state: OpState
    #: 0..1; 1.0 once the operation has ended, either way. Report the platform's own figure when
    #: it gives one (a vSphere task's percent): the apply polls again when the rate of progress
    #: says the operation ends, instead of backing off blindly; leave 0.0 when there is none
    progress: float = 0.0
    message: str = ""  # for people: the platform's own words on a failure
    retryable: bool = False  # when FAILED: may the same operation be tried again?
    result: Mapping[str, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.state is not OpState.RUNNING


class ResultMissing(ValueError):
    """A succeeded operation's result lacks what the contract says it must carry."""


@dataclass(frozen=True, slots=True)
class ProtectResult:
    """What a succeeded :meth:`StoragePlacement.protect` / :meth:`Failover.reprotect` returns."""

    #: the id of the new secondary, as the inventory will list it
    secondary_id: str

    def to_result(self) -> dict[str, str]:
        return {"secondary_id": self.secondary_id}

    @classmethod
    def read(cls, status: OperationStatus) -> ProtectResult | None:
        """The result, or None when the driver named no secondary (the core then looks)."""
        sid = status.result.get("secondary_id")
        return cls(str(sid)) if sid else None


@dataclass(frozen=True, slots=True)
class PromoteResult:
    """What a succeeded :meth:`Failover.promote` returns: the VM that now runs, and where."""

    #: the id the VM runs under now: the same id, or a new one where the platform makes one
    #: (a Proxmox standby clone's VMID, an oVirt VM registered from a DR domain)
    vm_id: str
    #: the host it runs on, when the platform says
    host: str | None = None

    def to_result(self) -> dict[str, str]:
        return {"vm_id": self.vm_id, **({"host": self.host} if self.host else {})}

    @classmethod
    def read(cls, status: OperationStatus, *, vm_id: str) -> PromoteResult:
        """The result; a driver that names no ``vm_id`` promoted the VM under its own id."""
        return cls(vm_id=str(status.result.get("vm_id") or vm_id), host=status.result.get("host") or None)


@dataclass(frozen=True, slots=True)
class TestFailoverResult:
    """What a succeeded :meth:`Failover.test_failover` returns: the test instance, and where."""

    __test__ = False  # not a pytest test class, whatever its name says

    #: what :meth:`Failover.cleanup_test` takes to remove everything the test made
    test_id: str
    host: str | None = None

    def to_result(self) -> dict[str, str]:
        return {"test_id": self.test_id, **({"host": self.host} if self.host else {})}

    @classmethod
    def read(cls, status: OperationStatus) -> TestFailoverResult:
        """The result. Raises ResultMissing when no test instance is named."""
        test_id = status.result.get("test_id")
        if not test_id:
            raise ResultMissing("test_failover succeeded but the driver named no test instance (test_id)")
        return cls(test_id=str(test_id), host=status.result.get("host") or None)


@dataclass(frozen=True, slots=True)
class RestartResult:
    """What a succeeded :meth:`Failover.restart` returns: the VM that runs again, and where."""

    #: the id it runs under now: the same, or a new one where the platform registers the VM
    #: again on a surviving host (vSphere: its .vmx, registered anew)
    vm_id: str
    host: str | None = None

    def to_result(self) -> dict[str, str]:
        return {"vm_id": self.vm_id, **({"host": self.host} if self.host else {})}

    @classmethod
    def read(cls, status: OperationStatus, *, vm_id: str) -> RestartResult:
        """The result; a driver that names no ``vm_id`` restarted the VM under its own id."""
        return cls(vm_id=str(status.result.get("vm_id") or vm_id), host=status.result.get("host") or None)


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    operation: Operation
    progress: float
    message: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass(frozen=True, slots=True)
class HealthReport:
    """What an endpoint can see of itself right now.

    ``hosts`` maps host ids (as the inventory lists them) to what the platform *reports*; a
    host the platform cannot reach is ``UNREACHABLE`` or ``UNKNOWN``, never ``DOWN``: only a
    report (powered off, fenced) proves a host runs nothing. ``datastores`` maps datastore ids
    to whether they are accessible.
    """

    hosts: Mapping[str, HostState]
    datastores: Mapping[str, bool]  # id -> accessible
    quorum: bool | None = None  # None: the platform has no such notion
    notes: tuple[str, ...] = ()


class Driver(abc.ABC):
    """One connection to one endpoint. Subclass it with the capability families you offer.

    Class attributes are declarations: the registry, ``ftbridge drivers show``, the docs'
    capability matrix and the conformance kit read them without opening anything.
    """

    #: equals the entry-point name in ``ftbridge.drivers`` (the registry checks)
    name: ClassVar[str]
    #: the contract versions this driver is written for, oldest and newest, inclusive. A driver
    #: that declares none is taken as written for contract 1 (before ranges existed).
    api_versions: ClassVar[tuple[int, int]] = (1, 1)
    #: validates the endpoint's ``[endpoints.NAME]`` table (extra="forbid")
    Config: ClassVar[type[DriverConfig]] = DriverConfig
    #: what the driver implements (:data:`CAPABILITY_METHODS`); ``probe()`` may narrow it
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: secondary mechanisms this driver can create or read, first = default
    mechanisms: ClassVar[Mapping[str, MechanismRules]] = {}
    #: False for drivers not exercised in the project's CI
    supported: ClassVar[bool] = True
    #: a sensible number of concurrent long operations against one endpoint
    default_concurrency: ClassVar[int] = 4
    #: True: the platform runs inside this interpreter (a simulator), so the driver's calls are
    #: CPU work under CPython's interpreter lock, not waits on a remote peer. An apply whose
    #: endpoints all say so runs its threads on one CPU (:mod:`ftbridge.apply.affinity`).
    in_process: ClassVar[bool] = False

    def __init__(self, config: DriverConfig, *, endpoint: str) -> None:
        """Keep the validated config and the endpoint's name. No I/O: nothing may connect,
        resolve or read a secret here (``ftbridge drivers show`` and the kit build drivers
        they never open)."""
        self.config = config
        self.endpoint = endpoint

    @abc.abstractmethod
    def open(self) -> None:
        """Connect and authenticate; read secrets now.

        Called once, before any other method.

        Raises:
            AuthenticationError: credentials refused, or the server's TLS certificate is not
                trusted.
            BackendUnavailable: the endpoint cannot be reached (refused, DNS, timeout, 5xx).
            ConfigError: a secret the config names cannot be read.

        Idempotent:
            Not required: the core opens each instance once.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection (log out, close sessions).

        Called once at the end, also after a failed :meth:`open` or without any ``open()``.

        Idempotent:
            Yes; a second call does nothing.

        Raises:
            Nothing, ever: errors are swallowed (and may be logged).
        """

    @abc.abstractmethod
    def probe(self) -> BackendInfo:
        """The platform's version, and what this site really supports now.

        Called first after :meth:`open` by the inventory service, once per inventory.

        Returns:
            BackendInfo: ``capabilities`` a subset of the class's; ``mechanisms`` the subset of
            the class's mechanisms this site offers (None: all of them).

        Raises:
            BackendUnavailable: the endpoint stopped answering.

        Idempotent:
            Yes: it only reads.
        """

    def poll(self, op: Operation) -> OperationStatus:
        """The current state of an operation, found by its handle alone.

        ``op`` may come from another instance in another process (the journal of a run that
        crashed): find it from ``op.id`` and ``op.data``, never from this instance's memory.
        Once ended, an operation keeps reporting the same end state and ``result`` for as long
        as the platform remembers it.

        Returns:
            OperationStatus: progress in 0..1 (1.0 once ended); on success the operation's
            ``result`` (:class:`PromoteResult` and the like); on failure the platform's words in
            ``message`` and whether the same operation may be tried again in ``retryable``.

        Raises:
            NotFound: the platform knows no such operation (any more).
            BackendUnavailable: the endpoint stopped answering (the core retries).
            UnsupportedOperation: the driver starts no long operations (the default).

        Idempotent:
            Yes: it only reads.
        """
        raise UnsupportedOperation(f"driver {self.name} starts no long operations", endpoint=self.endpoint)

    def pending_operations(self, vm_id: str) -> list[Operation]:
        """Operations still running on a VM, found from the platform itself.

        This is what makes a resumed apply run each action exactly once: when ftbridge crashed
        between starting an operation and journaling its handle, a new process asks this before
        starting the action again, and waits for what it finds instead. So it must list every
        operation *this driver started* on ``vm_id`` that the platform still runs, reading the
        platform (its task list, the VM's locks), never this instance's memory: a new instance,
        after a crash, must find what an earlier process started. Operations others started on
        the VM (a person in the platform's UI) may be listed too; the core waits for them.
        Every operation returned can be passed to :meth:`poll`, and its ``kind`` names the
        method that started it where the platform says so.

        The default returns nothing, which is right only for drivers that start no long
        operations: the conformance kit fails a driver that declares an operation capability
        and keeps it.

        Returns:
            list[Operation]: the running operations; empty when nothing runs.

        Raises:
            NotFound: no such VM (may also return an empty list).
            BackendUnavailable: the endpoint stopped answering.

        Idempotent:
            Yes: it only reads.
        """
        return []

    def wait(
        self,
        op: Operation,
        *,
        progress: ProgressCallback | None = None,
        timeout: float = 3600.0,
        interval: float = 0.2,
    ) -> OperationStatus:
        """Poll until the operation ends; report progress through the callback.

        A helper for tools and tests; the apply executor polls on its own schedule.

        Raises:
            OperationTimeout: still running after ``timeout`` seconds.
        """
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

    def estate_identity(self) -> str:
        """What names the estate this endpoint reaches, the same in every configuration and
        process that reaches it: the apply's lock is keyed by it, so two state directories (or
        two configs naming one vCenter differently) cannot run two applies on one estate.

        Called before :meth:`open` (no I/O: from the config alone).

        Returns:
            str: ``"<driver>:<canonical address>"``. Default: the driver's name and the config's
            ``url``, or ``host`` and ``port``, lowercased (scheme and path dropped, the port
            kept when the config gives one); ``"<driver>:endpoint:<name>"`` when the config has
            neither (then only configs using the same endpoint name meet). Override when the
            platform has a better identity (a cluster's nodes are one estate).

        Raises:
            Nothing.

        Idempotent:
            Yes: the same config gives the same identity.
        """
        url = getattr(self.config, "url", None)
        host = getattr(self.config, "host", None)
        port = getattr(self.config, "port", None)
        if isinstance(url, str) and url:
            rest = url.split("://", 1)[-1]
            address = rest.split("/", 1)[0].rsplit("@", 1)[-1]
        elif isinstance(host, str) and host:
            address = host.rsplit("@", 1)[-1] + (f":{port}" if isinstance(port, int) else "")
        else:
            return f"{self.name}:endpoint:{self.endpoint}"
        return f"{self.name}:{address.lower()}"

    def estate_lock_path(self) -> Path | None:
        """Where the estate's lock file lives when the estate itself has a place every process
        using it sees (the sim: beside its state file); None (default): the machine-wide lock
        directory, under a name derived from :meth:`estate_identity`.

        Called before :meth:`open` (no I/O).

        Returns:
            Path | None: a file path the core may create and ``flock``; None for the default.

        Raises:
            Nothing.

        Idempotent:
            Yes.
        """
        return None

    def __enter__(self) -> Driver:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StoragePlacement(abc.ABC):
    """Where a VM's files are, and moving them. Long operations return an :class:`Operation`.

    Every method that starts an operation checks what it can *before* starting (an unknown
    VM, disk or datastore raises :class:`~ftbridge.errors.NotFound`; what the platform refuses
    now raises :class:`~ftbridge.errors.Conflict`, in the platform's words) and returns the
    handle without waiting for the operation to end.
    """

    endpoint: str

    @abc.abstractmethod
    def inventory(self) -> InventoryPart:
        """Hosts, datastores and VMs with their disks and secondaries, in as few calls as possible.

        Every id is the platform's own and stable across calls and connections; every reference
        (``VM.host``, ``Disk.datastore``, ``Datastore.hosts``, a secondary's datastores) names
        an object of the same part. Sizes are bytes, counted as the platform counts them when
        it checks room:

        * ``Disk.size``: the provisioned (virtual) size; ``Disk.allocated``: the bytes the
          volume really takes now (None: as ``size``), never more than ``size``;
          ``Disk.thin``: the volume is thin provisioned.
        * ``Datastore.capacity`` and ``free`` (``0 <= free <= capacity``);
          ``Datastore.committed``: bytes provisioned on it, thin volumes at full size, when
          the platform reports it; ``Datastore.thin``: volumes moved here can stay thin;
          ``Datastore.reserve``: bytes the platform refuses to go below (``<= capacity``).
        * ``Datastore.hosts``: only the hosts that mount it *now*.
        * ``Host.state``: what the platform reports; only a report proves ``DOWN``.

        Returns:
            InventoryPart: this endpoint's objects (the core adds the endpoint's labels).

        Raises:
            BackendUnavailable: the endpoint stopped answering. A VM whose config cannot be
                read fully is listed with a ``warnings`` entry instead of failing the call.

        Idempotent:
            Yes: it only reads; two calls on an unchanged estate return the same objects.
        """

    def move_disk(self, vm_id: str, disk_id: str, datastore_id: str) -> Operation:
        """Move one primary disk of a VM to another datastore, the VM running or not.

        The source is deleted only after the copy succeeded; when the operation fails, the disk
        is where it was.

        Args:
            vm_id: a VM id from the inventory.
            disk_id: one of its ``Disk.id``.
            datastore_id: the target datastore's id.

        Returns:
            Operation: the handle; it succeeds once the disk lives on ``datastore_id``.

        Raises:
            NotFound: unknown VM, disk or datastore.
            Conflict: the platform refuses (no room, the VM is locked, FT is on, the target is
                not mounted by the VM's host), in the platform's words.
            UnsupportedOperation: the driver does not declare ``move_disk``.

        Idempotent:
            No; the core checks its postcondition (the disk already on the target) first.
        """
        raise UnsupportedOperation("move_disk is not supported", endpoint=self.endpoint)

    def move_vm(self, vm_id: str, datastore_id: str, *, host_id: str | None = None) -> Operation:
        """Move a VM's config and every movable disk to one datastore (and, with ``host_id``,
        the VM to that host).

        Returns:
            Operation: the handle; it succeeds once the config and every movable disk live on
            ``datastore_id`` (and the VM is on ``host_id`` when one was given).

        Raises:
            NotFound: unknown VM, datastore or host.
            Conflict: the platform refuses (no room, not mounted by the host, a host not up).
            UnsupportedOperation: the driver does not declare ``move_vm``.

        Idempotent:
            No; the core checks its postcondition first.
        """
        raise UnsupportedOperation("move_vm is not supported", endpoint=self.endpoint)

    def protect(self, vm_id: str, spec: SecondarySpec) -> Operation:
        """Create a secondary of ``spec.mechanism`` exactly where ``spec`` says.

        Returns:
            Operation: the handle; on success its ``result`` is a :class:`ProtectResult` naming
            the new secondary as the inventory lists it. The secondary may still be syncing
            when the operation ends; the core waits for ``in_sync`` through
            :meth:`replication_status`.

        Raises:
            NotFound: unknown VM, disk or datastore.
            Conflict: the platform or the mechanism's rules refuse (a mechanism this site does
                not offer, a kind of storage it cannot use, a limit reached).
            UnsupportedOperation: the driver does not declare ``protect``.

        Idempotent:
            No; the core looks for a matching secondary before calling it again.
        """
        raise UnsupportedOperation("protect is not supported", endpoint=self.endpoint)

    def unprotect(self, vm_id: str, secondary_id: str) -> Operation:
        """Remove one secondary and its files. The core calls this only once the VM has
        another verified copy (or the plan removes protection on purpose).

        Returns:
            Operation: the handle; it succeeds once the inventory no longer lists the secondary.

        Raises:
            NotFound: unknown VM or secondary.
            Conflict: the VM is locked by another operation.
            UnsupportedOperation: the driver does not declare ``unprotect`` (or cannot remove
                this kind of copy: array replication is the array's).

        Idempotent:
            No; the core checks the secondary is still there first.
        """
        raise UnsupportedOperation("unprotect is not supported", endpoint=self.endpoint)

    def live_state(self, hosts: Collection[str], datastores: Collection[str]) -> HealthReport:
        """The state of these hosts and datastores *now*: the apply reads it just before every
        step that changes the estate (a removal is refused while the VM's primary cannot be
        read), so it should be the cheapest call that answers.

        Args:
            hosts: host ids (as the inventory lists them) the step depends on.
            datastores: datastore ids the step depends on.

        Returns:
            HealthReport: at least the given ids (more is fine). A datastore the platform no
            longer lists is left out (the core then counts it as lost); a host it cannot reach
            is ``UNREACHABLE`` or ``UNKNOWN``. Default: :meth:`Failover.health` when the driver
            offers it, else a one-endpoint :meth:`inventory`. Override to read only the named
            objects when the platform allows it: steps running at once share a read only for
            the ids it asked for or reported, so a narrow read never vouches for the others.

        Raises:
            BackendUnavailable: the endpoint stopped answering.

        Idempotent:
            Yes: it only reads.
        """
        if isinstance(self, Failover):
            return self.health()
        part = self.inventory()
        return HealthReport(
            hosts={h.id: h.state for h in part.hosts},
            datastores={d.id: d.accessible for d in part.datastores},
        )

    def replication_status(self, vm_id: str) -> tuple[Secondary, ...]:
        """A VM's secondaries with fresh state and lag, cheaper than a full inventory.

        Returns:
            tuple[Secondary, ...]: the same secondaries (same ids) the inventory lists for the
            VM, with current ``state``, ``lag`` and ``last_sync``.

        Raises:
            NotFound: unknown VM.
            UnsupportedOperation: the driver does not declare ``replication_status``.

        Idempotent:
            Yes: it only reads.
        """
        raise UnsupportedOperation("replication_status is not supported", endpoint=self.endpoint)


class Failover(abc.ABC):
    """Bringing VMs up again: from their own files on another host, or from a secondary.

    For a secondary kept by another endpoint (``Secondary.target_endpoint``, oVirt DR), the core
    calls :meth:`promote`, :meth:`test_failover` and :meth:`cleanup_test` on the driver of the
    *target* endpoint, with the *source* VM id and the secondary id; those must then do
    whatever the platform needs first (attach or import a domain, register the VM) on the first
    call, and be idempotent.
    """

    endpoint: str

    @abc.abstractmethod
    def health(self) -> HealthReport:
        """Which hosts and datastores the platform reports up or reachable now.

        Returns:
            HealthReport: host and datastore ids as the inventory lists them.

        Raises:
            BackendUnavailable: the endpoint itself cannot be reached.

        Idempotent:
            Yes: it only reads.
        """

    def promote(self, vm_id: str, secondary_id: str, *, host_id: str | None = None, force: bool = False) -> Operation:
        """Run the VM from this secondary (on ``host_id``, or where the platform chooses).

        Refuses, before starting anything, while the primary still runs on a host the platform
        can reach, unless ``force``: two running copies of one VM (split brain) are worse than
        none. The core calls it only after a successful :meth:`fence`, or when the primary's
        host or storage is reported down, or when the operator forced it.

        Returns:
            Operation: the handle; on success its ``result`` is a :class:`PromoteResult`: the id
            the VM runs under now (the same or a new one) and its host.

        Raises:
            Conflict: the primary still runs (and not ``force``); the secondary is broken or on
                inaccessible storage; no host can run it.
            NotFound: unknown VM or secondary.
            UnsupportedOperation: the driver does not declare ``promote``.

        Idempotent:
            No; the core checks first whether the VM already runs from the secondary.
        """
        raise UnsupportedOperation("promote is not supported", endpoint=self.endpoint)

    def test_failover(self, vm_id: str, secondary_id: str, *, host_id: str | None = None) -> Operation:
        """Start a copy of the VM from this secondary, isolated (no production network), and
        leave the production VM and the secondary's replication untouched.

        Returns:
            Operation: the handle; on success its ``result`` is a :class:`TestFailoverResult`
            naming the test instance.

        Raises:
            Conflict: the secondary is broken or on inaccessible storage; no host can run it.
            NotFound: unknown VM or secondary.
            UnsupportedOperation: the driver does not declare ``test_failover``.

        Idempotent:
            No; the core journals the test id and cleans up before it tests again.
        """
        raise UnsupportedOperation("test_failover is not supported", endpoint=self.endpoint)

    def cleanup_test(self, vm_id: str, test_id: str) -> Operation:
        """Remove everything :meth:`test_failover` created for ``test_id`` (the test instance,
        its disks, anything attached for it), nothing else.

        Returns:
            Operation: the handle; it succeeds once the test instance is gone.

        Raises:
            NotFound: no such test instance (any more): the core counts that as done.
            UnsupportedOperation: the driver does not declare ``test_failover``.

        Idempotent:
            Yes: for a test instance already gone it raises NotFound or succeeds at once.
        """
        raise UnsupportedOperation("test_failover is not supported", endpoint=self.endpoint)

    def reprotect(self, vm_id: str, spec: SecondarySpec) -> Operation:
        """After a promote (or any time a VM lost its copy): give the VM a new secondary where
        ``spec`` says. Same promises as :meth:`StoragePlacement.protect`.

        Returns:
            Operation: the handle; on success its ``result`` is a :class:`ProtectResult`.

        Raises:
            NotFound: unknown VM, disk or datastore.
            Conflict: the platform or the mechanism's rules refuse.
            UnsupportedOperation: the driver does not declare ``reprotect``.

        Idempotent:
            No; the core looks for a matching secondary before calling it again.
        """
        raise UnsupportedOperation("reprotect is not supported", endpoint=self.endpoint)

    def fence(self, vm_id: str) -> Operation:
        """Make sure the primary does not run, so a copy may be promoted without split brain.

        Stops the VM (or has the platform fence its host) when the platform can; succeeds at
        once when the platform *reports* the VM stopped or its host down. The operation fails
        (or this raises Conflict) when the driver cannot prove it: a host that is merely
        unreachable, with no power management the platform accepts, is not fenced. The core
        then refuses the promotion unless forced. Never "fence" a host the platform does not
        report as failed in a way the platform would also accept.

        Returns:
            Operation: the handle; it succeeds once the primary is proven not to run.

        Raises:
            Conflict: the driver cannot make sure the primary is stopped.
            NotFound: unknown VM.
            UnsupportedOperation: the driver does not declare ``fence``.

        Idempotent:
            Yes: fencing a VM that does not run succeeds.
        """
        raise UnsupportedOperation("fence is not supported", endpoint=self.endpoint)

    def restart(self, vm_id: str, *, host_id: str | None = None) -> Operation:
        """Start the VM from its own primary files on a surviving host (``host_id``, or the
        platform's choice when None): no data is lost, unlike promoting a copy that lags.

        The core calls this only when the VM's host is proven down (or fenced by a successful
        :meth:`fence`) and its primary storage is intact and mounted by the target host. Where
        only the platform's HA may recover a guest (a PVE config moves off a dead node only
        through the HA manager), do it through that, and say so in the driver's README.

        Returns:
            Operation: the handle; on success its ``result`` is a :class:`RestartResult`: the
            id the VM runs under now (the same, or a new one where the platform registers it
            again) and the host it runs on.

        Raises:
            Conflict: the primary's storage is not reachable from any surviving host, or the
                platform refuses.
            NotFound: unknown VM or host.
            UnsupportedOperation: the driver does not declare ``restart``.

        Idempotent:
            Yes: if the VM already runs, on any host, the operation succeeds at once.
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


def overrides(cls: type, method: str) -> bool:
    """Does ``cls`` define ``method`` itself rather than inherit the contract's default?"""
    impl = getattr(cls, method, None)
    return impl is not None and impl is not getattr(Driver, method, None)
