"""Disk commands as the engine validates them: move (cold or live), copy, remove, update.

Sources (ovirt-engine, backend/manager/modules/bll/src/main/java/org/ovirt/engine/core/bll/):

* ``storage/disk/MoveDiskCommand.java``: a disk whose first VM runs with it plugged moves by live
  storage migration, anything else by ``MoveOrCopyDiskCommand``.
* ``storage/disk/MoveOrCopyDiskCommand.java``: content type, lock, same domain, source and target
  active, shareable disks never to Gluster nor thin to block storage, a template-based disk only
  where its template's disk is, room, and ``DiskValidator.isDiskPluggedToAnyNonDownVm``: no copy
  (nor cold move) of a disk plugged into a VM that is not Down.
* ``storage/lsm/LiveMigrateDiskCommand.java``: the VM must be Up or Paused; no shareable disk;
  ``validator/storage/ManagedBlockStorageDomainValidator.java`` does not list it, so managed
  block storage refuses it.
* ``validator/storage/DiskOperationsValidator.java``: which content types each command takes
  (a ``hosted_engine`` disk is neither moved nor copied).
"""

from __future__ import annotations

import uuid

from ftbridge_ovirt.lab.model import Disk, Domain, Job, Vm
from ftbridge_ovirt.lab.state import EngineState, conflict

#: DiskOperationsValidator.allowedCommandsOnTypes[MoveOrCopyDisk] / [LiveMigrateDisk]
COPY_CONTENT = frozenset({"data", "memory_dump_volume", "memory_metadata_volume", "iso"})
LIVE_CONTENT = frozenset({"data"})


class StorageCommands(EngineState):
    # rules -----------------------------------------------------------------------------------
    def image_disk(self, disk_id: str, verb: str) -> Disk:
        """The disk, which must be an image (a direct LUN has none: isImageExist fails)."""
        disk: Disk = self.get("disks", disk_id, "disk")
        if disk.storage_type == "lun" or disk.domain is None:
            raise conflict(f"Cannot {verb} Virtual Disk. The specified disk does not exist.")
        return disk

    def unlocked(self, disk: Disk, verb: str) -> None:
        if disk.status == "locked":
            raise conflict(
                f"Cannot {verb} Virtual Disk: The following disks are locked: {disk.alias}. "
                "Please try again in a few minutes."
            )
        if disk.status == "illegal":
            raise conflict(f"Cannot {verb} Virtual Disk. Disk {disk.alias} is in an illegal state.")

    def content_rule(self, disk: Disk, verb: str, allowed: frozenset[str]) -> None:
        if disk.content_type not in allowed:
            raise conflict(
                f"Cannot {verb} Virtual Disk. The operation is not supported for {disk.content_type.upper()} disks."
            )

    def plugged_rule(self, disk: Disk, verb: str) -> None:
        """DiskValidator.isDiskPluggedToAnyNonDownVm: the engine copies no disk a running VM writes."""
        names = sorted(
            vm.name
            for vm in self.vms.values()
            if vm.status != "down" and any(a.disk == disk.id and a.active for a in vm.attachments)
        )
        if names:
            raise conflict(
                f"Cannot {verb} Virtual Disk. The disk {disk.alias} is plugged to non-Down VMs: {','.join(names)}"
            )

    def target_domain(self, sd_id: str, disk: Disk, verb: str, what: str = "Virtual Disk") -> Domain:
        target: Domain = self.get("domains", sd_id, "storage domain")
        assert disk.domain is not None
        source = self.domains[disk.domain]
        if target.type != "data":
            raise conflict(f"Cannot {verb} {what}. The target Storage Domain {target.name} is not a data domain.")
        if target.dc is None or target.dc != source.dc:
            raise conflict(f"Cannot {verb} {what}. The selected Storage Domain is not part of the Data Center.")
        if target.status != "active":
            raise conflict(f"Cannot {verb} {what}. The relevant Storage Domain's status is {target.status}.")
        if source.status != "active":
            raise conflict(f"Cannot {verb} {what}. The relevant Storage Domain's status is {source.status}.")
        if self.elect_spm(target.dc) is None:
            raise conflict(f"Cannot {verb} {what}. The Data Center has no active SPM host.")
        kinds = {source.storage_type, target.storage_type}
        if kinds == {"managed_block_storage", "localfs"}:
            raise conflict(
                f"Cannot {verb} {what}. Copying data between Local Storage and Managed Block Storage is not supported."
            )
        if disk.shareable and target.storage_type == "glusterfs":
            raise conflict(f"Cannot {verb} {what}. {disk.alias} is shareable, which Gluster domains do not support.")
        if disk.shareable and disk.sparse and target.block_based:
            raise conflict(
                f"Cannot {verb} {what}. {disk.alias} is a thin provisioned shareable disk, which "
                "is not supported for block-based domains."
            )
        return target

    def template_rule(self, disk: Disk, target: Domain) -> None:
        """checkTemplateDiskExistAndValidInDestStorageDomain: a thin clone moves only where its
        template's disk is (a copy collapses the chain and needs no template)."""
        if disk.base is None:
            return
        base = self.disks.get(disk.base)
        if base is None or base.domain != target.id:
            raise conflict("Cannot move Virtual Disk. The selected Storage Domain does not contain the VM Template.")

    def _first_vm(self, disk: Disk) -> tuple[Vm, bool] | None:
        for vm in self.vms.values():
            for a in vm.attachments:
                if a.disk == disk.id:
                    return vm, a.active
        return None

    # commands --------------------------------------------------------------------------------
    def move_disk(self, disk_id: str, sd_id: str, corr: str | None) -> Job:
        disk = self.image_disk(disk_id, "move")
        if disk.template is not None:
            raise conflict(f"Cannot move Virtual Disk. The following disk(s) are not attached to any VM: {disk.alias}.")
        self.unlocked(disk, "move")
        if disk.domain == sd_id:
            raise conflict("Cannot move Virtual Disk. The source and target storage domains are the same.")
        target = self.target_domain(sd_id, disk, "move")
        first = self._first_vm(disk)
        if first is not None and first[0].status != "down" and first[1]:
            vm = first[0]  # live storage migration
            self.content_rule(disk, "move", LIVE_CONTENT)
            if "managed_block_storage" in (target.storage_type, self.domains[disk.domain or ""].storage_type):
                raise conflict("Cannot move Virtual Disk.  Managed Block Storage does not support this operation.")
            if vm.status not in ("up", "paused"):
                raise conflict("Cannot move Virtual Disk. The Virtual Machine should be either in Up or Paused status.")
            if disk.shareable:
                raise conflict(f"Cannot move a shareable Virtual Disk ({disk.alias}). This operation is not supported.")
        else:
            self.content_rule(disk, "move", COPY_CONTENT)
            self.plugged_rule(disk, "move")
        self.template_rule(disk, target)
        self.check_room(target, self.clone_size(disk, target), "move")
        source = self.domains[disk.domain or ""]
        disk.status, disk.moving_to = "locked", target.id

        def done() -> None:
            disk.domain, disk.moving_to, disk.status = target.id, None, "ok"

        def failed() -> None:
            disk.moving_to, disk.status = None, "ok"

        return self.start_job(
            "move",
            corr,
            f"Moving Disk {disk.alias} from {source.name} to {target.name}",
            on_finish=done,
            on_fail=failed,
            audit=("USER_MOVED_DISK", {"DiskAlias": disk.alias, "StorageDomainName": target.name}),
            sd=target.id,
        )

    def copy_disk(self, disk_id: str, sd_id: str, alias: str | None, corr: str | None) -> Job:
        disk = self.image_disk(disk_id, "copy")
        self.content_rule(disk, "copy", COPY_CONTENT)
        self.unlocked(disk, "copy")
        target = self.target_domain(sd_id, disk, "copy")
        self.check_room(target, self.clone_size(disk, target), "copy")
        self.plugged_rule(disk, "copy")
        new = Disk(
            id=str(uuid.uuid4()),
            alias=alias or f"{disk.alias}_copy",
            size=disk.size,
            domain=target.id,
            status="locked",
            description=disk.description,
            sparse=disk.sparse,
            format=disk.format,
            actual=disk.used,
            shareable=disk.shareable,
            storage_type="managed_block_storage" if target.storage_type == "managed_block_storage" else "image",
        )
        self.disks[new.id] = new
        disk.status = "locked"

        def done() -> None:
            new.status, disk.status = "ok", "ok"

        def failed() -> None:
            self.disks.pop(new.id, None)
            disk.status = "ok"

        return self.start_job(
            "copy",
            corr,
            f"Copying Disk {disk.alias} to {target.name}",
            on_finish=done,
            on_fail=failed,
            audit=("USER_COPIED_DISK", {"DiskAlias": disk.alias, "StorageDomainName": target.name}),
            sd=target.id,
        )

    def remove_disk(self, disk_id: str, corr: str | None) -> Job:
        disk: Disk = self.get("disks", disk_id, "disk")
        self.unlocked(disk, "remove")
        running = [vm for vm in self.vms_of_disk(disk_id) if vm.status != "down"]
        if running:
            raise conflict(
                f"Cannot remove Virtual Disk. Disk {disk.alias} is attached to the running VM {running[0].name}."
            )
        if disk.domain is not None and self.domains[disk.domain].status != "active":
            raise conflict(f"Cannot remove Virtual Disk. Storage Domain {self.domains[disk.domain].name} is inactive.")
        for vm in self.vms_of_disk(disk_id):
            vm.attachments = [a for a in vm.attachments if a.disk != disk_id]
        del self.disks[disk_id]
        sd = self.domains.get(disk.domain or "")
        return self.start_job(
            "remove",
            corr,
            f"Removing Disk {disk.alias}",
            instant=True,
            audit=("USER_FINISHED_REMOVE_DISK", {"DiskAlias": disk.alias, "StorageDomainName": sd.name if sd else ""}),
            sd=sd.id if sd else None,
        )

    def update_disk(self, disk_id: str, alias: str | None, description: str | None, corr: str | None) -> Disk:
        disk: Disk = self.get("disks", disk_id, "disk")
        self.unlocked(disk, "update")
        if alias is not None:
            disk.alias = alias
        if description is not None:
            disk.description = description
        vms = self.vms_of_disk(disk.id)
        self.start_job(
            "update",
            corr,
            f"Updating Disk {disk.alias}",
            instant=True,
            audit=("USER_UPDATE_VM_DISK", {"VmName": vms[0].name, "DiskAlias": disk.alias})
            if vms
            else ("USER_UPDATE_DISK", {"DiskAlias": disk.alias}),
            vm=vms[0].id if vms else None,
        )
        return disk
