"""The lab engine's objects: what an oVirt engine keeps in its database, as plain records.

Seeded from an ftbridge estate with deterministic UUIDs (uuid5 of the estate's ids), so a test
can name an object before the lab starts and two labs of one estate agree.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

NS = uuid.UUID("6f0f6c1e-2b3a-5c7d-9e1f-0a1b2c3d4e5f")


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
    status: str = "up"  # up | maintenance | non_responsive | ...
    spm_priority: int = 5
    memory: int = 256 << 30
    estate_id: str = ""


@dataclass
class Domain:
    id: str
    name: str
    dc: str | None
    storage_type: str  # nfs | iscsi | fcp | glusterfs | localfs | posixfs | managed_block_storage
    capacity: int
    reserved: int = 0  # space held by things outside the lab's disks (OVF stores, other data)
    type: str = "data"
    status: str = "active"  # as the data center sees it: active | inactive | maintenance
    host: str | None = None  # the one host of a local domain
    address: str = ""
    path: str = ""
    estate_id: str = ""


@dataclass
class Disk:
    id: str
    alias: str
    size: int
    domain: str
    status: str = "ok"  # ok | locked | illegal
    description: str = ""
    storage_type: str = "image"
    moving_to: str | None = None  # target domain of a move in progress (space held on both)
    estate_id: str = ""


@dataclass
class Attachment:
    disk: str
    interface: str = "virtio_scsi"
    bootable: bool = False
    active: bool = True


@dataclass
class Nic:
    id: str
    name: str
    plugged: bool = True
    linked: bool = True
    profile: str | None = None


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
    estate_id: str = ""
    #: status to come back to when an injected fault is lifted
    before_fault: str | None = None


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
