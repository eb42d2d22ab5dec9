"""The lab engine's objects: what an oVirt engine keeps in its database, as plain records.

Seeded from an ftbridge estate with deterministic UUIDs (uuid5 of the estate's ids), so a test
can name an object before the lab starts and two labs of one estate agree.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

NS = uuid.UUID("6f0f6c1e-2b3a-5c7d-9e1f-0a1b2c3d4e5f")
BLANK = "00000000-0000-0000-0000-000000000000"  # the engine's Blank template
GIB = 1024**3


def lab_uuid(estate: str, kind: str, key: str) -> str:
    """The lab's id for an estate object: stable across runs and labs."""
    return str(uuid.uuid5(NS, f"{estate}/{kind}/{key}"))


@dataclass
class DataCenter:
    id: str
    name: str
    local: bool = False


@dataclass
class Cluster:
    id: str
    name: str
    dc: str


@dataclass
class Host:
    id: str
    name: str
    cluster: str
    #: the API's HostStatus: up | maintenance | non_responsive | connecting | non_operational | down | ...
    status: str = "up"
    spm_priority: int = 5
    memory: int = 256 << 30
    pm: bool = False  # power management (a fence agent) configured and enabled
    estate_id: str = ""


@dataclass
class Domain:
    id: str
    name: str
    dc: str | None
    #: nfs | iscsi | fcp | glusterfs | localfs | posixfs | managed_block_storage
    storage_type: str
    capacity: int
    reserved: int = 0  # space held by things outside the lab's disks (OVF stores, other data)
    type: str = "data"
    status: str = "active"  # as the data center sees it: active | inactive | maintenance
    host: str | None = None  # the one host of a local domain
    address: str = ""
    path: str = ""
    vfs_type: str = ""
    port: int = 3260
    targets: list[str] = field(default_factory=list)
    critical_space: int = 5  # GiB: critical_space_action_blocker
    warning_low_space: int = 10  # percent: warning_low_space_indicator
    wipe_after_delete: bool = False
    discard_after_delete: bool = False
    backup: bool = False
    master: bool = False
    #: known to the engine; False for an array replica nobody has imported yet
    imported: bool = True
    estate_id: str = ""

    @property
    def file_based(self) -> bool:
        return self.storage_type in ("nfs", "glusterfs", "posixfs", "localfs")

    @property
    def block_based(self) -> bool:
        return self.storage_type in ("iscsi", "fcp")


@dataclass
class Lun:
    """A LUN of a storage array the hosts see: what a direct-LUN disk uses."""

    id: str  # the WWID, as the engine's logical unit id
    size: int
    storage_type: str = "iscsi"  # iscsi | fcp
    address: str = ""
    port: int = 3260
    target: str = ""
    estate_id: str = ""


@dataclass
class Disk:
    id: str
    alias: str
    size: int
    domain: str | None  # None for a direct LUN
    status: str = "ok"  # ok | locked | illegal
    description: str = ""
    storage_type: str = "image"  # image | lun | managed_block_storage
    content_type: str = "data"  # data | hosted_engine | ovf_store | ...
    shareable: bool = False
    sparse: bool = True
    format: str = "cow"  # cow | raw
    actual: int | None = None  # bytes really used (None: as size)
    lun: str | None = None  # the Lun id of a direct-LUN disk
    base: str | None = None  # the template disk this disk's image chain starts from
    template: str | None = None  # the template owning this disk (a template disk)
    moving_to: str | None = None  # target domain of a move in progress (space held on both)
    estate_id: str = ""

    @property
    def used(self) -> int:
        return self.size if self.actual is None else self.actual


@dataclass
class Attachment:
    disk: str
    interface: str = "virtio_scsi"
    bootable: bool = False
    active: bool = True  # plugged


@dataclass
class Network:
    id: str
    name: str
    dc: str
    vlan: int | None = None


@dataclass
class Profile:
    """A vNIC profile: what a VM's NIC attaches to."""

    id: str
    name: str
    network: str


@dataclass
class Nic:
    id: str
    name: str
    plugged: bool = True
    linked: bool = True
    profile: str | None = None
    mac: str = ""
    #: network and profile names as an OVF writes them (ids differ at another engine)
    ovf_network: str = ""
    ovf_profile: str = ""


@dataclass
class Snapshot:
    id: str
    description: str
    date: float
    status: str = "locked"  # locked | ok
    #: disk id -> the image id that holds the disk's data as of this snapshot
    images: dict[str, str] = field(default_factory=dict)


@dataclass
class Template:
    id: str
    name: str
    cluster: str
    attachments: list[Attachment] = field(default_factory=list)
    status: str = "ok"


@dataclass
class Vm:
    id: str
    name: str
    cluster: str
    status: str = "down"
    host: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    nics: list[Nic] = field(default_factory=list)
    ha: bool = False
    lease: str | None = None  # storage domain id
    memory: int = 1 << 30
    vcpus: int = 1
    tags: list[str] = field(default_factory=list)
    description: str = ""
    stateless: bool = False
    origin: str = "ovirt"  # ovirt | managed_hosted_engine | hosted_engine | ...
    template: str = BLANK
    snapshots: list[Snapshot] = field(default_factory=list)
    estate_id: str = ""
    #: status to come back to when an injected fault is lifted
    before_fault: str | None = None

    @property
    def hosted_engine(self) -> bool:
        return self.origin in ("hosted_engine", "managed_hosted_engine")


@dataclass
class Job:
    id: str
    correlation_id: str | None
    description: str
    start: float
    deadline: float
    status: str = "started"  # started | finished | failed | aborted
    end: float | None = None
    fail: bool = False
    on_finish: Callable[[], None] | None = None
    on_fail: Callable[[], None] | None = None
    #: held by the lab (``OvirtLab.hold_jobs``): it runs until released, whatever its deadline
    held: bool = False


@dataclass
class Event:
    """One audit-log entry, as ``/events`` shows it (api-model ``types/Event.java``): the engine
    logs one for each command it executes, with the command's correlation id and the objects it
    names (dal ``AuditLogable.java``, bll ``CommandBase.logCommand``)."""

    index: int
    code: int
    description: str
    time: float
    correlation_id: str | None
    severity: str = "normal"
    vm: str | None = None
    host: str | None = None
    storage_domain: str | None = None


@dataclass
class OvfEntity:
    """A VM or template as the OVF store of a domain describes it: what an imported domain offers
    for registration. ``status`` is the VM's status when the OVF was last written."""

    kind: str  # vm | template
    id: str
    name: str
    obj: Vm | Template
    disks: list[Disk] = field(default_factory=list)
    status: str = "down"
    cluster_name: str = ""


@dataclass
class Registration:
    """``registration_configuration`` of a register action: what to map to what."""

    clusters: dict[str, str] = field(default_factory=dict)  # source cluster name -> target name
    #: (source network name, source profile name) -> target profile id ("" for no profile)
    profiles: dict[tuple[str, str], str] = field(default_factory=dict)
    luns: dict[str, str] = field(default_factory=dict)  # source logical unit id -> target one
