"""VM commands as the engine validates them: add (and clone from a snapshot), remove, edit, run,
stop, disks and NICs, snapshots, and the HA restarts the engine makes on its own.

Sources (ovirt-engine, backend/manager/modules/bll/src/main/java/org/ovirt/engine/core/bll/):

* ``snapshots/CreateSnapshotForVmCommand.java``: a live snapshot of a running VM, of its active
  image disks that are not shareable (``DisksFilter.ONLY_NOT_SHAREABLE``, ``ONLY_SNAPABLE``:
  no direct LUN), refused while another snapshot is being taken.
* ``AddVmFromSnapshotCommand.java`` (``POST /vms`` with a snapshot, BackendVmsResource): a new
  VM whose disks are collapsed copies of the snapshot's images, on the domains asked for; not
  from or onto managed block storage (``AddVmAndCloneImageCommand`` asks
  ``ManagedBlockStorageDomainValidator``, which does not list it).
* ``VmHandler.canRunActionOnNonManagedVm`` / ``common/validation/VmActionByVmOriginTypeValidator
  .java``: the hosted engine VM is not run, stopped or snapshotted through the engine.
* ``RemoveVmCommand.java``: only a Down VM is removed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from ftbridge_ovirt.lab.model import Attachment, Disk, Host, Job, Nic, Snapshot, Vm
from ftbridge_ovirt.lab.state import Fault, conflict
from ftbridge_ovirt.lab.storage import StorageCommands


class VmCommands(StorageCommands):
    def managed(self, vm: Vm, verb: str, what: str = "VM") -> None:
        if vm.hosted_engine:
            raise conflict(f"Cannot {verb} {what}. This VM is not managed by the engine.")

    def not_locked(self, vm: Vm, verb: str, what: str = "VM") -> None:
        if vm.status == "image_locked":
            raise conflict(f"Cannot {verb} {what}: VM is locked. Please try again in a few minutes.")
        if any(s.status == "locked" for s in vm.snapshots):
            raise conflict(
                f"Cannot {verb} {what}. The VM is performing an operation on a Snapshot. Please wait "
                "for the operation to finish, and try again."
            )

    # add, clone, remove, edit ------------------------------------------------------------------
    def add_vm(
        self,
        name: str,
        cluster_id: str | None,
        cluster_name: str | None,
        description: str,
        stateless: bool,
        memory: int | None,
        corr: str | None,
        *,
        snapshot: str | None = None,
        disks: Mapping[str, tuple[str | None, str | None]] | None = None,
    ) -> Vm:
        """A new VM (Blank template), or with ``snapshot`` a clone of that snapshot's disks onto
        the domains ``disks`` asks for (disk id -> (domain id, alias))."""
        if not name:
            raise Fault(400, "Incomplete parameters", "Vm [name] required for add")
        if any(v.name == name for v in self.vms.values()):
            raise conflict("Cannot add VM. The VM name is already in use, please choose a unique name and try again.")
        cluster = self.clusters.get(cluster_id or "") or next(
            (c for c in self.clusters.values() if c.name == cluster_name), None
        )
        if cluster is None:
            raise Fault(400, "Incomplete parameters", "Vm [cluster.id|name] required for add")
        vm = Vm(
            id=str(uuid.uuid4()),
            name=name,
            cluster=cluster.id,
            description=description,
            stateless=stateless,
            memory=memory or (1 << 30),
        )
        if snapshot is None:
            self.vms[vm.id] = vm
            self.start_job(
                "add_vm", corr, f"Creating VM {name}", instant=True, audit=("USER_ADD_VM", {"VmName": name}), vm=vm.id
            )
            return vm
        return self._clone(vm, snapshot, dict(disks or {}), corr)

    def _clone(self, vm: Vm, snap_id: str, asked: dict[str, tuple[str | None, str | None]], corr: str | None) -> Vm:
        src, snap = next(((v, s) for v in self.vms.values() for s in v.snapshots if s.id == snap_id), (None, None))
        if src is None or snap is None:
            raise conflict("Cannot add VM. VM's Snapshot does not exist.")
        if snap.status != "ok":
            raise conflict(
                "Cannot add VM. The VM is performing an operation on a Snapshot. Please wait for the "
                "operation to finish, and try again."
            )
        unknown = set(asked) - set(snap.images)
        if unknown:
            raise Fault(404, "Not Found", f"disk {sorted(unknown)[0]} is not in snapshot {snap.description}")
        plan: list[tuple[Disk, Any, str]] = []
        need: dict[str, int] = {}
        for disk_id in snap.images:
            disk = self.disks[disk_id]
            sd_id, alias = asked.get(disk_id, (None, None))
            target = self.target_domain(sd_id or disk.domain or "", disk, "add", "VM")
            need[target.id] = need.get(target.id, 0) + self.clone_size(disk, target)
            plan.append((disk, target, alias or disk.alias))
        involved = {t.id for _, t, _ in plan} | {d.domain for d, _, _ in plan if d.domain}
        if any(self.domains[x].storage_type == "managed_block_storage" for x in involved):
            # AddVmAndCloneImageCommand: isSupportedByManagedBlockStorageDomains(AddVmFromSnapshot)
            raise conflict("Cannot add VM.  Managed Block Storage does not support this operation.")
        for sd_id, size in need.items():
            self.check_room(self.domains[sd_id], size, "add", "VM")
        vm.status, vm.memory, vm.vcpus = "image_locked", src.memory, src.vcpus
        vm.nics = [
            Nic(id=str(uuid.uuid4()), name=n.name, plugged=n.plugged, linked=n.linked, profile=n.profile)
            for n in src.nics
        ]
        new_disks = []
        for i, (disk, target, alias) in enumerate(plan):
            new = Disk(
                id=str(uuid.uuid4()),
                alias=alias,
                size=disk.size,
                domain=target.id,
                status="locked",
                sparse=disk.sparse,
                format=disk.format,
                actual=disk.used,
                storage_type="managed_block_storage" if target.storage_type == "managed_block_storage" else "image",
            )
            self.disks[new.id] = new
            new_disks.append(new)
            vm.attachments.append(Attachment(disk=new.id, bootable=(i == 0)))
        self.vms[vm.id] = vm

        def done() -> None:
            vm.status = "down"
            for d in new_disks:
                d.status = "ok"

        def failed() -> None:
            self.vms.pop(vm.id, None)
            for d in new_disks:
                self.disks.pop(d.id, None)

        self.start_job(
            "clone",
            corr,
            f"Creating VM {vm.name} from Snapshot {snap.description}",
            on_finish=done,
            on_fail=failed,
            audit=("USER_ADD_VM_STARTED", {"VmName": vm.name}),
            vm=vm.id,
        )
        return vm

    def remove_vm(self, vm_id: str, detach_only: bool, corr: str | None) -> Job:
        vm: Vm = self.get("vms", vm_id, "vm")
        self.not_locked(vm, "remove")
        if vm.status != "down":
            raise conflict("Cannot remove VM that its state is not down. -Please stop the VM first.")
        for a in vm.attachments:
            disk = self.disks.get(a.disk)
            if disk is not None and disk.status == "locked":
                raise conflict(
                    f"Cannot remove VM: The following disks are locked: {disk.alias}. Please try again "
                    "in a few minutes."
                )
        del self.vms[vm_id]
        if not detach_only:
            for a in vm.attachments:
                if not self.vms_of_disk(a.disk):  # a shareable disk stays with the VMs still sharing it
                    self.disks.pop(a.disk, None)
        return self.start_job(
            "remove_vm",
            corr,
            f"Removing VM {vm.name}",
            instant=True,
            audit=("USER_REMOVE_VM_FINISHED", {"VmName": vm.name}),
            vm=vm.id,
        )

    def update_vm(self, vm_id: str, changes: dict[str, Any], corr: str | None) -> Vm:
        vm: Vm = self.get("vms", vm_id, "vm")
        if "lease" in changes:
            sd_id = changes["lease"]
            if sd_id is not None:
                dom = self.get("domains", sd_id, "storage domain")
                if dom.type != "data" or dom.dc != self.clusters[vm.cluster].dc or dom.status != "active":
                    raise conflict(
                        f"Cannot edit VM. The lease storage domain {dom.name} must be an active "
                        "data domain of the VM's data center."
                    )
            vm.lease = sd_id
        if changes.get("cluster") and changes["cluster"] != vm.cluster:
            cluster = self.get("clusters", changes["cluster"], "cluster")
            if vm.status != "down":
                raise conflict(f"Cannot edit VM. VM {vm.name} must be down to change its cluster.")
            if cluster.dc != self.clusters[vm.cluster].dc:
                raise conflict(f"Cannot edit VM. Cluster {cluster.name} is in another data center.")
            vm.cluster = cluster.id
        if changes.get("ha") and vm.hosted_engine:
            raise conflict(
                'Cannot edit VM. A VM running the engine ("hosted engine") cannot be set to highly '
                "available as it has its own HA mechanism."
            )
        for key in ("name", "description"):
            if changes.get(key) is not None:
                setattr(vm, key, changes[key])
        if changes.get("ha") is not None:
            vm.ha = bool(changes["ha"])
        if changes.get("stateless") is not None:
            vm.stateless = bool(changes["stateless"])
        self.start_job(
            "update_vm",
            corr,
            f"Editing VM {vm.name}",
            instant=True,
            audit=("USER_UPDATE_VM", {"VmName": vm.name}),
            vm=vm.id,
        )
        return vm

    # run and stop -----------------------------------------------------------------------------
    def pick_host(self, vm: Vm, host_id: str | None) -> str:
        if host_id:
            host: Host = self.get("hosts", host_id, "host")
            if host.status != "up":
                raise conflict(f"Cannot run VM. Host {host.name} is {host.status}.")
            if host.cluster != vm.cluster:
                raise conflict(f"Cannot run VM. Host {host.name} is not in the VM's cluster.")
            return host.id
        for host in sorted(self.hosts.values(), key=lambda h: h.name):
            if host.cluster == vm.cluster and host.status == "up":
                return host.id
        raise conflict("Cannot run VM. There is no host that satisfies current scheduling constraints.")

    def check_storage_for_run(self, vm: Vm) -> None:
        for a in vm.attachments:
            disk = self.disks.get(a.disk)
            if disk is None or not a.active:
                continue
            if disk.status == "locked":
                raise conflict(
                    f"Cannot run VM: The following disks are locked: {disk.alias}. Please try again in a few minutes."
                )
            if disk.lun is not None and disk.lun not in self.luns:
                raise conflict(f"Cannot run VM. The LUN of disk {disk.alias} is not visible to the hosts.")
            if disk.domain is not None:
                dom = self.domains[disk.domain]
                if dom.status != "active":
                    raise conflict(f"Cannot run VM. Storage Domain {dom.name} of disk {disk.alias} is {dom.status}.")
        if vm.lease and self.domains[vm.lease].status != "active":
            raise conflict(f"Cannot run VM. The VM lease storage domain {self.domains[vm.lease].name} is inactive.")

    def start_vm(self, vm_id: str, host_id: str | None, corr: str | None) -> Job:
        vm: Vm = self.get("vms", vm_id, "vm")
        self.managed(vm, "run")
        self.not_locked(vm, "run")
        if vm.status != "down":
            raise conflict(f"Cannot run VM. VM {vm.name} is {vm.status}.")
        self.check_storage_for_run(vm)
        host = self.pick_host(vm, host_id)
        vm.status, vm.host = "wait_for_launch", host

        def done() -> None:
            if vm.status in ("wait_for_launch", "powering_up"):
                vm.status = "up"

        def failed() -> None:
            vm.status, vm.host = "down", None

        return self.start_job(
            "start",
            corr,
            f"Launching VM {vm.name}",
            on_finish=done,
            on_fail=failed,
            audit=("USER_INITIATED_RUN_VM", {"VmName": vm.name}),
            vm=vm.id,
            host=host,
        )

    def stop_vm(self, vm_id: str, corr: str | None) -> Job:
        vm: Vm = self.get("vms", vm_id, "vm")
        self.managed(vm, "stop")
        if vm.status == "down":
            raise conflict("Cannot stop VM. VM is not running.")
        if vm.host and self.hosts[vm.host].status != "up":
            raise conflict(
                f"Cannot stop VM. Host {self.hosts[vm.host].name} of VM {vm.name} is "
                f"{self.hosts[vm.host].status}: the engine cannot reach it."
            )
        ran_on = vm.host
        vm.status, vm.host, vm.before_fault = "down", None, None
        self.pending_restarts.pop(vm.id, None)
        return self.start_job(
            "stop",
            corr,
            f"Stopping VM {vm.name}",
            instant=True,
            audit=("USER_STOP_VM", {"VmName": vm.name, "VdsName": self.hosts[ran_on].name if ran_on else ""}),
            vm=vm.id,
            host=ran_on,
        )

    def ha_restart_now(self, vm_id: str) -> None:
        """What the engine does for an HA VM once its host is fenced, or its lease expired."""
        vm = self.vms.get(vm_id)
        if vm is None or vm.status not in ("down", "unknown") or not vm.ha:
            return
        try:
            self.check_storage_for_run(vm)
            host = self.pick_host(vm, None)
        except Fault:
            return
        vm.status, vm.host, vm.before_fault = "up", host, None

    # disks and NICs ---------------------------------------------------------------------------
    def attach_disk(self, vm_id: str, att: Attachment, corr: str | None) -> Attachment:
        vm: Vm = self.get("vms", vm_id, "vm")
        disk: Disk = self.get("disks", att.disk, "disk")
        others = self.vms_of_disk(disk.id)
        if vm in others:
            raise conflict("Cannot attach Virtual Disk. The disk is already attached to VM.")
        if others and not disk.shareable:
            raise conflict("Cannot attach Virtual Disk. The disk is not shareable and is already attached to a VM.")
        if disk.status == "locked":
            raise conflict(
                f"Cannot attach Virtual Disk: The following disks are locked: {disk.alias}. Please try "
                "again in a few minutes."
            )
        if disk.domain is not None and self.domains[disk.domain].dc != self.clusters[vm.cluster].dc:
            raise conflict("Cannot attach Virtual Disk. The selected Storage Domain is not part of the Data Center.")
        vm.attachments.append(att)
        self.start_job(
            "attach",
            corr,
            f"Attaching Disk {disk.alias} to VM {vm.name}",
            instant=True,
            audit=("USER_ATTACH_DISK_TO_VM", {"DiskAlias": disk.alias, "VmName": vm.name}),
            vm=vm.id,
        )
        return att

    def detach_disk(self, vm_id: str, disk_id: str, detach_only: bool, corr: str | None) -> Job:
        vm: Vm = self.get("vms", vm_id, "vm")
        att = next((a for a in vm.attachments if a.disk == disk_id), None)
        if att is None:
            raise Fault(404, "Not Found", f"disk attachment {disk_id} not found")
        if vm.status != "down" and att.active:
            raise conflict(f"Cannot remove Virtual Disk. VM {vm.name} is {vm.status}: deactivate the disk first.")
        vm.attachments.remove(att)
        alias = self.disks[disk_id].alias if disk_id in self.disks else disk_id
        if not detach_only and not self.vms_of_disk(disk_id):
            self.disks.pop(disk_id, None)
        return self.start_job(
            "detach",
            corr,
            f"Detaching Disk from VM {vm.name}",
            instant=True,
            audit=("USER_DETACH_DISK_FROM_VM", {"DiskAlias": alias, "VmName": vm.name}),
            vm=vm.id,
        )

    def add_nic(self, vm_id: str, name: str, plugged: bool, linked: bool, profile: str | None, corr: str | None) -> Nic:
        vm: Vm = self.get("vms", vm_id, "vm")
        if any(n.name == name for n in vm.nics):
            raise conflict(f"Cannot add Interface. VM {vm.name} already has an interface named {name}.")
        if profile is not None and profile not in self.profiles:
            raise Fault(404, "Not Found", f"vnic profile {profile} not found")
        nic = Nic(id=str(uuid.uuid4()), name=name, plugged=plugged, linked=linked, profile=profile)
        vm.nics.append(nic)
        self.start_job(
            "add_nic",
            corr,
            f"Adding Interface {name} to VM {vm.name}",
            instant=True,
            audit=("NETWORK_ADD_VM_INTERFACE", {"InterfaceName": name, "InterfaceType": "VirtIO", "VmName": vm.name}),
            vm=vm.id,
        )
        return nic

    def update_nic(
        self, vm_id: str, nic_id: str, plugged: bool | None, linked: bool | None, profile: str | None = None
    ) -> Nic:
        vm: Vm = self.get("vms", vm_id, "vm")
        nic = next((n for n in vm.nics if n.id == nic_id), None)
        if nic is None:
            raise Fault(404, "Not Found", f"nic {nic_id} not found")
        if plugged is not None:
            nic.plugged = plugged
        if linked is not None:
            nic.linked = linked
        if profile is not None:
            if profile not in self.profiles:
                raise Fault(404, "Not Found", f"vnic profile {profile} not found")
            nic.profile = profile
        return nic

    # snapshots --------------------------------------------------------------------------------
    def snapshot_disks(self, vm: Vm, asked: set[str] | None) -> list[Disk]:
        """The disks a snapshot takes: active image disks, not shareable (CreateSnapshotForVmCommand
        filters ONLY_NOT_SHAREABLE, ONLY_SNAPABLE, ONLY_ACTIVE)."""
        out = []
        for a in vm.attachments:
            disk = self.disks.get(a.disk)
            if disk is None or not a.active or disk.shareable or disk.domain is None:
                continue
            if asked is None or disk.id in asked:
                out.append(disk)
        return out

    def create_snapshot(
        self, vm_id: str, description: str, disk_ids: set[str] | None, persist_memory: bool, corr: str | None
    ) -> Snapshot:
        vm: Vm = self.get("vms", vm_id, "vm")
        self.managed(vm, "create", "Snapshot")
        if vm.status == "image_locked":
            raise conflict("Cannot create Snapshot: VM is locked. Please try again in a few minutes.")
        if any(s.status == "locked" for s in vm.snapshots):
            raise conflict(f"Cannot create Snapshot. Snapshot is currently being created for VM {vm.name}.")
        disks = self.snapshot_disks(vm, disk_ids)
        for disk in disks:
            self.unlocked(disk, "create")
            dom = self.domains[disk.domain or ""]
            if dom.status != "active":
                raise conflict(f"Cannot create Snapshot. The relevant Storage Domain's status is {dom.status}.")
            self.check_room(dom, 0, "create", "Snapshot")
        snap = Snapshot(
            id=str(uuid.uuid4()),
            description=description,
            date=time.time(),
            images={d.id: str(uuid.uuid4()) for d in disks},
        )
        vm.snapshots.append(snap)

        def done() -> None:
            snap.status = "ok"

        def failed() -> None:
            vm.snapshots.remove(snap)

        self.start_job(
            "snapshot",
            corr,
            f"Creating VM Snapshot {description} for VM {vm.name}",
            on_finish=done,
            on_fail=failed,
            audit=("USER_CREATE_SNAPSHOT", {"SnapshotName": description, "VmName": vm.name}),
            vm=vm.id,
        )
        return snap

    def remove_snapshot(self, vm_id: str, snap_id: str, corr: str | None) -> Job:
        vm: Vm = self.get("vms", vm_id, "vm")
        snap = next((s for s in vm.snapshots if s.id == snap_id), None)
        if snap is None:
            raise Fault(404, "Not Found", f"snapshot {snap_id} not found")
        self.managed(vm, "remove", "Snapshot")
        if vm.status == "image_locked" or snap.status == "locked":
            raise conflict(
                "Cannot remove Snapshot. The VM is performing an operation on a Snapshot. Please wait "
                "for the operation to finish, and try again."
            )
        for disk_id in snap.images:
            disk = self.disks.get(disk_id)
            if disk is not None and disk.domain is not None and self.domains[disk.domain].status != "active":
                raise conflict(
                    "Cannot remove Snapshot. The relevant Storage Domain is inaccessible. -Please "
                    "handle Storage Domain issues and retry the operation."
                )
        snap.status = "locked"

        def done() -> None:
            if snap in vm.snapshots:
                vm.snapshots.remove(snap)

        def failed() -> None:
            snap.status = "ok"

        kind = "merge" if vm.status in ("up", "paused") else "remove_snapshot"
        return self.start_job(
            kind,
            corr,
            f"Removing Snapshot {snap.description} of VM {vm.name}",
            on_finish=done,
            on_fail=failed,
            audit=("USER_REMOVE_SNAPSHOT", {"SnapshotName": snap.description, "VmName": vm.name}),
            vm=vm.id,
        )
