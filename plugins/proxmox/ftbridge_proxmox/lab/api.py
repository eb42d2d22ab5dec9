"""The lab's endpoint handlers: what each PVE call does to the :class:`~.state.Cluster`.

Each handler gets the cluster (locked and ticked by the server), the verified parameters as
strings (path parameters included) and the caller's identity, and returns the ``data`` of the
answer or raises :class:`~.state.ApiError`. Calls under ``/nodes/{node}`` are proxied to that
node in a real cluster, so they fail with 595 when it is down; cluster-wide calls do not.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ftbridge_proxmox.lab.state import ApiError, Cluster, Drive, Guest, Job, _ha_defaults, format_size

MIB = 1024**2


@dataclass(frozen=True, slots=True)
class Ctx:
    user: str


Handler = Callable[[Cluster, dict[str, str], Ctx], Any]
ROUTES: dict[tuple[str, str], Handler] = {}


def route(method: str, path: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        ROUTES[(method, path)] = fn
        return fn

    return register


def _b(p: dict[str, str], key: str, default: bool = False) -> bool:
    return p[key] == "1" if key in p else default


def _digest(obj: Any) -> str:
    return hashlib.sha1(repr(obj).encode()).hexdigest()


# cluster-wide reads ---------------------------------------------------------------------
@route("GET", "/version")
def version(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    return {"version": c.version, "release": ".".join(c.version.split(".")[:2]), "repoid": "5e1f3a9c0b2d4e6f"}


@route("GET", "/nodes")
def nodes(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    out = []
    for n in c.nodes.values():
        item: dict[str, Any] = {"node": n.name, "status": "online" if n.online else "offline", "level": ""}
        if n.online:
            item.update(maxcpu=32, maxmem=n.memory, mem=n.memory // 4, cpu=0.04, uptime=864000)
        out.append(item)
    return out


@route("GET", "/cluster/status")
def cluster_status(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    out: list[dict[str, Any]] = [
        {
            "type": "cluster",
            "id": "cluster",
            "name": c.name,
            "nodes": len(c.nodes),
            "quorate": int(c.quorate),
            "version": 7,
        }
    ]
    for i, n in enumerate(c.nodes.values()):
        out.append(
            {
                "type": "node",
                "id": f"node/{n.name}",
                "name": n.name,
                "nodeid": n.nodeid,
                "online": int(n.online),
                "local": int(i == 0),
                "ip": f"10.10.0.{n.nodeid}",
                "level": "",
            }
        )
    return out


@route("GET", "/cluster/resources")
def resources(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    kind = p.get("type")
    out: list[dict[str, Any]] = []
    if kind in (None, "node"):
        for node in c.nodes.values():
            item: dict[str, Any] = {
                "id": f"node/{node.name}",
                "type": "node",
                "node": node.name,
                "status": "online" if node.online else "offline",
            }
            if node.online:
                item.update(level="", maxcpu=32, maxmem=node.memory, mem=node.memory // 4, cpu=0.04, uptime=864000)
            out.append(item)
    if kind in (None, "storage"):
        usage = c.usage()
        for sid, st in c.storages.items():
            for n in c.nodes:
                if not st.on(n) or st.disabled:  # storage_check_enabled(..., $node, 1) (API2/Cluster.pm)
                    continue
                item = {
                    "id": f"storage/{n}/{sid}",
                    "type": "storage",
                    "storage": sid,
                    "node": n,
                    "plugintype": st.type,
                    "content": st.content,
                    "status": "available" if c.online(sid, n) else "unknown",
                }
                if c.major >= 9:
                    item["shared"] = int(st.shared)
                if c.online(sid, n):
                    loc = st.loc(n)
                    item.update(maxdisk=st.capacity.get(loc, 0), disk=usage.get((sid, loc), 0))
                out.append(item)
    if kind in (None, "vm"):
        for g in c.guests.values():
            online = c.nodes[g.node].online
            item = {
                "id": f"{g.type}/{g.vmid}",
                "type": g.type,
                "vmid": g.vmid,
                "node": g.node,
                "name": g.name,
                "status": g.status if online else "unknown",
                "template": int(g.template),
                "maxcpu": g.cores,
                "maxmem": g.memory * MIB,
                "maxdisk": next((d.size for d in g.drives.values() if d.kind in ("disk", "rootfs")), 0),
                "disk": 0,
                "cpu": 0.01 if g.status == "running" else 0,
                "mem": g.memory * MIB // 2 if g.status == "running" else 0,
                "uptime": 3600 if g.status == "running" else 0,
            }
            if g.tags:
                item["tags"] = ";".join(g.tags)
            if g.lock:
                item["lock"] = g.lock
            sid = c.ha_sid(g)
            if sid in c.ha_resources:
                item["hastate"] = c.ha_service.get(sid, {}).get("state", c.ha_resources[sid]["state"])
            out.append(item)
    return out


@route("GET", "/cluster/nextid")
def nextid(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    if "vmid" in p:
        vmid = int(p["vmid"])
        if vmid in c.guests:
            raise ApiError(400, "Parameter verification failed.", {"vmid": f"VM {vmid} already exists"})
        return vmid
    vmid = 100
    while vmid in c.guests:
        vmid += 1
    return vmid


@route("GET", "/storage")
def storage_index(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    out = []
    for sid, st in c.storages.items():
        if "type" in p and st.type != p["type"]:
            continue
        item: dict[str, Any] = {"storage": sid, "type": st.type, "content": st.content, "shared": int(st.shared)}
        if st.nodes is not None:
            item["nodes"] = ",".join(st.nodes)
        if st.disabled:
            item["disable"] = 1
        item.update(st.options)
        extra: dict[str, dict[str, Any]] = {
            "zfspool": {"pool": "rpool/data", "sparse": 1},
            "rbd": {"pool": sid, "krbd": 0},
            "nfs": {"server": "10.20.0.5", "export": f"/export/{sid}", "path": f"/mnt/pve/{sid}"},
            "dir": {"path": f"/srv/{sid}"},
        }
        item.update(extra.get(st.type, {}))
        item["digest"] = _digest(item)
        out.append(item)
    return out


@route("GET", "/nodes/{node}/storage")
def node_storage(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    node = c.node(p["node"]).name
    usage = c.usage()
    wanted = set(p["content"].split(",")) if "content" in p else None
    out = []
    for sid, st in c.storages.items():
        if not st.on(node) or ("storage" in p and p["storage"] != sid):
            continue
        if wanted and not wanted & set(st.content.split(",")):
            continue
        if "target" in p and not st.on(p["target"]):
            continue
        if _b(p, "enabled") and st.disabled:
            continue
        item: dict[str, Any] = {
            "storage": sid,
            "type": st.type,
            "content": st.content,
            "shared": int(st.shared),
            "enabled": int(not st.disabled),
            "active": int(c.online(sid, node)),
        }
        if c.online(sid, node):
            loc = st.loc(node)
            total, used = st.capacity.get(loc, 0), usage.get((sid, loc), 0)
            item.update(
                total=total,
                used=used,
                avail=max(0, total - used),
                used_fraction=round(used / total, 6) if total else 0.0,
            )
        out.append(item)
    return out


# guests ---------------------------------------------------------------------------------------
def _guest(c: Cluster, p: dict[str, str], gtype: str) -> Guest:
    node = c.node(p["node"]).name
    return c.guest(node, int(p["vmid"]), gtype)


def _config(c: Cluster, p: dict[str, str], gtype: str) -> Any:
    """With pending changes applied unless ``current=1`` (qemu-server ``vm_config``)."""
    if "snapshot" in p and _b(p, "current"):
        msg = "cannot use 'snapshot' parameter with 'current'"
        raise ApiError(400, "Parameter verification failed.", {"snapshot": msg, "current": msg})
    if "snapshot" in p:
        raise ApiError(500, f"snapshot '{p['snapshot']}' does not exist")
    return _guest(c, p, gtype).config(current=_b(p, "current"))


@route("GET", "/nodes/{node}/qemu/{vmid}/config")
def qemu_config(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    return _config(c, p, "qemu")


@route("GET", "/nodes/{node}/lxc/{vmid}/config")
def lxc_config(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    return _config(c, p, "lxc")


@route("PUT", "/nodes/{node}/qemu/{vmid}/config")
def qemu_set_config(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    c.check_quorum()
    g = _guest(c, p, "qemu")
    if not _b(p, "skiplock"):
        c.check_unlocked(g)
    if "digest" in p and p["digest"] != g.config()["digest"]:
        raise ApiError(500, "detected modified configuration - file changed by other user? Try again.")
    for key in re.split(r"[,; ]", p.get("delete", "")):
        if not key:
            continue
        if key in g.nets:
            del g.nets[key]
        elif key in g.extra:
            del g.extra[key]
        elif key == "tags":
            g.tags = []
        elif key == "description":
            g.description = ""
        elif key == "onboot":
            g.onboot = False
        elif key.startswith("unused") and key in g.drives:
            del g.drives[key]
        elif key in g.drives:
            raise ApiError(500, f"deleting drive '{key}' is not implemented by the lab")
    if "name" in p:
        g.name = p["name"]
    if "description" in p:
        g.description = p["description"]
    if "tags" in p:
        g.tags = [t for t in re.split(r"[;, ]", p["tags"]) if t]
    if "onboot" in p:
        g.onboot = _b(p, "onboot")
    if "cores" in p:
        g.cores = int(p["cores"])
    for key, value in p.items():
        if re.fullmatch(r"net\d+", key):
            g.nets[key] = value
    return None


def _status(c: Cluster, g: Guest) -> dict[str, Any]:
    sid = c.ha_sid(g)
    ha: dict[str, Any] = {"managed": int(sid in c.ha_resources)}
    if sid in c.ha_resources:
        ha.update(state=c.ha_resources[sid]["state"])
    out: dict[str, Any] = {
        "status": g.status,
        "vmid": g.vmid,
        "name": g.name,
        "cpus": g.cores,
        "maxmem": g.memory * MIB,
        "uptime": 3600 if g.status == "running" else 0,
        "ha": ha,
    }
    if g.type == "qemu":
        out["qmpstatus"] = g.status
    if g.lock:
        out["lock"] = g.lock
    if g.tags:
        out["tags"] = ";".join(g.tags)
    return out


@route("GET", "/nodes/{node}/qemu/{vmid}/status/current")
def qemu_status(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    return _status(c, _guest(c, p, "qemu"))


@route("GET", "/nodes/{node}/lxc/{vmid}/status/current")
def lxc_status(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    return _status(c, _guest(c, p, "lxc"))


def _start(c: Cluster, p: dict[str, str], ctx: Ctx, gtype: str) -> str:
    c.check_quorum()
    g = _guest(c, p, gtype)
    sid = c.ha_sid(g)
    if c.ha_managed(g):  # PVE hands HA-managed guests to the HA stack
        c.ha_resources[sid]["state"] = "started"
        return c.start_task(g.node, "hastart", g, ctx.user, on_done=None, duration=0.0, hold=False)
    if not _b(p, "skiplock"):
        c.check_unlocked(g)
    if g.status == "running":
        raise ApiError(500, f"{'VM' if gtype == 'qemu' else 'CT'} {g.vmid} already running")

    def done() -> None:
        for d in g.drives.values():
            if d.is_volume and d.storage and not c.online(d.storage, g.node):
                raise ApiError(500, f"storage '{d.storage}' is not online")
        g.status = "running"

    return c.start_task(g.node, "qmstart" if gtype == "qemu" else "vzstart", g, ctx.user, on_done=done)


def _stop(c: Cluster, p: dict[str, str], ctx: Ctx, gtype: str) -> str:
    c.check_quorum()
    g = _guest(c, p, gtype)
    if c.ha_managed(g):
        c.ha_resources[c.ha_sid(g)]["state"] = "stopped"
        return c.start_task(g.node, "hastop", g, ctx.user, on_done=None, duration=0.0, hold=False)
    if not _b(p, "skiplock"):
        c.check_unlocked(g)

    def done() -> None:
        g.status = "stopped"

    return c.start_task(g.node, "qmstop" if gtype == "qemu" else "vzstop", g, ctx.user, on_done=done)


@route("POST", "/nodes/{node}/qemu/{vmid}/status/start")
def qemu_start(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    return _start(c, p, ctx, "qemu")


@route("POST", "/nodes/{node}/qemu/{vmid}/status/stop")
def qemu_stop(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    return _stop(c, p, ctx, "qemu")


@route("POST", "/nodes/{node}/lxc/{vmid}/status/start")
def lxc_start(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    return _start(c, p, ctx, "lxc")


@route("POST", "/nodes/{node}/lxc/{vmid}/status/stop")
def lxc_stop(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    return _stop(c, p, ctx, "lxc")


def _move(c: Cluster, p: dict[str, str], ctx: Ctx, gtype: str, slot: str) -> str:
    """qemu-server ``move_vm_disk`` and pve-container ``move_volume`` to another storage.

    QEMU: the checks run before the task (``load_and_check_move``): lock, the disk, no CD-ROM,
    not the same storage, the storage enabled on this node, and holding ``images`` (a
    parameter error). Containers: never while running; the target's content is checked when
    the task allocates the volume (``PVE/LXC.pm`` ``alloc_disk``: ``rootdir``, or a zfspool).
    """
    if "storage" not in p:
        raise ApiError(
            400, "Parameter verification failed.", {"storage": "move to another VM is not implemented by the lab"}
        )
    c.check_quorum()
    g = _guest(c, p, gtype)
    c.check_unlocked(g)
    target = p["storage"]
    d = g.drives.get(slot)
    if gtype == "lxc":
        if g.status == "running":
            raise ApiError(500, "cannot move volumes of a running container")
        if slot.startswith("unused"):
            raise ApiError(500, f"cannot move volume '{slot}', only configured volumes can be moved to another storage")
        if d is None:
            raise ApiError(500, f"unable to parse value of '{slot}' - got undefined value")
    else:
        if d is None:
            raise ApiError(500, f"disk '{slot}' does not exist")
        if d.kind == "cdrom":  # a cloud-init drive moves (drive_is_cdrom($drive, 1) excludes it)
            raise ApiError(500, "you can't move a cdrom")
        if d.storage is None:
            raise ApiError(500, f"unable to parse volume ID '{d.path}'")
        if target == d.storage:
            raise ApiError(500, "you can't move to the same storage with same format")
        st = c.check_enabled(target, g.node)
        if "images" not in st.content.split(","):
            raise ApiError(
                400, "Parameter verification failed.", {"storage": f"storage '{target}' does not support vm images"}
            )
    size = d.size
    delete = _b(p, "delete")

    def done() -> None:
        assert d is not None
        if d.storage is None:
            raise ApiError(500, f"cannot copy volumes of type {'device' if d.kind == 'passthrough' else 'bind'}")
        st = c.check_enabled(target, g.node)
        if gtype == "lxc" and "rootdir" not in st.content.split(",") and st.type != "zfspool":
            raise ApiError(500, f"content type 'rootdir' is not available or configured on storage '{target}'")
        c.require_storage(target, g.node, 0)
        old = Drive(d.slot, "unused", d.storage, d.volname, d.size)
        d.storage, d.volname = target, c.new_volname(g.vmid, target, d.kind, g.type)
        if not delete:
            free = next(f"unused{i}" for i in range(256) if f"unused{i}" not in g.drives)
            old.slot = free
            g.drives[free] = old

    ttype = "qmmove" if gtype == "qemu" else "move_volume"
    reserve: dict[tuple[str, str], int] = {}
    tst = c.storages.get(target)
    if tst is not None and tst.on(g.node) and c.online(target, g.node):
        if c.avail(target, g.node) < size:
            raise ApiError(
                500,
                f"not enough free space on storage '{target}' on node '{g.node}' "
                f"(need {format_size(size)}, have {format_size(c.avail(target, g.node))})",
            )
        reserve = {(target, tst.loc(g.node)): size}
    return c.start_task(g.node, ttype, g, ctx.user, on_done=done, reserve=reserve)


@route("POST", "/nodes/{node}/qemu/{vmid}/move_disk")
def qemu_move_disk(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    return _move(c, p, ctx, "qemu", p["disk"])


@route("POST", "/nodes/{node}/lxc/{vmid}/move_volume")
def lxc_move_volume(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    return _move(c, p, ctx, "lxc", p["volume"])


@route("POST", "/nodes/{node}/qemu/{vmid}/clone")
def qemu_clone(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    """qemu-server ``clone_vm``, with its checks in its order (``load_and_check``)."""
    g = _guest(c, p, "qemu")
    target = p.get("target", g.node)
    if target == g.node:
        target = g.node
    else:
        c.node(target)
    if "storage" in p:
        st = c.check_enabled(p["storage"], g.node)
        if "images" not in st.content.split(","):
            raise ApiError(
                400,
                "Parameter verification failed.",
                {"storage": f"storage '{p['storage']}' does not support vm images"},
            )
        if target != g.node:
            c.check_enabled(p["storage"], target)
            if not st.shared:
                raise ApiError(500, f"can't clone to non-shared storage '{p['storage']}'")
    c.check_quorum()
    c.check_unlocked(g)
    newid = int(p["newid"])
    if p.get("full") == "0" and not g.template:
        raise ApiError(500, "linked clone is only possible from a template (use full=1)")
    copied = {s: d for s, d in g.drives.items() if d.kind not in ("unused",)}
    for d in copied.values():
        if d.kind in ("passthrough", "bind"):
            raise ApiError(500, f"unable to parse volume ID '{d.path}'")
    if target != g.node and any(d.storage and not c.storages[d.storage].shared for d in copied.values()):
        raise ApiError(500, f"can't clone VM to node '{target}' (VM uses local storage)")
    if newid in c.guests:
        raise ApiError(500, f"unable to create VM {newid}: config file already exists")
    if g.status == "running" and "tpmstate0" in copied:
        raise ApiError(500, "cannot clone TPM state while VM is running")
    need: dict[tuple[str, str], int] = {}
    drives: dict[str, Drive] = {}
    for s, d in copied.items():
        if not d.is_volume:
            drives[s] = Drive(s, d.kind, d.storage, d.volname, d.size, d.opts, d.path)
            continue
        sid = p.get("storage", d.storage)
        assert sid is not None
        st = c.require_storage(sid, target)
        need[(sid, st.loc(target))] = need.get((sid, st.loc(target)), 0) + d.size
        drives[s] = Drive(s, d.kind, sid, "", d.size, d.opts)
    usage = c.usage()
    for (sid, loc), size in need.items():
        avail = c.storages[sid].capacity.get(loc, 0) - usage.get((sid, loc), 0)
        if avail < size:
            raise ApiError(
                500, f"not enough free space on storage '{sid}' (need {size >> 20} MiB, have {max(0, avail) >> 20} MiB)"
            )
    clone = Guest(
        newid,
        "qemu",
        target,
        p.get("name", f"Copy-of-VM-{g.name}"),
        cores=g.cores,
        memory=g.memory,
        description=p.get("description", ""),
        nets=dict(g.nets),
        lock="clone",
        smbios_uuid=str(uuid.uuid4()),
    )  # clone_vm gives the copy a uuid of its own
    c.guests[newid] = clone  # the config exists (locked) while the copy runs
    for s, d in drives.items():
        if d.is_volume and d.storage:
            d.volname = c.new_volname(newid, d.storage, d.kind, "qemu")
        clone.drives[s] = d

    def done() -> None:
        clone.lock = None

    def failed() -> None:
        c.guests.pop(newid, None)

    return c.start_task(g.node, "qmclone", g, ctx.user, on_done=done, on_fail=failed)


def _migrate(c: Cluster, p: dict[str, str], ctx: Ctx, gtype: str) -> str:
    c.check_quorum()
    g = _guest(c, p, gtype)
    target = p["target"]
    c.node(target)
    if target == g.node:
        raise ApiError(500, "target is local node.")
    sid = c.ha_sid(g)
    if c.ha_managed(g):  # PVE queues a CRM request; the HA stack migrates later
        c.ha_commands.append(
            (time.time() + c.task_seconds, sid, "migrate" if g.status == "running" else "relocate", target)
        )
        return c.start_task(g.node, "hamigrate", g, ctx.user, on_done=None, duration=0.0, hold=False)
    c.check_unlocked(g)
    if g.status == "running" and gtype == "qemu" and not _b(p, "online"):
        raise ApiError(500, "can't migrate running VM without --online")
    if g.status == "running" and gtype == "lxc" and not _b(p, "restart"):
        raise ApiError(500, "lxc live migration is currently not implemented - use restart mode")
    reserve: dict[tuple[str, str], int] = {}
    for slot, d in g.drives.items():
        if d.kind == "passthrough":
            raise ApiError(500, f"can't migrate VM which uses local devices: {d.path}")
        if d.kind == "cdrom" and d.storage and not c.storages[d.storage].shared:
            raise ApiError(500, f"can't migrate local cdrom drive '{slot}'")
        if not d.is_volume or d.storage is None or d.kind in ("cloudinit", "unused"):
            continue
        st = c.require_storage(d.storage, target)
        replicated = any(j.guest == g.vmid and j.target == target and slot in j.replicated for j in c.jobs.values())
        if not st.shared and not replicated:
            if gtype == "qemu" and not _b(p, "with-local-disks"):
                raise ApiError(500, f"can't migrate local disk '{d.storage}:{d.volname}': use --with-local-disks")
            reserve[(d.storage, target)] = reserve.get((d.storage, target), 0) + d.size
    if reserve:
        usage = c.usage()
        for (s_id, loc), size in reserve.items():
            if c.storages[s_id].capacity.get(loc, 0) - usage.get((s_id, loc), 0) < size:
                raise ApiError(500, f"not enough free space on storage '{s_id}' on node '{target}'")
    g.lock = "migrate"

    def done() -> None:
        g.lock = None
        c.relocate(g, target)

    def failed() -> None:
        g.lock = None

    return c.start_task(
        g.node,
        "qmigrate" if gtype == "qemu" else "vzmigrate",
        g,
        ctx.user,
        on_done=done,
        on_fail=failed,
        reserve=reserve,
    )


@route("POST", "/nodes/{node}/qemu/{vmid}/migrate")
def qemu_migrate(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    return _migrate(c, p, ctx, "qemu")


@route("POST", "/nodes/{node}/lxc/{vmid}/migrate")
def lxc_migrate(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    return _migrate(c, p, ctx, "lxc")


@route("DELETE", "/nodes/{node}/qemu/{vmid}")
def qemu_destroy(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    c.check_quorum()
    g = _guest(c, p, "qemu")
    if not _b(p, "skiplock"):
        c.check_unlocked(g)
    if g.status == "running":
        raise ApiError(500, f"VM {g.vmid} is running - destroy failed")
    sid = c.ha_sid(g)
    if sid in c.ha_resources and not _b(p, "purge"):
        raise ApiError(500, f"unable to remove VM {g.vmid} - used in HA resources and purge parameter not set.")

    def done() -> None:
        c.guests.pop(g.vmid, None)
        c.ha_resources.pop(sid, None)
        c.ha_service.pop(sid, None)
        for jid in [j.id for j in c.jobs.values() if j.guest == g.vmid]:
            del c.jobs[jid]

    return c.start_task(g.node, "qmdestroy", g, ctx.user, on_done=done)


# tasks ------------------------------------------------------------------------------------------
_UPID = re.compile(r"^UPID:([a-zA-Z0-9\-]+):([0-9A-F]{8}):([0-9A-F]{8,9}):([0-9A-F]{8}):([^:]+):([^:]*):([^:]+):$")


@route("GET", "/nodes/{node}/tasks")
def tasks(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    node = c.node(p["node"]).name
    source = p.get("source", "archive")
    vmid = p.get("vmid")
    out = []
    for t in sorted(c.tasks.values(), key=lambda t: t.start, reverse=True):
        if t.node != node or (vmid is not None and t.id != vmid):
            continue
        if source == "active" and t.status != "running" or source == "archive" and t.status == "running":
            continue
        if "typefilter" in p and t.type != p["typefilter"]:
            continue
        if "userfilter" in p and p["userfilter"] not in t.user:
            continue
        if _b(p, "errors") and t.exitstatus in (None, "OK"):
            continue
        item = {k: v for k, v in t.info().items() if k != "exitstatus"}
        if t.status == "stopped":
            item["status"] = t.exitstatus
            item["endtime"] = int(t.end or t.start)
        out.append(item)
    start = int(p.get("start", "0"))
    return out[start : start + int(p.get("limit", "50"))]


@route("GET", "/nodes/{node}/tasks/{upid}/status")
def task_status(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    node = c.node(p["node"]).name
    upid = p["upid"]
    if not _UPID.match(upid):
        raise ApiError(500, f"unable to parse worker upid '{upid}'")
    t = c.tasks.get(upid)
    if t is None or t.node != node:
        raise ApiError(
            500, f"unable to open file '/var/log/pve/tasks/{upid[-10:-9] or '0'}/{upid}' - No such file or directory"
        )
    return t.info()


# storage replication -------------------------------------------------------------------------
def _job(c: Cluster, jid: str) -> Job:
    job = c.jobs.get(jid)
    if job is None:
        raise ApiError(500, f"replication job '{jid}' does not exist")
    return job


@route("GET", "/cluster/replication")
def replication_index(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    return [j.config() for j in c.jobs.values()]


@route("POST", "/cluster/replication")
def replication_create(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    c.check_quorum()
    jid = p["id"]
    guest_id, _, num = jid.partition("-")
    g = c.guests.get(int(guest_id))
    # pve-manager PVE/API2/ReplicationConfig.pm create, then ReplicationConfig.pm's checks
    if g is None:
        raise ApiError(500, f"Guest '{guest_id}' does not exist.")
    target = p["target"]
    if target not in c.nodes:
        raise ApiError(500, f"Target '{target}' does not exist.")
    if "source" in p and p["source"] != g.node:
        raise ApiError(500, f"Source '{p['source']}' does not match current node of guest '{g.vmid}' ({g.node})")
    if target == g.node:
        raise ApiError(500, "Source and target must not be identical")
    if not c.replicable(g):
        raise ApiError(500, "No replicatable volumes found")
    if jid in c.jobs:
        raise ApiError(500, f"replication job '{jid}' already exists")
    if any(j.guest == g.vmid and j.target == target for j in c.jobs.values()):
        raise ApiError(500, f"replication job for guest '{g.vmid}' to target '{target}' already exists")
    job = Job(
        jid,
        g.vmid,
        int(num),
        target,
        g.node,
        schedule=p.get("schedule"),
        rate=float(p["rate"]) if "rate" in p else None,
        comment=p.get("comment"),
        disable=_b(p, "disable"),
        remove_job=p.get("remove_job"),
    )
    job.next_sync = time.time() + c.first_sync_delay
    c.jobs[jid] = job
    return None


@route("GET", "/cluster/replication/{id}")
def replication_read(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    job = _job(c, p["id"])
    return {**job.config(), "digest": _digest(job.config())}


@route("DELETE", "/cluster/replication/{id}")
def replication_delete(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    c.check_quorum()
    job = _job(c, p["id"])
    if _b(p, "force"):
        del c.jobs[job.id]
        return None
    job.remove_job = "local" if _b(p, "keep") else "full"
    job.remove_at = time.time() + c.task_seconds
    return None


def _node_jobs(c: Cluster, node: str) -> list[Job]:
    return [j for j in c.jobs.values() if j.guest in c.guests and c.guests[j.guest].node == node]


@route("GET", "/nodes/{node}/replication")
def node_replication(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    node = c.node(p["node"]).name
    return [j.state() for j in _node_jobs(c, node) if "guest" not in p or j.guest == int(p["guest"])]


@route("GET", "/nodes/{node}/replication/{id}/status")
def node_replication_status(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    node = c.node(p["node"]).name
    job = next((j for j in _node_jobs(c, node) if j.id == p["id"]), None)
    if job is None:
        raise ApiError(500, f"replication job '{p['id']}' does not exist on node '{node}'")
    return job.state()


@route("POST", "/nodes/{node}/replication/{id}/schedule_now")
def node_replication_now(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    node = c.node(p["node"]).name
    job = next((j for j in _node_jobs(c, node) if j.id == p["id"]), None)
    if job is None:
        raise ApiError(500, f"replication job '{p['id']}' does not exist on node '{node}'")
    job.next_sync = min(job.next_sync, time.time())
    return job.id


# HA --------------------------------------------------------------------------------------------
def _sid(c: Cluster, raw: str) -> str:
    if raw.isdigit():
        g = c.guests.get(int(raw))
        return f"{'ct' if g is not None and g.type == 'lxc' else 'vm'}:{raw}"
    return raw


def _ha_item(c: Cluster, sid: str) -> dict[str, Any]:
    res = c.ha_resources[sid]
    item: dict[str, Any] = {"sid": sid, "type": sid.split(":")[0], **{k: v for k, v in res.items() if v is not None}}
    if c.major < 9:
        item.pop("failback", None)
    item["digest"] = _digest(item)
    return item


@route("GET", "/cluster/ha/resources")
def ha_index(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    return [_ha_item(c, sid) for sid in c.ha_resources if "type" not in p or sid.startswith(p["type"] + ":")]


@route("POST", "/cluster/ha/resources")
def ha_create(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    c.check_quorum()
    sid = _sid(c, p["sid"])
    g = c._guest_of(sid)
    if g is None:
        raise ApiError(500, f"unable to find {'CT' if sid.startswith('ct') else 'VM'} '{sid.split(':')[1]}'")
    if sid in c.ha_resources:
        raise ApiError(500, f"resource ID '{sid}' already defined")
    if "group" in p:
        if c.major >= 9:
            raise ApiError(500, "HA groups have been migrated to HA rules; use node-affinity rules")
        if p["group"] not in c.ha_groups:
            raise ApiError(500, f"group '{p['group']}' does not exist")
    res = _ha_defaults(p.get("state", "started"))
    for key in ("group", "comment"):
        if key in p:
            res[key] = p[key]
    for key in ("max_restart", "max_relocate"):
        if key in p:
            res[key] = int(p[key])
    if c.major >= 9:
        res["failback"] = int(_b(p, "failback", True))
    c.ha_resources[sid] = res
    return None


def _ha_res(c: Cluster, raw: str) -> tuple[str, dict[str, Any]]:
    sid = _sid(c, raw)
    if sid not in c.ha_resources:
        raise ApiError(500, f"no such resource '{sid}'")
    return sid, c.ha_resources[sid]


@route("GET", "/cluster/ha/resources/{sid}")
def ha_read(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    sid, _ = _ha_res(c, p["sid"])
    return _ha_item(c, sid)


@route("PUT", "/cluster/ha/resources/{sid}")
def ha_update(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    c.check_quorum()
    sid, res = _ha_res(c, p["sid"])
    if "digest" in p and p["digest"] != _ha_item(c, sid)["digest"]:
        raise ApiError(500, "detected modified configuration - file changed by other user? Try again.")
    if "group" in p:
        if c.major >= 9:
            raise ApiError(500, "HA groups have been migrated to HA rules; use node-affinity rules")
        if p["group"] not in c.ha_groups:
            raise ApiError(500, f"group '{p['group']}' does not exist")
    for key in re.split(r"[,; ]", p.get("delete", "")):
        if key:
            res.pop(key, None)
    for key in ("state", "group", "comment"):
        if key in p:
            res[key] = p[key]
    for key in ("max_restart", "max_relocate"):
        if key in p:
            res[key] = int(p[key])
    if "failback" in p:
        res["failback"] = int(_b(p, "failback"))
    return None


@route("DELETE", "/cluster/ha/resources/{sid}")
def ha_delete(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    c.check_quorum()
    sid, _ = _ha_res(c, p["sid"])
    del c.ha_resources[sid]
    c.ha_service.pop(sid, None)
    if _b(p, "purge", True):
        for name in list(c.ha_rules):
            rest = [r for r in c.ha_rules[name]["resources"].split(",") if r != sid]
            if rest:
                c.ha_rules[name]["resources"] = ",".join(rest)
            else:
                del c.ha_rules[name]
    return None


@route("GET", "/cluster/ha/groups")
def ha_groups(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    return [{"group": name, "type": "group", **grp, "digest": _digest(grp)} for name, grp in c.ha_groups.items()]


@route("POST", "/cluster/ha/groups")
def ha_group_create(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    c.check_quorum()
    if c.major >= 9:
        raise ApiError(500, "HA groups have been migrated to HA rules; use node-affinity rules")
    name = p["group"]
    if name in c.ha_groups:
        raise ApiError(500, f"ha group '{name}' already defined")
    for item in re.split(r"[,; ]", p["nodes"]):
        if item and item.split(":")[0] not in c.nodes:
            raise ApiError(500, f"unknown node '{item.split(':')[0]}'")
    c.ha_groups[name] = {
        "nodes": p["nodes"],
        "restricted": int(_b(p, "restricted")),
        "nofailback": int(_b(p, "nofailback")),
        **({"comment": p["comment"]} if "comment" in p else {}),
    }
    return None


@route("DELETE", "/cluster/ha/groups/{group}")
def ha_group_delete(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    c.check_quorum()
    name = p["group"]
    if name not in c.ha_groups:
        raise ApiError(500, f"no such ha group '{name}'")
    users = [sid for sid, r in c.ha_resources.items() if r.get("group") == name]
    if users:
        raise ApiError(500, f"ha group '{name}' is used by resource '{users[0]}'")
    del c.ha_groups[name]
    return None


@route("GET", "/cluster/ha/rules")
def ha_rules(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    out = []
    for name, rule in c.ha_rules.items():
        if "type" in p and rule["type"] != p["type"]:
            continue
        if "resource" in p and p["resource"] not in rule["resources"].split(","):
            continue
        out.append({"rule": name, **rule, "digest": _digest(rule)})
    return out


@route("POST", "/cluster/ha/rules")
def ha_rule_create(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    c.check_quorum()
    name = p["rule"]
    if name in c.ha_rules:
        raise ApiError(500, f"rule '{name}' already defined")
    resources = [_sid(c, r) for r in p["resources"].split(",") if r]
    for sid in resources:
        if sid not in c.ha_resources:
            raise ApiError(500, f"resource '{sid}' is not configured as HA resource")
    rule: dict[str, Any] = {"type": p["type"], "resources": ",".join(resources)}
    if p["type"] == "node-affinity":
        if "nodes" not in p:
            raise ApiError(
                400, "Parameter verification failed.", {"nodes": "property is missing and it is not optional"}
            )
        for sid in resources:
            other = next(
                (n for n, r in c.ha_rules.items() if r["type"] == "node-affinity" and sid in r["resources"].split(",")),
                None,
            )
            if other:
                raise ApiError(500, f"resource '{sid}' is already used in node affinity rule '{other}'")
        rule.update(nodes=p["nodes"], strict=int(_b(p, "strict")))
    else:
        rule["affinity"] = p.get("affinity", "positive")
    if "comment" in p:
        rule["comment"] = p["comment"]
    if _b(p, "disable"):
        rule["disable"] = 1
    c.ha_rules[name] = rule
    return None


@route("DELETE", "/cluster/ha/rules/{rule}")
def ha_rule_delete(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    c.check_quorum()
    if p["rule"] not in c.ha_rules:
        raise ApiError(500, f"no such rule '{p['rule']}'")
    del c.ha_rules[p["rule"]]
    return None


def _lrm(c: Cluster, name: str, now: float) -> dict[str, Any]:
    """A node's LRM status file as the HA stack keeps it (``read_lrm_status``)."""
    node = c.nodes[name]
    active = c.lrm_active(name) if node.online else node.armed
    return {
        "state": "active" if active else "wait_for_agent_lock",
        "mode": "active",
        "timestamp": int(c.lrm_timestamp(node, now)),
        "results": {},
    }


def _master(c: Cluster) -> str:
    online = [n for n in c.nodes.values() if n.online]
    return online[0].name if online else next(iter(c.nodes))


@route("GET", "/cluster/ha/status/current")
def ha_status(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    """pve-ha-manager ``PVE/API2/HA/Status.pm`` ``status``: quorum, master, fencing (PVE 9),
    each node's LRM, each service."""
    now = time.time()
    master = _master(c)
    out: list[dict[str, Any]] = [
        {
            "id": "quorum",
            "type": "quorum",
            "node": master,
            "status": "OK" if c.quorate else f"No quorum on node '{master}'!",
            "quorate": int(c.quorate),
        },
        {
            "id": "master",
            "type": "master",
            "node": master,
            "status": f"{master} (active, {time.ctime(now)})",
            "timestamp": int(now),
        },
    ]
    if c.major >= 9:
        out.append(
            {
                "id": "fencing",
                "type": "fencing",
                "node": master,
                "status": "armed (CRM watchdog active)",
                "armed-state": "armed",
            }
        )
    for n in c.nodes.values():
        lrm = _lrm(c, n.name, now)
        if now - lrm["timestamp"] > 30:
            state = "old timestamp - dead?"
        else:
            state = "active" if lrm["state"] == "active" else "idle"
        watchdog = "watchdog active" if state == "active" else "watchdog standby"
        out.append(
            {
                "id": f"lrm:{n.name}",
                "type": "lrm",
                "node": n.name,
                "status": f"{n.name} ({state}, {watchdog}, {time.ctime(lrm['timestamp'])})",
                "timestamp": lrm["timestamp"],
            }
        )
    for sid, res in c.ha_resources.items():
        g = c._guest_of(sid)
        if g is None:
            continue
        svc = c.ha_service.get(sid, {}).get("state", res["state"])
        out.append(
            {
                "id": f"service:{sid}",
                "type": "service",
                "sid": sid,
                "node": g.node,
                "state": svc,
                "crm_state": svc,
                "request_state": res["state"],
                "max_restart": res.get("max_restart", 1),
                "max_relocate": res.get("max_relocate", 1),
                "status": f"{sid} ({g.node}, {svc})",
            }
        )
    return out


@route("GET", "/cluster/ha/status/manager_status")
def ha_manager_status(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    """The CRM's full status with every node's LRM status (``manager_status``)."""
    now = time.time()
    services: dict[str, Any] = {}
    for sid, res in c.ha_resources.items():
        g = c._guest_of(sid)
        if g is not None:
            services[sid] = {"node": g.node, "state": c.ha_service.get(sid, {}).get("state", res["state"])}
    fencing = {svc["node"] for svc in services.values() if svc["state"] == "fence"}
    node_status = {
        n.name: "online" if n.online else "fence" if n.name in fencing else "unknown" for n in c.nodes.values()
    }
    master = _master(c)
    return {
        "manager_status": {
            "master_node": master,
            "timestamp": int(now),
            "node_status": node_status,
            "service_status": services,
        },
        "quorum": {"node": master, "quorate": int(c.quorate)},
        "lrm_status": {n: _lrm(c, n, now) for n in c.nodes},
    }


# networks ----------------------------------------------------------------------------------------
@route("GET", "/nodes/{node}/network")
def node_network(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    """Bridges (and, with ``any_bridge``, the SDN vnets applied on the node: pve-manager
    ``PVE/API2/Network.pm`` ``index``)."""
    node = c.node(p["node"]).name
    kind = p.get("type")
    out = []
    for item in c.bridges.get(node, {}).values():
        if kind in (None, item["type"]) or kind in ("any_bridge", "any_local_bridge"):
            out.append(dict(item))
    if kind in ("any_bridge", "vnet", "include_sdn"):
        for name, vnet in c.vnets.items():
            if node in vnet["nodes"]:
                out.append({"iface": name, "type": "vnet", "active": 1})
    return out


@route("GET", "/cluster/sdn/vnets")
def sdn_vnets(c: Cluster, p: dict[str, str], ctx: Ctx) -> Any:
    return [{k: v for k, v in vnet.items() if k != "nodes"} | {"digest": _digest(vnet)} for vnet in c.vnets.values()]
