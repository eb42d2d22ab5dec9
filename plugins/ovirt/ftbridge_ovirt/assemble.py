"""From what the engine answered to ftbridge's model: pure functions, no I/O.

The engine's shapes map onto the model like this:

* storage domain (data, or managed block storage: the API writes no ``<type>`` for those,
  StorageDomainMapper.java) attached to a data center -> ``Datastore``; ``kind`` is the storage
  type; shared unless ``localfs``; ``hosts`` are the hosts of its data center that are up while it
  is active (the engine makes a host that cannot reach an active domain non-operational), none
  when it is not; ``reserve`` is its critical-space blocker; the hosted engine's domain takes
  nothing (``content`` empty). A direct LUN is a ``Datastore`` of kind ``lun`` holding that LUN
  only (its WWID is its id; nothing may be placed on it).
* host -> ``Host``, its status mapped by :data:`HOST_STATES` (README: "Host states").
* VM -> ``VM``: image disks (``follow=disk_attachments.disk``) and direct LUNs are its disks; a
  shareable disk lists the other VMs attaching it in ``shared_by``; its lease and template disks
  are ``depends_on``; the hosted engine is ``managed_by`` its HA agent; NICs point at vNIC profiles.
* ftbridge's copies (floating disks named by :mod:`.naming`) -> ``ovirt-copy`` secondaries that
  hold every copyable disk and lack (``missing``) the shareable disks and the LUNs.
* A VM whose image disks all sit on domains paired in ``dr_storage_mappings`` -> an ``ovirt-dr``
  secondary at ``dr_secondary_endpoint`` (the replica keeps the domain's UUID).
"""

from __future__ import annotations

import fnmatch
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ftbridge.inventory import InventoryPart
from ftbridge.model import (
    VM,
    Datastore,
    Dependency,
    Disk,
    FailureDomain,
    Host,
    HostState,
    Network,
    Nic,
    PowerState,
    Secondary,
    SecondaryDisk,
    SecondaryState,
)
from ftbridge_ovirt.client import value
from ftbridge_ovirt.config import StorageMapping
from ftbridge_ovirt.naming import parse_copy_alias, parse_internal_description

GIB = 1024**3
SHARED_TYPES = frozenset({"nfs", "iscsi", "fcp", "glusterfs", "posixfs", "managed_block_storage", "cinder"})
#: the API's HostStatus (ovirt-engine-api-model types/HostStatus.java) as ftbridge reads it: only
#: what the engine reports powered off or fenced is DOWN; a host the engine cannot reach, or that
#: lost storage or a network, usually still runs its VMs, so it is UNREACHABLE
HOST_STATES = {
    "up": HostState.UP,
    "maintenance": HostState.MAINTENANCE,
    "preparing_for_maintenance": HostState.MAINTENANCE,
    "installing": HostState.MAINTENANCE,
    "install_failed": HostState.MAINTENANCE,
    "installing_os": HostState.MAINTENANCE,
    "initializing": HostState.MAINTENANCE,
    "unassigned": HostState.MAINTENANCE,
    "pending_approval": HostState.MAINTENANCE,
    "error": HostState.MAINTENANCE,
    "non_responsive": HostState.UNREACHABLE,
    "connecting": HostState.UNREACHABLE,
    "non_operational": HostState.UNREACHABLE,
    "down": HostState.DOWN,
    "reboot": HostState.DOWN,
    "kdumping": HostState.DOWN,
}
#: host states whose storage connections are up (the hosts that mount an active domain)
MOUNTING = frozenset({"up", "preparing_for_maintenance"})
POWER = {
    "up": PowerState.ON,
    "powering_up": PowerState.ON,
    "wait_for_launch": PowerState.ON,
    "reboot_in_progress": PowerState.ON,
    "migrating": PowerState.ON,
    "powering_down": PowerState.ON,
    "down": PowerState.OFF,
    "image_locked": PowerState.OFF,
    "suspended": PowerState.SUSPENDED,
    "saving_state": PowerState.SUSPENDED,
    "restoring_state": PowerState.SUSPENDED,
    "paused": PowerState.SUSPENDED,
}
#: VM states in which a process may exist on some host
MAY_RUN = frozenset(
    {
        "up",
        "powering_up",
        "wait_for_launch",
        "reboot_in_progress",
        "migrating",
        "powering_down",
        "paused",
        "unknown",
        "not_responding",
        "saving_state",
        "restoring_state",
    }
)
HOSTED_ENGINE_ORIGINS = frozenset({"hosted_engine", "managed_hosted_engine"})
HOSTED_ENGINE_CONTENT = frozenset(
    {"hosted_engine", "hosted_engine_sanlock", "hosted_engine_metadata", "hosted_engine_configuration"}
)
HOSTED_STORAGE = "hosted_storage"  # the name the engine's setup gives it, and the DR role matches
MANAGED_BY = "ovirt-ha-agent (the hosted engine)"
BLANK_TEMPLATE = "00000000-0000-0000-0000-000000000000"
#: QCOW_OVERHEAD_FACTOR (ovirt-engine StorageConstants.java): a cloned qcow2 volume's reservation
QCOW_OVERHEAD = 1.1


@dataclass
class Scope:
    """The engine objects in the configured data-center/cluster scope, indexed."""

    dcs: dict[str, Any] = field(default_factory=dict)
    clusters: dict[str, Any] = field(default_factory=dict)  # id -> cluster
    hosts: dict[str, Any] = field(default_factory=dict)  # id -> host
    domains: dict[str, Any] = field(default_factory=dict)  # id -> storage domain (DC view)
    domain_dc: dict[str, str] = field(default_factory=dict)
    networks: dict[str, Any] = field(default_factory=dict)  # id -> network (with vnic_profiles)
    filtered: bool = False  # a non-admin view: the engine hides VMs' hosts


def is_data_domain(sd: Any) -> bool:
    """Data domains, and managed block storage (whose ``<type>`` the API leaves out)."""
    kind = value(sd.storage.type) if sd.storage is not None else None
    return value(sd.type) == "data" or (sd.type is None and kind == "managed_block_storage")


def scope(
    dcs: Iterable[Any],
    clusters: Iterable[Any],
    hosts: Iterable[Any],
    dc_filter: str | None,
    cluster_filter: str | None,
    *,
    filtered: bool = False,
) -> Scope:
    sc = Scope(filtered=filtered)
    for dc in dcs:
        if dc_filter and not fnmatch.fnmatchcase(dc.name or "", dc_filter):
            continue
        sc.dcs[dc.id] = dc
        for sd in dc.storage_domains or ():
            if is_data_domain(sd):
                sc.domains[sd.id] = sd
                sc.domain_dc[sd.id] = dc.id
        for net in dc.networks or ():
            sc.networks[net.id] = net
    for c in clusters:
        dc_id = c.data_center.id if c.data_center is not None else None
        if dc_id in sc.dcs and (not cluster_filter or fnmatch.fnmatchcase(c.name or "", cluster_filter)):
            sc.clusters[c.id] = c
    for h in hosts:
        if h.cluster is not None and h.cluster.id in sc.clusters:
            sc.hosts[h.id] = h
    return sc


def host_state(h: Any) -> HostState:
    return HOST_STATES.get(value(h.status) or "", HostState.UNKNOWN)


def hosts(sc: Scope, endpoint: str) -> tuple[Host, ...]:
    return tuple(
        Host(
            id=h.id,
            name=h.name,
            endpoint=endpoint,
            cluster=sc.clusters[h.cluster.id].name,
            state=host_state(h),
            domain=FailureDomain(host=h.name),
            memory=int(h.memory or 0),
        )
        for h in sc.hosts.values()
    )


def dc_of_cluster(sc: Scope, cluster_id: str) -> str:
    return str(sc.clusters[cluster_id].data_center.id)


def mounting_hosts(sc: Scope, dc_id: str) -> tuple[str, ...]:
    """The hosts of a data center whose storage is connected now."""
    return tuple(
        sorted(
            h.id for h in sc.hosts.values() if dc_of_cluster(sc, h.cluster.id) == dc_id and value(h.status) in MOUNTING
        )
    )


def hosted_engine_domains(sc: Scope, vms: Iterable[Any]) -> frozenset[str]:
    """The hosted engine's storage: named hosted_storage, or holding the hosted engine's disks."""
    out = {k for k, sd in sc.domains.items() if sd.name == HOSTED_STORAGE}
    for v in vms:
        for _, d in image_disks(v):
            if value(v.origin) in HOSTED_ENGINE_ORIGINS or value(d.content_type) in HOSTED_ENGINE_CONTENT:
                out.add(d.storage_domains[0].id)
    return frozenset(out)


def datastores(sc: Scope, endpoint: str, hosted: frozenset[str] = frozenset()) -> tuple[Datastore, ...]:
    out = []
    for sd in sc.domains.values():
        kind = value(sd.storage.type) if sd.storage is not None else None
        kind = kind or "unknown"
        shared = kind in SHARED_TYPES
        active = value(sd.status) == "active"
        if not active:
            mounted: tuple[str, ...] = ()
        elif shared or sd.host is None or sd.host.id not in sc.hosts:
            mounted = mounting_hosts(sc, sc.domain_dc[sd.id])
        else:
            mounted = (sd.host.id,) if value(sc.hosts[sd.host.id].status) in MOUNTING else ()
        avail, used = int(sd.available or 0), int(sd.used or 0)
        out.append(
            Datastore(
                id=sd.id,
                name=sd.name,
                endpoint=endpoint,
                kind=kind,
                shared=shared,
                hosts=mounted,
                capacity=avail + used,
                free=avail,
                accessible=active,
                domain=FailureDomain(datastore=sd.name),
                content=frozenset() if sd.id in hosted else None,
                thin=True,
                committed=int(sd.committed) if sd.committed is not None else None,
                reserve=int(sd.critical_space_action_blocker or 0) * GIB if kind != "managed_block_storage" else 0,
            )
        )
    return tuple(out)


def lun_datastores(sc: Scope, vms: Iterable[Any], endpoint: str) -> tuple[Datastore, ...]:
    """A Datastore for each direct LUN a VM in scope uses: the storage it needs, never a target."""
    out: dict[str, Datastore] = {}
    for v in vms:
        if v.cluster is None or v.cluster.id not in sc.clusters:
            continue
        for _, d in lun_disks(v):
            lu = d.lun_storage.logical_units[0]
            if lu.id in out:
                continue
            # the LUN is its disk's whole size (on the Disk); as a datastore it offers no room at all
            out[lu.id] = Datastore(
                id=lu.id,
                name=f"lun-{lu.id}",
                endpoint=endpoint,
                kind="lun",
                shared=True,
                hosts=mounting_hosts(sc, dc_of_cluster(sc, v.cluster.id)),
                capacity=0,
                free=0,
                domain=FailureDomain(datastore=f"lun-{lu.id}"),
                content=frozenset(),
            )
    return tuple(out.values())


def networks(sc: Scope, endpoint: str) -> tuple[Network, ...]:
    """oVirt networks, and the vNIC profiles VMs' NICs attach to (``<network>/<profile>``)."""
    out = []
    for n in sc.networks.values():
        vlan = int(n.vlan.id) if n.vlan is not None and n.vlan.id is not None else None
        out.append(Network(id=n.id, name=n.name, endpoint=endpoint, kind="ovirt-network", vlan=vlan))
        for p in n.vnic_profiles or ():
            out.append(Network(id=p.id, name=f"{n.name}/{p.name}", endpoint=endpoint, kind="vnic-profile", vlan=vlan))
    return tuple(out)


def is_internal_vm(vm: Any) -> bool:
    """ftbridge's own test twins and clone VMs are no estate VMs."""
    return parse_internal_description(getattr(vm, "description", None)) is not None


def group_copies(disks: Iterable[Any]) -> dict[str, dict[str, list[tuple[Any, Any]]]]:
    """vm id -> copy set -> [(alias parts, disk)] for every ftbridge copy disk."""
    out: dict[str, dict[str, list[tuple[Any, Any]]]] = defaultdict(lambda: defaultdict(list))
    for d in disks:
        parts = parse_copy_alias(d.alias)
        if parts is not None:
            out[parts.vm][parts.set].append((parts, d))
    return out


def image_disks(vm: Any) -> list[tuple[Any, Any]]:
    """(attachment, disk) for the VM's disks that live on a storage domain."""
    return [
        (a, a.disk)
        for a in (vm.disk_attachments or ())
        if a.disk is not None
        and value(a.disk.storage_type) in (None, "image", "managed_block_storage")
        and a.disk.storage_domains
    ]


def lun_disks(vm: Any) -> list[tuple[Any, Any]]:
    """(attachment, disk) for the VM's direct LUNs."""
    return [
        (a, a.disk)
        for a in (vm.disk_attachments or ())
        if a.disk is not None
        and value(a.disk.storage_type) == "lun"
        and a.disk.lun_storage is not None
        and a.disk.lun_storage.logical_units
    ]


def copyable(vm: Any) -> list[tuple[Any, Any]]:
    """The disks an ovirt-copy copies: image disks that are not shareable (a snapshot leaves
    shareable disks out: CreateSnapshotForVmCommand, DisksFilter.ONLY_NOT_SHAREABLE)."""
    return [(a, d) for a, d in image_disks(vm) if not d.shareable]


def clone_size(disk: Any, target_kind: str) -> int:
    """Bytes the engine reserves for a copy of ``disk`` on a domain of ``target_kind``:
    getTotalSizeForClonedDisk (StorageDomainValidator.java) over getTotalActualSizeOfDisk
    (ImagesHandler.java): a sparse disk on file storage, or a qcow2 one on block storage, counts
    its data; anything else its size; qcow2 then gets QCOW_OVERHEAD_FACTOR."""
    size = int(disk.provisioned_size or 0)
    used = int(disk.actual_size if disk.actual_size is not None else size)
    cow = value(disk.format) == "cow"
    file_kind = target_kind in ("nfs", "glusterfs", "posixfs", "localfs")
    block_kind = target_kind in ("iscsi", "fcp")
    base = min(size, used) if ((file_kind and disk.sparse) or (block_kind and cow)) else size
    return math.ceil(QCOW_OVERHEAD * base) if cow else base


def model_disk(d: Any, sd: Any, shared_by: tuple[str, ...], movable: bool) -> Disk:
    """A disk as the model counts room: a sparse qcow2 disk stays thin anywhere and the engine
    reserves its data plus QCOW_OVERHEAD_FACTOR; anything else takes its size wherever it goes."""
    size = int(d.provisioned_size or 0)
    thin = bool(d.sparse) and value(d.format) == "cow"
    allocated = min(size, clone_size(d, "iscsi")) if thin else None
    return Disk(
        id=d.id,
        size=size,
        datastore=sd.id,
        path=f"{sd.name}:/images/{d.id}",
        movable=movable,
        kind="disk",
        allocated=allocated,
        thin=thin,
        shared_by=shared_by,
    )


def copy_secondaries(
    vm: Any, sets: Mapping[str, list[tuple[Any, Any]]], sc: Scope, now: float
) -> tuple[list[Secondary], list[str]]:
    """The VM's copy sets. A copy holds every copyable disk; it lacks (``missing``) the shareable
    disks, which no snapshot takes and a promote keeps attached as they are, and the direct LUNs.
    The VM's lease is not the copy's: a promote moves it to a domain that survived."""
    disk_ids = {d.id for _, d in copyable(vm)}
    missing = tuple(sorted([d.id for _, d in image_disks(vm) if d.shareable] + [d.id for _, d in lun_disks(vm)]))
    names = {k: v.name for k, v in sc.domains.items()}
    secs, warnings = [], []
    for set_id, members in sorted(sets.items()):
        kept = [(p, d) for p, d in members if p.disk in disk_ids]
        if len(kept) < len(members):
            warnings.append(f"copy set {set_id} holds copies of disks the VM no longer has")
        if not kept:
            continue
        statuses = {value(d.status) for _, d in kept}
        on = [d.storage_domains[0].id if d.storage_domains else None for _, d in kept]
        readable = all(x in sc.domains and value(sc.domains[x].status) == "active" for x in on)
        if "locked" in statuses or any(d.vms for _, d in kept):
            state = SecondaryState.SYNCING  # still being written, or still on ftbridge's clone VM
        elif "illegal" in statuses or not readable or None in on:
            state = SecondaryState.BROKEN
        elif {p.disk for p, _ in kept} != disk_ids:
            state = SecondaryState.STALE  # a disk was added after the copy: not a whole VM
        else:
            state = SecondaryState.IN_SYNC
        started = kept[0][0].started
        secs.append(
            Secondary(
                id=set_id,
                mechanism="ovirt-copy",
                disks=tuple(
                    SecondaryDisk(
                        disk=p.disk,
                        datastore=x or "",
                        size=int(d.provisioned_size or 0),
                        path=f"{names.get(x or '', x)}:/images/{d.id}",
                    )
                    for (p, d), x in zip(kept, on, strict=True)
                ),
                state=state,
                last_sync=started,
                lag=max(0.0, now - started) if state is not SecondaryState.SYNCING else None,
                missing=missing,
            )
        )
    return secs, warnings


def dr_secondary(
    vm: Any, sc: Scope, pairs: Mapping[str, StorageMapping], luns: Mapping[str, str], target_endpoint: str | None
) -> Secondary | None:
    """The replica a VM has when a disk of it sits on a paired domain. Disks elsewhere (and LUNs
    the mapping does not pair) are ``missing``: the role's partial import brings the VM up without
    them (dr_partial_import, its default)."""
    if not pairs:
        return None
    mapped, missing = [], []
    for _, d in image_disks(vm):
        sd = sc.domains.get(d.storage_domains[0].id)
        pair = pairs.get(sd.name) if sd is not None else None
        if pair is None or sd is None:
            missing.append(d.id)
        else:
            mapped.append(
                SecondaryDisk(
                    disk=d.id,
                    datastore=pair.secondary_id or sd.id,
                    size=int(d.provisioned_size or 0),
                    path=f"{pair.secondary_name}:/images/{d.id}",
                )
            )
    if not mapped:
        return None
    for _, d in lun_disks(vm):
        lu = d.lun_storage.logical_units[0].id
        if lu in luns:  # the array replicates it and dr_lun_mappings pairs it
            mapped.append(SecondaryDisk(disk=d.id, datastore=luns[lu], path=f"lun:{luns[lu]}"))
        else:
            missing.append(d.id)
    names = sorted({p.path.split(":", 1)[0] for p in mapped if not p.path.startswith("lun:")})
    return Secondary(
        id="dr:" + ",".join(names),
        mechanism="ovirt-dr",
        disks=tuple(mapped),
        state=SecondaryState.UNKNOWN,  # the array replicates; the engine cannot see its lag
        target_endpoint=target_endpoint,
        missing=tuple(sorted(missing)),
    )


def dependencies(vm: Any, sc: Scope, templates: Mapping[str, Any]) -> tuple[Dependency, ...]:
    """The lease's domain, and each domain where a disk of the VM's template sits beside the VM's
    own disk (a thin clone's image chain starts from the template's disk on the same domain)."""
    out = []
    if vm.lease is not None and vm.lease.storage_domain is not None:
        sd = vm.lease.storage_domain.id
        name = sc.domains[sd].name if sd in sc.domains else sd
        out.append(Dependency(kind="lease", datastore=sd, path=f"{name}:lease/{vm.id}"))
    tpl = templates.get(vm.template.id) if vm.template is not None else None
    if tpl is not None:
        mine = {d.storage_domains[0].id for _, d in image_disks(vm)}
        for _, td in image_disks(tpl):
            sd = td.storage_domains[0].id
            if sd in mine:
                name = sc.domains[sd].name if sd in sc.domains else sd
                out.append(
                    Dependency(kind="base-disk", datastore=sd, path=f"{name}:/images/{td.id} (template {tpl.name})")
                )
    return tuple(out)


def vm(
    v: Any,
    sc: Scope,
    endpoint: str,
    sets: Mapping[str, list[tuple[Any, Any]]],
    pairs: Mapping[str, StorageMapping],
    dr_endpoint: str | None,
    now: float,
    *,
    sharing: Mapping[str, tuple[str, ...]] | None = None,
    hosted: frozenset[str] = frozenset(),
    templates: Mapping[str, Any] | None = None,
    luns: Mapping[str, str] | None = None,
    running: frozenset[str] = frozenset(),
) -> VM:
    """One VM. ``sharing``: disk id -> every VM id attaching it; ``running``: ids of VMs that are
    not down (a shareable disk of a running VM moves nowhere); ``luns``: DR LUN pairs."""
    warnings: list[str] = []
    disks = []
    status = value(v.status) or "unknown"
    he = value(v.origin) in HOSTED_ENGINE_ORIGINS
    tpl = (templates or {}).get(v.template.id) if v.template is not None else None
    tpl_domains = {td.storage_domains[0].id for _, td in image_disks(tpl)} if tpl is not None else set()
    for _, d in image_disks(v):
        sd_id = d.storage_domains[0].id
        if sd_id not in sc.domains:
            warnings.append(f"disk {d.alias} is on storage domain {sd_id}, outside the configured scope")
            continue
        others = tuple(x for x in (sharing or {}).get(d.id, ()) if x != v.id)
        movable = _movable(d, status, others, running, sc.domains[sd_id], sd_id in tpl_domains, he)
        disks.append(model_disk(d, sc.domains[sd_id], others, movable))
    for _, d in lun_disks(v):
        lu = d.lun_storage.logical_units[0]
        disks.append(
            Disk(id=d.id, size=int(lu.size or 0), datastore=lu.id, path=f"lun:{lu.id}", movable=False, kind="lun")
        )
    secs, w = copy_secondaries(v, sets, sc, now)
    warnings += w
    dr = dr_secondary(v, sc, pairs, luns or {}, dr_endpoint)
    if dr is not None:
        secs.append(dr)
    topo = v.cpu.topology if (v.cpu is not None and v.cpu.topology is not None) else None
    vcpus = (topo.sockets or 1) * (topo.cores or 1) * (topo.threads or 1) if topo is not None else 1
    host = v.host.id if (v.host is not None and v.host.id in sc.hosts) else None
    if sc.filtered and status in MAY_RUN:
        warnings.append("the engine does not show a filtered (non-admin) user where a VM runs")
    ha = bool(v.high_availability is not None and v.high_availability.enabled)
    mechanisms: tuple[str, ...] | None = None
    if he:
        mechanisms = ()
    elif not copyable(v) or (
        status != "down" and any(value(d.storage_type) == "managed_block_storage" for _, d in copyable(v))
    ):
        # nothing to copy, or a running VM on managed block storage: the engine clones no
        # snapshot from it (ManagedBlockStorageDomainValidator lists no AddVmFromSnapshot)
        mechanisms = tuple(m for m in ("ovirt-dr",) if dr is not None)
    cluster = sc.clusters[v.cluster.id].name if v.cluster is not None and v.cluster.id in sc.clusters else None
    return VM(
        id=v.id,
        name=v.name,
        endpoint=endpoint,
        host=host,
        power=POWER.get(status, PowerState.UNKNOWN),
        disks=tuple(disks),
        config_datastore=None,
        config_path="",
        secondaries=tuple(secs),
        tags=tuple(sorted(t.name for t in (v.tags or ()) if t.name)),
        vcpus=vcpus,
        memory=int(v.memory or 0),
        ha=ha,
        warnings=tuple(warnings),
        mechanisms=mechanisms,
        depends_on=dependencies(v, sc, templates or {}),
        managed_by=MANAGED_BY if he else None,
        cluster=cluster,
        uuid=v.id,
        nics=tuple(_nics(v)),
    )


def _movable(
    d: Any, status: str, others: tuple[str, ...], running: frozenset[str], sd: Any, on_template: bool, he: bool
) -> bool:
    """Can a plan move this disk, the way the engine moves disks (MoveDiskCommand: live for a
    plugged disk of a running VM, else cold)?"""
    live = status != "down"
    if he or value(d.content_type) in HOSTED_ENGINE_CONTENT:
        return False  # DiskOperationsValidator: hosted-engine disks are neither moved nor copied
    if d.shareable and (live or any(x in running for x in others)):
        return False  # LiveMigrateDiskCommand refuses shareable disks; a cold move needs all its VMs down
    if live and value(sd.storage.type if sd.storage is not None else None) == "managed_block_storage":
        return False  # ManagedBlockStorageDomainValidator lists no LiveMigrateDisk
    # MoveOrCopyDiskCommand.checkTemplateDiskExistAndValidInDestStorageDomain: a thin clone moves
    # only where its template's disk is, which the model cannot say
    return not on_template


def _nics(v: Any) -> list[Nic]:
    """NICs; ``network`` is the vNIC profile id (what a NIC attaches to, and what the DR role maps)."""
    return [
        Nic(
            id=n.id,
            network=n.vnic_profile.id if n.vnic_profile is not None else None,
            mac=n.mac.address if n.mac is not None and n.mac.address else "",
            model=value(n.interface) or "",
        )
        for n in (v.nics or ())
    ]


def inventory(
    sc: Scope,
    vms: Iterable[Any],
    copies: Iterable[Any],
    endpoint: str,
    pairs: Mapping[str, StorageMapping],
    dr_endpoint: str | None,
    now: float | None = None,
    *,
    templates: Mapping[str, Any] | None = None,
    luns: Mapping[str, str] | None = None,
) -> InventoryPart:
    now = time.time() if now is None else now
    grouped = group_copies(copies)
    in_scope = [v for v in vms if v.cluster is not None and v.cluster.id in sc.clusters and not is_internal_vm(v)]
    sharing: dict[str, list[str]] = defaultdict(list)
    for v in in_scope:
        for _, d in image_disks(v):
            if d.shareable:
                sharing[d.id].append(v.id)
    running = frozenset(v.id for v in in_scope if (value(v.status) or "unknown") != "down")
    hosted = hosted_engine_domains(sc, in_scope)
    shared = {k: tuple(x) for k, x in sharing.items()}
    out = [
        vm(
            v,
            sc,
            endpoint,
            grouped.get(v.id, {}),
            pairs,
            dr_endpoint,
            now,
            sharing=shared,
            hosted=hosted,
            templates=templates,
            luns=luns,
            running=running,
        )
        for v in in_scope
    ]
    return InventoryPart(
        hosts(sc, endpoint),
        datastores(sc, endpoint, hosted) + lun_datastores(sc, in_scope, endpoint),
        tuple(out),
        networks(sc, endpoint),
    )
