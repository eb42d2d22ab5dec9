"""An estate, as an oVirt engine would hold it.

One data center; clusters from the hosts; a storage domain per datastore (a datastore of kind
``lun`` is a LUN of the array instead, which ``lun`` disks use directly); disks, NICs, leases and
templates from what the estate's VMs say. Where the estate has a concept oVirt shows differently,
the engine's form wins:

* ``shared_by`` on a disk: one shareable disk attached to every VM that lists it (same disk id);
* ``managed_by`` set (or a VM named ``HostedEngine``): the hosted engine, origin
  ``managed_hosted_engine``, its disks of content ``hosted_engine``;
* ``depends_on`` of kind ``lease``: the VM's storage lease; of kind ``base-disk``: a template
  with a disk on that datastore, which the VM's disks there are thin clones of;
* a datastore's ``reserve``: its critical-space blocker (GiB); ``thin`` disks: sparse qcow2.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import TYPE_CHECKING

from ftbridge.estate import Estate
from ftbridge.model import Disk as EstateDisk
from ftbridge_ovirt.lab.model import (
    GIB,
    Attachment,
    Cluster,
    DataCenter,
    Disk,
    Domain,
    Host,
    Lun,
    Network,
    Nic,
    Profile,
    Template,
    Vm,
)

if TYPE_CHECKING:
    from ftbridge_ovirt.lab.state import EngineState

#: estate datastore kinds -> oVirt storage types (shared ones); anything local is localfs
STORAGE_TYPES = {
    "nfs": "nfs",
    "iscsi": "iscsi",
    "fcp": "fcp",
    "fc": "fcp",
    "glusterfs": "glusterfs",
    "gluster": "glusterfs",
    "posixfs": "posixfs",
    "cephfs": "posixfs",
    "rbd": "managed_block_storage",
    "managed_block_storage": "managed_block_storage",
    "localfs": "localfs",
    "lvm": "iscsi",
    "vmfs": "fcp",
    "vsan": "glusterfs",
}
HOST_STATUS = {
    "up": "up",
    "maintenance": "maintenance",
    "down": "down",
    "unreachable": "non_responsive",
    "unknown": "non_responsive",
}
HOSTED_ENGINE = "HostedEngine"
MGMT = "ovirtmgmt"


def seed_estate(eng: EngineState, est: Estate) -> None:
    """Fill ``eng``'s tables from ``est``."""
    dc = DataCenter(id=eng.uid("dc", est.name), name=est.name)
    eng.dcs[dc.id] = dc
    _hosts(eng, est, dc)
    _networks(eng, est, dc)
    _storage(eng, est, dc)
    _vms(eng, est)
    for dcid in eng.dcs:
        eng.elect_spm(dcid)


def _hosts(eng: EngineState, est: Estate, dc: DataCenter) -> None:
    for h in est.hosts:
        cname = h.cluster or "Default"
        cid = eng.uid("cluster", cname)
        eng.clusters.setdefault(cid, Cluster(id=cid, name=cname, dc=dc.id))
        eng.hosts[eng.uid("host", h.id)] = Host(
            id=eng.uid("host", h.id),
            name=h.name,
            cluster=cid,
            status=HOST_STATUS.get(h.state.value, "up"),
            estate_id=h.id,
            memory=h.memory or (256 << 30),
        )
    if not eng.clusters:
        cid = eng.uid("cluster", "Default")
        eng.clusters[cid] = Cluster(id=cid, name="Default", dc=dc.id)


def _networks(eng: EngineState, est: Estate, dc: DataCenter) -> None:
    """Every engine has ovirtmgmt; each estate network becomes a network with its default profile."""
    nets = [(MGMT, MGMT, None)] + [(n.id, n.name, n.vlan) for n in est.networks if n.id != MGMT]
    for key, name, vlan in nets:
        nid = eng.uid("network", key)
        eng.networks[nid] = Network(id=nid, name=name, dc=dc.id, vlan=vlan)
        pid = eng.uid("profile", key)
        eng.profiles[pid] = Profile(id=pid, name=name, network=nid)


def _storage(eng: EngineState, est: Estate, dc: DataCenter) -> None:
    host_of = {h.estate_id: h.id for h in eng.hosts.values()}
    master_set = False
    for d in est.datastores:
        if d.kind == "lun":  # a LUN of the array: direct-LUN disks use it, it is no storage domain
            wwid = "36001405" + hashlib.sha256(f"{est.name}/{d.id}".encode()).hexdigest()[:24]
            eng.luns[wwid] = Lun(
                id=wwid,
                size=d.capacity,
                address=f"{d.id}.san.lab",
                target=f"iqn.2024-01.lab.ftbridge:{d.name}",
                estate_id=d.id,
            )
            continue
        stype = STORAGE_TYPES.get(d.kind, "nfs") if d.shared else "localfs"
        did = eng.uid("sd", d.id)
        master = not master_set and d.shared and d.name != "hosted_storage" and stype != "managed_block_storage"
        master_set = master_set or master
        eng.domains[did] = Domain(
            id=did,
            name=d.name,
            dc=dc.id,
            storage_type=stype,
            capacity=d.capacity,
            status="active" if d.accessible else "inactive",
            host=host_of.get(d.hosts[0]) if (not d.shared and d.hosts) else None,
            address=f"{d.id}.storage.lab",
            path=f"/exports/{d.name}",
            vfs_type="cephfs" if stype == "posixfs" else "",
            targets=[f"iqn.2024-01.lab.ftbridge:{d.name}"] if stype == "iscsi" else [],
            critical_space=math.ceil(d.reserve / GIB),
            master=master,
            estate_id=d.id,
        )


def _lun_of(eng: EngineState, ds_id: str) -> Lun:
    return next(x for x in eng.luns.values() if x.estate_id == ds_id)


def _vms(eng: EngineState, est: Estate) -> None:
    host_of = {h.estate_id: h.id for h in eng.hosts.values()}
    sd_of = {d.estate_id: d.id for d in eng.domains.values()}
    prof_of = {n.id: eng.uid("profile", n.id) for n in est.networks}
    first_cluster = next(iter(eng.clusters))
    now = time.time()
    shared: dict[str, Disk] = {}
    templates: dict[tuple[str, str], Template] = {}
    for v in est.vms:
        vid = eng.uid("vm", v.id)
        host = host_of.get(v.host) if v.host else None
        cluster = (
            eng.hosts[host].cluster
            if host
            else (
                eng.uid("cluster", v.cluster)
                if v.cluster and eng.uid("cluster", v.cluster) in eng.clusters
                else first_cluster
            )
        )
        status = {"on": "up", "off": "down", "suspended": "suspended", "unknown": "unknown"}[v.power.value]
        if status == "up" and host is None:
            host = next((h.id for h in eng.hosts.values() if h.cluster == cluster and h.status == "up"), None)
            status = "up" if host else "down"
        if status in ("down", "suspended"):
            host = None
        he = bool(v.managed_by) or v.name == HOSTED_ENGINE
        nics = [
            Nic(
                id=eng.uid("nic", f"{v.id}/{n.id}"),
                name=n.id,
                mac=n.mac,
                profile=prof_of.get(n.network or "") if n.network else None,
            )
            for n in v.nics
        ] or [Nic(id=eng.uid("nic", f"{v.id}/nic1"), name="nic1", profile=eng.uid("profile", MGMT))]
        vm = Vm(
            id=vid,
            name=v.name,
            cluster=cluster,
            status=status,
            host=host,
            ha=v.ha and not he,
            memory=v.memory or (1 << 30),
            vcpus=v.vcpus,
            tags=list(v.tags),
            estate_id=v.id,
            nics=nics,
            origin="managed_hosted_engine" if he else "ovirt",
        )
        bases: dict[str, Disk] = {}
        for dep in v.depends_on:
            if dep.kind == "lease":
                vm.lease = sd_of[dep.datastore]
            elif dep.kind == "base-disk" and dep.datastore in sd_of:
                tpl = _template(eng, templates, dep.datastore, dep.path or f"tpl-{dep.datastore}", sd_of, cluster)
                vm.template = tpl.id
                bases[sd_of[dep.datastore]] = eng.disks[tpl.attachments[0].disk]
        for i, vd in enumerate(v.disks):
            if vd.shared_by:
                key = vd.id + "/" + ",".join(sorted({v.id, *vd.shared_by}))
                disk = shared.get(key)
                if disk is None:
                    disk = shared[key] = _disk(eng, f"shared/{key}", f"{vd.id}_shared", vd, sd_of)
                    disk.shareable = True
                    eng.disks[disk.id] = disk
            else:
                disk = _disk(eng, f"{v.id}/{vd.id}", f"{v.name}_{vd.id}", vd, sd_of)
                if vd.kind == "lun":
                    lun = _lun_of(eng, vd.datastore)
                    disk.storage_type, disk.lun, disk.domain, disk.size = "lun", lun.id, None, lun.size
                    disk.sparse, disk.format, disk.actual = False, "raw", None
                if he:
                    disk.content_type = "hosted_engine"
                base = bases.get(disk.domain or "")
                if base is not None and vd.kind == "disk":
                    disk.base = base.id
                eng.disks[disk.id] = disk
            vm.attachments.append(Attachment(disk=disk.id, bootable=(i == 0)))
        eng.vms[vid] = vm
        disk_ids = {d.id: eng.uid("disk", f"{v.id}/{d.id}") for d in v.disks}
        for s in v.secondaries:
            if s.mechanism != "ovirt-copy":
                continue  # other mechanisms have no oVirt form
            started = int(now - (s.lag or 0))
            tag = hashlib.sha256(f"{v.id}/{s.id}".encode()).hexdigest()[:4]
            set_id = f"{started}-{tag}"
            for x in s.disks:
                src = eng.disks[disk_ids[x.disk]]
                if x.datastore not in sd_of or sd_of[x.datastore] == src.domain:
                    continue  # a disk the copy reuses in place (shareable) is no copy
                cid = eng.uid("copy", f"{v.id}/{s.id}/{x.disk}")
                eng.disks[cid] = Disk(
                    id=cid,
                    alias=f"ftbridge-copy.{vid}.{src.id}.{set_id}",
                    size=src.size,
                    domain=sd_of[x.datastore],
                    sparse=src.sparse,
                    format=src.format,
                    actual=src.actual,
                    status="ok" if s.state.value != "broken" else "illegal",
                )
    # what the estate says is free stays free: the rest is held by things the lab does not model
    est_free = {d.id: d.free for d in est.datastores}
    for dom in eng.domains.values():
        dom.reserved = max(0, dom.capacity - est_free[dom.estate_id] - eng.used(dom.id))


def _disk(eng: EngineState, key: str, alias: str, vd: EstateDisk, sd_of: dict[str, str]) -> Disk:
    sd = sd_of.get(vd.datastore)
    mbs = sd is not None and eng.domains[sd].storage_type == "managed_block_storage"
    return Disk(
        id=eng.uid("disk", key),
        alias=alias,
        size=vd.size,
        domain=sd,
        sparse=vd.thin,
        format="cow" if vd.thin else "raw",
        actual=vd.allocated,
        estate_id=vd.id,
        storage_type="managed_block_storage" if mbs else "image",
    )


def _template(
    eng: EngineState,
    templates: dict[tuple[str, str], Template],
    ds: str,
    name: str,
    sd_of: dict[str, str],
    cluster: str,
) -> Template:
    key = (ds, name)
    tpl = templates.get(key)
    if tpl is None:
        tid = eng.uid("template", f"{ds}/{name}")
        disk = Disk(
            id=eng.uid("template-disk", f"{ds}/{name}"),
            alias=f"{name}_disk",
            size=10 * GIB,
            domain=sd_of[ds],
            sparse=False,
            format="raw",
            template=tid,
        )
        eng.disks[disk.id] = disk
        tpl = templates[key] = Template(
            id=tid, name=name, cluster=cluster, attachments=[Attachment(disk=disk.id, bootable=True)]
        )
        eng.templates[tid] = tpl
    return tpl
