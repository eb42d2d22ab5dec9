"""Turning what the PVE API returned into ftbridge's model. Pure functions: no I/O here.

Datastores: a shared storage (``shared: 1``) is one datastore whose id is the storage id; its
``hosts`` are the nodes where PVE reports it active now (``/cluster/resources`` status
``available``), not merely the nodes it is configured for. A node-local storage (zfspool, lvm,
dir ...) is one datastore per node, ``STORAGE@NODE`` (``local-zfs@pve1``), because each node's
instance is a different place with its own capacity. Pass-through devices and host paths live
on one node and get a pseudo-datastore ``passthrough@NODE`` (kind ``passthrough``, no
capacity), or ``passthrough`` when marked ``shared=1`` ("available on all nodes"), so they are
reported and never moved.

VM configs live in pmxcfs (``/etc/pve``), replicated to every node, not on a datastore:
``VM.config_datastore`` is None and ``config_path`` names the file. The config read is the
*current* one (``current=1``): what runs, not what waits for the next start.

Every platform rule applied here names the PVE source it comes from; the plugin README's rule
table lists them with the test that holds each.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

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
from ftbridge_proxmox.diskline import DriveLine, parse_config
from ftbridge_proxmox.mechanisms import (
    REPLICATION,
    STANDBY,
    guest_mechanisms,
    replicated_drives,
    standby_id,
    standby_source,
    synced_at,
    test_source,
)

PASSTHROUGH = "passthrough"
#: drives that are part of a running guest's placement (unused volumes, CD-ROMs and cloud-init
#: drives are not: PVE regenerates cloud-init images, and unused volumes are detached)
PLACED_KINDS = frozenset({"disk", "efidisk", "tpmstate", "rootfs", "mountpoint", "passthrough"})
#: pmxcfs lock lifetime (pve-ha-manager ``PVE/HA/Env/PVE2.pm``): once a node's LRM has not
#: refreshed its agent lock this long, PVE's CRM takes the lock: the node is fenced (its
#: watchdog, 60 s in ``watchdog-mux.c``, has reset it by then)
AGENT_LOCK_LIFETIME = 120
#: file-based storage types (their volumes are files; thin unless preallocated)
FILE_BASED = frozenset({"dir", "nfs", "cifs", "glusterfs", "btrfs", "cephfs"})


def split_datastore(ds_id: str) -> tuple[str, str | None]:
    """(storage id, node or None) of ``local-zfs@pve1`` or ``ceph-a``. Storage ids hold no '@'."""
    sid, sep, node = ds_id.partition("@")
    return sid, (node if sep else None)


def storage_content(cfg: Mapping[str, Any]) -> frozenset[str]:
    """The content types a storage holds (``images``, ``rootdir``, ``iso`` ...); ``none``: nothing
    (pve-storage ``PVE/Storage/Plugin.pm`` ``decode_value``/``encode_value``)."""
    items = {c.strip() for c in str(cfg.get("content") or "").split(",") if c.strip()}
    return frozenset(items - {"none"})


def storage_thin(cfg: Mapping[str, Any]) -> bool:
    """Do volumes allocated here stay thin? As pve-storage allocates them: LVM-thin, RBD and
    BTRFS always; a zfspool (and ZFS over iSCSI) only with ``sparse`` (``zfs create -s``,
    ``ZFSPoolPlugin.pm``); file storages unless ``preallocation`` is ``falloc``/``full``
    (``Plugin.pm`` ``preallocation_cmd_opt``: qcow2 defaults to ``metadata``, raw to ``off``);
    plain LVM and iSCSI LUNs never."""
    kind = str(cfg.get("type", ""))
    if kind in ("lvmthin", "rbd", "btrfs"):
        return True
    if kind in ("zfspool", "zfs"):
        return bool(int(cfg.get("sparse", 0) or 0))
    if kind in FILE_BASED:
        return str(cfg.get("preallocation", "metadata")) not in ("falloc", "full")
    return False


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
    #: ``/cluster/ha/status/manager_status`` (read when a node is offline), else None
    ha_manager: dict[str, Any] | None = None
    #: node -> iface -> ``/nodes/{node}/network?type=any_bridge`` item (bridges and local vnets)
    bridges: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    vnets: dict[str, dict[str, Any]] = field(default_factory=dict)  # vnet -> /cluster/sdn/vnets item

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

    def disabled(self, sid: str) -> bool:
        return bool(int(self.storage_cfg.get(sid, {}).get("disable", 0) or 0))

    def ds_id(self, sid: str, node: str) -> str:
        return sid if self.shared(sid) else f"{sid}@{node}"

    def configured_on(self, sid: str, node: str) -> bool:
        """Is the storage configured for the node (``nodes`` unset, or naming it)?"""
        restricted = self.storage_cfg.get(sid, {}).get("nodes")
        return not restricted or node in {n.strip() for n in str(restricted).split(",")}

    def storage_nodes(self, sid: str) -> list[str]:
        return [n for n in sorted(self.node_status) if self.configured_on(sid, n)]

    def online(self, node: str | None) -> bool:
        return node is not None and self.node_status.get(node) == "online"

    def available(self, sid: str, node: str) -> bool:
        """Active on the node now: PVE lists it there with status ``available`` (pve-manager
        ``PVE/API2Tools.pm`` ``extract_storage_stats``: only when the node reports it active)."""
        st = self.storage_state.get((sid, node))
        return self.online(node) and st is not None and st.get("status") == "available"


# hosts: PVE's node states as ftbridge's ----------------------------------------------------
def node_fenced(view: View, node: str) -> bool:
    """Does PVE's HA stack report the node fenced (proven to run nothing)?

    Two reports, both from ``/cluster/ha/status/manager_status`` (pve-ha-manager):
    a service of the node in state ``recovery`` (the CRM got the node's agent lock:
    ``Manager.pm``, ``NodeStatus.pm`` ``fence_node``), or the node's LRM last wrote state
    ``active`` in mode ``active`` (it held the lock, and with it the watchdog) and has not
    written for longer than the lock lifetime: the same condition under which the CRM takes
    the lock, after the watchdog has reset the node.
    """
    ms = view.ha_manager
    if ms is None or view.online(node) or not view.quorate:
        return False
    status = ms.get("manager_status") or {}
    for svc in (status.get("service_status") or {}).values():
        if svc.get("node") == node and svc.get("state") == "recovery":
            return True
    lrm = (ms.get("lrm_status") or {}).get(node) or {}
    crm_now = float(status.get("timestamp") or view.now)
    stamp = float(lrm.get("timestamp") or 0)
    return (
        lrm.get("state") == "active"
        and lrm.get("mode", "active") == "active"
        and stamp > 0
        and crm_now - stamp > AGENT_LOCK_LIFETIME
    )


def host_state(view: View, node: str) -> HostState:
    """PVE's view of a node as ftbridge's :class:`HostState` (the README's state map).

    ``online`` is UP, MAINTENANCE when its HA LRM is in maintenance mode; ``offline`` is DOWN
    only when PVE's HA reports the node fenced (:func:`node_fenced`), else UNREACHABLE: PVE
    cannot tell a dead node from one cut off from the cluster that still runs its guests.
    """
    status = view.node_status.get(node)
    if status == "online":
        lrm = ((view.ha_manager or {}).get("lrm_status") or {}).get(node) or {}
        return HostState.MAINTENANCE if lrm.get("mode") == "maintenance" else HostState.UP
    if status == "offline":
        return HostState.DOWN if node_fenced(view, node) else HostState.UNREACHABLE
    return HostState.UNKNOWN


def build_hosts(view: View) -> tuple[Host, ...]:
    return tuple(
        Host(
            id=n,
            name=n,
            endpoint=view.endpoint,
            cluster=view.cluster_name,
            state=host_state(view, n),
            domain=FailureDomain(host=n),
            memory=view.node_memory.get(n, 0),
        )
        for n in sorted(view.node_status)
    )


# datastores ---------------------------------------------------------------------------------------
def build_datastores(
    view: View,
    passthrough_nodes: Iterable[str] = (),
    shared_passthrough: bool = False,
    unconfigured: Iterable[str] = (),
) -> tuple[Datastore, ...]:
    """Every storage, as datastores; ``unconfigured`` are ``STORAGE@NODE`` ids guests reference
    on nodes the storage is not configured for (listed inaccessible, mounted by no node)."""
    out: list[Datastore] = []
    for sid in sorted(view.storage_cfg):
        cfg = view.storage_cfg[sid]
        if cfg.get("type") in ("pbs", "esxi"):
            continue  # backup and import sources, never a place for a guest's volumes
        kind = str(cfg.get("type", "unknown"))
        content = storage_content(cfg)
        thin = storage_thin(cfg)
        if view.shared(sid):
            active = [n for n in view.storage_nodes(sid) if view.available(sid, n)]
            cap, used = _space(view.storage_state[(sid, active[0])] if active else {})
            out.append(
                Datastore(
                    id=sid,
                    name=sid,
                    endpoint=view.endpoint,
                    kind=kind,
                    shared=True,
                    hosts=tuple(active),
                    capacity=cap,
                    free=cap - used,
                    accessible=bool(active),
                    domain=FailureDomain(datastore=sid),
                    content=content,
                    thin=thin,
                )
            )
            continue
        for n in view.storage_nodes(sid):
            ok = view.available(sid, n)
            cap, used = _space(view.storage_state.get((sid, n), {}) if ok else {})
            ds = f"{sid}@{n}"
            out.append(
                Datastore(
                    id=ds,
                    name=ds,
                    endpoint=view.endpoint,
                    kind=kind,
                    shared=False,
                    hosts=(n,) if ok else (),
                    capacity=cap,
                    free=cap - used,
                    accessible=ok,
                    domain=FailureDomain(datastore=ds, host=n),
                    content=content,
                    thin=thin,
                )
            )
    for ds in sorted(set(unconfigured)):
        sid, node = split_datastore(ds)
        cfg = view.storage_cfg.get(sid, {})
        out.append(
            Datastore(
                id=ds,
                name=ds,
                endpoint=view.endpoint,
                kind=str(cfg.get("type", "unknown")),
                shared=False,
                hosts=(),
                capacity=0,
                free=0,
                accessible=False,
                domain=FailureDomain(datastore=ds, host=node),
                content=storage_content(cfg),
                thin=storage_thin(cfg),
            )
        )
    for n in sorted(set(passthrough_nodes)):
        ds = f"{PASSTHROUGH}@{n}"
        out.append(
            Datastore(
                id=ds,
                name=ds,
                endpoint=view.endpoint,
                kind=PASSTHROUGH,
                shared=False,
                hosts=(n,) if view.online(n) else (),
                capacity=0,
                free=0,
                accessible=view.online(n),
                domain=FailureDomain(datastore=ds, host=n),
                content=frozenset(),
            )
        )
    if shared_passthrough:
        up = tuple(n for n in sorted(view.node_status) if view.online(n))
        out.append(
            Datastore(
                id=PASSTHROUGH,
                name=PASSTHROUGH,
                endpoint=view.endpoint,
                kind=PASSTHROUGH,
                shared=True,
                hosts=up,
                capacity=0,
                free=0,
                accessible=bool(up),
                domain=FailureDomain(datastore=PASSTHROUGH),
                content=frozenset(),
            )
        )
    return tuple(out)


def _space(item: Mapping[str, Any]) -> tuple[int, int]:
    cap = max(0, int(item.get("maxdisk", 0) or 0))
    used = min(cap, max(0, int(item.get("disk", 0) or 0)))
    return cap, used


# networks --------------------------------------------------------------------------------------
_MAC = re.compile(r"^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$")


@dataclass(frozen=True, slots=True)
class NicLine:
    key: str
    bridge: str | None
    tag: int | None
    mac: str
    model: str


def parse_net(key: str, value: str) -> NicLine:
    """A ``netN`` line: QEMU ``virtio=MAC,bridge=vmbr0,tag=20`` (or ``model=..,macaddr=..``),
    LXC ``name=eth0,bridge=vmbr0,hwaddr=MAC,tag=20,type=veth`` (qemu-server
    ``PVE/QemuServer/Network.pm``, pve-container ``PVE/LXC/Config.pm``)."""
    opts: dict[str, str] = {}
    model = mac = ""
    for part in str(value).split(","):
        k, sep, v = part.partition("=")
        if not sep:
            continue
        if not model and _MAC.match(v) and k not in ("hwaddr", "macaddr"):
            model, mac = k, v  # QEMU's model=MAC first property
        else:
            opts[k] = v
    model = model or opts.get("model", "") or opts.get("type", "")
    mac = mac or opts.get("macaddr", "") or opts.get("hwaddr", "")
    tag = opts.get("tag")
    return NicLine(key, opts.get("bridge") or None, int(tag) if tag and tag.isdigit() else None, mac.upper(), model)


def network_id(bridge: str, tag: int | None) -> str:
    """``vmbr0`` for a bridge, ``vmbr0/20`` for VLAN 20 on it (or on a VLAN-aware vnet)."""
    return f"{bridge}/{tag}" if tag else bridge


def build_networks(view: View, nics: Iterable[NicLine]) -> tuple[Network, ...]:
    """Bridges and SDN vnets (each with the nodes that have it), and each VLAN NICs use on them."""
    where: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    for node in sorted(view.bridges):
        for iface, item in view.bridges[node].items():
            where.setdefault(iface, []).append(node)
            kinds[iface] = {"bridge": "bridge", "OVSBridge": "ovs-bridge", "vnet": "vnet"}.get(
                str(item.get("type")), str(item.get("type"))
            )
    for name in view.vnets:
        kinds[name] = "vnet"
        where.setdefault(name, [])
    out: dict[str, Network] = {}
    for name in sorted(kinds):
        vnet = view.vnets.get(name, {})
        tag = vnet.get("tag")
        out[name] = Network(
            id=name,
            name=str(vnet.get("alias") or name),
            endpoint=view.endpoint,
            kind=kinds[name],
            vlan=int(tag) if tag is not None and kinds[name] == "vnet" else None,
            hosts=tuple(where.get(name, ())),
        )
    for nic in nics:
        if nic.bridge is None:
            continue
        base = out.get(nic.bridge)
        if base is None:  # a bridge no node that answered has: still a network the NIC names
            base = out[nic.bridge] = Network(id=nic.bridge, name=nic.bridge, endpoint=view.endpoint, kind="bridge")
        nid = network_id(nic.bridge, nic.tag)
        if nid not in out:
            out[nid] = Network(
                id=nid, name=base.name, endpoint=view.endpoint, kind=base.kind, vlan=nic.tag, hosts=base.hosts
            )
    return tuple(out[k] for k in sorted(out))


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

    @property
    def lxc(self) -> bool:
        return self.res.get("type") == "lxc"

    @property
    def running(self) -> bool:
        return self.res.get("status") == "running"

    def drives(self) -> tuple[tuple[DriveLine, ...], tuple[str, ...]]:
        if self.config is None:
            return (), ()
        parsed = parse_config(self.config)
        return parsed.drives, parsed.warnings

    def nics(self) -> tuple[NicLine, ...]:
        conf = self.config or {}
        return tuple(parse_net(k, str(v)) for k, v in sorted(conf.items()) if re.fullmatch(r"net\d+", k))


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


@dataclass
class Built:
    """A VM and what its references add to the endpoint's datastores and networks."""

    vm: VM
    passthrough_nodes: set[str] = field(default_factory=set)
    shared_passthrough: bool = False
    unconfigured: set[str] = field(default_factory=set)
    nics: tuple[NicLine, ...] = ()


def build_vm(view: View, g: Guest, standbys: list[Guest], tests: list[int]) -> Built:
    """The VM, and the pseudo-datastores and networks it references."""
    ep = view.endpoint
    node = g.node
    drives, warnings = g.drives()
    warns = list(warnings)
    if g.error:
        warns.append(g.error)
    if (orphan := orphan_warning(g.res.get("name"))) is not None:
        warns.append(orphan)
    pinned_nodes: set[str] = set()
    shared_pt = False
    unconfigured: set[str] = set()
    disks: list[Disk] = []
    deps: list[Dependency] = []
    for d in drives:
        if d.kind == "cdrom":
            if d.volume == "cdrom":
                warns.append(f"{d.key}: a physical CD-ROM drive is passed through: it blocks migration and HA recovery")
            elif d.storage and d.storage in view.storage_cfg:
                deps.append(Dependency("iso", view.ds_id(d.storage, node), d.volume))
                if not view.shared(d.storage):
                    warns.append(
                        f"{d.key}: CD-ROM image {d.volume} is on node-local storage: it blocks migration "
                        "and HA recovery"
                    )
            continue
        if d.kind not in PLACED_KINDS:
            continue  # unused volumes and cloud-init drives are not part of the running guest's placement
        if d.storage is None:
            # a device or host path: pinned to the node unless marked "available on all nodes"
            pinned = not d.shared
            if pinned:
                pinned_nodes.add(node)
            else:
                shared_pt = True
            disks.append(
                Disk(
                    id=d.key,
                    size=d.size or 0,
                    datastore=f"{PASSTHROUGH}@{node}" if pinned else PASSTHROUGH,
                    path=d.volume,
                    movable=False,
                    kind=PASSTHROUGH,
                    content=d.content,
                )
            )
            continue
        if d.storage not in view.storage_cfg:
            warns.append(
                f"{d.key}: volume {d.volume} is on storage '{d.storage}', which /storage does not list; "
                "its placement is not audited"
            )
            continue
        ds = view.ds_id(d.storage, node)
        if view.disabled(d.storage):
            warns.append(
                f"{d.key}: volume {d.volume} is on storage '{d.storage}', which is disabled: the guest "
                "cannot start or move until it is enabled"
            )
        elif not view.configured_on(d.storage, node):
            warns.append(
                f"{d.key}: volume {d.volume} is on storage '{d.storage}', which is not configured for "
                f"node {node} (storage 'nodes' excludes it): the guest cannot start there"
            )
            if not view.shared(d.storage):
                unconfigured.add(ds)
        if d.vtype != "images":  # an ISO attached as a disk: it is needed to run, not the guest's own
            deps.append(Dependency("iso", ds, d.volume))
            continue
        if d.size is None:
            warns.append(f"{d.key}: volume {d.volume} has no size= in the config; counted as 0 bytes")
        if d.base is not None:
            deps.append(Dependency("base-disk", ds, d.base))
        # pve-container API2/LXC.pm move_volume: "cannot move volumes of a running container"
        movable = d.movable and not (g.lxc and g.running)
        disks.append(
            Disk(
                id=d.key,
                size=d.size or 0,
                datastore=ds,
                path=d.volume,
                movable=movable,
                kind=d.kind,
                content=d.content,
                thin=storage_thin(view.storage_cfg[d.storage]),
            )
        )
    for t in tests:
        warns.append(f"test-failover instance {t} ({view.guests[t].get('name')}) still exists: run cleanup")
    by_key = {d.key: d for d in drives}
    disk_ids = {d.id for d in disks}
    secondaries = [
        s
        for s in (
            replication_secondary(view, g, job, by_key, disk_ids)
            for job in view.jobs
            if int(job.get("guest", 0)) == g.vmid
        )
        if s is not None
    ]
    secondaries += [standby_secondary(view, s, disk_ids) for s in standbys]
    sid = f"{'ct' if g.lxc else 'vm'}:{g.vmid}"
    ha = view.ha.get(sid)
    warns += _ha_warnings(view, sid, ha, secondaries)
    gtype = "lxc" if g.lxc else "qemu-server"
    tags = tuple(t for t in str(g.res.get("tags") or "").replace(",", ";").split(";") if t)
    nic_lines = g.nics()
    mechanisms: tuple[str, ...] = ()
    if g.config is not None:
        mechanisms = guest_mechanisms(g.vmid, lxc=g.lxc, running=g.running, drives=drives, storages=view.storage_cfg)
    vm = VM(
        id=str(g.vmid),
        name=g.name,
        endpoint=ep,
        host=node or None,
        power=_power(view, g),
        disks=tuple(disks),
        config_datastore=None,
        config_path=f"/etc/pve/nodes/{node}/{gtype}/{g.vmid}.conf",
        secondaries=tuple(secondaries),
        tags=tags,
        vcpus=max(1, int(float(g.res.get("maxcpu", 1) or 1))),
        memory=int(g.res.get("maxmem", 0) or 0),
        ha=ha is not None and ha.get("state", "started") not in ("disabled", "ignored"),
        warnings=tuple(warns),
        mechanisms=mechanisms,
        depends_on=tuple(deps),
        uuid=_smbios_uuid((g.config or {}).get("smbios1")),
        nics=tuple(
            Nic(id=n.key, network=network_id(n.bridge, n.tag) if n.bridge else None, mac=n.mac, model=n.model)
            for n in nic_lines
        ),
    )
    return Built(vm, pinned_nodes, shared_pt, unconfigured, nic_lines)


def _smbios_uuid(smbios1: Any) -> str:
    """The ``uuid=`` of a QEMU guest's ``smbios1`` line (qemu-server ``parse_smbios1``)."""
    for part in str(smbios1 or "").split(","):
        k, _, v = part.partition("=")
        if k.strip() == "uuid":
            return v.strip().lower()
    return ""


def _power(view: View, g: Guest) -> PowerState:
    if not view.online(g.node):
        # a fenced node runs nothing; any other offline node may still run its guests
        return PowerState.OFF if host_state(view, g.node) is HostState.DOWN else PowerState.UNKNOWN
    return {"running": PowerState.ON, "stopped": PowerState.OFF, "paused": PowerState.SUSPENDED}.get(
        str(g.res.get("status")), PowerState.UNKNOWN
    )


def replication_secondary(
    view: View, g: Guest, job: Mapping[str, Any], drives: Mapping[str, DriveLine], disk_ids: set[str]
) -> Secondary | None:
    """A pvesr job as a Secondary; None for a job being removed.

    What the copy holds is what pvesr replicates (:func:`~ftbridge_proxmox.mechanisms.replicated_drives`):
    each local volume as the same storage on the target node. A volume on shared storage is
    not copied, because the target reaches the same volume: the copy lists it on the shared
    datastore itself. Drives pvesr leaves out (``replicate=0``, a pass-through device marked
    so) are ``missing``: the copy is partial.
    """
    if job.get("remove_job"):
        return None
    jid = str(job["id"])
    target = str(job.get("target", ""))
    copied = replicated_drives(g.vmid, drives.values(), view.storage_cfg)
    disks: list[SecondaryDisk] = []
    missing: list[str] = []
    for key in sorted(disk_ids):
        d = drives.get(key)
        if d is None:
            continue
        if key in copied:
            disks.append(SecondaryDisk(disk=key, datastore=f"{d.storage}@{target}", path=d.volume, size=d.size or 0))
        elif d.storage is not None and view.shared(d.storage):
            disks.append(SecondaryDisk(disk=key, datastore=d.storage, path=d.volume, size=d.size or 0))
        else:
            missing.append(key)
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
    return Secondary(
        id=jid,
        mechanism=REPLICATION,
        disks=tuple(disks),
        host=target,
        state=state,
        last_sync=float(last_sync) if last_sync else None,
        lag=max(0.0, view.now - last_sync) if last_sync else None,
        missing=tuple(missing),
    )


def standby_secondary(view: View, clone: Guest, disk_ids: set[str]) -> Secondary:
    """A standby clone as a Secondary: its disks, its node, the age of the copy."""
    drives, _ = clone.drives()
    node = clone.node
    disks = [
        SecondaryDisk(disk=d.key, datastore=view.ds_id(d.storage, node), path=d.volume, size=d.size or 0)
        for d in drives
        if d.storage and d.kind in PLACED_KINDS and d.key in disk_ids and d.storage in view.storage_cfg
    ]
    synced = synced_at(str((clone.config or {}).get("description", "")))
    if clone.res.get("lock") == "clone" or (clone.config or {}).get("lock") == "clone":
        state = SecondaryState.SYNCING
    elif clone.config is None:
        state = SecondaryState.UNKNOWN
    elif not all(view.available(split_datastore(x.datastore)[0], node) for x in disks):
        state = SecondaryState.BROKEN
    else:
        state = SecondaryState.IN_SYNC
    held = {x.disk for x in disks}
    return Secondary(
        id=standby_id(clone.vmid),
        mechanism=STANDBY,
        disks=tuple(disks),
        host=node or None,
        state=state,
        last_sync=float(synced) if synced else None,
        lag=max(0.0, view.now - synced) if synced else None,
        missing=tuple(sorted(disk_ids - held)) if clone.config is not None else (),
    )


def _ha_warnings(view: View, sid: str, ha: Mapping[str, Any] | None, secondaries: list[Secondary]) -> list[str]:
    """An HA rule that keeps the VM away from every replica node would defeat failover."""
    if ha is None:
        return []
    prefs, strict = view.affinity.get(sid, ({}, False))
    targets = {s.host for s in secondaries if s.mechanism == REPLICATION and s.host}
    if strict and targets and not targets & set(prefs):
        return [
            f"HA keeps {sid} on {', '.join(sorted(prefs))} (strict/restricted) but its replicas are on "
            f"{', '.join(sorted(targets))}: HA cannot recover it from them"
        ]
    return []


def parse_affinity(
    ha: Mapping[str, Mapping[str, Any]], groups: Iterable[Mapping[str, Any]], rules: Iterable[Mapping[str, Any]]
) -> dict[str, tuple[dict[str, int], bool]]:
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


def target_refusal(sid: str, cfg: Mapping[str, Any] | None, *, node: str, content: str) -> str | None:
    """Why PVE refuses storage ``sid`` on ``node`` for a volume needing ``content``, or None.

    In PVE's words: pve-storage ``PVE/Storage.pm`` ``storage_check_enabled`` (disabled, or not
    configured for the node), qemu-server ``PVE/API2/Qemu.pm`` ``move_vm_disk``/``clone_vm``
    (a VM image needs ``images``), pve-container ``PVE/LXC.pm`` ``alloc_disk`` (a container
    volume needs ``rootdir``, except on a zfspool, which always takes subvolumes).
    """
    if cfg is None:
        return f"storage '{sid}' does not exist"
    if int(cfg.get("disable", 0) or 0):
        return f"storage '{sid}' is disabled"
    restricted = cfg.get("nodes")
    if restricted and node not in {n.strip() for n in str(restricted).split(",")}:
        return f"storage '{sid}' is not available on node '{node}'"
    held = storage_content(cfg)
    if content == "images" and "images" not in held:
        return f"storage '{sid}' does not support vm images"
    if content == "rootdir" and "rootdir" not in held and cfg.get("type") != "zfspool":
        return f"content type 'rootdir' is not available or configured on storage '{sid}'"
    return None
