"""The secondary site of an ``ovirt-dr`` pair: bring replicated VMs up as the DR role does.

The driver of the endpoint whose ``dr_site = "secondary"`` runs this when the core fails an
``ovirt-dr`` secondary over (``promote``/``test_failover``/``cleanup_test`` with the primary's VM id
and the secondary id). Each call does, idempotently, what roles/disaster_recovery/tasks/
recover_engine.yml does (ovirt-ansible-collection; cited, not copied):

1. import each replica of ``dr_import_storages`` whose type the role imports (iSCSI hosts log in
   to the targets first: add_iscsi_domain.yml) and attach it to ``dr_secondary_dc_name``: the
   ``dr_secondary_master_domain`` ones first, so the master is the one the file names;
2. register every unregistered template of those domains before any VM (a thin VM registers
   only once its template is there);
3. register the VM with the file's cluster, affinity, role, AAA-domain, vNIC-profile and LUN
   mappings, ``allow_partial_import`` (the role's default: a disk on a domain that did not come
   over is left out) and ``reassign_bad_macs``;
4. start it only if it was up when the OVF store was last written (``run_vms.yml`` runs the
   ``status == 'up'`` ones; the core orders HA VMs first, as the role does).

A test failover does the same and starts the VM stateless with its NICs unplugged; its cleanup
stops and removes the VM (its disks stay on the replica) and, once no VM is left on them, removes
the replica domains from the engine without formatting them (``tasks/clean/remove_domain.yml``:
``destroy``), so the array's copy is as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ftbridge.errors import ConfigError, Conflict, NotFound
from ftbridge_ovirt import drmap
from ftbridge_ovirt.client import Engine, value

UP = frozenset({"up", "powering_up", "wait_for_launch", "reboot_in_progress", "migrating"})


class DrSite:
    """One secondary-site engine and the mapping file that says what to bring over."""

    def __init__(
        self,
        e: Engine,
        mapping: drmap.DrMapping,
        *,
        endpoint: str,
        extra_clusters: Mapping[str, str] | None = None,
        secret: Callable[[str], str] | None = None,
    ) -> None:
        self.e = e
        self.mapping = mapping
        self.endpoint = endpoint
        self.extra_clusters = dict(extra_clusters or {})
        self.secret = secret or (lambda var: "")

    # 1. domains ----------------------------------------------------------------------------------
    def entries(self) -> list[Mapping[str, Any]]:
        """The storage entries the role imports, master first (recover_engine.yml's order)."""
        keep = [
            s
            for s in self.mapping.storages
            if s["dr_domain_type"] in drmap.SIDE_KEYS and str(s.get("dr_storage_domain_type", "data")) == "data"
        ]
        return sorted(keep, key=lambda s: not drmap.as_bool(s.get("dr_secondary_master_domain")))

    def domains(self, corr: str) -> dict[str, Mapping[str, Any]]:
        """Import and attach every replica (idempotent); replica domain id -> its entry."""
        dcs = {dc.name: dc for dc in self.e.data_centers()}
        known = {sd.name: sd for sd in self.e.storage_domains()}
        out: dict[str, Mapping[str, Any]] = {}
        for entry in self.entries():
            name = str(entry["dr_secondary_name"])
            dc = dcs.get(str(entry["dr_secondary_dc_name"]))
            if dc is None:
                raise NotFound(
                    f"data center {entry['dr_secondary_dc_name']!r} (dr_secondary_dc_name of {name}) "
                    "does not exist at this engine",
                    endpoint=self.endpoint,
                )
            sd = known.get(name) or next((x for x in known.values() if x.id == entry.get("dr_domain_id")), None)
            if sd is None:
                sd = self._import(entry, dc, corr)
            attached = {x.id: x for x in dc.storage_domains or ()}
            if sd.id not in attached:
                self.e.attach_domain(dc.id, sd.id, corr)
            elif value(attached[sd.id].status) != "active":
                raise Conflict(
                    f"replica domain {name} is {value(attached[sd.id].status)} in data center {dc.name}",
                    endpoint=self.endpoint,
                )
            out[sd.id] = entry
        return out

    def _import(self, entry: Mapping[str, Any], dc: Any, corr: str) -> Any:
        kind = str(entry["dr_domain_type"])
        host = self._up_host(dc.id)
        if kind == "iscsi":
            targets = entry["dr_secondary_target"]
            for target in [targets] if isinstance(targets, str) else targets:
                password = entry.get("dr_secondary_password") or ""
                if drmap.is_vault_ref(password):
                    password = self.secret(str(password).strip()[2:-2].strip())
                self.e.iscsi_login(
                    host,
                    address=str(entry["dr_secondary_address"]),
                    port=int(entry.get("dr_secondary_port") or 3260),
                    target=str(target),
                    username=entry.get("dr_secondary_username"),
                    password=password,
                    corr=corr,
                )
        file_kind = kind in ("nfs", "glusterfs", "posixfs")
        return self.e.import_domain(
            name=str(entry["dr_secondary_name"]),
            storage_type=kind,
            host_id=host,
            sd_id=None if file_kind else str(entry["dr_domain_id"]),
            address=str(entry["dr_secondary_address"]) if file_kind else None,
            path=str(entry["dr_secondary_path"]) if file_kind else None,
            vfs_type=str(entry["dr_secondary_vfs_type"]) if kind == "posixfs" else None,
            corr=corr,
        )

    def _up_host(self, dc_id: str) -> str:
        clusters = {c.id for c in self.e.clusters() if c.data_center is not None and c.data_center.id == dc_id}
        up = sorted(
            (
                h
                for h in self.e.hosts()
                if h.cluster is not None and h.cluster.id in clusters and value(h.status) == "up"
            ),
            key=lambda h: h.name,
        )
        if not up:
            raise Conflict(
                "no host of the secondary data center is up to import the replicas with", endpoint=self.endpoint
            )
        return str(up[0].id)

    # 2., 3. registration --------------------------------------------------------------------------
    def registration(self) -> Any:
        names = {section: self.mapping.name_map(section) for section in drmap.NAME_LISTS}
        names["dr_cluster_mappings"] = {**self.extra_clusters, **names["dr_cluster_mappings"]}
        profiles = {
            (str(n["primary_network_name"]), str(n["primary_profile_name"])): str(n["secondary_profile_id"])
            for n in self.mapping.networks or ()
        }
        luns = {
            str(x["primary_logical_unit_id"]): {
                "id": str(x["secondary_logical_unit_id"]),
                "storage_type": str(x["secondary_storage_type"]),
                "address": x.get("secondary_logical_unit_address"),
                "target": x.get("secondary_logical_unit_target"),
                "port": int(x["secondary_logical_unit_port"]) if x.get("secondary_logical_unit_port") else None,
                "portal": str(x["secondary_logical_unit_portal"]) if x.get("secondary_logical_unit_portal") else None,
            }
            for x in self.mapping.luns or ()
        }
        return self.e.registration(names=names, profiles=profiles, luns=luns)

    def templates(self, domains: Mapping[str, Any], corr: str) -> None:
        reg = self.registration()
        for sd_id in domains:
            for tpl in self.e.unregistered_templates(sd_id):
                try:
                    self.e.register_template(sd_id, tpl.id, corr, registration=reg)
                except Conflict:
                    pass  # the role logs a failed template and goes on; its VMs then say why

    def register(self, vm_id: str, domains: Mapping[str, Any], corr: str) -> bool | None:
        """Register the VM if it is not yet; True/False: it was up (or not) when last written
        down; None: it was registered already (by an earlier call)."""
        try:
            self.e.vm(vm_id, follow=None)
            return None
        except NotFound:
            pass
        reg = self.registration()
        for sd_id in domains:
            for vm in self.e.unregistered_vms(sd_id):
                if vm.id == vm_id:
                    self.e.register_vm(sd_id, vm_id, corr, registration=reg)
                    return value(vm.status) == "up"
        raise NotFound(
            f"no replica at this engine holds VM {vm_id} (is its domain in the mapping file's "
            "dr_import_storages, and replicated?)",
            endpoint=self.endpoint,
        )

    def bring_over(self, vm_id: str, corr: str) -> tuple[Any, bool | None]:
        """Steps 1-3; returns the registered VM and whether it was up (None: unknown)."""
        domains = self.domains(corr)
        self.templates(domains, corr)
        was_up = self.register(vm_id, domains, corr)
        return self.e.vm(vm_id, follow="nics"), was_up

    # test cleanup ---------------------------------------------------------------------------------
    def release(self, corr: str) -> bool:
        """Remove the replica domains no VM uses any more from the engine, without formatting
        them; True once none of them is attached."""
        dcs = {dc.id: dc for dc in self.e.data_centers()}
        names = {str(s["dr_secondary_name"]) for s in self.entries()}
        vms = self.e.vms()
        done = True
        for dc in dcs.values():
            for sd in sorted(dc.storage_domains or (), key=lambda x: bool(x.master)):
                if sd.name not in names:
                    continue
                in_use = any(
                    d.storage_domains and d.storage_domains[0].id == sd.id
                    for v in vms
                    for a in (v.disk_attachments or ())
                    if (d := a.disk) is not None
                )
                if in_use:
                    continue
                done = False
                if value(sd.status) == "active":
                    self.e.deactivate_domain(dc.id, sd.id, corr)
                self.e.detach_domain(dc.id, sd.id, corr)
                self.e.forget_domain(sd.id, corr)
        return done


def secret_lookup(vault: Mapping[str, Any], endpoint: str) -> Callable[[str], str]:
    """A resolver for the mapping file's vault variables from the endpoint's ``dr_vault``."""

    def find(var: str) -> str:
        if var not in vault:
            raise ConfigError(
                f"endpoints.{endpoint}.dr_vault.{var}: the mapping file refers to this vault "
                'variable; give it as { env = "VAR" } or { file = "/path" }',
                endpoint=endpoint,
            )
        return str(vault[var].reveal(f"endpoints.{endpoint}.dr_vault.{var}"))

    return find
