"""The ``ovirt`` driver: one engine (oVirt 4.4/4.5, RHV 4.4, OLVM) through ovirtsdk4.

Importing this module imports no SDK; :mod:`.client` does at ``open()``.

Every changing call carries a correlation id (``ftbridge-<kind>-<hex>``) and that id is the
operation handle: :meth:`OvirtDriver.poll` finds the engine's jobs by it
(``jobs?search=correlation_id=...``), so a fresh driver after a crash polls the same
operation. When the engine has already cleared the jobs, poll checks the effect instead (the
disk is on its target, the copies exist, the VM runs).

Secondary mechanisms, and what each protects against:

``ovirt-copy``
    Copies of every disk of a VM on another storage domain of the same data center, made and
    removed by ftbridge (naming in :mod:`.naming`). Survives the loss of the primary's domain
    or array (or room/site, when the domains are placed so); a point-in-time copy whose age is
    its lag, refreshed by reprotect. Promote attaches the copies and starts the VM.
``ovirt-dr``
    The array replicates the VM's domains to paired domains at a second site (pairs declared
    like the oVirt DR role's mapping file). Survives the loss of the site; the engine cannot
    see replication lag, so its state is ``unknown``. Failing over happens at the secondary
    site's engine: :meth:`OvirtDriver.ex_register_replicas` on that endpoint attaches the
    replicated domains and registers and starts their VMs (what the DR role does), or the DR
    role itself with the mapping :meth:`OvirtDriver.ex_dr_mapping` writes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ftbridge.drivers import (
    BackendInfo,
    Capability,
    Driver,
    DriverConfig,
    Failover,
    HealthReport,
    MechanismRules,
    Operation,
    OperationStatus,
    OpState,
    SecondarySpec,
    StoragePlacement,
)
from ftbridge.errors import ConfigError, Conflict, FtbridgeError, NotFound, UnsupportedOperation
from ftbridge.inventory import InventoryPart
from ftbridge.model import HostState, Secondary
from ftbridge_ovirt import assemble as A
from ftbridge_ovirt import naming as N
from ftbridge_ovirt.client import Engine, value
from ftbridge_ovirt.config import OvirtConfig, StorageMapping

MECHANISMS: dict[str, MechanismRules] = {
    "ovirt-copy": MechanismRules(
        name="ovirt-copy",
        description="managed disk copies on another storage domain (same data center); "
                    "survives the loss of the primary's domain, array or site; lag = age of the copy",
        same_hosts=True, refreshable=True),
    "ovirt-dr": MechanismRules(
        name="ovirt-dr",
        description="array-replicated storage domain paired with one at a second site (oVirt DR role mapping); "
                    "survives the loss of the site; made by the array, not by ftbridge"),
}

_FAILED = frozenset({"failed", "aborted"})


class OvirtDriver(Driver, StoragePlacement, Failover):
    """oVirt through the engine's REST API."""

    name = "ovirt"
    Config = OvirtConfig
    capabilities = frozenset({
        Capability.INVENTORY, Capability.MOVE_DISK, Capability.PROTECT, Capability.UNPROTECT,
        Capability.REPLICATION_STATUS, Capability.HEALTH, Capability.PROMOTE, Capability.TEST_FAILOVER,
        Capability.REPROTECT, Capability.FENCE,
    })
    mechanisms = MECHANISMS
    default_concurrency = 4

    def __init__(self, config: DriverConfig, *, endpoint: str) -> None:
        super().__init__(config, endpoint=endpoint)
        if not isinstance(config, OvirtConfig):
            raise ConfigError(f"endpoints.{endpoint}: not an ovirt endpoint configuration", endpoint=endpoint)
        self.cfg = config
        self._engine: Engine | None = None
        self._pairs: dict[str, StorageMapping] = {}

    # lifecycle --------------------------------------------------------------------------
    def open(self) -> None:
        self.close()
        self._pairs = self._load_pairs()
        password = self.cfg.password.reveal(f"endpoints.{self.endpoint}.password")
        self.cfg.warn_transport(self.endpoint)
        engine = Engine(self.cfg, endpoint=self.endpoint)
        engine.connect(password)
        self._engine = engine

    def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()

    def probe(self) -> BackendInfo:
        api = self.e.api()
        pi = api.product_info
        ver = pi.version if pi is not None else None
        version = (ver.full_version or f"{ver.major}.{ver.minor}") if ver is not None else "unknown"
        return BackendInfo(product=(pi.name if pi is not None else None) or "oVirt Engine", version=version,
                           capabilities=self.capabilities,
                           details={"vendor": pi.vendor if pi is not None else None,
                                    "mechanisms": ["ovirt-copy", *(["ovirt-dr"] if self._pairs else [])]})

    def _load_pairs(self) -> dict[str, StorageMapping]:
        pairs = list(self.cfg.dr_storage_mappings)
        if self.cfg.dr_mapping_file is not None:
            from ftbridge_ovirt import drmap

            pairs += drmap.load(self.cfg.dr_mapping_file).storage_mappings()
        if pairs and not self.cfg.dr_secondary_endpoint:
            raise ConfigError(f"endpoints.{self.endpoint}.dr_secondary_endpoint: required when storage domains "
                              "are paired for ovirt-dr (the endpoint or site that holds the replicas)",
                              endpoint=self.endpoint)
        return {p.primary_name: p for p in pairs}

    @property
    def e(self) -> Engine:
        if self._engine is None:
            from ftbridge.errors import BackendUnavailable

            raise BackendUnavailable("the driver is not open", endpoint=self.endpoint)
        return self._engine

    # inventory ----------------------------------------------------------------------------
    def _scope(self) -> A.Scope:
        return A.scope(self.e.data_centers(), self.e.clusters(), self.e.hosts(),
                       self.cfg.data_center, self.cfg.cluster)

    def inventory(self) -> InventoryPart:
        """Six requests for any number of VMs: DCs (with domains), clusters, hosts, VMs, copies."""
        sc = self._scope()
        vms = self.e.vms()
        copies = self.e.disks(N.copy_search())
        return A.inventory(sc, vms, copies, self.endpoint, self._pairs, self.cfg.dr_secondary_endpoint)

    def replication_status(self, vm_id: str) -> tuple[Secondary, ...]:
        sc = self._scope()
        vm = self.e.vm(vm_id)
        sets = A.group_copies(self.e.disks(N.copy_search(vm_id))).get(vm_id, {})
        return A.vm(vm, sc, self.endpoint, sets, self._pairs, self.cfg.dr_secondary_endpoint, time.time()).secondaries

    # operations ---------------------------------------------------------------------------
    def _op(self, kind: str, vm_id: str, corr: str, **data: str) -> Operation:
        return Operation(id=corr, endpoint=self.endpoint, kind=kind, vm=vm_id, data=data)

    def _vm(self, vm_id: str, follow: str | None = "disk_attachments.disk") -> Any:
        try:
            return self.e.vm(vm_id, follow=follow)
        except NotFound:
            raise NotFound(f"VM {vm_id} does not exist", endpoint=self.endpoint) from None

    def move_disk(self, vm_id: str, disk_id: str, datastore_id: str) -> Operation:
        vm = self._vm(vm_id)
        if not any(d.id == disk_id for _, d in A.image_disks(vm)):
            raise NotFound(f"VM {vm.name} has no disk {disk_id} on a storage domain", endpoint=self.endpoint)
        corr = N.correlation_id("move")
        self.e.move_disk(disk_id, datastore_id, corr)
        return self._op("move_disk", vm_id, corr, disk=disk_id, target=datastore_id)

    def protect(self, vm_id: str, spec: SecondarySpec) -> Operation:
        return self._protect("protect", vm_id, spec)

    def reprotect(self, vm_id: str, spec: SecondarySpec) -> Operation:
        """A fresh copy set where ``spec`` says (after a promote, or to refresh an aged copy)."""
        return self._protect("reprotect", vm_id, spec)

    def _protect(self, kind: str, vm_id: str, spec: SecondarySpec) -> Operation:
        if spec.mechanism == "ovirt-dr":
            raise UnsupportedOperation("ovirt-dr secondaries come from array replication: pair the domains on the "
                                       "array and in dr_storage_mappings", endpoint=self.endpoint)
        if spec.mechanism != "ovirt-copy":
            raise UnsupportedOperation(f"mechanism {spec.mechanism!r} is not an oVirt mechanism "
                                       f"(offered: {', '.join(MECHANISMS)})", endpoint=self.endpoint)
        vm = self._vm(vm_id)
        disks = {d.id: d for _, d in A.image_disks(vm)}
        if set(spec.disks) != set(disks):
            raise Conflict(f"ovirt-copy must place every disk of {vm.name}: {sorted(disks)} "
                           f"(spec names {sorted(spec.disks)})", endpoint=self.endpoint)
        self._check_room(spec, disks)
        set_id = N.new_set()
        corr = N.correlation_id(kind)
        started: list[str] = []
        try:
            for disk_id, sd_id in sorted(spec.disks.items()):
                alias = str(N.CopyAlias(vm=vm_id, disk=disk_id, set=set_id))
                self.e.copy_disk(disk_id, sd_id, alias, corr)
                started.append(disk_id)
            if spec.metadata_datastore:
                self.e.set_lease(vm_id, spec.metadata_datastore, corr)
        except FtbridgeError as exc:
            if started:
                exc.message += (f" ({len(started)} copies of set {set_id} already started: poll "
                                f"{corr} and unprotect {set_id} to remove them)")
            raise
        return self._op(kind, vm_id, corr, secondary_id=set_id,
                        disks=",".join(f"{k}={v}" for k, v in sorted(spec.disks.items())))

    def _check_room(self, spec: SecondarySpec, disks: Mapping[str, Any]) -> None:
        """Refuse before the first copy starts, so a refusal leaves nothing half made."""
        sc = self._scope()
        need: dict[str, int] = {}
        for disk_id, sd_id in spec.disks.items():
            need[sd_id] = need.get(sd_id, 0) + int(disks[disk_id].provisioned_size or 0)
        for sd_id, size in need.items():
            sd = sc.domains.get(sd_id)
            if sd is None:
                raise NotFound(f"storage domain {sd_id} is not a data domain in scope", endpoint=self.endpoint)
            if value(sd.status) != "active":
                raise Conflict(f"storage domain {sd.name} is {value(sd.status)}", endpoint=self.endpoint)
            if int(sd.available or 0) < size:
                raise Conflict(f"storage domain {sd.name} has {int(sd.available or 0) >> 30} GiB free, "
                               f"{size >> 30} GiB needed", endpoint=self.endpoint)

    def _copies(self, vm_id: str, set_id: str) -> list[tuple[Any, Any]]:
        sets = A.group_copies(self.e.disks(N.copy_search(vm_id, set_id))).get(vm_id, {})
        return sets.get(set_id, [])

    def unprotect(self, vm_id: str, secondary_id: str) -> Operation:
        if secondary_id.startswith("dr:"):
            raise UnsupportedOperation("ovirt-dr replication is configured on the array, not removed by ftbridge",
                                       endpoint=self.endpoint)
        copies = self._copies(vm_id, secondary_id)
        if not copies:
            raise NotFound(f"VM {vm_id} has no ovirt-copy secondary {secondary_id}", endpoint=self.endpoint)
        if any(value(d.status) == "locked" for _, d in copies):
            raise Conflict(f"copy set {secondary_id} is still being written; remove it once its copy ends",
                           endpoint=self.endpoint)
        corr = N.correlation_id("unprotect")
        for _, d in copies:
            self.e.remove_disk(d.id, corr)
        return self._op("unprotect", vm_id, corr, secondary_id=secondary_id)

    # polling --------------------------------------------------------------------------------
    def poll(self, op: Operation) -> OperationStatus:
        handler = getattr(self, f"_poll_{op.kind}", None)
        if handler is not None:
            return handler(op)  # type: ignore[no-any-return]
        return self._poll_jobs(op)

    def _jobs_state(self, op: Operation) -> tuple[OpState | None, float, str]:
        jobs = self.e.jobs(op.id)
        if not jobs:
            return None, 0.0, ""
        states = [value(j.status) or "unknown" for j in jobs]
        done = sum(s == "finished" for s in states)
        failed = [j for j, s in zip(jobs, states, strict=True) if s in _FAILED]
        if any(s == "started" for s in states):
            return OpState.RUNNING, done / len(jobs), ""
        if failed:
            return OpState.FAILED, 1.0, "; ".join(f"{j.description}: {value(j.status)}" for j in failed)
        return OpState.SUCCEEDED, 1.0, ""

    def _result(self, op: Operation) -> dict[str, str]:
        return {k: v for k, v in op.data.items() if k in ("secondary_id", "test_id", "host")}

    def _poll_jobs(self, op: Operation, effect: Any = None) -> OperationStatus:
        state, progress, msg = self._jobs_state(op)
        if state is None:
            if effect is not None and self._effect_seen(effect):
                return OperationStatus(OpState.SUCCEEDED, 1.0, "the engine cleared its jobs; the effect is there",
                                       result=self._result(op))
            raise NotFound(f"no engine job has correlation id {op.id} (unknown, or cleared by the engine)",
                           endpoint=self.endpoint)
        if state is OpState.FAILED:
            return OperationStatus(state, 1.0, msg, retryable=True, result=self._result(op))
        return OperationStatus(state, progress, msg, result=self._result(op) if state is OpState.SUCCEEDED else {})

    @staticmethod
    def _effect_seen(effect: Any) -> bool:
        """Is the operation's result visible? A handle missing its data, or gone objects, say no."""
        try:
            return bool(effect())
        except (KeyError, ValueError, NotFound):
            return False

    def _poll_move_disk(self, op: Operation) -> OperationStatus:
        def effect() -> bool:
            d = self.e.disk(op.data["disk"])
            return bool(d.storage_domains) and d.storage_domains[0].id == op.data["target"] \
                and value(d.status) == "ok"

        return self._poll_jobs(op, effect)

    def _poll_protect(self, op: Operation) -> OperationStatus:
        set_id = op.data["secondary_id"]
        want = dict(x.split("=", 1) for x in op.data.get("disks", "").split(",") if x)

        def effect() -> bool:
            copies = self._copies(op.vm, set_id)
            return {p.disk for p, _ in copies} == set(want) and all(value(d.status) == "ok" for _, d in copies)

        status = self._poll_jobs(op, effect)
        if status.state is OpState.FAILED:
            self._roll_back_copies(op.vm, set_id)
        return status

    _poll_reprotect = _poll_protect

    def _roll_back_copies(self, vm_id: str, set_id: str) -> None:
        """A failed protect leaves no half secondary: remove the copies that did complete."""
        corr = N.correlation_id("rollback")
        for _, d in self._copies(vm_id, set_id):
            if value(d.status) != "locked":
                try:
                    self.e.remove_disk(d.id, corr)
                except FtbridgeError:
                    pass  # shows as a stale/broken secondary; unprotect removes it

    def _poll_unprotect(self, op: Operation) -> OperationStatus:
        return self._poll_jobs(op, lambda: not self._copies(op.vm, op.data["secondary_id"]))

    # failover ---------------------------------------------------------------------------------
    def health(self) -> HealthReport:
        sc = self._scope()
        notes = []
        for dc in sc.dcs.values():
            spm = [h.name for h in sc.hosts.values()
                   if sc.clusters[h.cluster.id].data_center.id == dc.id and h.spm is not None
                   and value(h.spm.status) == "spm"]
            notes.append(f"data center {dc.name}: SPM {spm[0]}" if spm else
                         f"data center {dc.name}: no SPM host, storage operations will fail")
        return HealthReport(hosts={h.id: A.host_state(h) for h in sc.hosts.values()},
                            datastores={k: value(sd.status) == "active" for k, sd in sc.domains.items()},
                            quorum=None, notes=tuple(notes))

    def _usable_copies(self, vm: Any, set_id: str, sc: A.Scope) -> dict[str, Any]:
        """primary disk id -> copy disk, refusing copies that cannot stand in for the VM."""
        if set_id.startswith("dr:"):
            raise UnsupportedOperation(
                "an ovirt-dr secondary is brought up at the secondary site's engine, not here: "
                f"ex_register_replicas() on endpoint {self.cfg.dr_secondary_endpoint or '(dr_secondary_endpoint)'}, "
                "or the oVirt DR role with ex_dr_mapping()'s file", endpoint=self.endpoint)
        copies = self._copies(vm.id, set_id)
        if not copies:
            raise NotFound(f"VM {vm.name} has no ovirt-copy secondary {set_id}", endpoint=self.endpoint)
        by_disk = {p.disk: d for p, d in copies}
        primary = {d.id for _, d in A.image_disks(vm)}
        if set(by_disk) != primary:
            raise Conflict(f"copy set {set_id} does not cover every disk of {vm.name} (stale); reprotect first",
                           endpoint=self.endpoint)
        for d in by_disk.values():
            sd = sc.domains.get(d.storage_domains[0].id) if d.storage_domains else None
            if value(d.status) != "ok":
                raise Conflict(f"copy {d.alias} is {value(d.status)}", endpoint=self.endpoint)
            if sd is None or value(sd.status) != "active":
                raise Conflict(f"copy {d.alias} is on an inaccessible storage domain", endpoint=self.endpoint)
        return by_disk

    def _run_host(self, vm: Any, sc: A.Scope, host_id: str | None) -> Any:
        if host_id is not None:
            h = sc.hosts.get(host_id)
            if h is None:
                raise NotFound(f"host {host_id} is not in scope", endpoint=self.endpoint)
            if A.host_state(h) is not HostState.UP:
                raise Conflict(f"host {h.name} is not up", endpoint=self.endpoint)
            return h
        dc = sc.clusters[vm.cluster.id].data_center.id
        up = [h for h in sc.hosts.values() if A.host_state(h) is HostState.UP
              and sc.clusters[h.cluster.id].data_center.id == dc]
        same = [h for h in up if h.cluster.id == vm.cluster.id]
        if not (same or up):
            raise Conflict(f"no host of {vm.name}'s data center is up", endpoint=self.endpoint)
        return sorted(same or up, key=lambda h: h.name)[0]

    def _still_runs(self, vm: Any, sc: A.Scope) -> bool:
        status = value(vm.status) or "unknown"
        host = sc.hosts.get(vm.host.id) if vm.host is not None else None
        host_up = host is not None and A.host_state(host) is HostState.UP
        disks_up = all(d.storage_domains[0].id in sc.domains
                       and value(sc.domains[d.storage_domains[0].id].status) == "active"
                       for _, d in A.image_disks(vm))
        return status in A.MAY_RUN and host_up and disks_up

    def _bring_down(self, vm: Any, sc: A.Scope, corr: str) -> None:
        """Make sure no instance of the VM runs: stop it, or confirm its dead host was rebooted."""
        status = value(vm.status) or "unknown"
        if status == "down":
            return
        host = sc.hosts.get(vm.host.id) if vm.host is not None else None
        if host is not None and A.host_state(host) is not HostState.UP:
            self.e.fence_manual(host.id, corr)
        else:
            self.e.stop_vm(vm.id, corr)

    def promote(self, vm_id: str, secondary_id: str, *, host_id: str | None = None,
                force: bool = False) -> Operation:
        """Detach the primary disks, attach the copies, keep the lease readable, start the VM."""
        vm = self._vm(vm_id)
        sc = self._scope()
        copies = self._usable_copies(vm, secondary_id, sc)
        if self._still_runs(vm, sc) and not force:
            raise Conflict(f"VM {vm.name} still runs on a reachable host with its storage: refusing to promote "
                           "(fence it first, or force)", endpoint=self.endpoint)
        host = self._run_host(vm, sc, host_id)
        corr = N.correlation_id("promote")
        self._bring_down(vm, sc, corr)
        for att, disk in A.image_disks(vm):
            self.e.detach_disk(vm_id, disk.id, corr)
            self.e.attach_disk(vm_id, copies[disk.id].id, interface=value(att.interface) or self.cfg.copy_interface,
                               bootable=bool(att.bootable), corr=corr)
            self.e.update_disk_alias(copies[disk.id].id, disk.alias or f"{vm.name}_{disk.id[:8]}", corr)
        lease = vm.lease.storage_domain.id if (vm.lease is not None and vm.lease.storage_domain is not None) else None
        if lease is not None and (lease not in sc.domains or value(sc.domains[lease].status) != "active"):
            first = next(iter(copies.values())).storage_domains[0].id
            self.e.set_lease(vm_id, first, corr)
        if host.cluster.id != vm.cluster.id:  # a VM runs only in its cluster: follow the surviving host
            self.e.set_cluster(vm_id, host.cluster.id, corr)
        self.e.start_vm(vm_id, corr, host_id=host.id)
        return self._op("promote", vm_id, corr, secondary_id=secondary_id, host=host.id)

    def _poll_promote(self, op: Operation) -> OperationStatus:
        def effect() -> bool:
            return value(self.e.vm(op.vm, follow=None).status) == "up"

        return self._poll_jobs(op, effect)

    def test_failover(self, vm_id: str, secondary_id: str, *, host_id: str | None = None) -> Operation:
        """A stateless twin with the copies attached and its NICs unplugged: writes are discarded."""
        vm = self._vm(vm_id)
        sc = self._scope()
        copies = self._usable_copies(vm, secondary_id, sc)
        host = self._run_host(vm, sc, host_id)
        corr = N.correlation_id("test-failover")
        twin = self.e.add_vm(name=N.test_vm_name(vm.name), cluster_id=host.cluster.id,
                             description=N.test_description(vm_id, secondary_id), corr=corr,
                             memory=vm.memory, stateless=True)
        try:
            for att, disk in A.image_disks(vm):
                self.e.attach_disk(twin.id, copies[disk.id].id,
                                   interface=value(att.interface) or self.cfg.copy_interface,
                                   bootable=bool(att.bootable), corr=corr)
            for nic in self.e.nics(vm_id):
                self.e.add_nic(twin.id, name=nic.name, profile_id=nic.vnic_profile.id if nic.vnic_profile else None,
                               plugged=False, corr=corr)
            self.e.start_vm(twin.id, corr, host_id=host.id)
        except FtbridgeError:
            try:
                self.e.remove_vm(twin.id, N.correlation_id("cleanup-test"), detach_only=True)
            except FtbridgeError:
                pass
            raise
        return self._op("test_failover", vm_id, corr, secondary_id=secondary_id, test_id=twin.id, host=host.id)

    def _poll_test_failover(self, op: Operation) -> OperationStatus:
        return self._poll_jobs(op, lambda: value(self.e.vm(op.data["test_id"], follow=None).status) == "up")

    def cleanup_test(self, vm_id: str, test_id: str) -> Operation:
        corr = N.correlation_id("cleanup-test")
        try:
            twin = self.e.vm(test_id, follow=None)
        except NotFound:
            return self._op("cleanup_test", vm_id, corr, test_id=test_id)
        owner = N.parse_test_description(twin.description)
        if owner is None or owner[0] != vm_id:
            raise Conflict(f"VM {twin.name} is not a test failover of {vm_id}: not removing it",
                           endpoint=self.endpoint)
        self._cleanup_step(twin, corr)
        return self._op("cleanup_test", vm_id, corr, test_id=test_id)

    def _cleanup_step(self, twin: Any, corr: str) -> bool:
        """One step towards "the twin is gone"; True when it is. The copies stay (detach only)."""
        status = value(twin.status)
        if status != "down":
            try:
                self.e.stop_vm(twin.id, corr, reason="ftbridge test failover cleanup")
            except Conflict:
                return False
            return False if value(self.e.vm(twin.id, follow=None).status) != "down" else self._remove_twin(twin, corr)
        return self._remove_twin(twin, corr)

    def _remove_twin(self, twin: Any, corr: str) -> bool:
        try:
            self.e.remove_vm(twin.id, corr, detach_only=True)
        except Conflict:
            return False  # stateless snapshot still being dropped: try again on the next poll
        return True

    def _poll_cleanup_test(self, op: Operation) -> OperationStatus:
        try:
            twin = self.e.vm(op.data["test_id"], follow=None)
        except NotFound:
            return OperationStatus(OpState.SUCCEEDED, 1.0, result=self._result(op))
        if self._cleanup_step(twin, op.id):
            return OperationStatus(OpState.SUCCEEDED, 1.0, result=self._result(op))
        return OperationStatus(OpState.RUNNING, 0.5, "waiting for the test VM to stop")

    def fence(self, vm_id: str) -> Operation:
        """Stop the VM; if its host is unreachable, confirm the host was rebooted (manual fence)."""
        vm = self._vm(vm_id, follow=None)
        sc = self._scope()
        corr = N.correlation_id("fence")
        self._bring_down(vm, sc, corr)
        return self._op("fence", vm_id, corr)

    def _poll_fence(self, op: Operation) -> OperationStatus:
        return self._poll_jobs(op, lambda: value(self.e.vm(op.vm, follow=None).status) == "down")

    # extras -------------------------------------------------------------------------------------
    def ex_register_replicas(self, domain_names: list[str], *, cluster: str, vm_ids: list[str] | None = None,
                             start: bool = True) -> Operation:
        """At the secondary site's engine: bring array-replicated domains in and run their VMs.

        What the oVirt DR role does on failover, for the ``ovirt-dr`` secondaries another
        endpoint reports (their ``target_endpoint`` is this one): attach each replicated domain
        (it keeps its UUID) to the data center of ``cluster``, register the VMs it carries
        (all, or ``vm_ids``; a VM keeps its id) into ``cluster``, and start them. Call it only
        once the primary site is known dead: the replicas become writable here.
        """
        sc = self._scope()
        target = next((c for c in sc.clusters.values() if c.name == cluster), None)
        if target is None:
            raise NotFound(f"no cluster named {cluster!r} in scope", endpoint=self.endpoint)
        dc_id = target.data_center.id
        corr = N.correlation_id("dr-register")
        registered: list[str] = []
        for name in domain_names:
            found = [sd for sd in self.e.storage_domains(search=f"name={name}") if sd.name == name]
            if not found:
                raise NotFound(f"no storage domain named {name!r} at this engine (is the replica imported?)",
                               endpoint=self.endpoint)
            sd = found[0]
            if sd.id not in sc.domains:
                self.e.attach_domain(dc_id, sd.id, corr)
            for vm in self.e.unregistered_vms(sd.id):
                if vm_ids is None or vm.id in vm_ids:
                    self.e.register_vm(sd.id, vm.id, target.id, corr)
                    registered.append(vm.id)
        if start:
            for vm_id in registered:
                self.e.start_vm(vm_id, corr)
        return self._op("dr_register", registered[0] if len(registered) == 1 else "", corr,
                        registered=",".join(registered))


    def ex_set_lease(self, vm_id: str, datastore_id: str | None) -> Operation:
        """Put the VM's storage lease on a domain (None removes it): the tie-breaker that lets only
        one instance run belongs on a domain that survives what the VM's disks may not."""
        self._vm(vm_id, follow=None)
        corr = N.correlation_id("lease")
        self.e.set_lease(vm_id, datastore_id, corr)
        return self._op("lease", vm_id, corr)

    def ex_dr_pairs(self) -> dict[str, StorageMapping]:
        """The ovirt-dr storage pairs in force (config plus mapping file), by primary domain name."""
        return dict(self._pairs)

    def ex_dr_mapping(self, *, secondary_url: str | None = None) -> Any:
        """The oVirt DR role's mapping (:class:`ftbridge_ovirt.drmap.DrMapping`) for the paired domains."""
        from ftbridge_ovirt import drmap

        sc = self._scope()
        by_name = {sd.name: sd for sd in sc.domains.values()}
        storages = []
        for name, pair in sorted(self._pairs.items()):
            sd = by_name.get(name)
            if sd is None:
                continue
            kind = value(sd.storage.type) if sd.storage is not None else "nfs"
            entry: dict[str, Any] = {"dr_domain_type": kind, "dr_primary_name": name,
                                     "dr_primary_dc_name": sc.dcs[sc.domain_dc[sd.id]].name,
                                     "dr_secondary_name": pair.secondary_name,
                                     "dr_storage_domain_type": "data", "dr_domain_id": sd.id}
            if pair.secondary_dc:
                entry["dr_secondary_dc_name"] = pair.secondary_dc
            if sd.storage is not None and sd.storage.address:
                entry["dr_primary_address"] = sd.storage.address
            if sd.storage is not None and sd.storage.path:
                entry["dr_primary_path"] = sd.storage.path
            storages.append(entry)
        sites = {"dr_sites_primary_url": self.cfg.url, "dr_sites_primary_username": self.cfg.user}
        if self.cfg.ca_file:
            sites["dr_sites_primary_ca_file"] = str(self.cfg.ca_file)
        if secondary_url:
            sites["dr_sites_secondary_url"] = secondary_url
        return drmap.build(storages, sites=sites)
