"""From what the engine answered to ftbridge's model: pure functions, no I/O.

The engine's shapes map onto the model like this:

* storage domain (data type, attached to a data center) -> ``Datastore``; ``kind`` is the
  storage type; shared unless ``localfs`` (every host of a shared data center reaches every
  domain of it, so ``hosts`` are the data center's hosts); status as the data center sees it
  gives ``accessible``; ``available``+``used`` give capacity.
* host -> ``Host`` (cluster name; ``up``, ``maintenance``, everything unreachable is ``down``).
* VM -> ``VM``: its image disks (inlined by ``follow=disk_attachments.disk``) are its disks.
  Its configuration lives in the engine database and the OVF stores of every domain, so it has
  no ``config_datastore``. Direct-LUN disks are on no domain: reported as warnings.
* ftbridge's copies (floating disks named by :mod:`.naming`) -> ``ovirt-copy`` secondaries; the
  VM's storage lease, the split-brain tie-breaker that lets exactly one instance run, is the
  secondary's ``metadata_datastore``.
* A VM whose every disk sits on a domain paired in ``dr_storage_mappings`` -> an ``ovirt-dr``
  secondary at ``dr_secondary_endpoint`` (the replica keeps the domain's UUID).
"""

from __future__ import annotations

import fnmatch
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ftbridge.inventory import InventoryPart
from ftbridge.model import (
    VM,
    Datastore,
    Disk,
    FailureDomain,
    Host,
    HostState,
    PowerState,
    Secondary,
    SecondaryDisk,
    SecondaryState,
)
from ftbridge_ovirt.client import value
from ftbridge_ovirt.config import StorageMapping
from ftbridge_ovirt.naming import parse_copy_alias, parse_test_description

SHARED_TYPES = frozenset({"nfs", "iscsi", "fcp", "glusterfs", "posixfs", "managed_block_storage", "cinder"})
HOST_STATES = {"up": HostState.UP, "maintenance": HostState.MAINTENANCE,
               "preparing_for_maintenance": HostState.MAINTENANCE, "non_responsive": HostState.DOWN,
               "down": HostState.DOWN, "error": HostState.DOWN, "non_operational": HostState.DOWN,
               "connecting": HostState.DOWN, "kdumping": HostState.DOWN, "reboot": HostState.DOWN}
POWER = {"up": PowerState.ON, "powering_up": PowerState.ON, "wait_for_launch": PowerState.ON,
         "reboot_in_progress": PowerState.ON, "migrating": PowerState.ON, "powering_down": PowerState.ON,
         "down": PowerState.OFF, "image_locked": PowerState.OFF, "suspended": PowerState.SUSPENDED,
         "saving_state": PowerState.SUSPENDED, "restoring_state": PowerState.SUSPENDED,
         "paused": PowerState.SUSPENDED}
#: VM states in which a process may exist on some host
MAY_RUN = frozenset({"up", "powering_up", "wait_for_launch", "reboot_in_progress", "migrating", "powering_down",
                     "paused", "unknown", "not_responding", "saving_state", "restoring_state"})


@dataclass
class Scope:
    """The engine objects in the configured data-center/cluster scope, indexed."""

    dcs: dict[str, Any] = field(default_factory=dict)
    clusters: dict[str, Any] = field(default_factory=dict)  # id -> cluster
    hosts: dict[str, Any] = field(default_factory=dict)  # id -> host
    domains: dict[str, Any] = field(default_factory=dict)  # id -> storage domain (DC view)
    domain_dc: dict[str, str] = field(default_factory=dict)


def scope(dcs: Iterable[Any], clusters: Iterable[Any], hosts: Iterable[Any],
          dc_filter: str | None, cluster_filter: str | None) -> Scope:
    sc = Scope()
    for dc in dcs:
        if dc_filter and not fnmatch.fnmatchcase(dc.name or "", dc_filter):
            continue
        sc.dcs[dc.id] = dc
        for sd in dc.storage_domains or ():
            if value(sd.type) == "data":
                sc.domains[sd.id] = sd
                sc.domain_dc[sd.id] = dc.id
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
    return tuple(Host(id=h.id, name=h.name, endpoint=endpoint, cluster=sc.clusters[h.cluster.id].name,
                      state=host_state(h), domain=FailureDomain(host=h.name), **_memory(h))
                 for h in sc.hosts.values())


def _memory(h: Any) -> dict[str, int]:
    """Host memory, for cores whose Host model has it (failover checks room on survivors)."""
    if "memory" in getattr(Host, "__dataclass_fields__", {}):
        return {"memory": int(h.memory or 0)}
    return {}


def dc_host_ids(sc: Scope, dc_id: str) -> tuple[str, ...]:
    return tuple(h.id for h in sc.hosts.values() if sc.clusters[h.cluster.id].data_center.id == dc_id)


def datastores(sc: Scope, endpoint: str) -> tuple[Datastore, ...]:
    out = []
    for sd in sc.domains.values():
        kind = value(sd.storage.type) if sd.storage is not None else None
        kind = kind or "unknown"
        shared = kind in SHARED_TYPES
        if shared or sd.host is None or sd.host.id not in sc.hosts:
            mounted = dc_host_ids(sc, sc.domain_dc[sd.id])
        else:
            mounted = (sd.host.id,)
        avail, used = int(sd.available or 0), int(sd.used or 0)
        out.append(Datastore(id=sd.id, name=sd.name, endpoint=endpoint, kind=kind, shared=shared,
                             hosts=mounted, capacity=avail + used, free=avail,
                             accessible=value(sd.status) == "active", domain=FailureDomain(datastore=sd.name)))
    return tuple(out)


def is_test_vm(vm: Any) -> bool:
    return parse_test_description(getattr(vm, "description", None)) is not None


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
    return [(a, a.disk) for a in (vm.disk_attachments or ())
            if a.disk is not None and value(a.disk.storage_type) in (None, "image", "managed_block_storage")
            and a.disk.storage_domains]


def copy_secondaries(vm: Any, sets: Mapping[str, list[tuple[Any, Any]]], sc: Scope,
                     now: float) -> tuple[list[Secondary], list[str]]:
    disk_ids = {d.id for _, d in image_disks(vm)}
    lease = vm.lease.storage_domain.id if (vm.lease is not None and vm.lease.storage_domain is not None) else None
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
        if "locked" in statuses:
            state = SecondaryState.SYNCING
        elif "illegal" in statuses or not readable or None in on:
            state = SecondaryState.BROKEN
        elif {p.disk for p, _ in kept} != disk_ids:
            state = SecondaryState.STALE  # a disk was added after the copy: not a whole VM
        else:
            state = SecondaryState.IN_SYNC
        started = kept[0][0].started
        names = {k: v.name for k, v in sc.domains.items()}
        secs.append(Secondary(
            id=set_id, mechanism="ovirt-copy",
            disks=tuple(SecondaryDisk(disk=p.disk, datastore=x or "", size=int(d.provisioned_size or 0),
                                      path=f"{names.get(x or '', x)}:/images/{d.id}")
                        for (p, d), x in zip(kept, on, strict=True)),
            state=state, last_sync=started,
            lag=max(0.0, now - started) if state is not SecondaryState.SYNCING else None,
            metadata_datastore=lease if lease in sc.domains else None))
    return secs, warnings


def dr_secondary(vm: Any, sc: Scope, pairs: Mapping[str, StorageMapping],
                 target_endpoint: str | None) -> tuple[Secondary | None, str | None]:
    if not pairs:
        return None, None
    disks = image_disks(vm)
    mapped = []
    for _, d in disks:
        sd = sc.domains.get(d.storage_domains[0].id)
        pair = pairs.get(sd.name) if sd is not None else None
        if pair is None:
            break
        mapped.append((d, sd, pair))
    if not disks or len(mapped) < len(disks):
        if mapped:
            return None, "only some disks sit on array-replicated domains: ovirt-dr does not cover the VM"
        return None, None
    sec = Secondary(
        id="dr:" + ",".join(sorted({p.secondary_name for _, _, p in mapped})), mechanism="ovirt-dr",
        disks=tuple(SecondaryDisk(disk=d.id, datastore=p.secondary_id or sd.id, size=int(d.provisioned_size or 0),
                                  path=f"{p.secondary_name}:/images/{d.id}") for d, sd, p in mapped),
        state=SecondaryState.UNKNOWN,  # the array replicates; the engine cannot see its lag
        target_endpoint=target_endpoint)
    return sec, None


def vm(v: Any, sc: Scope, endpoint: str, sets: Mapping[str, list[tuple[Any, Any]]],
       pairs: Mapping[str, StorageMapping], dr_endpoint: str | None, now: float) -> VM:
    warnings: list[str] = []
    disks = []
    for _, d in image_disks(v):
        sd_id = d.storage_domains[0].id
        if sd_id not in sc.domains:
            warnings.append(f"disk {d.alias} is on storage domain {sd_id}, outside the configured scope")
            continue
        disks.append(Disk(id=d.id, size=int(d.provisioned_size or 0), datastore=sd_id,
                          path=f"{sc.domains[sd_id].name}:/images/{d.id}", movable=not bool(d.shareable),
                          kind="disk"))
    for a in v.disk_attachments or ():
        if a.disk is not None and value(a.disk.storage_type) == "lun":
            warnings.append(f"disk {a.disk.alias or a.disk.id} is a direct LUN: on no storage domain, not placed")
    secs, w = copy_secondaries(v, sets, sc, now)
    warnings += w
    dr, w2 = dr_secondary(v, sc, pairs, dr_endpoint)
    if dr is not None:
        secs.append(dr)
    if w2:
        warnings.append(w2)
    topo = v.cpu.topology if (v.cpu is not None and v.cpu.topology is not None) else None
    vcpus = (topo.sockets or 1) * (topo.cores or 1) * (topo.threads or 1) if topo is not None else 1
    status = value(v.status) or "unknown"
    host = v.host.id if (v.host is not None and v.host.id in sc.hosts) else None
    ha = bool(v.high_availability is not None and v.high_availability.enabled)
    return VM(id=v.id, name=v.name, endpoint=endpoint, host=host, power=POWER.get(status, PowerState.UNKNOWN),
              disks=tuple(disks), config_datastore=None, config_path="", secondaries=tuple(secs),
              tags=tuple(sorted(t.name for t in (v.tags or ()) if t.name)), vcpus=vcpus,
              memory=int(v.memory or 0), ha=ha, warnings=tuple(warnings))


def inventory(sc: Scope, vms: Iterable[Any], copies: Iterable[Any], endpoint: str,
              pairs: Mapping[str, StorageMapping], dr_endpoint: str | None,
              now: float | None = None) -> InventoryPart:
    now = time.time() if now is None else now
    grouped = group_copies(copies)
    out = []
    for v in vms:
        if v.cluster is None or v.cluster.id not in sc.clusters or is_test_vm(v):
            continue
        out.append(vm(v, sc, endpoint, grouped.get(v.id, {}), pairs, dr_endpoint, now))
    return InventoryPart(hosts(sc, endpoint), datastores(sc, endpoint), tuple(out))
