"""The domain model: where every VM's files are, as plain frozen values.

Frozen dataclasses with slots keep 100k-VM estates cheap to build, hash and compare; pydantic
is used only at the edges (config, plan files). Every reference between objects is an id
local to one endpoint (``VM.host``, ``Disk.datastore``); :class:`~ftbridge.inventory.Inventory`
resolves them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
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
        return getattr(self, _ATTR[level])  # type: ignore[no-any-return]

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
_ATTR = {lvl: lvl.value for lvl in Level}  # Level.value is an enum property: slow in hot loops


def _differ(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a != b


class HostState(str, enum.Enum):
    """What the platform says of a host. Only ``DOWN`` proves the host runs nothing.

    ``UNREACHABLE`` (management cannot reach it: not responding, disconnected, connecting, a node
    offline without a fencing record) and ``UNKNOWN`` (not reported) prove nothing: such a host
    may still run its VMs, so failover must fence it (or be forced) before promoting a copy.
    """

    UP = "up"
    MAINTENANCE = "maintenance"
    DOWN = "down"  # reported down, powered off or fenced by the platform
    UNREACHABLE = "unreachable"
    UNKNOWN = "unknown"

    @property
    def proven_down(self) -> bool:
        return self is HostState.DOWN


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
    #: the capabilities ``probe()`` found at this site (None: what the driver class declares)
    capabilities: tuple[str, ...] | None = None


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
    #: what it may hold (None: anything), matched against :attr:`Disk.content`; a Proxmox
    #: storage without ``images`` takes no VM disk, one without ``rootdir`` no container volume
    content: frozenset[str] | None = None
    #: volumes moved here can stay thin (then a thin disk needs only its allocated bytes)
    thin: bool = False
    #: bytes provisioned on it (thin volumes at full size), when the platform reports it
    committed: int | None = None
    #: bytes the platform refuses to go below (oVirt's low-space blocker); never planned into
    reserve: int = 0

    @property
    def used(self) -> int:
        return self.capacity - self.free

    def holds(self, content: str) -> bool:
        """May a volume of this content live here?"""
        return self.content is None or content in self.content


@dataclass(frozen=True, slots=True)
class Disk:
    """One virtual disk of a VM, where its primary file lives."""

    id: str  # the platform's slot or key: "scsi0", "2000", an oVirt disk id
    size: int  # bytes
    datastore: str  # datastore id
    path: str = ""  # as the platform writes it: "[ds1] vm/vm.vmdk", "ceph-a:vm-100-disk-0"
    movable: bool = True  # LUNs, RDMs, pass-through devices are not
    #: disk | efidisk | tpmstate | cloudinit | lun | rdm | passthrough | rootfs | mountpoint
    kind: str = "disk"
    #: what a target datastore must accept (:meth:`Datastore.holds`): "images", "rootdir"
    content: str = "images"
    allocated: int | None = None  # bytes really used; None: as ``size``
    thin: bool = False
    #: ids of the *other* VMs of this endpoint that attach this very disk (shareable disks):
    #: protected once for all of them, never split from them
    shared_by: tuple[str, ...] = ()

    @property
    def used(self) -> int:
        """Bytes the disk really takes: ``allocated`` when known, else its size."""
        return self.size if self.allocated is None else self.allocated

    def space_on(self, target: Datastore) -> int:
        """Bytes a copy of this disk takes on ``target``: thin stays thin only where it can."""
        return self.used if self.thin and target.thin else self.size


@dataclass(frozen=True, slots=True)
class Dependency:
    """Storage a VM needs to run that is not one of its own movable files.

    A linked clone's base disk or a template's disk (``base-disk``), a mounted ISO image
    (``iso``), an HA lease (``lease``): the VM dies with that datastore, so it is part of the
    primary's location, but plans never move it.
    """

    kind: str
    datastore: str
    path: str = ""


@dataclass(frozen=True, slots=True)
class Network:
    """A network VMs attach to: a port group, a Linux bridge, an SDN vnet, an oVirt network."""

    id: str
    name: str
    endpoint: str
    kind: str  # portgroup | dvportgroup | bridge | vnet | ovirt-network | vnic-profile | ...
    vlan: int | None = None
    hosts: tuple[str, ...] = ()  # hosts where it is available; empty: unknown or every host


@dataclass(frozen=True, slots=True)
class Nic:
    """One network interface of a VM."""

    id: str  # the platform's key or slot: "4000", "net0", a vNIC id
    network: str | None  # a Network id of the same endpoint; None: not connected or unknown
    mac: str = ""
    model: str = ""


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
    #: ids of primary disks this copy does not hold (a LUN a disk copy cannot copy): a partial
    #: copy never counts as a whole one
    missing: tuple[str, ...] = ()
    #: why the platform says it is not in sync (broken, stale), in its words, when it says
    reason: str = ""

    @property
    def datastores(self) -> frozenset[str]:
        """The datastores holding this copy's own files (config and disks)."""
        ids = {d.datastore for d in self.disks}
        if self.config_datastore:
            ids.add(self.config_datastore)
        return frozenset(ids)

    @property
    def needed_datastores(self) -> frozenset[str]:
        """Every datastore it needs to take over: its files and the FT tie-breaker's (without it
        an FT secondary cannot go live)."""
        if self.metadata_datastore:
            return self.datastores | {self.metadata_datastore}
        return self.datastores


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
    #: storage it needs that is not its own (base disks, ISO images, leases)
    depends_on: tuple[Dependency, ...] = ()
    #: an extension or agent runs it (vCLS, a hosted engine): plans leave it alone, saying this
    managed_by: str | None = None
    cluster: str | None = None  # when known; the cluster of its host otherwise
    uuid: str = ""  # the platform's instance or BIOS uuid, when known
    nics: tuple[Nic, ...] = ()

    @property
    def primary_datastores(self) -> frozenset[str]:
        """The datastores holding its own files (config and disks): what plans may move."""
        ids = {d.datastore for d in self.disks}
        if self.config_datastore:
            ids.add(self.config_datastore)
        return frozenset(ids)

    @property
    def needed_datastores(self) -> frozenset[str]:
        """Every datastore it needs to run: its own files plus what it depends on."""
        if not self.depends_on:
            return self.primary_datastores
        return self.primary_datastores | {d.datastore for d in self.depends_on}

    @property
    def size(self) -> int:
        return sum(d.size for d in self.disks)

    def may_run(self, host: Host | None) -> bool:
        """Could this VM's primary still be running on ``host`` (its host, as the platform
        reports it)? Only a host reported down, or a power-off reported through a host that
        answers (or by a platform that has no host for it), proves it does not: an unreachable
        host may keep running what it ran, so promoting a copy then needs a fence or a force."""
        if host is not None and host.state.proven_down:
            return False
        if self.power is PowerState.OFF and (host is None or host.state in (HostState.UP, HostState.MAINTENANCE)):
            return False
        return True

    def primary_unreadable(self, host: Host | None, datastore: Callable[[str], Datastore | None]) -> str | None:
        """Why this VM's primary cannot be read now (None: it can), given its host and a lookup
        of this endpoint's datastores as the platform reports them now. Readable means every
        datastore it needs (:attr:`needed_datastores`, the storage of its location) exists and is
        accessible, and its host, when it has one, answers (up or in maintenance). Unknown proves
        nothing: a datastore the platform no longer lists, a host unreachable or not reported.
        No copy of a VM may be removed while this says why not: it may be the only one left."""
        for ds_id in sorted(self.needed_datastores):
            d = datastore(ds_id)
            if d is None:
                return f"datastore {ds_id} it needs is no longer listed"
            if not d.accessible:
                return f"datastore {d.name} it needs is not accessible"
        if self.host is not None and (host is None or host.state not in (HostState.UP, HostState.MAINTENANCE)):
            return f"its host {host.name if host else self.host} is {host.state.value if host else 'not listed'}"
        return None


#: the levels hosts lie in (a group of hosts can fall in one domain): sites, rooms, hosts
_SPLIT_LEVELS = frozenset({Level.SITE, Level.ROOM, Level.HOST})


@dataclass(frozen=True, slots=True)
class Place:
    """One thing a copy needs: a host that can run it, or a datastore holding its files.

    ``domain`` carries every label known for it (a host's own name at ``host`` level; a local
    datastore's sole host there too). ``shared``: a datastore several hosts mount, which the
    loss of one host does not take with it.
    """

    kind: str  # "host" | "datastore"
    name: str
    domain: FailureDomain
    shared: bool = True


@dataclass(frozen=True, slots=True)
class Location:
    """Where one copy of a VM lives: compute plus storage.

    A copy runs while *one* of its ``hosts`` and *every* one of its ``stores`` survive. The
    primary's hosts are its own and, when HA is on, those HA may restart it on; a secondary's
    is its own host where the mechanism pins one, else any host that mounts all its storage.
    No hosts at all means nothing can run it.

    This is the one place that answers "separated?": the audit, the planner, revalidation,
    failover and migration all ask :meth:`shared_failure`.
    """

    hosts: tuple[Place, ...]
    stores: tuple[Place, ...]

    def _killers(self, level: Level) -> list[tuple[Place, ...]]:
        """Groups of places whose loss, all in one domain at ``level``, kills this copy.

        Any one store is such a group; so is the whole set of hosts. Hosts sit in sites and rooms
        (and are hosts), not in arrays or datastores, so an array's loss never takes compute; one
        host's loss takes only the storage local to it.
        """
        out: list[tuple[Place, ...]] = [(s,) for s in self.stores if level is not Level.HOST or not s.shared]
        if not self.hosts:
            out.append(())  # it runs nowhere: any failure finds it dead
        elif level in _SPLIT_LEVELS:  # the levels hosts lie in
            out.append(self.hosts)
        return out

    def shared_failure(
        self, other: Location, level: Level, names: tuple[str, str] = ("primary", "secondary")
    ) -> str | None:
        """None when the loss of any one domain at ``level`` leaves one of the two copies whole;
        otherwise, in words, a loss that takes both (the evidence the audit shows).

        Unknown labels prove nothing: a place whose label is unknown may lie in any domain.
        """
        others = other._killers(level)
        for mine in self._killers(level):
            for theirs in others:
                labels = _one_domain((*mine, *theirs), level)
                if labels is not None:
                    return (
                        f"losing {_domain_words(labels, level)} takes "
                        f"{_what(mine, names[0])} and {_what(theirs, names[1])}"
                    )
        return None

    def separated_from(self, other: Location, level: Level) -> bool:
        return self.shared_failure(other, level) is None

    def culprits(self, other: Location, level: Level) -> tuple[frozenset[Place], frozenset[Place]]:
        """The places of each copy that take part in some loss that takes both: what to move.

        A copy's hosts appear here only when the whole group can fall in one domain; then
        moving storage alone cannot separate the pair.
        """
        mine: set[Place] = set()
        theirs: set[Place] = set()
        others = other._killers(level)
        for a in self._killers(level):
            for b in others:
                if _one_domain((*a, *b), level) is not None:
                    mine.update(a)
                    theirs.update(b)
        return frozenset(mine), frozenset(theirs)

    def split(self, level: Level) -> str | None:
        """None unless this copy's compute and its storage lie in different domains at
        ``level``; then, in words, two losses each of which stops it (a VM run in one site from
        storage in another dies with either site, and no second site can hold a copy that
        survives both). Storage spread over several domains alone is not a split: a separated
        secondary covers it. Only known labels prove a split."""
        if not self.hosts or not Location.may_split(level):
            return None
        killers = [k for k in self._killers(level) if k and _one_domain(k, level) is not None]
        hosts = [k for k in killers if k[0].kind == "host"]
        for a in hosts:
            for b in killers:
                if b is not a and _one_domain((*a, *b), level) is None:
                    da, db = _one_domain(a, level), _one_domain(b, level)
                    assert da is not None and db is not None
                    return (
                        f"{_what(a, 'VM')} lies in {_domain_words(da, level)} and {_what(b, 'VM')} in "
                        f"{_domain_words(db, level)}: losing either stops it"
                    )
        return None

    @staticmethod
    def may_split(level: Level) -> bool:
        """Can any copy be split at ``level``? Only where a group of hosts can fall in one
        domain (site, room, host; see :meth:`_killers`): an array or a datastore holds no host,
        so :meth:`split` is None at those levels whatever the location."""
        return level in _SPLIT_LEVELS

    def domain_of_hosts(self, level: Level) -> FailureDomain | None:
        """The one domain at ``level`` that holds every host of this copy, as far as labels
        tell (None when they span several): where its storage should live."""
        labels = _one_domain(self.hosts, level) if self.hosts else None
        if labels is None:
            return None
        return FailureDomain(**{lvl.value: v for lvl, v in labels.items() if v is not None})


def _levels_to(level: Level) -> tuple[Level, ...]:
    if level is Level.HOST:
        return (Level.HOST,)
    return NESTED_LEVELS[: NESTED_LEVELS.index(level) + 1]


_LEVELS_TO = {level: tuple((lvl, lvl.value) for lvl in _levels_to(level)) for level in Level}


def _one_domain(places: tuple[Place, ...], level: Level) -> dict[Level, str | None] | None:
    """The labels of one domain at ``level`` that may hold all ``places``, or None if none can."""
    labels: dict[Level, str | None] = {}
    for lvl, attr in _LEVELS_TO[level]:
        value: str | None = None
        for p in places:
            v = getattr(p.domain, attr)
            if v is not None:
                if value is None:
                    value = v
                elif v != value:
                    return None
        labels[lvl] = value
    return labels


def _domain_words(labels: dict[Level, str | None], level: Level) -> str:
    value = labels.get(level)
    if value is not None:
        return f"{level.value} {value}"
    return f"one {level.value} (its label is unknown)"


def _what(group: tuple[Place, ...], who: str) -> str:
    if not group:
        return f"the {who} (no host can run it)"
    if len(group) == 1:
        return f"the {who}'s {group[0].kind} {group[0].name}"
    names = ", ".join(p.name for p in group[:3]) + (", ..." if len(group) > 3 else "")
    return f"every host that can run the {who} ({names})"
