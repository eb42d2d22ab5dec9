"""The lab engine's behaviour: oVirt's rules, its jobs, and injected faults.

Every change goes through a method here that checks what the real engine checks before it
accepts a command (its "validate" step, answered with HTTP 409 and a reason), then either
completes at once or starts a job that finishes later. Jobs carry the caller's correlation id,
take ``op_seconds`` (plus any injected slowness) and can be made to fail. The HTTP layer
(:mod:`.server`) only translates requests into these calls.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from ftbridge.estate import Estate
from ftbridge_ovirt.lab.model import (
    Attachment,
    Cluster,
    DataCenter,
    Disk,
    Domain,
    Host,
    Job,
    Nic,
    Vm,
    lab_uuid,
)

#: estate datastore kinds -> oVirt storage types (shared ones); anything local is localfs
STORAGE_TYPES = {
    "nfs": "nfs", "iscsi": "iscsi", "fcp": "fcp", "fc": "fcp", "glusterfs": "glusterfs",
    "gluster": "glusterfs", "posixfs": "posixfs", "cephfs": "posixfs", "rbd": "managed_block_storage",
    "managed_block_storage": "managed_block_storage", "localfs": "localfs", "lvm": "iscsi", "vmfs": "fcp",
    "vsan": "glusterfs",
}
RUNNING = frozenset({"up", "powering_up", "wait_for_launch", "paused", "migrating", "powering_down",
                     "reboot_in_progress", "unknown", "not_responding"})


class Fault(Exception):
    """What the engine answers when it refuses: an HTTP code, a reason and a detail."""

    def __init__(self, code: int, reason: str, detail: str = "") -> None:
        super().__init__(f"{code} {reason}: {detail}")
        self.code, self.reason, self.detail = code, reason, detail


def conflict(detail: str) -> Fault:
    return Fault(409, "Operation Failed", f"[{detail}]")


class LabEngine:
    """One engine's state. Callers hold :attr:`lock` (the server does, per request)."""

    def __init__(self, estate: Estate, *, op_seconds: float = 0.2, ha_restart: bool = True,
                 ha_delay: float = 0.3, seed: int = 0, job_ttl: float = 900.0) -> None:
        self.lock = threading.RLock()
        self.estate = estate
        self.op_seconds = op_seconds
        self.ha_restart = ha_restart
        self.ha_delay = ha_delay
        self.job_ttl = job_ttl  # the engine clears ended jobs after a while; so does the lab
        self.dcs: dict[str, DataCenter] = {}
        self.clusters: dict[str, Cluster] = {}
        self.hosts: dict[str, Host] = {}
        self.domains: dict[str, Domain] = {}
        self.vms: dict[str, Vm] = {}
        self.disks: dict[str, Disk] = {}
        self.jobs: dict[str, Job] = {}
        self.pending_restarts: dict[str, float] = {}
        #: what an imported, array-replicated domain carries that the engine has not registered yet
        self.unregistered_vms: dict[str, list[tuple[Vm, list[Disk]]]] = {}
        self.spm: dict[str, str | None] = {}
        self.faults: dict[str, Any] = {}
        self.rng = random.Random(seed)
        self.reset_faults()
        self._seed(estate)

    # seeding ---------------------------------------------------------------------------
    def uid(self, kind: str, key: str) -> str:
        return lab_uuid(self.estate.name, kind, key)

    def _seed(self, est: Estate) -> None:
        dc = DataCenter(id=self.uid("dc", est.name), name=est.name)
        self.dcs[dc.id] = dc
        for h in est.hosts:
            cname = h.cluster or "Default"
            cid = self.uid("cluster", cname)
            self.clusters.setdefault(cid, Cluster(id=cid, name=cname, dc=dc.id))
            status = {"up": "up", "maintenance": "maintenance", "down": "non_responsive"}.get(h.state.value, "up")
            self.hosts[self.uid("host", h.id)] = Host(id=self.uid("host", h.id), name=h.name, cluster=cid,
                                                      status=status, estate_id=h.id,
                                                      memory=getattr(h, "memory", 0) or (256 << 30))
        if not self.clusters:
            cid = self.uid("cluster", "Default")
            self.clusters[cid] = Cluster(id=cid, name="Default", dc=dc.id)
        host_of = {h.estate_id: h.id for h in self.hosts.values()}
        for d in est.datastores:
            stype = STORAGE_TYPES.get(d.kind, "nfs") if d.shared else "localfs"
            did = self.uid("sd", d.id)
            self.domains[did] = Domain(
                id=did, name=d.name, dc=dc.id, storage_type=stype, capacity=d.capacity,
                status="active" if d.accessible else "inactive",
                host=host_of.get(d.hosts[0]) if (not d.shared and d.hosts) else None,
                address=f"{d.id}.storage.lab", path=f"/exports/{d.name}", estate_id=d.id)
        sd_of = {d.estate_id: d.id for d in self.domains.values()}
        now = time.time()
        first_cluster = next(iter(self.clusters))
        for v in est.vms:
            vid = self.uid("vm", v.id)
            host = host_of.get(v.host) if v.host else None
            cluster = self.hosts[host].cluster if host else first_cluster
            status = {"on": "up", "off": "down", "suspended": "suspended", "unknown": "unknown"}[v.power.value]
            if status == "up" and host is None:
                host = next((h.id for h in self.hosts.values() if h.cluster == cluster and h.status == "up"), None)
                status = "up" if host else "down"
            if status in ("down", "suspended"):
                host = None
            vm = Vm(id=vid, name=v.name, cluster=cluster, status=status, host=host, ha=v.ha,
                    memory=v.memory or (1 << 30), vcpus=v.vcpus, tags=list(v.tags), estate_id=v.id,
                    nics=[Nic(id=self.uid("nic", f"{v.id}/nic1"), name="nic1",
                              profile=self.uid("profile", "ovirtmgmt"))])
            if v.ha:
                vm.lease = sd_of.get(v.config_datastore or "") or (sd_of[v.disks[0].datastore] if v.disks else None)
            for i, vd in enumerate(v.disks):
                disk = Disk(id=self.uid("disk", f"{v.id}/{vd.id}"), alias=f"{v.name}_{vd.id}", size=vd.size,
                            domain=sd_of[vd.datastore], estate_id=vd.id)
                self.disks[disk.id] = disk
                vm.attachments.append(Attachment(disk=disk.id, bootable=(i == 0)))
            self.vms[vid] = vm
            disk_ids = {d.id: self.uid("disk", f"{v.id}/{d.id}") for d in v.disks}
            for s in v.secondaries:
                if s.mechanism != "ovirt-copy":
                    continue  # other mechanisms have no oVirt form
                started = int(now - (s.lag or 0))
                tag = hashlib.sha256(f"{v.id}/{s.id}".encode()).hexdigest()[:4]
                set_id = f"{started}-{tag}"
                for x in s.disks:
                    src = disk_ids[x.disk]
                    cid = self.uid("copy", f"{v.id}/{s.id}/{x.disk}")
                    self.disks[cid] = Disk(id=cid, alias=f"ftbridge-copy.{vid}.{src}.{set_id}",
                                           size=self.disks[src].size, domain=sd_of[x.datastore],
                                           status="ok" if s.state.value != "broken" else "illegal")
        # what the estate says is free stays free: the rest is held by things the lab does not model
        est_free = {d.id: d.free for d in est.datastores}
        for dom in self.domains.values():
            dom.reserved = max(0, dom.capacity - est_free[dom.estate_id] - self.used(dom.id))
        for dcid in self.dcs:
            self.elect_spm(dcid)

    # lookups ---------------------------------------------------------------------------
    def used(self, sd_id: str) -> int:
        return sum(d.size for d in self.disks.values() if d.domain == sd_id or d.moving_to == sd_id)

    def available(self, sd_id: str) -> int:
        dom = self.domains[sd_id]
        return max(0, dom.capacity - dom.reserved - self.used(sd_id))

    def dc_hosts(self, dc_id: str | None) -> list[Host]:
        return [h for h in self.hosts.values() if self.clusters[h.cluster].dc == dc_id]

    def elect_spm(self, dc_id: str) -> str | None:
        cur = self.spm.get(dc_id)
        if cur and self.hosts[cur].status == "up":
            return cur
        up = sorted((h for h in self.dc_hosts(dc_id) if h.status == "up"), key=lambda h: (-h.spm_priority, h.name))
        self.spm[dc_id] = up[0].id if up else None
        return self.spm[dc_id]

    def disk_owners(self) -> dict[str, Vm]:
        """disk id -> the VM it is attached to: one pass, for listings."""
        return {a.disk: vm for vm in self.vms.values() for a in vm.attachments}

    def vm_of_disk(self, disk_id: str) -> Vm | None:
        for vm in self.vms.values():
            if any(a.disk == disk_id for a in vm.attachments):
                return vm
        return None

    def get(self, table: str, obj_id: str, what: str) -> Any:
        obj = getattr(self, table).get(obj_id)
        if obj is None:
            raise Fault(404, "Not Found", f"{what} {obj_id} not found")
        return obj

    def find_by_name(self, table: str, name: str) -> Any:
        for obj in getattr(self, table).values():
            if obj.name == name:
                return obj
        raise KeyError(f"no {table[:-1]} named {name!r}")

    # jobs --------------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> None:
        """Finish the jobs whose time has come; restart HA VMs whose host died."""
        now = time.time() if now is None else now
        for job in sorted(self.jobs.values(), key=lambda j: j.deadline):
            if job.status == "started" and job.deadline <= now:
                job.end = now
                if job.fail:
                    job.status = "failed"
                    if job.on_fail:
                        job.on_fail()
                else:
                    job.status = "finished"
                    if job.on_finish:
                        job.on_finish()
        for jid in [j.id for j in self.jobs.values() if j.end is not None and now - j.end > self.job_ttl]:
            del self.jobs[jid]
        for vid, when in list(self.pending_restarts.items()):
            if when <= now:
                del self.pending_restarts[vid]
                self._ha_restart(vid)

    def start_job(self, kind: str, corr: str | None, description: str, *,
                  on_finish: Callable[[], None] | None = None, on_fail: Callable[[], None] | None = None,
                  instant: bool = False) -> Job:
        now = time.time()
        duration = 0.0 if instant else self.op_seconds + float(self.faults["slow_jobs"])
        job = Job(id=str(uuid.uuid4()), correlation_id=corr, description=description, start=now,
                  deadline=now + duration, fail=(not instant) and self._should_fail(kind),
                  on_finish=on_finish, on_fail=on_fail)
        self.jobs[job.id] = job
        if instant:
            self.tick(now)
        return job

    def _should_fail(self, kind: str) -> bool:
        f = self.faults
        if f["fail_next"].get(kind, 0) > 0:
            f["fail_next"][kind] -= 1
            return True
        return kind in f["fail_kinds"]

    def jobs_for(self, corr: str) -> list[Job]:
        return [j for j in self.jobs.values() if j.correlation_id == corr]

    # faults ------------------------------------------------------------------------------
    def reset_faults(self) -> None:
        self.faults = {"error_rate": 0.0, "slow": 0.0, "slow_jobs": 0.0, "fail_kinds": set(),
                       "fail_next": Counter()}

    def fail_host(self, host_id: str) -> None:
        host = self.hosts[host_id]
        if host.status == "non_responsive":
            return
        host.status = "non_responsive"
        for vm in self.vms.values():
            if vm.host == host_id and vm.status in RUNNING:
                vm.before_fault = vm.before_fault or vm.status
                vm.status = "unknown"
                if self.ha_restart and vm.ha and vm.lease:
                    self.pending_restarts[vm.id] = time.time() + self.ha_delay
        self.elect_spm(self.clusters[host.cluster].dc)

    def fail_domain(self, sd_id: str) -> None:
        dom = self.domains[sd_id]
        dom.status = "inactive"
        for vm in self.vms.values():
            disk_domains = {self.disks[a.disk].domain for a in vm.attachments if a.disk in self.disks}
            if vm.status == "up" and (sd_id in disk_domains or vm.lease == sd_id):
                vm.before_fault = vm.before_fault or vm.status
                vm.status = "paused"  # I/O errors pause a VM; a lost lease would too

    def restore(self) -> None:
        for host in self.hosts.values():
            if host.status == "non_responsive":
                host.status = "up"
        for dom in self.domains.values():
            if dom.status == "inactive":
                dom.status = "active"
        for vm in self.vms.values():
            if vm.before_fault and vm.status in ("unknown", "paused") and vm.host:
                vm.status = vm.before_fault
            vm.before_fault = None
        self.pending_restarts.clear()
        self.reset_faults()

    def _ha_restart(self, vm_id: str) -> None:
        """What the engine does for an HA VM with a lease once its host stops renewing it."""
        vm = self.vms.get(vm_id)
        if vm is None or vm.status != "unknown" or not vm.lease:
            return
        try:
            host = self._pick_host(vm, None)
            self._check_storage_for_run(vm)
        except Fault:
            return
        vm.status, vm.host, vm.before_fault = "up", host, None

    # storage rules -----------------------------------------------------------------------
    def _target_domain(self, sd_id: str, disk: Disk, verb: str) -> Domain:
        target = self.get("domains", sd_id, "storage domain")
        source = self.domains[disk.domain]
        if target.type != "data":
            raise conflict(f"Cannot {verb} Virtual Disk. The target Storage Domain {target.name} is not a data domain.")
        if target.dc is None or target.dc != source.dc:
            raise conflict(f"Cannot {verb} Virtual Disk. The target Storage Domain {target.name} "
                           "is not in the same Data Center as the disk.")
        if target.status != "active":
            raise conflict(f"Cannot {verb} Virtual Disk. Storage Domain {target.name} is {target.status}.")
        if source.status != "active":
            raise conflict(f"Cannot {verb} Virtual Disk. The source Storage Domain {source.name} is {source.status}.")
        if self.elect_spm(target.dc) is None:
            raise conflict(f"Cannot {verb} Virtual Disk. The Data Center has no active SPM host.")
        if self.available(target.id) < disk.size:
            raise conflict(f"Cannot {verb} Virtual Disk. Low disk space on Storage Domain {target.name}.")
        return target

    @staticmethod
    def _unlocked(disk: Disk, verb: str) -> None:
        if disk.status == "locked":
            raise conflict(f"Cannot {verb} Virtual Disk. Disk {disk.alias} is locked. "
                           "Please try again in a few minutes.")
        if disk.status == "illegal":
            raise conflict(f"Cannot {verb} Virtual Disk. Disk {disk.alias} is in an illegal state.")

    def move_disk(self, disk_id: str, sd_id: str, corr: str | None) -> Job:
        disk = self.get("disks", disk_id, "disk")
        self._unlocked(disk, "move")
        if disk.domain == sd_id:
            raise conflict(f"Cannot move Virtual Disk. Disk {disk.alias} is already on the target storage domain.")
        target = self._target_domain(sd_id, disk, "move")
        source = self.domains[disk.domain]
        disk.status, disk.moving_to = "locked", target.id

        def done() -> None:
            disk.domain, disk.moving_to, disk.status = target.id, None, "ok"

        def failed() -> None:
            disk.moving_to, disk.status = None, "ok"

        return self.start_job("move", corr, f"Moving Disk {disk.alias} from {source.name} to {target.name}",
                              on_finish=done, on_fail=failed)

    def copy_disk(self, disk_id: str, sd_id: str, alias: str | None, corr: str | None) -> Job:
        disk = self.get("disks", disk_id, "disk")
        self._unlocked(disk, "copy")
        target = self._target_domain(sd_id, disk, "copy")
        new = Disk(id=str(uuid.uuid4()), alias=alias or f"{disk.alias}_copy", size=disk.size, domain=target.id,
                   status="locked", description=disk.description)
        self.disks[new.id] = new
        disk.status = "locked"

        def done() -> None:
            new.status, disk.status = "ok", "ok"

        def failed() -> None:
            self.disks.pop(new.id, None)
            disk.status = "ok"

        return self.start_job("copy", corr, f"Copying Disk {disk.alias} to {target.name}",
                              on_finish=done, on_fail=failed)

    def remove_disk(self, disk_id: str, corr: str | None) -> Job:
        disk = self.get("disks", disk_id, "disk")
        self._unlocked(disk, "remove")
        vm = self.vm_of_disk(disk_id)
        if vm is not None and vm.status != "down":
            raise conflict(f"Cannot remove Virtual Disk. Disk {disk.alias} is attached to the running VM {vm.name}.")
        if self.domains[disk.domain].status != "active":
            raise conflict(f"Cannot remove Virtual Disk. Storage Domain {self.domains[disk.domain].name} is inactive.")
        if vm is not None:
            vm.attachments = [a for a in vm.attachments if a.disk != disk_id]
        del self.disks[disk_id]
        return self.start_job("remove", corr, f"Removing Disk {disk.alias}", instant=True)

    def update_disk(self, disk_id: str, alias: str | None, description: str | None, corr: str | None) -> Disk:
        disk = self.get("disks", disk_id, "disk")
        self._unlocked(disk, "update")
        if alias is not None:
            disk.alias = alias
        if description is not None:
            disk.description = description
        self.start_job("update", corr, f"Updating Disk {disk.alias}", instant=True)
        return disk

    # VM rules ----------------------------------------------------------------------------
    def add_vm(self, name: str, cluster_id: str | None, cluster_name: str | None, description: str,
               stateless: bool, memory: int | None, corr: str | None) -> Vm:
        if not name:
            raise Fault(400, "Incomplete parameters", "Vm [name] required for add")
        if any(v.name == name for v in self.vms.values()):
            raise conflict(f"Cannot add VM. The VM name {name} is already in use.")
        cluster = None
        if cluster_id:
            cluster = self.get("clusters", cluster_id, "cluster")
        elif cluster_name:
            cluster = next((c for c in self.clusters.values() if c.name == cluster_name), None)
        if cluster is None:
            raise Fault(400, "Incomplete parameters", "Vm [cluster.id|name] required for add")
        vm = Vm(id=str(uuid.uuid4()), name=name, cluster=cluster.id, description=description,
                stateless=stateless, memory=memory or (1 << 30))
        self.vms[vm.id] = vm
        self.start_job("add_vm", corr, f"Creating VM {name}", instant=True)
        return vm

    def remove_vm(self, vm_id: str, detach_only: bool, corr: str | None) -> Job:
        vm = self.get("vms", vm_id, "vm")
        if vm.status != "down":
            raise conflict(f"Cannot remove VM. VM {vm.name} is running.")
        for a in vm.attachments:
            disk = self.disks.get(a.disk)
            if disk is not None and disk.status == "locked":
                raise conflict(f"Cannot remove VM. Disk {disk.alias} is locked.")
        if not detach_only:
            for a in vm.attachments:
                self.disks.pop(a.disk, None)
        del self.vms[vm_id]
        return self.start_job("remove_vm", corr, f"Removing VM {vm.name}", instant=True)

    def update_vm(self, vm_id: str, changes: dict[str, Any], corr: str | None) -> Vm:
        vm = self.get("vms", vm_id, "vm")
        if "lease" in changes:
            sd_id = changes["lease"]
            if sd_id is not None:
                dom = self.get("domains", sd_id, "storage domain")
                if dom.type != "data" or dom.dc != self.clusters[vm.cluster].dc or dom.status != "active":
                    raise conflict(f"Cannot edit VM. The lease storage domain {dom.name} must be an active "
                                   "data domain of the VM's data center.")
            vm.lease = sd_id
        if changes.get("cluster") and changes["cluster"] != vm.cluster:
            cluster = self.get("clusters", changes["cluster"], "cluster")
            if vm.status != "down":
                raise conflict(f"Cannot edit VM. VM {vm.name} must be down to change its cluster.")
            if cluster.dc != self.clusters[vm.cluster].dc:
                raise conflict(f"Cannot edit VM. Cluster {cluster.name} is in another data center.")
            vm.cluster = cluster.id
        for key in ("name", "description"):
            if changes.get(key) is not None:
                setattr(vm, key, changes[key])
        if changes.get("ha") is not None:
            vm.ha = bool(changes["ha"])
        self.start_job("update_vm", corr, f"Editing VM {vm.name}", instant=True)
        return vm

    def _pick_host(self, vm: Vm, host_id: str | None) -> str:
        if host_id:
            host = self.get("hosts", host_id, "host")
            if host.status != "up":
                raise conflict(f"Cannot run VM. Host {host.name} is {host.status}.")
            if host.cluster != vm.cluster:
                raise conflict(f"Cannot run VM. Host {host.name} is not in the VM's cluster.")
            return host.id
        for host in sorted(self.hosts.values(), key=lambda h: h.name):
            if host.cluster == vm.cluster and host.status == "up":
                return host.id
        raise conflict("Cannot run VM. There is no host that satisfies current scheduling constraints.")

    def _check_storage_for_run(self, vm: Vm) -> None:
        for a in vm.attachments:
            disk = self.disks.get(a.disk)
            if disk is None:
                continue
            if disk.status == "locked":
                raise conflict(f"Cannot run VM. Disk {disk.alias} is locked.")
            dom = self.domains[disk.domain]
            if dom.status != "active":
                raise conflict(f"Cannot run VM. Storage Domain {dom.name} of disk {disk.alias} is {dom.status}.")
        if vm.lease and self.domains[vm.lease].status != "active":
            raise conflict(f"Cannot run VM. The VM lease storage domain {self.domains[vm.lease].name} is inactive.")

    def start_vm(self, vm_id: str, host_id: str | None, corr: str | None) -> Job:
        vm = self.get("vms", vm_id, "vm")
        if vm.status != "down":
            raise conflict(f"Cannot run VM. VM {vm.name} is {vm.status}.")
        self._check_storage_for_run(vm)
        host = self._pick_host(vm, host_id)
        vm.status, vm.host = "wait_for_launch", host

        def done() -> None:
            if vm.status in ("wait_for_launch", "powering_up"):
                vm.status = "up"

        def failed() -> None:
            vm.status, vm.host = "down", None

        return self.start_job("start", corr, f"Launching VM {vm.name}", on_finish=done, on_fail=failed)

    def stop_vm(self, vm_id: str, corr: str | None) -> Job:
        vm = self.get("vms", vm_id, "vm")
        if vm.status == "down":
            raise conflict(f"Cannot stop VM. VM {vm.name} is not running.")
        if vm.host and self.hosts[vm.host].status != "up":
            raise conflict(f"Cannot stop VM. Host {self.hosts[vm.host].name} of VM {vm.name} is non responsive: "
                           "confirm the host has been rebooted first.")
        vm.status, vm.host, vm.before_fault = "down", None, None
        self.pending_restarts.pop(vm.id, None)
        return self.start_job("stop", corr, f"Stopping VM {vm.name}", instant=True)

    def fence_manual(self, host_id: str, corr: str | None) -> Job:
        host = self.get("hosts", host_id, "host")
        if host.status != "non_responsive":
            raise conflict(f"Cannot confirm host {host.name} was rebooted: it is {host.status}.")
        for vm in self.vms.values():
            if vm.host == host_id:
                vm.status, vm.host, vm.before_fault = "down", None, None
                self.pending_restarts.pop(vm.id, None)
        return self.start_job("fence", corr, f"Manual fence of host {host.name}", instant=True)

    def attach_disk(self, vm_id: str, att: Attachment, corr: str | None) -> Attachment:
        vm = self.get("vms", vm_id, "vm")
        disk = self.get("disks", att.disk, "disk")
        other = self.vm_of_disk(disk.id)
        if other is not None:
            raise conflict(f"Cannot attach Virtual Disk. Disk {disk.alias} is already attached to VM {other.name}.")
        if disk.status == "locked":
            raise conflict(f"Cannot attach Virtual Disk. Disk {disk.alias} is locked.")
        if self.domains[disk.domain].dc != self.clusters[vm.cluster].dc:
            raise conflict(f"Cannot attach Virtual Disk. Disk {disk.alias} is in another data center.")
        vm.attachments.append(att)
        self.start_job("attach", corr, f"Attaching Disk {disk.alias} to VM {vm.name}", instant=True)
        return att

    def detach_disk(self, vm_id: str, disk_id: str, detach_only: bool, corr: str | None) -> Job:
        vm = self.get("vms", vm_id, "vm")
        att = next((a for a in vm.attachments if a.disk == disk_id), None)
        if att is None:
            raise Fault(404, "Not Found", f"disk attachment {disk_id} not found")
        if vm.status != "down" and att.active:
            raise conflict(f"Cannot remove Virtual Disk. VM {vm.name} is {vm.status}: deactivate the disk first.")
        vm.attachments.remove(att)
        if not detach_only:
            self.disks.pop(disk_id, None)
        return self.start_job("detach", corr, f"Detaching Disk from VM {vm.name}", instant=True)

    def add_nic(self, vm_id: str, name: str, plugged: bool, linked: bool, profile: str | None,
                corr: str | None) -> Nic:
        vm = self.get("vms", vm_id, "vm")
        if any(n.name == name for n in vm.nics):
            raise conflict(f"Cannot add Interface. VM {vm.name} already has an interface named {name}.")
        nic = Nic(id=str(uuid.uuid4()), name=name, plugged=plugged, linked=linked, profile=profile)
        vm.nics.append(nic)
        self.start_job("add_nic", corr, f"Adding Interface {name} to VM {vm.name}", instant=True)
        return nic

    def update_nic(self, vm_id: str, nic_id: str, plugged: bool | None, linked: bool | None) -> Nic:
        vm = self.get("vms", vm_id, "vm")
        nic = next((n for n in vm.nics if n.id == nic_id), None)
        if nic is None:
            raise Fault(404, "Not Found", f"nic {nic_id} not found")
        if plugged is not None:
            nic.plugged = plugged
        if linked is not None:
            nic.linked = linked
        return nic

    # disaster recovery: replicated domains -------------------------------------------------------
    def receive_replica(self, domain: Domain, vms: list[tuple[Vm, list[Disk]]]) -> None:
        """An array-replicated domain appears here, unattached, holding VMs not registered yet."""
        self.domains[domain.id] = domain
        self.unregistered_vms[domain.id] = vms

    def attach_domain(self, dc_id: str, sd_id: str, corr: str | None) -> Domain:
        dc = self.get("dcs", dc_id, "data center")
        dom = self.get("domains", sd_id, "storage domain")
        if dom.dc is not None:
            raise conflict(f"Cannot attach Storage Domain. Storage Domain {dom.name} is already attached.")
        if self.elect_spm(dc.id) is None:
            raise conflict(f"Cannot attach Storage Domain. Data Center {dc.name} has no active SPM host.")
        dom.dc, dom.status = dc.id, "active"  # attaching activates it
        self.start_job("attach_sd", corr, f"Attaching Storage Domain {dom.name} to Data Center {dc.name}",
                       instant=True)
        return dom

    def register_vm(self, sd_id: str, vm_id: str, cluster_id: str | None, cluster_name: str | None,
                    corr: str | None) -> Vm:
        dom = self.get("domains", sd_id, "storage domain")
        if dom.dc is None or dom.status != "active":
            raise conflict(f"Cannot import VM. Storage Domain {dom.name} is not active in a data center.")
        entry = next((e for e in self.unregistered_vms.get(sd_id, []) if e[0].id == vm_id), None)
        if entry is None:
            raise Fault(404, "Not Found", f"unregistered vm {vm_id} not found on {dom.name}")
        cluster = self.clusters.get(cluster_id or "") or next(
            (c for c in self.clusters.values() if c.name == cluster_name), None)
        if cluster is None or cluster.dc != dom.dc:
            raise conflict("Cannot import VM. The target cluster must be in the storage domain's data center.")
        vm, disks = entry
        if vm.id in self.vms or any(v.name == vm.name for v in self.vms.values()):
            raise conflict(f"Cannot import VM. VM {vm.name} already exists.")
        vm.cluster, vm.status, vm.host = cluster.id, "down", None
        for d in disks:
            self.disks[d.id] = d
        self.vms[vm.id] = vm
        self.unregistered_vms[sd_id] = [e for e in self.unregistered_vms[sd_id] if e[0].id != vm_id]
        self.start_job("register", corr, f"Importing VM {vm.name} from Storage Domain {dom.name}", instant=True)
        return vm

    # test helpers -------------------------------------------------------------------------
    def names(self, table: str) -> Iterable[str]:
        return [o.name for o in getattr(self, table).values()]
