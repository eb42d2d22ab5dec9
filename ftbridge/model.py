"""The domain model: where every VM's files are, as plain frozen values.

Frozen dataclasses with slots keep 100k-VM estates cheap to build, hash and compare; pydantic
is used only at the edges (config, plan files). Every reference between objects is an id
local to one endpoint (``VM.host``, ``Disk.datastore``); :class:`~ftbridge.inventory.Inventory`
resolves them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace


class Level(str, enum.Enum):
    """Failure-domain levels. ``SITE > ROOM > ARRAY > DATASTORE`` nest; ``HOST`` stands apart."""

    SITE = "site"
    ROOM = "room"
    ARRAY = "array"
    DATASTORE = "datastore"
    HOST = "host"


#: The nested levels, outermost first. Separation at a level implies it at every inner one.
NESTED_LEVELS: tuple[Level, ...] = (Level.SITE, Level.ROOM, Level.ARRAY, Level.DATASTORE)


@dataclass(frozen=True, slots=True)
class FailureDomain:
    """Labels of one location. ``None`` means unknown, never "the same as anything"."""

    site: str | None = None
    room: str | None = None
    array: str | None = None
    datastore: str | None = None
    host: str | None = None

    def label(self, level: Level) -> str | None:
        return getattr(self, level.value)  # type: ignore[no-any-return]

    def merged(self, labels: Mapping[str, str]) -> FailureDomain:
        """These labels overridden by ``labels`` (operator config wins over the driver)."""
        return replace(self, **{k: v for k, v in labels.items() if k in _LEVEL_NAMES})

    def separated_at(self, other: FailureDomain, level: Level) -> bool:
        """True when the two locations differ at ``level`` or at any nested level above it.

        Unknown labels prove nothing: two locations whose labels are unknown at every level
        that matters are *not* separated. That is the safe answer for a tool whose job is to
        find secondaries that would die with their primary.
        """
        if level is Level.HOST:
            return _differ(self.host, other.host)
        for lvl in NESTED_LEVELS:
            if _differ(self.label(lvl), other.label(lvl)):
                return True
            if lvl is level:
                break
        return False

    def as_dict(self) -> dict[str, str]:
        return {lvl.value: v for lvl in Level if (v := self.label(lvl)) is not None}


_LEVEL_NAMES = frozenset(lvl.value for lvl in Level)


def _differ(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a != b


class HostState(str, enum.Enum):
    UP = "up"
    MAINTENANCE = "maintenance"
    DOWN = "down"
    UNKNOWN = "unknown"


class PowerState(str, enum.Enum):
    ON = "on"
    OFF = "off"
    SUSPENDED = "suspended"
    UNKNOWN = "unknown"


class SecondaryState(str, enum.Enum):
    """How far a secondary can be trusted. Only ``IN_SYNC`` counts as a verified copy."""

    IN_SYNC = "in_sync"
    SYNCING = "syncing"
    STALE = "stale"
    BROKEN = "broken"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    name: str
    driver: str
    version: str = ""
    #: the secondary mechanisms this endpoint offers, preferred first (planner picks from these)
    mechanisms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Host:
    id: str
    name: str
    endpoint: str
    cluster: str | None = None
    state: HostState = HostState.UP
    domain: FailureDomain = field(default_factory=FailureDomain)
    memory: int = 0  # bytes; 0 = unknown (failover then cannot check room on survivors)


@dataclass(frozen=True, slots=True)
class Datastore:
    id: str
    name: str
    endpoint: str
    kind: str  # vmfs, nfs, vsan, rbd, zfspool, lvm, iscsi, fcp, dir, ...
    shared: bool
    hosts: tuple[str, ...]  # ids of the hosts that mount it
    capacity: int  # bytes
    free: int  # bytes
    accessible: bool = True
    domain: FailureDomain = field(default_factory=FailureDomain)

    @property
    def used(self) -> int:
        return self.capacity - self.free


@dataclass(frozen=True, slots=True)
class Disk:
    """One virtual disk of a VM, where its primary file lives."""

    id: str  # the platform's slot or key: "scsi0", "2000", an oVirt disk id
    size: int  # bytes
    datastore: str  # datastore id
    path: str = ""  # as the platform writes it: "[ds1] vm/vm.vmdk", "ceph-a:vm-100-disk-0"
    movable: bool = True  # pass-through devices and the like are not
    kind: str = "disk"  # disk | efidisk | tpmstate | cloudinit | ...


@dataclass(frozen=True, slots=True)
class SecondaryDisk:
    disk: str  # id of the primary Disk it copies
    datastore: str
    path: str = ""
    size: int = 0


@dataclass(frozen=True, slots=True)
class Secondary:
    """A second copy of a VM: FT secondary, replica, or managed copy."""

    id: str
    mechanism: str  # vsphere-ft, pve-replication, pve-standby, ovirt-copy, ovirt-dr, sim-copy
    disks: tuple[SecondaryDisk, ...]
    config_datastore: str | None = None
    host: str | None = None
    state: SecondaryState = SecondaryState.IN_SYNC
    last_sync: float | None = None  # epoch seconds
    lag: float | None = None  # seconds behind the primary, when known
    metadata_datastore: str | None = None  # vSphere FT tie-breaker file
    target_endpoint: str | None = None  # for copies kept by another endpoint (oVirt DR)

    @property
    def datastores(self) -> frozenset[str]:
        ids = {d.datastore for d in self.disks}
        if self.config_datastore:
            ids.add(self.config_datastore)
        return frozenset(ids)


@dataclass(frozen=True, slots=True)
class VM:
    id: str
    name: str
    endpoint: str
    host: str | None
    power: PowerState
    disks: tuple[Disk, ...]
    config_datastore: str | None = None
    config_path: str = ""
    secondaries: tuple[Secondary, ...] = ()
    tags: tuple[str, ...] = ()
    vcpus: int = 1
    memory: int = 0  # bytes
    ha: bool = False  # restarted by the platform's HA on another host
    warnings: tuple[str, ...] = ()  # what the driver could not read (unknown disk lines, ...)
    #: the endpoint's mechanisms that can protect this VM (None: all of them); a container or a
    #: VM with a pass-through disk may not be copyable where a VM on shared storage is
    mechanisms: tuple[str, ...] | None = None

    @property
    def primary_datastores(self) -> frozenset[str]:
        ids = {d.datastore for d in self.disks}
        if self.config_datastore:
            ids.add(self.config_datastore)
        return frozenset(ids)

    @property
    def size(self) -> int:
        return sum(d.size for d in self.disks)
