"""Checking an imported mapping against the two inventories, entry by entry.

A mapping is someone's file: it may name a datastore that does not exist (a typo, another
estate), send disks to storage only one host mounts, or pour more into a datastore than it
holds. Each of those is one line naming the entry (exit 3) before anything is planned, rather
than VMs silently placed elsewhere. Room above the policies' headroom is the planner's
business (it says per VM what does not fit); a rule whose disks exceed the target's free space
outright is the mapping's fault.
"""

from __future__ import annotations

from collections.abc import Sequence

from ftbridge.inventory import Inventory
from ftbridge.migrate.formats import MappingError
from ftbridge.migrate.mapping import ItemRule, Mapping, Rule
from ftbridge.model import VM, Datastore, Network
from ftbridge.planning.explain import size


def check_mapping(
    mapping: Mapping,
    source: Inventory,
    source_ep: str,
    target: Inventory,
    target_ep: str,
    vms: Sequence[VM],
) -> None:
    """Raise :class:`MappingError` naming the first entry that does not fit the inventories."""
    origin = mapping.origin
    if mapping.source and mapping.source != source_ep:
        raise MappingError(f"{origin}: source = {mapping.source!r}, but the migration's source is {source_ep}")
    if mapping.target and mapping.target != target_ep:
        raise MappingError(f"{origin}: target = {mapping.target!r}, but the migration's target is {target_ep}")
    src_ds = [d for d in source.datastores if d.endpoint == source_ep]
    tgt_ds = [d for d in target.datastores if d.endpoint == target_ep]
    src_nets = [n for n in source.networks if n.endpoint == source_ep]
    tgt_nets = [n for n in target.networks if n.endpoint == target_ep]
    used: dict[str, int] = {}
    for r in mapping.datastores:
        if not any(r.matches(d.id, d.name) for d in src_ds):
            raise MappingError(f"{_w(r, origin)}: {source_ep} has no datastore {r.source!r}")
        dst = _target_ds(r.target, tgt_ds, _w(r, origin), target_ep)
        if dst is not None:
            used[_w(r, origin)] = 0
    if mapping.storage_default:
        _target_ds(mapping.storage_default, tgt_ds, f"{origin}: storage default", target_ep)
    by_vm = {v.name: v for v in vms} | {v.id: v for v in vms}
    for ir in mapping.disks:
        vm = _vm(ir, by_vm, origin, source_ep)
        if vm is not None and not any(d.id == ir.item for d in vm.disks):
            raise MappingError(f"{_w(ir, origin)}: {vm.name} has no disk {ir.item!r}")
        _target_ds(ir.target, tgt_ds, _w(ir, origin), target_ep)
    # too small: what each entry sends to its target, against the target's free space
    sent: dict[str, tuple[int, str, Datastore]] = {}
    for vm in vms:
        for d in vm.disks:
            ds = source.datastore(vm.endpoint, d.datastore)
            hit = mapping.disk_target(vm, d, ds)
            if hit is None:
                continue
            tgt = _find(hit[0], tgt_ds)
            if tgt is None:
                continue
            entry = _entry(mapping, vm, d.id, ds, hit[1], origin)
            total, _, _ = sent.get(tgt.id, (0, entry, tgt))
            sent[tgt.id] = (total + d.space_on(tgt), entry, tgt)
    for total, entry, tgt in sorted(sent.values(), key=lambda x: x[2].id):
        if total > tgt.free - tgt.reserve:
            raise MappingError(
                f"{entry}: sends {size(total)} to {tgt.name}, which has {size(max(0, tgt.free - tgt.reserve))} "
                f"free: too small"
            )
    for r in mapping.networks:
        if src_nets and not any(r.matches(n.id, n.name) for n in src_nets):
            raise MappingError(f"{_w(r, origin)}: {source_ep} has no network {r.source!r}")
        _target_net(r.target, tgt_nets, _w(r, origin), target_ep)
    if mapping.network_default:
        _target_net(mapping.network_default, tgt_nets, f"{origin}: network default", target_ep)
    for ir in mapping.nics:
        vm = _vm(ir, by_vm, origin, source_ep)
        if vm is not None and not any(ir.item in (n.id, n.mac) for n in vm.nics):
            raise MappingError(f"{_w(ir, origin)}: {vm.name} has no NIC {ir.item!r}")
        _target_net(ir.target, tgt_nets, _w(ir, origin), target_ep)
    src_clusters = {h.cluster for h in source.hosts if h.endpoint == source_ep} | {
        v.cluster for v in source.vms if v.endpoint == source_ep
    }
    tgt_clusters = {h.cluster for h in target.hosts if h.endpoint == target_ep}
    for r in mapping.clusters:
        if r.source not in src_clusters:
            raise MappingError(f"{_w(r, origin)}: {source_ep} has no cluster {r.source!r}")
        if r.target is not None and r.target not in tgt_clusters:
            raise MappingError(f"{_w(r, origin)}: {target_ep} has no cluster {r.target!r}")


def _w(r: Rule | ItemRule, origin: str) -> str:
    return r.where or f"{origin}: {getattr(r, 'source', None) or getattr(r, 'item', '')}"


def _find(name: str, datastores: list[Datastore]) -> Datastore | None:
    return next((d for d in datastores if d.name == name), None) or next((d for d in datastores if d.id == name), None)


def _target_ds(name: str | None, datastores: list[Datastore], where: str, ep: str) -> Datastore | None:
    if name is None:
        return None
    d = _find(name, datastores)
    if d is None:
        raise MappingError(f"{where}: {ep} has no datastore {name!r}")
    if not d.shared:
        raise MappingError(
            f"{where}: {d.name} on {ep} is not shared (one host mounts it): a primary must be on shared storage"
        )
    if not d.holds("images") and not d.holds("rootdir"):
        raise MappingError(
            f"{where}: {d.name} on {ep} holds no VM disks (content {', '.join(sorted(d.content or ()))})"
        )
    return d


def _target_net(name: str | None, nets: list[Network], where: str, ep: str) -> None:
    if name is None:
        return
    if not any(n.name == name or n.id == name for n in nets):
        raise MappingError(f"{where}: {ep} has no network {name!r}")


def _vm(ir: ItemRule, by_vm: dict[str, VM], origin: str, ep: str) -> VM | None:
    if ir.vm is None:
        return None
    vm = by_vm.get(ir.vm)
    if vm is None:
        raise MappingError(f"{_w(ir, origin)}: no VM {ir.vm!r} of {ep} is in the migration")
    return vm


def _entry(mapping: Mapping, vm: VM, disk_id: str, ds: Datastore | None, rule: str, origin: str) -> str:
    if rule == "disk":
        r = next((x for x in mapping.disks if x.matches(vm, disk_id)), None)
        return _w(r, origin) if r else origin
    if rule == "datastore" and ds is not None:
        rr = next((x for x in mapping.datastores if x.matches(ds.id, ds.name)), None)
        return _w(rr, origin) if rr else origin
    return f"{origin}: storage default"
