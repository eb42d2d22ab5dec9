"""The second site of an array-replicated pair: import the replicas, register what they carry.

What the oVirt DR role drives (ovirt-ansible-collection roles/disaster_recovery), as the engine
validates it (ovirt-engine, backend/manager/modules/bll/src/main/java/org/ovirt/engine/core/bll/):

* a replica is *imported* (``POST /storagedomains`` with ``import``: ``ovirt_storage_domain``
  ``state: imported`` for block storage, an add of the existing export for file storage), then
  *attached* to a data center, which activates it; the first active one becomes master;
* ``storagedomains/{id}/templates|vms?unregistered=true`` list what its OVF store holds and the
  engine does not; ``.../register`` registers one
  (``exportimport/ImportVmFromConfigurationCommand.java``, ``validator/ImportValidator.java``):
  a disk whose domain is not active, or that already exists unshareable, fails the import unless
  ``allow_partial_import``, which drops it; a shareable disk already registered is attached as it
  is (``DiskImagesValidator.diskNotExistsOrBothShareable``), so VMs sharing it still share it; a VM
  whose template is not registered is refused; ``registration_configuration`` maps clusters,
  vNIC profiles (by network and profile name) and direct LUNs;
* for a failback or a test, the domain is deactivated, detached and removed without formatting
  (``tasks/clean/remove_domain.yml``: ``destroy``), which leaves the array's copy as it was.
"""

from __future__ import annotations

import copy

from ftbridge_ovirt.lab.hosts import HostCommands
from ftbridge_ovirt.lab.model import Attachment, Disk, Domain, Lun, OvfEntity, Registration, Template, Vm
from ftbridge_ovirt.lab.state import Fault, conflict

FILE_TYPES = frozenset({"nfs", "glusterfs", "posixfs", "localfs"})


class DrCommands(HostCommands):
    # the array --------------------------------------------------------------------------------
    def receive_replica(self, domain: Domain, entities: list[OvfEntity]) -> None:
        """An array-replicated domain becomes visible to this site's hosts, not yet to the engine."""
        domain.dc, domain.host, domain.imported, domain.status, domain.master = None, None, False, "unattached", False
        self.domains[domain.id] = domain
        self.ovf[domain.id] = entities

    def receive_lun(self, lun: Lun) -> None:
        self.luns[lun.id] = lun

    # import, attach, detach, remove -------------------------------------------------------------
    def import_domain(
        self,
        name: str | None,
        storage_type: str,
        *,
        sd_id: str | None,
        address: str | None,
        path: str | None,
        host_id: str | None,
        corr: str | None,
    ) -> Domain:
        if not host_id or host_id not in self.hosts:
            raise Fault(400, "Incomplete parameters", "StorageDomain [host.id|name] required for add")
        if self.hosts[host_id].status != "up":
            raise conflict("Cannot import Storage. There are no available running Hosts in the Host Cluster.")
        if storage_type in FILE_TYPES:
            found = [
                d
                for d in self.domains.values()
                if d.storage_type == storage_type and d.address == address and d.path == path
            ]
        else:
            found = [d for d in self.domains.values() if d.id == sd_id and d.storage_type == storage_type]
        if not found:
            raise conflict("Cannot import Storage. Storage Domain doesn't exist.")
        dom = found[0]
        if dom.imported:
            raise conflict("Cannot import Storage. The Storage Domain already exists.")
        dom.imported, dom.status, dom.dc = True, "unattached", None
        if name:
            dom.name = name
        self.start_job(
            "import_sd",
            corr,
            f"Importing Storage Domain {dom.name}",
            instant=True,
            audit=("USER_ADD_STORAGE_DOMAIN", {"StorageDomainName": dom.name}),
            sd=dom.id,
        )
        return dom

    def attach_domain(self, dc_id: str, sd_id: str, corr: str | None) -> Domain:
        dc = self.get("dcs", dc_id, "data center")
        dom: Domain = self.get("domains", sd_id, "storage domain")
        if not dom.imported:
            raise Fault(404, "Not Found", f"storage domain {sd_id} not found")
        if dom.dc is not None:
            raise conflict("Cannot attach Storage. The Storage Domain already exists.")
        if self.elect_spm(dc.id) is None:
            raise conflict("Cannot attach Storage. There are no available running Hosts in the Host Cluster.")
        dom.dc, dom.status = dc.id, "active"  # attaching activates it
        dom.master = not any(
            d.master and d.dc == dc.id and d.status == "active" for d in self.domains.values() if d is not dom
        )
        self.start_job(
            "attach_sd",
            corr,
            f"Attaching Storage Domain {dom.name} to Data Center {dc.name}",
            instant=True,
            audit=("USER_ATTACH_STORAGE_DOMAIN_TO_POOL", {"StorageDomainName": dom.name, "StoragePoolName": dc.name}),
            sd=dom.id,
        )
        return dom

    def deactivate_domain(self, dc_id: str, sd_id: str, corr: str | None) -> Domain:
        dom: Domain = self.get("domains", sd_id, "storage domain")
        if dom.dc != dc_id:
            raise Fault(404, "Not Found", f"storage domain {sd_id} not found in data center {dc_id}")
        running = sorted(
            vm.name
            for vm in self.vms.values()
            if vm.status != "down"
            and any(self.disks.get(a.disk) is not None and self.disks[a.disk].domain == sd_id for a in vm.attachments)
        )
        if running:
            raise conflict(f"Cannot deactivate Storage. The following VMs are running on it: {', '.join(running)}.")
        dom.status, dom.master = "maintenance", False
        self.start_job(
            "deactivate_sd",
            corr,
            f"Deactivating Storage Domain {dom.name}",
            instant=True,
            audit=(
                "USER_DEACTIVATED_STORAGE_DOMAIN",
                {"StorageDomainName": dom.name, "StoragePoolName": self.dcs[dc_id].name},
            ),
            sd=dom.id,
        )
        return dom

    def detach_domain(self, dc_id: str, sd_id: str, corr: str | None) -> None:
        dom: Domain = self.get("domains", sd_id, "storage domain")
        if dom.dc != dc_id:
            raise Fault(404, "Not Found", f"storage domain {sd_id} not found in data center {dc_id}")
        if dom.status != "maintenance":
            raise conflict(f"Cannot detach Storage. The relevant Storage Domain's status is {dom.status}.")
        self._forget_entities(sd_id)
        dom.dc, dom.status = None, "unattached"
        self.start_job(
            "detach_sd",
            corr,
            f"Detaching Storage Domain {dom.name}",
            instant=True,
            audit=(
                "USER_DETACH_STORAGE_DOMAIN_FROM_POOL",
                {"StorageDomainName": dom.name, "StoragePoolName": self.dcs[dc_id].name},
            ),
            sd=dom.id,
        )

    def remove_domain(self, sd_id: str, destroy: bool, corr: str | None) -> None:
        dom: Domain = self.get("domains", sd_id, "storage domain")
        if dom.dc is not None and not destroy:
            raise conflict(f"Cannot remove Storage. The relevant Storage Domain's status is {dom.status}.")
        self._forget_entities(sd_id)
        dom.dc, dom.imported, dom.status, dom.master = None, False, "unattached", False
        self.start_job(
            "remove_sd",
            corr,
            f"Removing Storage Domain {dom.name}",
            instant=True,
            audit=(
                "USER_FORCE_REMOVE_STORAGE_DOMAIN" if destroy else "USER_REMOVE_STORAGE_DOMAIN",
                {"StorageDomainName": dom.name},
            ),
            sd=dom.id,
        )

    def _forget_entities(self, sd_id: str) -> None:
        """The engine forgets what lived on the domain; the array's OVF store keeps it."""
        gone = {d.id for d in self.disks.values() if d.domain == sd_id}
        for vm in list(self.vms.values()):
            if any(a.disk in gone for a in vm.attachments):
                vm.attachments = [a for a in vm.attachments if a.disk not in gone]
                if not vm.attachments:
                    del self.vms[vm.id]
        for tpl in list(self.templates.values()):
            if any(a.disk in gone for a in tpl.attachments):
                del self.templates[tpl.id]
        for disk_id in gone:
            del self.disks[disk_id]

    # registration -------------------------------------------------------------------------------
    def unregistered(self, sd_id: str, kind: str) -> list[OvfEntity]:
        dom: Domain = self.get("domains", sd_id, "storage domain")
        if not dom.imported or dom.dc is None or dom.status != "active":
            return []
        known = self.vms if kind == "vm" else self.templates
        return [e for e in self.ovf.get(sd_id, []) if e.kind == kind and e.id not in known]

    def _entity(self, sd_id: str, kind: str, entity_id: str) -> OvfEntity:
        dom: Domain = self.get("domains", sd_id, "storage domain")
        if dom.dc is None or dom.status != "active":
            raise conflict(
                f"Cannot import {'VM' if kind == 'vm' else 'Template'}. The relevant Storage Domain is "
                "inaccessible. -Please handle Storage Domain issues and retry the operation."
            )
        entry = next((e for e in self.unregistered(sd_id, kind) if e.id == entity_id), None)
        if entry is None:
            raise Fault(404, "Not Found", f"unregistered {kind} {entity_id} not found on {dom.name}")
        return entry

    def _cluster(
        self, entry: OvfEntity, dom: Domain, cluster_id: str | None, cluster_name: str | None, mapping: Registration
    ) -> str:
        name = cluster_name or mapping.clusters.get(entry.cluster_name) or entry.cluster_name
        cluster = self.clusters.get(cluster_id or "") or next(
            (c for c in self.clusters.values() if c.name == name), None
        )
        if cluster is None or cluster.dc != dom.dc:
            raise conflict("Cannot import VM. The target cluster must be in the storage domain's data center.")
        return cluster.id

    def _disks(self, entry: OvfEntity, partial: bool, what: str, mapping: Registration) -> list[tuple[Disk, bool]]:
        """(disk, already registered) for each disk the registration keeps."""
        out = []
        for d in entry.disks:
            if d.lun is not None:
                lun = mapping.luns.get(d.lun, d.lun)
                if lun not in self.luns:
                    if not partial:
                        raise conflict(f"Cannot import {what}. The LUN {d.lun} of disk {d.alias} is not visible.")
                    continue
                out.append((_with_lun(d, lun), False))
                continue
            dom = self.domains.get(d.domain or "")
            if dom is None or dom.dc is None or dom.status != "active":
                if not partial:
                    raise conflict(
                        f"Cannot import {what}. The relevant Storage Domain is inaccessible. -Please "
                        "handle Storage Domain issues and retry the operation."
                    )
                continue
            existing = self.disks.get(d.id)
            if existing is not None:
                if existing.shareable and d.shareable:
                    out.append((existing, True))
                    continue
                if not partial:
                    raise conflict(
                        f"Cannot import {what}. The following disks already exist: {d.alias}. Please import as a clone."
                    )
                continue
            out.append((copy.deepcopy(d), False))
        return out

    def register_template(
        self,
        sd_id: str,
        tid: str,
        cluster_id: str | None,
        cluster_name: str | None,
        mapping: Registration,
        partial: bool,
        corr: str | None,
    ) -> Template:
        entry = self._entity(sd_id, "template", tid)
        dom = self.domains[sd_id]
        tpl = copy.deepcopy(entry.obj)
        assert isinstance(tpl, Template)
        tpl.cluster = self._cluster(entry, dom, cluster_id, cluster_name, mapping)
        kept = self._disks(entry, partial, "Template", mapping)
        for d, _ in kept:
            self.disks[d.id] = d
        tpl.attachments = [a for a in tpl.attachments if a.disk in {d.id for d, _ in kept}]
        self.templates[tpl.id] = tpl
        self.start_job(
            "register",
            corr,
            f"Importing Template {tpl.name} from Storage Domain {dom.name}",
            instant=True,
            audit=("TEMPLATE_IMPORT_FROM_CONFIGURATION_SUCCESS", {"VmTemplateName": tpl.name}),
            sd=dom.id,
        )
        return tpl

    def register_vm(
        self,
        sd_id: str,
        vm_id: str,
        cluster_id: str | None,
        cluster_name: str | None,
        mapping: Registration,
        partial: bool,
        corr: str | None,
    ) -> Vm:
        entry = self._entity(sd_id, "vm", vm_id)
        dom = self.domains[sd_id]
        vm = copy.deepcopy(entry.obj)
        assert isinstance(vm, Vm)
        vm.cluster = self._cluster(entry, dom, cluster_id, cluster_name, mapping)
        if vm.template != "00000000-0000-0000-0000-000000000000" and vm.template not in self.templates:
            raise conflict("Cannot import VM. The relevant Template doesn't exist.")
        if any(v.name == vm.name for v in self.vms.values()):
            raise conflict(
                "Cannot import VM. The VM name is already in use, please choose a unique name and try again."
            )
        kept = self._disks(entry, partial, "VM", mapping)
        for d, registered in kept:
            if not registered:
                self.disks[d.id] = d
        ids = {d.id: d for d, _ in kept}
        vm.attachments = [
            Attachment(disk=a.disk, interface=a.interface, bootable=a.bootable, active=a.active)
            for a in vm.attachments
            if a.disk in ids
        ]
        for nic in vm.nics:
            nic.profile = self._profile(nic.ovf_network, nic.ovf_profile, vm.cluster, mapping)
        lease = self.domains.get(vm.lease or "")
        if lease is None or lease.dc is None or lease.status != "active":
            vm.lease = None  # its lease domain is not here: the VM comes without one
        vm.status, vm.host, vm.before_fault, vm.snapshots = "down", None, None, []
        self.vms[vm.id] = vm
        self.start_job(
            "register",
            corr,
            f"Importing VM {vm.name} from Storage Domain {dom.name}",
            instant=True,
            audit=("VM_IMPORT_FROM_CONFIGURATION_EXECUTED_SUCCESSFULLY", {"VmName": vm.name}),
            vm=vm.id,
            sd=dom.id,
        )
        return vm

    def _profile(self, network: str, profile: str, cluster_id: str, mapping: Registration) -> str | None:
        """The vNIC profile a registered NIC gets: the mapping's, else one of the same names in the
        cluster's data center, else none (DrMappingHelper.updateVnicsFromMappings)."""
        target = mapping.profiles.get((network, profile))
        if target is not None:
            return target if target in self.profiles else None
        dc = self.clusters[cluster_id].dc
        return next(
            (
                p.id
                for p in self.profiles.values()
                if p.name == profile and self.networks[p.network].name == network and self.networks[p.network].dc == dc
            ),
            None,
        )


def _with_lun(d: Disk, lun: str) -> Disk:
    new = copy.deepcopy(d)
    new.lun = lun
    return new
