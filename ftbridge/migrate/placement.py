"""Where each source VM's primary goes on the target: datastores, host, networks.

One pass over the VMs, biggest first (big VMs find room before small ones fragment it), name
as tie-break, so the same input gives the same placement. Capacity and headroom are counted
across the whole migration in one :class:`~ftbridge.planning.ledger.SpaceLedger` over the
target's datastores, found through the planner's :class:`~ftbridge.planning.index.
CandidateIndex`: the same accounting ``ftbridge plan`` uses, so a datastore the migration fills
to its headroom is one the audit will not flag afterwards.

Each disk goes where the mapping says (per disk > per datastore > default), else to a
datastore of the same name, else to the roomiest shared datastore that takes its content, near
the VM's other disks (one host must mount all of them). A mapped target that is not shared, or
cannot take the disk, or has no room above its headroom, makes the VM infeasible with a
sentence saying so: the migration must not land a primary where one host's loss takes it.
The host is the up host that mounts every datastore of the VM and carries every network its
NICs need, in the cluster the mapping names if any, least loaded in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from ftbridge.audit import raise_headroom
from ftbridge.config import Config, Policy
from ftbridge.inventory import Inventory
from ftbridge.migrate.mapping import Mapping
from ftbridge.model import VM, Datastore, Disk, Host, HostState, Network, Nic
from ftbridge.planning.explain import joined, size
from ftbridge.planning.index import CandidateIndex, Query
from ftbridge.planning.ledger import SpaceLedger, Undo


@dataclass(frozen=True)
class DiskPlace:
    disk: Disk
    source_name: str  # the source datastore's name
    target: str  # target datastore id
    target_name: str
    rule: str  # disk | datastore | default | same-name | auto
    bytes: int  # what it takes on the target (thin stays thin only where it can)


@dataclass(frozen=True)
class NicPlace:
    nic: Nic
    source_name: str  # the source network's name ("" when unconnected)
    target: str | None  # target network id; None: left unconnected
    target_name: str | None
    rule: str  # nic | network | default | same-name | vlan | unconnected


@dataclass
class Placed:
    """One VM's primary on the target, or why it cannot go there (``reason``)."""

    vm: VM
    policy: Policy | None
    disks: list[DiskPlace] = field(default_factory=list)
    nics: list[NicPlace] = field(default_factory=list)
    config: str | None = None
    host: Host | None = None
    reason: str | None = None  # set: infeasible
    category: str = ""


class Placer:
    """Places source VMs onto one target endpoint of ``target`` (already labelled)."""

    def __init__(self, target: Inventory, endpoint: str, config: Config, mapping: Mapping) -> None:
        self.inv, self.ep, self.config, self.mapping = target, endpoint, config, mapping
        self.ds_list = sorted((d for d in target.datastores if d.endpoint == endpoint), key=lambda d: d.id)
        self.pos = {d.id: i for i, d in enumerate(self.ds_list)}
        self.by_name: dict[str, Datastore] = {}
        for d in self.ds_list:
            self.by_name.setdefault(d.name, d)
            self.by_name.setdefault(d.id, d)
        seen: dict[str, float] = {}
        for vm in target.vms:  # the headroom the audit applies already, from the VMs there now
            p = config.policy_for(vm) if vm.endpoint == endpoint else None
            if p is not None:
                raise_headroom(seen, vm, p)
        pct = [seen.get(d.id, 0.0) for d in self.ds_list]
        self.ledger = SpaceLedger(
            [d.capacity - d.reserve for d in self.ds_list], [d.free - d.reserve for d in self.ds_list], pct, Undo()
        )
        self.index = CandidateIndex(self.ds_list, self.ledger)
        self.ledger.on_change = self.index.update
        self.hosts = sorted((h for h in target.hosts if h.endpoint == endpoint), key=lambda h: h.id)
        self.mem = {
            h.id: sum(v.memory for v in target.vms if v.endpoint == endpoint and v.host == h.id) for h in self.hosts
        }
        self.count = {h.id: sum(1 for v in target.vms if v.endpoint == endpoint and v.host == h.id) for h in self.hosts}
        self.nets = sorted((n for n in target.networks if n.endpoint == endpoint), key=lambda n: n.id)
        self.net_by_name: dict[str, Network] = {}
        for n in self.nets:
            self.net_by_name.setdefault(n.name, n)
            self.net_by_name.setdefault(n.id, n)
        self.placed_bytes = [0] * len(self.ds_list)
        self.mounts = [frozenset(d.hosts) for d in self.ds_list]

    # -- one VM ------------------------------------------------------------------------------
    def place(self, vm: VM, source: Inventory, policy: Policy | None) -> Placed:
        out = Placed(vm, policy)
        pct = policy.headroom if policy is not None else 0.0
        mark = self.ledger.undo.mark()
        fail = self._disks(vm, source, pct, out) or self._nics(vm, source, out) or self._host(vm, source, out)
        if fail is not None:
            self.ledger.undo.rollback(mark)
            out.category, out.reason = fail
            out.disks, out.nics, out.host = [], [], None
            return out
        for dp in out.disks:
            self.placed_bytes[self.pos[dp.target]] += dp.bytes
        if out.host is not None:
            self.mem[out.host.id] = self.mem.get(out.host.id, 0) + vm.memory
            self.count[out.host.id] = self.count.get(out.host.id, 0) + 1
        return out

    def _disks(self, vm: VM, source: Inventory, pct: float, out: Placed) -> tuple[str, str] | None:
        mapped: list[tuple[Disk, Datastore, str, str]] = []
        auto: list[tuple[Disk, str]] = []
        for d in sorted(vm.disks, key=lambda d: d.id):
            if not d.movable:
                return "placement", f"disk {d.id} of {vm.name} is a {d.kind} device, not a file a migration copies"
            src = source.datastore(vm.endpoint, d.datastore)
            src_name = src.name if src is not None else d.datastore
            hit = self.mapping.disk_target(vm, d, src)
            rule = hit[1] if hit else ""
            target = self.by_name.get(hit[0]) if hit else None
            if hit and target is None:
                return "placement", f"disk {d.id} maps to {hit[0]} by the {rule} rule, which {self.ep} does not have"
            if target is None and src is not None and (same := self.by_name.get(src.name)) is not None:
                if same.shared and same.holds(d.content):
                    target, rule = same, "same-name"
            if target is None:
                auto.append((d, src_name))
                continue
            bad = self._unfit(d, target)
            if bad:
                return "placement", f"disk {d.id} maps to {target.name} by the {rule} rule, but {target.name} {bad}"
            mapped.append((d, target, rule, src_name))
        for d, target, rule, src_name in mapped:
            i = self.pos[target.id]
            need = d.space_on(target)
            room = self.ledger.potential(i, pct)
            if room < need:
                return "capacity", (
                    f"disk {d.id} ({size(need)}) maps to {target.name} by the {rule} rule, which has "
                    f"{size(max(room, 0))} free above its {max(pct, self.ledger.pct[i]):g}% headroom"
                )
            self.ledger.consume(i, need, pct)
            out.disks.append(DiskPlace(d, src_name, target.id, target.name, rule, need))
        if auto:
            fail = self._auto(vm, auto, pct, out)
            if fail is not None:
                return fail
        first = min(out.disks, key=lambda p: p.disk.id) if out.disks else None
        out.config = first.target if first is not None else None
        if vm.config_datastore is not None and first is None:
            return "placement", f"{vm.name} has no disk to place its config beside"
        return None

    def _unfit(self, d: Disk, target: Datastore) -> str | None:
        if not target.shared:
            return "is not shared storage (only one host mounts it): a host's loss would take the VM's files"
        if not target.accessible:
            return "is not accessible now"
        if not target.holds(d.content):
            return f"does not take {d.content} volumes (it holds {', '.join(sorted(target.content or ()))})"
        return None

    def _near(self, out: Placed) -> frozenset[str] | None:
        """Hosts that mount every datastore the VM has so far (None: no constraint yet)."""
        hosts: set[str] | None = None
        for dp in out.disks:
            mounted = set(self.ds_list[self.pos[dp.target]].hosts)
            hosts = mounted if hosts is None else hosts & mounted
        return None if hosts is None else frozenset(hosts)

    def _auto(self, vm: VM, disks: list[tuple[Disk, str]], pct: float, out: Placed) -> tuple[str, str] | None:
        """The unmapped disks on one shared datastore near the others, or one each if none fits all."""
        contents = {d.content for d, _ in disks}
        near = self._near(out)
        if near is not None and not near:
            return (
                "placement",
                f"no host of {self.ep} mounts all of {joined(sorted({p.target_name for p in out.disks}))}",
            )

        def fits(group: Sequence[tuple[Disk, str]]) -> Callable[[int], bool]:
            def accept(i: int) -> bool:
                ds = self.ds_list[i]
                need = sum(d.space_on(ds) for d, _ in group)
                return all(ds.holds(c) for c in {d.content for d, _ in group}) and self.ledger.potential(i, pct) >= need

            return accept

        least = sum(d.used if d.thin else d.size for d, _ in disks)
        q = Query(self.ep, least, pct, None, (), None, True, None, frozenset(), near)
        t = self.index.find(q, accept=fits(disks))
        groups: list[tuple[int, Sequence[tuple[Disk, str]]]] = []
        if t is not None:
            groups.append((t, disks))
        else:
            for d, src_name in sorted(disks, key=lambda x: (-x[0].size, x[0].id)):
                qd = Query(self.ep, d.used if d.thin else d.size, pct, None, (), None, True, None, frozenset(), near)
                td = self.index.find(qd, accept=fits([(d, src_name)]))
                if td is None:
                    return self._no_room(vm, d, qd, contents)
                ds = self.ds_list[td]
                self.ledger.consume(td, d.space_on(ds), pct)
                out.disks.append(DiskPlace(d, src_name, ds.id, ds.name, "auto", d.space_on(ds)))
                near = frozenset(ds.hosts) if near is None else near & frozenset(ds.hosts)
            return None
        for t_i, group in groups:
            ds = self.ds_list[t_i]
            for d, src_name in group:
                self.ledger.consume(t_i, d.space_on(ds), pct)
                out.disks.append(DiskPlace(d, src_name, ds.id, ds.name, "auto", d.space_on(ds)))
        return None

    def _no_room(self, vm: VM, d: Disk, q: Query, contents: Iterable[str]) -> tuple[str, str]:
        count, best, room = self.index.survey(q)
        what = f"shared datastore of {self.ep} that takes {'/'.join(sorted(contents))} volumes"
        if q.near is not None:
            what += " and that a host mounting its other disks mounts"
        if count == 0 or best is None:
            return "placement", f"no {what} for disk {d.id} of {vm.name}"
        return "capacity", (
            f"no {what} has {size(q.need)} free above the {q.pct:g}% headroom for disk {d.id} "
            f"(the most: {size(max(room, 0))} on {self.ds_list[best].name})"
        )

    def _nics(self, vm: VM, source: Inventory, out: Placed) -> tuple[str, str] | None:
        for nic in sorted(vm.nics, key=lambda n: n.id):
            src = source.network(vm.endpoint, nic.network)
            src_name = src.name if src is not None else (nic.network or "")
            hit = self.mapping.nic_target(vm, nic, src)
            if hit is not None:
                name, rule = hit
                if name is None:
                    out.nics.append(NicPlace(nic, src_name, None, None, "unconnected"))
                    continue
                net = self.net_by_name.get(name)
                if net is None:
                    return "placement", f"NIC {nic.id} maps to network {name} by the {rule} rule, which {self.ep} lacks"
                out.nics.append(NicPlace(nic, src_name, net.id, net.name, rule))
                continue
            if nic.network is None:
                out.nics.append(NicPlace(nic, "", None, None, "unconnected"))
                continue
            net = self.net_by_name.get(src_name)
            rule = "same-name"
            if net is None and src is not None and src.vlan is not None:
                same_vlan = [n for n in self.nets if n.vlan == src.vlan]
                if len(same_vlan) == 1:
                    net, rule = same_vlan[0], "vlan"
            if net is None:
                return "placement", (
                    f"NIC {nic.id} is on network {src_name}, which no rule maps and {self.ep} has no network "
                    f"of that name{' or VLAN ' + str(src.vlan) if src is not None and src.vlan is not None else ''}: "
                    f"add it to the mapping"
                )
            out.nics.append(NicPlace(nic, src_name, net.id, net.name, rule))
        return None

    def _host(self, vm: VM, source: Inventory, out: Placed) -> tuple[str, str] | None:
        need = {dp.target for dp in out.disks}
        nets = [self.inv.network(self.ep, np.target) for np in out.nics if np.target is not None]
        src_host = source.host(vm.endpoint, vm.host)
        cluster = self.mapping.cluster_target(vm.cluster or (src_host.cluster if src_host else None))
        cands = []
        for h in self.hosts:
            if h.state is not HostState.UP:
                continue
            if not all(h.id in self.mounts[self.pos[x]] for x in need):
                continue
            if not all(n is None or not n.hosts or h.id in n.hosts for n in nets):
                continue
            cands.append(h)
        if cluster is not None:
            if not any(h.cluster == cluster for h in self.hosts):
                return "placement", f"the mapping sends {vm.name}'s cluster to {cluster}, which {self.ep} lacks"
            cands = [h for h in cands if h.cluster == cluster]
        if not cands:
            where = f"cluster {cluster} of {self.ep}" if cluster else self.ep
            needs = joined(sorted({dp.target_name for dp in out.disks}))
            return "placement", f"no host of {where} that is up mounts {needs} and carries the VM's networks"

        def load(h: Host) -> tuple[float, int, str]:
            used = self.mem.get(h.id, 0) + vm.memory
            return (used / h.memory if h.memory else 0.0, self.count.get(h.id, 0), h.id)

        out.host = min(cands, key=load)
        return None

    # -- projection --------------------------------------------------------------------------
    def projected_datastores(self) -> list[Datastore]:
        """The target's datastores with the migration's primaries counted in their free space."""
        return [replace(d, free=d.free - self.placed_bytes[i]) for i, d in enumerate(self.ds_list)]
