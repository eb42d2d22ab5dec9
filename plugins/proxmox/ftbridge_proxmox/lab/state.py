"""The lab's Proxmox VE cluster: nodes, storages, guests, tasks, pvesr jobs and the HA stack.

Plain objects under one lock. Time-driven behaviour (tasks finishing, replication runs, the
HA manager fencing a dead node and recovering its guests) is advanced lazily by :meth:`tick`
at the start of every request, so the lab needs no background threads and a test sees the
same outcome however slowly it polls.

Storage use is computed from the volumes that exist (guest drives on their node, replicas on
a job's target, space a running task has reserved) plus what the estate reserved, so every
view of free space agrees.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ftbridge.estate import Estate
from ftbridge.model import HostState, Nic, PowerState
from ftbridge_proxmox.mechanisms import standby_description, standby_name

log = logging.getLogger(__name__)

GIB = 1024**3
#: estate datastore kinds as PVE storage types (unknown kinds become plain directories)
STORAGE_TYPES = {
    "rbd",
    "nfs",
    "zfspool",
    "lvm",
    "lvmthin",
    "dir",
    "iscsi",
    "iscsidirect",
    "cephfs",
    "cifs",
    "glusterfs",
    "zfs",
    "btrfs",
    "pbs",
    "esxi",
}
FILE_BASED = {"dir", "nfs", "cifs", "cephfs", "glusterfs", "btrfs"}
#: what a storage holds when its config names no content: each pve-storage plugin's default
#: (``plugindata`` content, second element, in ``PVE/Storage/*Plugin.pm``)
DEFAULT_CONTENT = {
    "rbd": "images",
    "lvm": "images",
    "iscsi": "images",
    "iscsidirect": "images",
    "zfs": "images",
    "cephfs": "backup",
    "pbs": "backup",
    "esxi": "import",
    "dir": "images,rootdir",
    "nfs": "images",
    "cifs": "images",
    "glusterfs": "images",
    "zfspool": "images,rootdir",
    "lvmthin": "images,rootdir",
    "btrfs": "images,rootdir",
}
#: storage types pve-storage treats as shared whatever the config says (``@SHARED_STORAGE``)
SHARED_TYPES = {"iscsi", "nfs", "cifs", "rbd", "cephfs", "iscsidirect", "zfs", "drbd", "pbs"}
#: pmxcfs lock lifetime: the HA manager gets a dead node's agent lock this long after its last
#: refresh (pve-ha-manager ``PVE/HA/Env/PVE2.pm``); the lab compresses it into ``fence_delay``
LOCK_LIFETIME = 120
QEMU_SLOT = re.compile(r"^(?:scsi\d+|virtio\d+|sata\d+|ide\d+|efidisk0|tpmstate0|unused\d+)$")
LXC_SLOT = re.compile(r"^(?:rootfs|mp\d+|unused\d+)$")
NODE_NAME = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?$")
LXC_TAG = "pve-lxc"  # an estate VM with this tag is served as a container


class ApiError(Exception):
    """A PVE error answer: status, the message (also the reason phrase), per-parameter errors."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def format_size(size: int) -> str:
    for unit, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


@dataclass
class Node:
    name: str
    nodeid: int
    online: bool = True  # reachable by the cluster (quorate partition, pmxcfs, API proxying)
    down_since: float | None = None
    pstart: int = 0
    memory: int = 256 * GIB
    #: running at all: a partitioned node (online False) still runs its guests
    alive: bool = True
    #: its HA LRM held the agent lock (and the watchdog) when it went away: it has HA services
    armed: bool = False
    #: when PVE's CRM got (or gets) the node's agent lock: from then on PVE reports it fenced
    fenced_at: float | None = None


@dataclass
class Storage:
    id: str
    type: str
    shared: bool
    nodes: list[str] | None  # None: every node
    content: str = "images,rootdir"
    disabled: bool = False
    options: dict[str, Any] = field(default_factory=dict)  # type-specific keys shown by /storage (sparse ...)
    capacity: dict[str, int] = field(default_factory=dict)  # location ("" for shared) -> bytes
    reserved: dict[str, int] = field(default_factory=dict)

    def on(self, node: str) -> bool:
        return self.nodes is None or node in self.nodes

    def loc(self, node: str) -> str:
        return "" if self.shared else node


@dataclass
class Drive:
    slot: str
    kind: str  # disk cdrom cloudinit efidisk tpmstate unused passthrough rootfs mp bind
    storage: str | None = None
    volname: str | None = None
    size: int = 0
    opts: str = ""
    path: str | None = None  # device or bind path; CD-ROM volume ("none", "local:iso/x.iso")

    def render(self) -> str:
        if self.kind == "cdrom":
            parts = [self.path or "none", "media=cdrom"]
        elif self.kind in ("passthrough", "bind"):
            parts = [self.path or "/dev/null"]
        else:
            parts = [f"{self.storage}:{self.volname}"]
            if self.kind == "cloudinit":
                parts.append("media=cdrom")
        if self.opts:
            parts.append(self.opts)
        if self.size and self.kind not in ("unused", "cdrom", "cloudinit"):
            parts.append(f"size={format_size(self.size)}")
        return ",".join(parts)

    @property
    def is_volume(self) -> bool:
        return self.storage is not None and self.kind != "cdrom"


@dataclass
class Guest:
    vmid: int
    type: str  # qemu | lxc
    node: str
    name: str
    status: str = "stopped"
    cores: int = 1
    memory: int = 512  # MiB
    tags: list[str] = field(default_factory=list)
    description: str = ""
    onboot: bool = False
    drives: dict[str, Drive] = field(default_factory=dict)
    nets: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)  # raw lines injected by tests
    lock: str | None = None  # config lock shown to clients: clone, migrate, ...
    busy: str | None = None  # UPID of the task holding the guest's lock file
    template: bool = False
    smbios_uuid: str = ""
    #: changes that wait for the next start (PVE's ``[pending]`` section): key -> value, and keys
    #: whose removal waits (a disk that cannot be hot-unplugged stays attached until then)
    pending: dict[str, str] = field(default_factory=dict)
    pending_delete: list[str] = field(default_factory=list)

    def config(self, *, current: bool = True) -> dict[str, Any]:
        """The config as PVE's ``load_current_config`` returns it: with the pending changes
        applied, unless ``current`` (pve-guest-common ``PVE/AbstractConfig.pm``)."""
        conf: dict[str, Any] = {}
        if self.type == "qemu":
            conf.update(
                name=self.name,
                cores=self.cores,
                sockets=1,
                memory=str(self.memory),
                ostype="l26",
                scsihw="virtio-scsi-single",
                boot="order=" + ";".join(s for s in self.drives if s.startswith(("scsi", "virtio", "sata")))
                or "order=net0",
            )
        else:
            conf.update(hostname=self.name, cores=self.cores, memory=self.memory, ostype="debian", arch="amd64")
        if self.tags:
            conf["tags"] = ";".join(self.tags)
        if self.description:
            conf["description"] = self.description
        if self.onboot:
            conf["onboot"] = 1
        if self.lock:
            conf["lock"] = self.lock
        if self.template:
            conf["template"] = 1
        if self.smbios_uuid and self.type == "qemu":
            conf["smbios1"] = f"uuid={self.smbios_uuid}"
        conf.update(self.nets)
        for slot, drive in self.drives.items():
            conf[slot] = drive.render()
        conf.update(self.extra)
        digest = hashlib.sha1(
            repr(sorted(conf.items()) + sorted(self.pending.items()) + self.pending_delete).encode()
        ).hexdigest()
        if not current:
            conf.update(self.pending)
            for key in self.pending_delete:
                conf.pop(key, None)
        conf["digest"] = digest
        return conf

    @property
    def conf_path(self) -> str:
        sub = "qemu-server" if self.type == "qemu" else "lxc"
        return f"nodes/{self.node}/{sub}/{self.vmid}.conf"


@dataclass
class Job:
    id: str
    guest: int
    jobnum: int
    target: str
    source: str
    schedule: str | None = None
    rate: float | None = None
    comment: str | None = None
    disable: bool = False
    remove_job: str | None = None
    remove_at: float = 0.0
    last_sync: int = 0
    last_try: int = 0
    next_sync: float = 0.0
    fail_count: int = 0
    error: str | None = None
    duration: float = 0.0
    running_since: float | None = None
    replicated: dict[str, tuple[str, int]] = field(default_factory=dict)  # slot -> (storage, size)

    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "type": "local",
            "guest": self.guest,
            "jobnum": self.jobnum,
            "target": self.target,
            "source": self.source,
        }
        for key in ("schedule", "rate", "comment", "remove_job"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.disable:
            out["disable"] = 1
        return out

    def state(self) -> dict[str, Any]:
        out = {
            **self.config(),
            "last_sync": self.last_sync,
            "last_try": self.last_try,
            "next_sync": int(self.next_sync),
            "fail_count": self.fail_count,
            "duration": round(self.duration, 3),
        }
        if self.error:
            out["error"] = self.error
        if self.running_since is not None:
            out["pid"] = 4242
        return out


@dataclass
class Task:
    upid: str
    node: str
    type: str
    id: str
    user: str
    start: float
    duration: float
    vmid: int | None = None
    on_done: Callable[[], None] | None = None
    on_fail: Callable[[], None] | None = None
    fail: str | None = None
    reserve: dict[tuple[str, str], int] = field(default_factory=dict)
    status: str = "running"
    exitstatus: str | None = None
    end: float | None = None
    pid: int = 0

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "upid": self.upid,
            "node": self.node,
            "pid": self.pid,
            "pstart": int(self.upid.split(":")[3], 16),
            "starttime": int(self.start),
            "type": self.type,
            "id": self.id,
            "user": self.user,
            "status": self.status,
        }
        if self.status == "stopped":
            out["exitstatus"] = self.exitstatus
        return out


class Cluster:
    """One PVE cluster's state and rules. Every public method runs under :attr:`lock`."""

    def __init__(
        self,
        *,
        version: str = "9.1.3",
        name: str = "ftlab",
        task_seconds: float = 0.05,
        sync_seconds: float = 0.05,
        fence_delay: float = 0.2,
        first_sync_delay: float | None = None,
    ) -> None:
        self.version = version
        self.major = int(version.split(".")[0])
        self.name = name
        self.task_seconds = task_seconds
        self.sync_seconds = sync_seconds
        self.fence_delay = fence_delay
        self.first_sync_delay = task_seconds * 4 if first_sync_delay is None else first_sync_delay
        self.lock = threading.RLock()
        self.nodes: dict[str, Node] = {}
        self.storages: dict[str, Storage] = {}
        self.guests: dict[int, Guest] = {}
        self.jobs: dict[str, Job] = {}
        self.ha_resources: dict[str, dict[str, Any]] = {}
        self.ha_groups: dict[str, dict[str, Any]] = {}
        self.ha_rules: dict[str, dict[str, Any]] = {}
        self.ha_service: dict[str, dict[str, Any]] = {}
        self.ha_commands: list[tuple[float, str, str, str]] = []  # (at, sid, command, node)
        self.tasks: dict[str, Task] = {}
        self.offline: set[tuple[str, str]] = set()  # (storage, location); location "" = everywhere
        self.task_faults: list[dict[str, Any]] = []
        self._pid = 0x1000
        # estate names -> lab names, for fault injection by estate name
        self.host_alias: dict[str, str] = {}
        self.ds_alias: dict[str, tuple[str, str]] = {}
        self.vmid_of: dict[str, int] = {}
        self._building: Guest | None = None  # a guest being seeded, whose volumes count as taken
        #: networks: node -> iface -> its /nodes/{node}/network entry; SDN vnets (with their nodes)
        self.bridges: dict[str, dict[str, dict[str, Any]]] = {}
        self.vnets: dict[str, dict[str, Any]] = {}
        self.net_alias: dict[str, tuple[str, int | None]] = {}  # estate network id -> (bridge, tag)
        #: guests HA started on another node while their first instance still ran (a partitioned
        #: node that PVE "fenced" without a watchdog): what a split brain looks like in the lab
        self.split_brain: list[tuple[int, str, str]] = []  # (vmid, still running on, started on)

    # seeding ---------------------------------------------------------------------------------
    def seed(self, estate: Estate) -> None:
        """Build the cluster an estate describes (see the lab's module docs for the mapping)."""
        now = time.time()
        for i, h in enumerate(estate.hosts, start=1):
            name = next((n for n in (h.name, h.id) if NODE_NAME.match(n)), re.sub(r"[^a-zA-Z0-9-]", "-", h.id))
            new = Node(name, nodeid=i, pstart=0x100000 + i * 0x1111, memory=h.memory or 256 * GIB)
            if h.state is HostState.DOWN:  # reported down: PVE knows it only as fenced by its HA stack
                new.online, new.alive, new.armed, new.down_since = False, False, True, now - 3600
                new.fenced_at = new.down_since
            elif h.state.value == "unreachable":  # cut off from the cluster, its guests still running
                new.online, new.down_since = False, now - 3600
            self.nodes[name] = new
            self.host_alias[h.id] = self.host_alias[h.name] = name
        used: dict[str, int] = defaultdict(int)
        sizes = {(v.id, d.id): d.size for v in estate.vms for d in v.disks}
        for v in estate.vms:
            for d in v.disks:
                used[d.datastore] += d.size
            for s in v.secondaries:
                for x in s.disks:
                    used[x.datastore] += sizes.get((v.id, x.disk), 0)
        for ds in estate.datastores:
            kind = ds.kind if ds.kind in STORAGE_TYPES else "dir"
            sid, _, at = ds.id.partition("@")
            content = ds.content
            text = ",".join(sorted(content)) or "none" if content is not None else DEFAULT_CONTENT.get(kind, "images")
            if at:
                node = self.host_alias.get(at, at)
                st = self.storages.setdefault(sid, Storage(sid, kind, False, [], text))
                assert st.nodes is not None
                st.nodes.append(node)
                locs = [node]
            elif ds.shared or kind in SHARED_TYPES:
                hosts = [self.host_alias[h] for h in ds.hosts]
                st = self.storages.setdefault(
                    sid, Storage(sid, kind, True, None if set(hosts) >= set(self.nodes) or not hosts else hosts, text)
                )
                locs = [""]
            else:
                hosts = [self.host_alias[h] for h in ds.hosts] or list(self.nodes)
                st = self.storages.setdefault(sid, Storage(sid, kind, False, hosts, text))
                locs = hosts
            thin = ds.thin  # as pve-storage allocates: zfs sparse, file preallocation
            if thin and kind in ("zfspool", "zfs"):
                st.options["sparse"] = 1
            elif not thin and kind in FILE_BASED:
                st.options["preallocation"] = "full"
            for loc in locs:
                st.capacity[loc] = ds.capacity
                st.reserved[loc] = max(0, ds.capacity - ds.free - used[ds.id])
                if not ds.accessible:
                    self.offline.add((sid, loc))
            self.ds_alias[ds.id] = self.ds_alias[ds.name] = (sid, locs[0] if len(locs) == 1 else "")

        self._seed_networks(estate)
        taken = {int(v.id) for v in estate.vms if v.id.isdigit() and 100 <= int(v.id) <= 999_999_999}
        nxt = 100
        for v in estate.vms:
            if v.id.isdigit() and 100 <= int(v.id) <= 999_999_999:
                self.vmid_of[v.id] = int(v.id)
                continue
            while nxt in taken:
                nxt += 1
            self.vmid_of[v.id] = nxt
            taken.add(nxt)
        standbys = []
        for v in estate.vms:
            vmid = self.vmid_of[v.id]
            gtype = "lxc" if LXC_TAG in v.tags else "qemu"
            node = self.host_alias.get(v.host or "", next(iter(self.nodes)))
            g = Guest(
                vmid,
                gtype,
                node,
                _dns(v.name) or f"vm{vmid}",
                status="running" if v.power is PowerState.ON else "stopped",
                cores=max(1, v.vcpus),
                memory=max(16, v.memory // 1024**2) if v.memory else 2048,
                tags=[t for t in v.tags if t != LXC_TAG],
            )
            g.smbios_uuid = str(v.uuid or uuid.uuid5(uuid.NAMESPACE_URL, f"ftlab:{self.name}:{vmid}"))
            nics: list[Nic | None] = list(v.nics) or [None]
            for i, nic in enumerate(nics):
                if nic is None:
                    bridge, tag = "vmbr0", None
                elif nic.network is None:  # no bridge: QEMU user networking, or an unconnected veth
                    bridge, tag = None, None
                else:
                    bridge, tag = self.net_alias.get(nic.network, (nic.network, None))
                mac = (nic.mac if nic and nic.mac else _mac(vmid if i == 0 else vmid * 64 + i)).upper()
                if gtype == "qemu":
                    parts = [f"{nic.model if nic and nic.model else 'virtio'}={mac}"]
                    parts += [f"bridge={bridge}"] if bridge else []
                    parts += [f"tag={tag}"] if tag else []
                    parts += ["firewall=1"] if bridge else []
                else:
                    parts = [
                        f"name=eth{i}",
                        *([f"bridge={bridge}"] if bridge else []),
                        f"hwaddr={mac}",
                        "ip=dhcp",
                        *([f"tag={tag}"] if tag else []),
                        "type=veth",
                    ]
                g.nets[f"net{i}"] = ",".join(parts)
            self._building = g
            for d in v.disks:
                self._seed_drive(g, d.id, d.kind, d.datastore, d.size, d.movable, d.path)
            self._building = None
            self.guests[vmid] = g
            if v.ha:
                self.ha_resources[f"{'ct' if gtype == 'lxc' else 'vm'}:{vmid}"] = _ha_defaults(
                    "started" if g.status == "running" else "stopped"
                )
            for n, s in enumerate(v.secondaries):
                if s.mechanism == "pve-replication":
                    self._seed_job(g, n, s, now)
                elif s.mechanism == "pve-standby":
                    standbys.append((g, s))
                else:
                    log.warning("estate VM %s: secondary mechanism %s has no PVE form; left out", v.name, s.mechanism)
        for g, s in standbys:
            self._seed_standby(g, s, now, max(taken) + 1 if taken else 100)
            taken.add(max(self.guests))

    def _seed_networks(self, estate: Estate) -> None:
        """Bridges on each node and SDN vnets, from the estate's networks (vmbr0 everywhere if none)."""
        for node in self.nodes:
            self.bridges[node] = {}
        nets = list(estate.networks)
        if not nets:
            for node in self.nodes:
                self.bridges[node]["vmbr0"] = _bridge_item("vmbr0", 0, vlan_aware=False)
            return
        for n in nets:
            nodes = [self.host_alias.get(h, h) for h in n.hosts] or list(self.nodes)
            if n.kind == "vnet":
                self.vnets[n.name] = {
                    "vnet": n.name,
                    "type": "vnet",
                    "zone": "ftzone",
                    **({"tag": n.vlan} if n.vlan else {}),
                    "nodes": nodes,
                }
                self.net_alias[n.id] = (n.name, None)
                continue
            bridge = n.name.split("/")[0]
            for node in nodes:
                if node in self.bridges:
                    old = self.bridges[node].get(bridge)
                    aware = bool(n.vlan) or bool(old and old.get("bridge_vlan_aware"))
                    self.bridges[node][bridge] = _bridge_item(
                        bridge, len(self.bridges[node]), vlan_aware=aware, ovs=n.kind == "ovs-bridge"
                    )
            self.net_alias[n.id] = (bridge, n.vlan)

    def _seed_drive(self, g: Guest, slot: str, kind: str, ds_id: str, size: int, movable: bool, path: str) -> None:
        valid = QEMU_SLOT if g.type == "qemu" else LXC_SLOT
        if kind == "efidisk":
            slot = "efidisk0"
        elif kind == "tpmstate":
            slot = "tpmstate0"
        elif kind == "cloudinit":
            slot = "ide2" if "ide2" not in g.drives else "ide0"
        elif not valid.match(slot) or slot in g.drives:
            if g.type == "lxc" and "rootfs" not in g.drives:
                slot = "rootfs"
            else:
                prefix = "mp" if g.type == "lxc" else "scsi"
                slot = next(f"{prefix}{i}" for i in range(256) if f"{prefix}{i}" not in g.drives)
        if not movable and path.startswith("/"):
            g.drives[slot] = Drive(
                slot,
                "bind" if g.type == "lxc" and not path.startswith("/dev/") else "passthrough",
                size=size,
                path=path,
            )
            return
        sid, _ = self.ds_alias[ds_id]
        if kind not in ("efidisk", "tpmstate", "cloudinit", "unused"):
            kind = (
                "rootfs"
                if slot == "rootfs"
                else "mp"
                if g.type == "lxc" and slot.startswith("mp")
                else "unused"
                if slot.startswith("unused")
                else "disk"
            )
        opts = (
            "mp=/srv/" + slot
            if kind == "mp"
            else "iothread=1"
            if kind == "disk" and slot.startswith("scsi")
            else "efitype=4m,pre-enrolled-keys=1"
            if kind == "efidisk"
            else "version=v2.0"
            if kind == "tpmstate"
            else ""
        )
        g.drives[slot] = Drive(slot, kind, sid, self.new_volname(g.vmid, sid, kind, g.type), size, opts)

    def _seed_job(self, g: Guest, n: int, s: Any, now: float) -> None:
        target = self.host_alias.get(s.host or "", "")
        if not target:
            at = {self.ds_alias[x.datastore][1] for x in s.disks} - {""}
            target = at.pop() if at else ""
        if not target or target == g.node:
            log.warning("estate VM %s: replication secondary names no other node; left out", g.name)
            return
        job = Job(f"{g.vmid}-{n}", g.vmid, n, target, g.node)
        lag = float(s.lag) if s.lag is not None else 60.0
        job.last_sync = job.last_try = int(now - lag)
        job.next_sync = now + 900 - min(lag, 899)
        try:
            job.replicated = {slot: (d.storage or "", d.size) for slot, d in self.replicable(g).items()}
        except ApiError as exc:
            log.warning("estate VM %s: %s; its replication job is seeded broken", g.name, exc.message)
            job.replicated = {}
        if s.state.value == "stale":
            job.fail_count, job.error = 1, "command 'zfs send' failed: exit code 1"
        elif s.state.value == "broken":
            job.fail_count, job.error = 3, "no route to target node"
        elif s.state.value == "syncing":
            job.last_sync = 0
            job.replicated = {}
        self.jobs[job.id] = job

    def _seed_standby(self, g: Guest, s: Any, now: float, first_free: int) -> None:
        vmid = first_free
        while vmid in self.guests:
            vmid += 1
        targets = {x.disk: self.ds_alias[x.datastore] for x in s.disks}
        if not targets:
            return
        node = self.host_alias.get(s.host or "", "")
        if not node:
            sid, loc = next(iter(targets.values()))
            st = self.storages[sid]
            node = loc or next((n for n in self.nodes if n != g.node and st.on(n)), g.node)
        lag = float(s.lag) if s.lag is not None else 3600.0
        clone = Guest(
            vmid,
            "qemu",
            node,
            standby_name(g.vmid),
            cores=g.cores,
            memory=g.memory,
            description=standby_description(g.vmid, g.name, int(now - lag)),
        )
        clone.nets = {k: v for k, v in g.nets.items()}
        self._building = clone
        for slot, d in g.drives.items():
            if slot in targets and d.is_volume:
                sid, _ = targets[slot]
                volname = self.new_volname(vmid, sid, d.kind, "qemu")
                clone.drives[slot] = Drive(slot, d.kind, sid, volname, d.size, d.opts)
        self._building = None
        self.guests[vmid] = clone

    # naming ----------------------------------------------------------------------------------
    def new_volname(self, vmid: int, sid: str, kind: str, gtype: str) -> str:
        st = self.storages[sid]
        guests = list(self.guests.values())
        if self._building is not None:
            guests.append(self._building)
        used = {d.volname for g in guests for d in g.drives.values() if d.storage == sid}
        stem = "cloudinit" if kind == "cloudinit" else None
        if stem:
            base = f"vm-{vmid}-cloudinit"
            return f"{vmid}/{base}.qcow2" if st.type in FILE_BASED else base
        prefix = "subvol" if gtype == "lxc" and st.type == "zfspool" else "vm"
        for k in range(1000):
            base = f"{prefix}-{vmid}-disk-{k}"
            name = f"{vmid}/{base}.{'raw' if gtype == 'lxc' else 'qcow2'}" if st.type in FILE_BASED else base
            if name not in used:
                return name
        raise ApiError(500, "no free volume name")

    def new_upid(self, node: str, ttype: str, tid: str, user: str, start: float) -> tuple[str, int]:
        self._pid += 1
        pstart = self.nodes[node].pstart if node in self.nodes else 0
        return f"UPID:{node}:{self._pid:08X}:{pstart:08X}:{int(start):08X}:{ttype}:{tid}:{user}:", self._pid

    # storage ---------------------------------------------------------------------------------
    def usage(self) -> dict[tuple[str, str], int]:
        used: dict[tuple[str, str], int] = defaultdict(int)
        for sid, st in self.storages.items():
            for loc, r in st.reserved.items():
                used[(sid, loc)] += r
        for g in self.guests.values():
            for d in g.drives.values():
                if d.is_volume and d.storage in self.storages:
                    used[(d.storage, self.storages[d.storage].loc(g.node))] += d.size
        for job in self.jobs.values():
            for sid, size in job.replicated.values():
                if sid in self.storages:
                    used[(sid, self.storages[sid].loc(job.target))] += size
        for t in self.tasks.values():
            if t.status == "running":
                for key, size in t.reserve.items():
                    used[key] += size
        return used

    def online(self, sid: str, node: str) -> bool:
        """Is storage ``sid`` active on ``node`` (node up, storage enabled there, not failed, and
        for a shared storage mounted there: an NFS export can be missing on one node)?"""
        st = self.storages.get(sid)
        if st is None or st.disabled or not st.on(node) or not self.nodes[node].online:
            return False
        return not {(sid, ""), (sid, st.loc(node)), (sid, node)} & self.offline

    def avail(self, sid: str, node: str, usage: dict[tuple[str, str], int] | None = None) -> int:
        st = self.storages[sid]
        loc = st.loc(node)
        used = (usage if usage is not None else self.usage()).get((sid, loc), 0)
        return max(0, st.capacity.get(loc, 0) - used)

    def check_enabled(self, sid: str, node: str) -> Storage:
        """pve-storage ``storage_check_enabled``: exists, not disabled, configured for the node."""
        st = self.storages.get(sid)
        if st is None:
            raise ApiError(500, f"storage '{sid}' does not exist")
        if st.disabled:
            raise ApiError(500, f"storage '{sid}' is disabled")
        if not st.on(node):
            raise ApiError(500, f"storage '{sid}' is not available on node '{node}'")
        return st

    def require_storage(self, sid: str, node: str, need: int = 0) -> Storage:
        st = self.check_enabled(sid, node)
        if not self.online(sid, node):
            raise ApiError(500, f"storage '{sid}' is not online")
        if need and self.avail(sid, node) < need:
            raise ApiError(
                500,
                f"not enough free space on storage '{sid}' on node '{node}' "
                f"(need {format_size(need)}, have {format_size(self.avail(sid, node))})",
            )
        return st

    # nodes and guests ----------------------------------------------------------------------
    @property
    def quorate(self) -> bool:
        return sum(n.online for n in self.nodes.values()) * 2 > len(self.nodes)

    def node(self, name: str) -> Node:
        """A node a call is proxied to: unknown names fail like PVE, offline nodes with 595."""
        node = self.nodes.get(name)
        if node is None:
            raise ApiError(
                500,
                f"hostname lookup '{name}' failed - failed to get address info for: {name}: Name or service not known",
            )
        if not node.online:
            raise ApiError(595, "No route to host")
        return node

    def guest(self, node: str, vmid: int, gtype: str) -> Guest:
        g = self.guests.get(vmid)
        if g is None or g.node != node or g.type != gtype:
            sub = "qemu-server" if gtype == "qemu" else "lxc"
            raise ApiError(500, f"Configuration file 'nodes/{node}/{sub}/{vmid}.conf' does not exist")
        return g

    def check_unlocked(self, g: Guest) -> None:
        if g.lock:
            raise ApiError(500, f"VM is locked ({g.lock})")
        if g.busy:
            sub = "qemu-server" if g.type == "qemu" else "lxc"
            raise ApiError(500, f"can't lock file '/var/lock/{sub}/lock-{g.vmid}.conf' - got timeout")

    def check_quorum(self) -> None:
        if not self.quorate:
            raise ApiError(500, "cluster not ready - no quorum?")

    def ha_sid(self, g: Guest) -> str:
        return f"{'ct' if g.type == 'lxc' else 'vm'}:{g.vmid}"

    def ha_managed(self, g: Guest) -> bool:
        res = self.ha_resources.get(self.ha_sid(g))
        return res is not None and res["state"] != "ignored"

    # tasks -----------------------------------------------------------------------------------
    def start_task(
        self,
        node: str,
        ttype: str,
        g: Guest | None,
        user: str,
        *,
        on_done: Callable[[], None] | None,
        on_fail: Callable[[], None] | None = None,
        reserve: dict[tuple[str, str], int] | None = None,
        duration: float | None = None,
        hold: bool = True,
        tid: str | None = None,
    ) -> str:
        now = time.time()
        upid, pid = self.new_upid(node, ttype, tid if tid is not None else (str(g.vmid) if g else ""), user, now)
        fail = None
        for f in self.task_faults:
            if f["count"] > 0 and f["type"] in (None, ttype) and f["vmid"] in (None, g.vmid if g else None):
                f["count"] -= 1
                fail = f["message"]
                break
        task = Task(
            upid,
            node,
            ttype,
            tid if tid is not None else (str(g.vmid) if g else ""),
            user,
            now,
            self.task_seconds if duration is None else duration,
            g.vmid if g else None,
            on_done,
            on_fail,
            fail,
            dict(reserve or {}),
            pid=pid,
        )
        self.tasks[upid] = task
        if g is not None and hold:
            g.busy = upid
        return upid

    def _tick_tasks(self, now: float) -> None:
        for task in list(self.tasks.values()):
            if task.status != "running" or not self.nodes[task.node].online or now < task.start + task.duration:
                continue
            task.status, task.end = "stopped", now
            task.reserve = {}
            g = self.guests.get(task.vmid) if task.vmid is not None else None
            if g is not None and g.busy == task.upid:
                g.busy = None
            if task.fail:
                task.exitstatus = task.fail
                if task.on_fail:
                    task.on_fail()
                continue
            try:
                if task.on_done:
                    task.on_done()
                task.exitstatus = "OK"
            except ApiError as exc:
                task.exitstatus = exc.message
                if task.on_fail:
                    task.on_fail()

    # time --------------------------------------------------------------------------------------
    def tick(self) -> None:
        now = time.time()
        self._tick_watchdogs(now)
        self._tick_tasks(now)
        self._tick_replication(now)
        self._tick_ha(now)

    # replication -----------------------------------------------------------------------------
    @staticmethod
    def interval(schedule: str | None) -> float:
        m = re.fullmatch(r"\*/(\d+)", (schedule or "*/15").strip())
        return 60.0 * int(m.group(1)) if m else 900.0

    def replicable(self, g: Guest) -> dict[str, Drive]:
        """The volumes pvesr copies; raises :class:`ApiError` in PVE's words when it cannot.

        As qemu-server's and pve-container's ``get_replicatable_volumes``: CD-ROMs (and so
        cloud-init drives) are skipped; a device or host path is refused unless marked
        ``replicate=0``; volumes on shared storage and ``replicate=0`` volumes are skipped;
        detached (``unused``) volumes are copied; every other volume needs the ``replicate``
        feature, which only ``zfspool`` has (pve-storage ``ZFSPoolPlugin.pm``).
        """
        out: dict[str, Drive] = {}
        for slot, d in g.drives.items():
            if d.kind in ("cdrom", "cloudinit"):
                continue
            replicate = "replicate=0" not in d.opts
            if d.storage is None:
                if not replicate:
                    continue
                if g.type == "qemu":
                    raise ApiError(500, f"unable to replicate local file/device '{d.path}'")
                kind = "device" if (d.path or "").startswith("/dev/") else "bind"
                raise ApiError(500, f"unable to replicate mountpoint type '{kind}'")
            st = self.storages.get(d.storage)
            if st is None:
                raise ApiError(500, f"storage '{d.storage}' does not exist")
            if st.shared or (not replicate and d.kind != "unused"):
                continue
            if st.type != "zfspool":
                raise ApiError(500, f"missing replicate feature on volume '{d.storage}:{d.volname}'")
            out[slot] = d
        return out

    def _tick_replication(self, now: float) -> None:
        for job in list(self.jobs.values()):
            g = self.guests.get(job.guest)
            if g is None:
                del self.jobs[job.id]
                continue
            if job.remove_job:
                if now >= job.remove_at and (job.remove_job == "local" or self.nodes[job.target].online):
                    del self.jobs[job.id]
                continue
            if job.running_since is not None:
                if now < job.running_since + self.sync_seconds:
                    continue
                started, job.running_since = job.running_since, None
                job.duration = now - started
                problem = self._sync_problem(g, job)
                if problem:
                    job.fail_count += 1
                    job.error = problem
                else:
                    job.last_sync, job.fail_count, job.error = int(started), 0, None
                    job.replicated = {s: (d.storage or "", d.size) for s, d in self.replicable(g).items()}
                job.next_sync = now + self.interval(job.schedule)
                continue
            if job.disable or now < job.next_sync or not self.nodes[g.node].online:
                continue
            job.last_try = int(now)
            problem = self._sync_problem(g, job)
            if problem:
                job.fail_count += 1
                job.error = problem
                job.next_sync = now + self.interval(job.schedule)
            else:
                job.running_since = now

    def _sync_problem(self, g: Guest, job: Job) -> str | None:
        if not self.nodes[job.target].online:
            return f"ssh: connect to host {job.target} port 22: No route to host"
        try:
            volumes = self.replicable(g)
        except ApiError as exc:
            return exc.message
        for d in volumes.values():
            assert d.storage is not None
            st = self.storages[d.storage]
            if not st.on(job.target):
                return f"storage '{d.storage}' is not available on node '{job.target}'"
            if not self.online(d.storage, job.target) or not self.online(d.storage, g.node):
                return f"storage '{d.storage}' is not online"
        return None

    def relocate(self, g: Guest, target: str) -> None:
        """Move a guest's config to ``target``; pvesr jobs to that node swap direction."""
        old = g.node
        for job in self.jobs.values():
            if job.guest == g.vmid:
                job.source = target
                if job.target == target:
                    job.target = old
        g.node = target

    # HA manager ----------------------------------------------------------------------------
    def affinity(self, sid: str) -> tuple[dict[str, int], bool]:
        """(node -> priority, strict) from the resource's group (PVE 8) or node-affinity rule (PVE 9)."""
        prefs: dict[str, int] = {}
        strict = False
        res = self.ha_resources.get(sid, {})
        sources = []
        if res.get("group") and res["group"] in self.ha_groups:
            grp = self.ha_groups[res["group"]]
            sources.append((grp["nodes"], bool(grp.get("restricted"))))
        for rule in self.ha_rules.values():
            if rule["type"] == "node-affinity" and not rule.get("disable") and sid in rule["resources"].split(","):
                sources.append((rule.get("nodes", ""), bool(rule.get("strict"))))
        for nodes, is_strict in sources:
            strict = strict or is_strict
            for item in re.split(r"[,; ]", nodes):
                if item:
                    name, _, prio = item.partition(":")
                    prefs[name] = int(prio or 0)
        return prefs, strict

    def reachable(self, g: Guest, node: str) -> bool:
        """Could ``g`` start on ``node``: every volume shared there, or replicated there?"""
        for slot, d in g.drives.items():
            if d.kind in ("passthrough", "bind") and "shared=1" not in d.opts:
                return False  # pinned to its node unless marked available on all nodes
            if not d.is_volume or d.storage is None or d.kind in ("cloudinit", "unused"):
                continue  # cloud-init drives are regenerated on the target; unused volumes stay behind
            st = self.storages.get(d.storage)
            if st is None or not self.online(d.storage, node):
                return False
            if not st.shared and not any(
                j.guest == g.vmid and j.target == node and slot in j.replicated
                for j in self.jobs.values()
                if not j.remove_job
            ):
                return False
        return True

    def _choose(self, g: Guest, sid: str) -> str | None:
        prefs, strict = self.affinity(sid)
        cands = [n for n, node in sorted(self.nodes.items()) if node.online and n != g.node]
        if strict:
            cands = [n for n in cands if n in prefs]
        cands.sort(key=lambda n: (-prefs.get(n, -1), n))
        return next((n for n in cands if self.reachable(g, n)), None)

    def _tick_ha(self, now: float) -> None:
        for at, sid, cmd, target in list(self.ha_commands):
            if now < at:
                continue
            self.ha_commands.remove((at, sid, cmd, target))
            g = self._guest_of(sid)
            if (
                g is not None
                and self.nodes[g.node].online
                and self.nodes.get(target, Node("", 0)).online
                and self.reachable(g, target)
            ):
                was = g.status
                self.relocate(g, target)
                g.status = "running" if cmd == "migrate" else was
        for sid, res in self.ha_resources.items():
            g = self._guest_of(sid)
            if g is None:
                continue
            state = "started" if res["state"] == "enabled" else res["state"]
            svc = self.ha_service.setdefault(sid, {"state": state})
            if state == "ignored":
                svc["state"] = "ignored"
                continue
            node = self.nodes[g.node]
            if not node.online:
                if state == "disabled":
                    svc["state"] = "disabled"
                    continue
                if not self.quorate or now - (node.down_since or now) < self.fence_delay:
                    svc["state"] = "fence"  # the CRM waits (Manager.pm: node_is_offline_delayed)
                    continue
                if node.fenced_at is None and not node.armed:
                    node.fenced_at = now  # an LRM that held no lock: the CRM takes it at once
                if not self.fenced(node.name, now):
                    svc["state"] = "fence"  # the CRM waits for the node's agent lock
                    continue
                chosen = self._choose(g, sid)
                if chosen is None:
                    svc["state"] = "recovery"
                    continue
                if node.alive and g.status == "running":
                    self.split_brain.append((g.vmid, g.node, chosen))
                self.relocate(g, chosen)
                g.status = "running" if state == "started" else "stopped"
                svc["state"] = state
                continue
            if g.busy or g.lock:
                continue
            if (
                state == "started"
                and g.status == "stopped"
                and all(self.online(d.storage, g.node) for d in g.drives.values() if d.is_volume and d.storage)
            ):
                g.status = "running"
            elif state in ("stopped", "disabled") and g.status == "running":
                g.status = "stopped"
            svc["state"] = state

    def _guest_of(self, sid: str) -> Guest | None:
        kind, _, num = sid.partition(":")
        g = self.guests.get(int(num)) if num.isdigit() else None
        return g if g is not None and (g.type == "lxc") == (kind == "ct") else None

    # nodes: failure, partition, fencing --------------------------------------------------------
    def lrm_active(self, node: str) -> bool:
        """Does the node's HA LRM hold its agent lock, and so its watchdog? While HA services
        that should run are assigned to it (pve-ha-manager ``PVE/HA/LRM.pm``)."""
        for sid, res in self.ha_resources.items():
            g = self._guest_of(sid)
            if g is not None and g.node == node and res["state"] in ("started", "enabled"):
                return True
        return False

    def fenced(self, name: str, now: float) -> bool:
        """Does PVE's CRM hold the node's agent lock, so that HA may recover its services?

        PVE's CRM takes the lock of a node that stopped refreshing it once the pmxcfs lock
        lifetime (120 s) has passed; the node's watchdog (60 s) has reset it by then if its LRM
        held the lock. A node whose LRM held no lock gives it up at once, whether or not it still
        runs (``PVE/HA/NodeStatus.pm`` ``fence_node``). The lab compresses the wait into
        ``fence_delay``.
        """
        node = self.nodes[name]
        return not node.online and self.quorate and node.fenced_at is not None and now >= node.fenced_at

    def _tick_watchdogs(self, now: float) -> None:
        """A node cut off from the cluster whose LRM held the lock resets itself (watchdog-mux)."""
        for node in self.nodes.values():
            if not node.online and node.alive and node.armed and node.fenced_at is not None and now >= node.fenced_at:
                self._power_off(node)

    def _power_off(self, node: Node) -> None:
        node.alive = False
        for guest in self.guests.values():
            if guest.node == node.name:
                guest.status = "stopped"

    def lrm_timestamp(self, node: Node, now: float) -> float:
        """When the node's LRM last wrote its status, on PVE's clock: the lab back-dates a lost
        node's last write so that PVE's 120 s lock lifetime ends when the lab fences it."""
        if node.online or node.down_since is None:
            return now
        if node.armed and node.fenced_at is not None:
            return node.fenced_at - LOCK_LIFETIME - 1  # (whole seconds on the wire)
        return node.down_since

    def fail_node(self, name: str) -> None:
        """The node fails as PVE proves it: dead, its guests with it, and fenced by PVE's HA stack
        at once (its LRM's lock taken by the CRM). HA recovers its services after ``fence_delay``."""
        node = self.nodes[name]
        now = time.time()
        if node.online:
            node.online, node.down_since = False, now
        node.armed, node.fenced_at = True, now
        self._power_off(node)

    def elapse_fence_delay(self) -> None:
        """Let the HA stack's time pass: every lost node has now been gone ``fence_delay`` (a
        partitioned node's watchdog fired and its lock expired, if it held one)."""
        now = time.time()
        for node in self.nodes.values():
            if node.online or node.down_since is None:
                continue
            node.down_since = min(node.down_since, now - self.fence_delay)
            if node.armed:
                node.fenced_at = min(node.fenced_at if node.fenced_at is not None else now, now)

    def partition_node(self, name: str) -> None:
        """The node is cut off from the cluster and the API; its guests keep running. If its LRM
        held the lock (it has HA services), its watchdog resets it and the CRM takes the lock
        after ``fence_delay``; if not, nothing proves it down, ever."""
        node = self.nodes[name]
        if node.online:
            now = time.time()
            node.armed = self.lrm_active(name)
            node.online, node.down_since = False, now
            node.fenced_at = now + self.fence_delay if node.armed else None

    def restore(self) -> None:
        now = time.time()
        for node in self.nodes.values():
            if not node.online:
                rebooted = not node.alive
                node.online, node.alive, node.armed, node.down_since, node.fenced_at = True, True, False, None, None
                for guest in self.guests.values():
                    if guest.node == node.name and rebooted:
                        guest.status = "stopped"  # the node rebooted; HA restarts what it manages
                for t in self.tasks.values():
                    if t.node == node.name and t.status == "running" and rebooted:
                        t.status, t.end, t.exitstatus, t.reserve = "stopped", now, "unexpected status", {}
                        held = self.guests.get(t.vmid) if t.vmid is not None else None
                        if held is not None and held.busy == t.upid:
                            held.busy = None
        self.offline.clear()
        self.task_faults.clear()


def _bridge_item(name: str, n: int, *, vlan_aware: bool, ovs: bool = False) -> dict[str, Any]:
    """A bridge as ``GET /nodes/{node}/network`` lists it."""
    item: dict[str, Any] = {
        "iface": name,
        "type": "OVSBridge" if ovs else "bridge",
        "active": 1,
        "autostart": 1,
        "method": "manual",
        "families": ["inet"],
        "priority": 10 + n,
    }
    if ovs:
        item["ovs_ports"] = f"bond{n}"
    else:
        item["bridge_ports"] = f"eno{n + 1}"
        if vlan_aware:
            item.update(bridge_vlan_aware=1, bridge_vids="2-4094")
    return item


def _ha_defaults(state: str) -> dict[str, Any]:
    return {"state": state, "max_restart": 1, "max_relocate": 1}


def _dns(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9.\-]", "-", name).strip("-.")
    return cleaned[:63]


def _mac(vmid: int) -> str:
    h = hashlib.sha1(str(vmid).encode()).digest()
    return "BC:24:11:" + ":".join(f"{b:02X}" for b in h[:3])
