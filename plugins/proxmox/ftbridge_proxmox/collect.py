"""Turning what the PVE API returned into ftbridge's model. Pure functions: no I/O here.

Datastores: a shared storage (``shared: 1``) is one datastore whose id is the storage id, its
hosts the nodes that may use it. A node-local storage (zfspool, lvm, dir ...) is one datastore
per node, ``STORAGE@NODE`` (``local-zfs@pve1``), because each node's instance is a different
place with its own capacity. Pass-through devices live on one node and get a pseudo-datastore
``passthrough@NODE`` (kind ``passthrough``, no capacity), so they are reported and never moved.

VM configs live in pmxcfs (``/etc/pve``), replicated to every node, not on a datastore:
``VM.config_datastore`` is None and ``config_path`` names the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

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
from ftbridge_proxmox.diskline import DriveLine, parse_config
from ftbridge_proxmox.mechanisms import (
    REPLICATION,
    STANDBY,
    standby_id,
    standby_source,
    synced_at,
    test_source,
)

PASSTHROUGH = "passthrough"
#: drives that are part of a running VM's placement (unused volumes and cloud-init are not)
PLACED_KINDS = frozenset({"disk", "efidisk", "tpmstate", "rootfs", "mountpoint", "passthrough", "bind"})


def split_datastore(ds_id: str) -> tuple[str, str | None]:
    """(storage id, node or None) of ``local-zfs@pve1`` or ``ceph-a``. Storage ids hold no '@'."""
    sid, sep, node = ds_id.partition("@")
    return sid, (node if sep else None)


@dataclass
class View:
    """The cluster-wide reads of one inventory, indexed."""

    endpoint: str
    now: float
    cluster_name: str | None = None
    quorate: bool | None = None
    node_status: dict[str, str] = field(default_factory=dict)  # node -> online/offline/unknown
    node_memory: dict[str, int] = field(default_factory=dict)  # node -> bytes (0: unknown)
    storage_cfg: dict[str, dict[str, Any]] = field(default_factory=dict)  # sid -> /storage item
    storage_state: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (sid, node) -> resource
    guests: dict[int, dict[str, Any]] = field(default_factory=dict)  # vmid -> /cluster/resources item
    jobs: list[dict[str, Any]] = field(default_factory=list)
    job_state: dict[str, dict[str, Any]] = field(default_factory=dict)
    ha: dict[str, dict[str, Any]] = field(default_factory=dict)  # sid -> HA resource
    affinity: dict[str, tuple[dict[str, int], bool]] = field(default_factory=dict)  # sid -> (prefs, strict)

    def read_resources(self, items: Iterable[Mapping[str, Any]]) -> None:
        for r in items:
            kind = r.get("type")
            if kind == "node":
                self.node_status[str(r["node"])] = str(r.get("status", "unknown"))
                self.node_memory[str(r["node"])] = int(r.get("maxmem", 0) or 0)
            elif kind == "storage":
                self.storage_state[(str(r["storage"]), str(r["node"]))] = dict(r)
            elif kind in ("qemu", "lxc"):
                self.guests[int(r["vmid"])] = dict(r)

    def shared(self, sid: str) -> bool:
        return bool(int(self.storage_cfg.get(sid, {}).get("shared", 0) or 0))

    def ds_id(self, sid: str, node: str) -> str:
        return sid if self.shared(sid) else f"{sid}@{node}"

    def storage_nodes(self, sid: str) -> list[str]:
        restricted = self.storage_cfg.get(sid, {}).get("nodes")
        nodes = sorted(self.node_status)
        if restricted:
            allowed = {n.strip() for n in str(restricted).split(",") if n.strip()}
            nodes = [n for n in nodes if n in allowed]
        return nodes

    def online(self, node: str | None) -> bool:
        return node is not None and self.node_status.get(node) == "online"

    def available(self, sid: str, node: str) -> bool:
        st = self.storage_state.get((sid, node))
        return self.online(node) and st is not None and st.get("status") == "available"


# hosts and datastores -------------------------------------------------------------------------
def build_hosts(view: View) -> tuple[Host, ...]:
    states = {"online": HostState.UP, "offline": HostState.DOWN}
    return tuple(Host(id=n, name=n, endpoint=view.endpoint, cluster=view.cluster_name,
                      state=states.get(view.node_status[n], HostState.UNKNOWN), domain=FailureDomain(host=n),
                      memory=view.node_memory.get(n, 0))
                 for n in sorted(view.node_status))


def build_datastores(view: View, passthrough_nodes: Iterable[str] = ()) -> tuple[Datastore, ...]:
    out: list[Datastore] = []
    for sid in sorted(view.storage_cfg):
        cfg = view.storage_cfg[sid]
        if int(cfg.get("disable", 0) or 0) or cfg.get("type") == "pbs":
            continue
        kind = str(cfg.get("type", "unknown"))
        nodes = view.storage_nodes(sid)
        if view.shared(sid):
            seen = [view.storage_state[(sid, n)] for n in nodes if view.available(sid, n)]
            cap, used = _space(seen[0] if seen else {})
            out.append(Datastore(id=sid, name=sid, endpoint=view.endpoint, kind=kind, shared=True,
                                 hosts=tuple(nodes), capacity=cap, free=cap - used, accessible=bool(seen),
                                 domain=FailureDomain(datastore=sid)))
            continue
        for n in nodes:
            ok = view.available(sid, n)
            cap, used = _space(view.storage_state.get((sid, n), {}) if ok else {})
            ds = f"{sid}@{n}"
            out.append(Datastore(id=ds, name=ds, endpoint=view.endpoint, kind=kind, shared=False, hosts=(n,),
                                 capacity=cap, free=cap - used, accessible=ok,
                                 domain=FailureDomain(datastore=ds, host=n)))
    for n in sorted(set(passthrough_nodes)):
        ds = f"{PASSTHROUGH}@{n}"
        out.append(Datastore(id=ds, name=ds, endpoint=view.endpoint, kind=PASSTHROUGH, shared=False, hosts=(n,),
                             capacity=0, free=0, accessible=view.online(n), domain=FailureDomain(datastore=ds, host=n)))
    return tuple(out)


def _space(item: Mapping[str, Any]) -> tuple[int, int]:
    cap = max(0, int(item.get("maxdisk", 0) or 0))
    used = min(cap, max(0, int(item.get("disk", 0) or 0)))
    return cap, used


# VMs ---------------------------------------------------------------------------------------------
@dataclass
class Guest:
    """One guest's resource entry, its config (or why it could not be read), and its drives."""

    vmid: int
    res: dict[str, Any]
    config: dict[str, Any] | None
    error: str | None = None

    @property
    def node(self) -> str:
        return str(self.res.get("node", ""))

    @property
    def name(self) -> str:
        return str(self.res.get("name") or self.vmid)

    def drives(self) -> tuple[tuple[DriveLine, ...], tuple[str, ...]]:
        if self.config is None:
            return (), ()
        parsed = parse_config(self.config)
        return parsed.drives, parsed.warnings


def classify(view: View) -> tuple[list[int], dict[int, list[int]], dict[int, list[int]]]:
    """(production VMIDs, standby clones by source, test instances by source); templates skipped.

    A standby or test instance whose source VM is gone counts as a VM of its own, so it is
    seen (and flagged by :func:`orphan_warning`) rather than hidden.
    """
    vms: list[int] = []
    standbys: dict[int, list[int]] = {}
    tests: dict[int, list[int]] = {}
    for vmid, r in sorted(view.guests.items()):
        if int(r.get("template", 0) or 0):
            continue
        name = r.get("name")
        if (src := standby_source(name)) is not None and src in view.guests and r.get("type") == "qemu":
            standbys.setdefault(src, []).append(vmid)
        elif (src := test_source(name)) is not None and src in view.guests:
            tests.setdefault(src, []).append(vmid)
        else:
            vms.append(vmid)
    return vms, standbys, tests


def orphan_warning(name: str | None) -> str | None:
    """Why a guest named like an ftbridge copy stands alone: its source VM no longer exists."""
    if (src := standby_source(name)) is not None:
        return f"standby copy of VM {src}, which no longer exists: remove it or adopt it"
    if (src := test_source(name)) is not None:
        return f"test-failover instance of VM {src}, which no longer exists: remove it"
    return None


def build_vm(view: View, g: Guest, standbys: list[Guest], tests: list[int]) -> tuple[VM, set[str]]:
    """The VM, and the nodes whose pass-through pseudo-datastore it references."""
    ep = view.endpoint
    node = g.node
    drives, warnings = g.drives()
    warns = list(warnings)
    if g.error:
        warns.append(g.error)
    if (orphan := orphan_warning(g.res.get("name"))) is not None:
        warns.append(orphan)
    disks: list[Disk] = []
    passthrough: set[str] = set()
    for d in drives:
        if d.kind == "cdrom":
            if d.volume == "cdrom":
                warns.append(f"{d.key}: a physical CD-ROM drive is passed through: it blocks migration and HA recovery")
            elif d.storage and not view.shared(d.storage):
                warns.append(f"{d.key}: CD-ROM image {d.volume} is on node-local storage: it blocks migration "
                             "and HA recovery")
            continue
        if d.kind not in PLACED_KINDS:
            continue  # unused volumes and cloud-init drives are not part of the running VM's placement
        if d.storage is None:
            passthrough.add(node)
            disks.append(Disk(id=d.key, size=d.size or 0, datastore=f"{PASSTHROUGH}@{node}", path=d.volume,
                              movable=False, kind=d.kind))
            continue
        if d.storage not in view.storage_cfg:
            warns.append(f"{d.key}: volume {d.volume} is on storage '{d.storage}', which /storage does not list; "
                         "its placement is not audited")
            continue
        if d.size is None:
            warns.append(f"{d.key}: volume {d.volume} has no size= in the config; counted as 0 bytes")
        disks.append(Disk(id=d.key, size=d.size or 0, datastore=view.ds_id(d.storage, node), path=d.volume,
                          movable=True, kind=d.kind))
    for t in tests:
        warns.append(f"test-failover instance {t} ({view.guests[t].get('name')}) still exists: run cleanup")
    by_key = {d.key: d for d in drives}
    disk_ids = {d.id for d in disks}
    secondaries = [s for s in (replication_secondary(view, g, job, by_key, disk_ids)
                               for job in view.jobs if int(job.get("guest", 0)) == g.vmid) if s is not None]
    secondaries += [standby_secondary(view, s, disk_ids) for s in standbys]
    sid = f"{'ct' if g.res.get('type') == 'lxc' else 'vm'}:{g.vmid}"
    ha = view.ha.get(sid)
    warns += _ha_warnings(view, sid, ha, secondaries)
    gtype = "qemu-server" if g.res.get("type") != "lxc" else "lxc"
    tags = tuple(t for t in str(g.res.get("tags") or "").replace(",", ";").split(";") if t)
    vm = VM(id=str(g.vmid), name=g.name, endpoint=ep, host=node or None, power=_power(view, g),
            disks=tuple(disks), config_datastore=None, config_path=f"/etc/pve/nodes/{node}/{gtype}/{g.vmid}.conf",
            secondaries=tuple(secondaries), tags=tags, vcpus=max(1, int(float(g.res.get("maxcpu", 1) or 1))),
            memory=int(g.res.get("maxmem", 0) or 0),
            ha=ha is not None and ha.get("state", "started") not in ("disabled", "ignored"),
            warnings=tuple(warns))
    return vm, passthrough


def _power(view: View, g: Guest) -> PowerState:
    if not view.online(g.node):
        return PowerState.UNKNOWN
    return {"running": PowerState.ON, "stopped": PowerState.OFF, "paused": PowerState.SUSPENDED}.get(
        str(g.res.get("status")), PowerState.UNKNOWN)


def replication_secondary(view: View, g: Guest, job: Mapping[str, Any], drives: Mapping[str, DriveLine],
                          disk_ids: set[str]) -> Secondary | None:
    """A pvesr job as a Secondary; None for a job being removed."""
    if job.get("remove_job"):
        return None
    jid = str(job["id"])
    target = str(job.get("target", ""))
    disks = []
    for key in sorted(disk_ids):
        d = drives.get(key)
        if d is None or d.storage is None or not d.replicate:
            continue
        disks.append(SecondaryDisk(disk=key, datastore=f"{d.storage}@{target}", path=d.volume, size=d.size or 0))
    st = view.job_state.get(jid)
    last_sync = int(st.get("last_sync", 0) or 0) if st else 0
    reachable = view.online(target) and all(view.available(split_datastore(x.datastore)[0], target) for x in disks)
    if not reachable:
        state = SecondaryState.BROKEN
    elif st is None:
        # the job's state lives on the source node; when that node is down the replica is all
        # there is, of unknown age
        state = SecondaryState.STALE if not view.online(g.node) else SecondaryState.UNKNOWN
    elif int(job.get("disable", 0) or 0):
        state = SecondaryState.STALE
    elif not last_sync:
        state = SecondaryState.BROKEN if int(st.get("fail_count", 0) or 0) else SecondaryState.SYNCING
    elif int(st.get("fail_count", 0) or 0):
        state = SecondaryState.STALE
    else:
        state = SecondaryState.IN_SYNC
    return Secondary(id=jid, mechanism=REPLICATION, disks=tuple(disks), host=target, state=state,
                     last_sync=float(last_sync) if last_sync else None,
                     lag=max(0.0, view.now - last_sync) if last_sync else None)


def standby_secondary(view: View, clone: Guest, disk_ids: set[str]) -> Secondary:
    """A standby clone as a Secondary: its disks, its node, the age of the copy."""
    drives, _ = clone.drives()
    node = clone.node
    disks = [SecondaryDisk(disk=d.key, datastore=view.ds_id(d.storage, node), path=d.volume, size=d.size or 0)
             for d in drives if d.storage and d.kind in PLACED_KINDS and d.key in disk_ids
             and d.storage in view.storage_cfg]
    synced = synced_at(str((clone.config or {}).get("description", "")))
    if clone.res.get("lock") == "clone" or (clone.config or {}).get("lock") == "clone":
        state = SecondaryState.SYNCING
    elif clone.config is None:
        state = SecondaryState.UNKNOWN
    elif not all(view.available(split_datastore(x.datastore)[0], node) for x in disks):
        state = SecondaryState.BROKEN
    else:
        state = SecondaryState.IN_SYNC
    return Secondary(id=standby_id(clone.vmid), mechanism=STANDBY, disks=tuple(disks), host=node or None,
                     state=state, last_sync=float(synced) if synced else None,
                     lag=max(0.0, view.now - synced) if synced else None)


def _ha_warnings(view: View, sid: str, ha: Mapping[str, Any] | None, secondaries: list[Secondary]) -> list[str]:
    """An HA rule that keeps the VM away from every replica node would defeat failover."""
    if ha is None:
        return []
    prefs, strict = view.affinity.get(sid, ({}, False))
    targets = {s.host for s in secondaries if s.mechanism == REPLICATION and s.host}
    if strict and targets and not targets & set(prefs):
        return [f"HA keeps {sid} on {', '.join(sorted(prefs))} (strict/restricted) but its replicas are on "
                f"{', '.join(sorted(targets))}: HA cannot recover it from them"]
    return []


def parse_affinity(ha: Mapping[str, Mapping[str, Any]], groups: Iterable[Mapping[str, Any]],
                   rules: Iterable[Mapping[str, Any]]) -> dict[str, tuple[dict[str, int], bool]]:
    """Node preferences per HA resource, from PVE 8 groups or PVE 9 node-affinity rules."""
    out: dict[str, tuple[dict[str, int], bool]] = {}
    by_group = {str(g.get("group")): g for g in groups}
    for sid, res in ha.items():
        grp = by_group.get(str(res.get("group", "")))
        if grp:
            out[sid] = (_node_prefs(str(grp.get("nodes", ""))), bool(int(grp.get("restricted", 0) or 0)))
    for rule in rules:
        if rule.get("type") != "node-affinity" or int(rule.get("disable", 0) or 0):
            continue
        for sid in str(rule.get("resources", "")).split(","):
            if sid:
                out[sid] = (_node_prefs(str(rule.get("nodes", ""))), bool(int(rule.get("strict", 0) or 0)))
    return out


def _node_prefs(text: str) -> dict[str, int]:
    prefs: dict[str, int] = {}
    for item in text.replace(";", ",").replace(" ", ",").split(","):
        if item:
            name, _, prio = item.partition(":")
            prefs[name] = int(prio) if prio.isdigit() else 0
    return prefs
