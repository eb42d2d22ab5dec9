"""The ``ovirt`` driver: one engine (oVirt 4.4/4.5, RHV 4.4, OLVM) through ovirtsdk4.

Importing this module imports no SDK; :mod:`.client` does at ``open()``.

Every changing call carries a correlation id (``ftbridge-<kind>-<vm marker>-<nonce>``,
:func:`.naming.correlation_id`) and that id is the operation handle: :meth:`OvirtDriver.poll`
finds the engine's jobs by it (``jobs?search=correlation_id=...``), so a fresh driver after a
crash polls the same operation. When the engine has already cleared the jobs, poll checks the
effect instead (the disk is on its target, the copies exist, the VM runs).

When the handle itself was lost (a crash between starting an operation and journaling it),
:meth:`OvirtDriver.pending_operations` finds it from the engine alone. The engine's jobs cannot
say whose they are: the API shows no correlation id on a job (restapi ``JobMapper``, api-model
``types/Job.java``), searches jobs by the exact value of ``correlation_id`` only (searchbackend
``JobConditionFieldAutoCompleter``: its one field, typed ``UUID``, takes no ``*``), and keeps
the jobs' subjects (``job_subject_entity``) out of the API. Its audit log does show each
command's correlation id and searches it with ``*`` (``AuditLogConditionFieldAutoCompleter``;
``CommandBase.logCommand`` logs every non-internal command it executes, with the command's
correlation id). So each correlation id carries a marker of the VM it was made for (10 base32
characters of a hash of the VM id: the API keeps at most 36 characters of a correlation id,
restapi ``CurrentFilter``), the events of the VM's ftbridge operations are listed by that marker,
and each of their correlation ids is asked of the jobs: listed while a job of it runs. The job
descriptions were not used: they name objects by name (dal ``bundles/ExecutionMessages.properties``:
``Launching VM ${VM}``, ``${Action} Disk ${DiskAlias} from ${SourceSD} to ${TargetSD}``), a
disk's job not its VM, and nothing says who started the job.

Secondary mechanisms, and what each protects against:

``ovirt-copy``
    Copies of a VM's disks on another storage domain of the same data center, made and removed
    by ftbridge (naming in :mod:`.naming`): a plain copy for a VM that is down, a live snapshot
    cloned onto the targets for one that runs (:mod:`.snapcopy`). A point-in-time copy whose age
    is its lag, refreshed by a new copy. Shareable disks stay where they are (the copy reuses
    them); direct LUNs are not copied (the copy is partial: ``Secondary.missing``).
``ovirt-dr``
    The array replicates the VM's domains to paired domains at a second site (pairs declared
    like the oVirt DR role's mapping file). Survives the loss of the site; the engine cannot
    see replication lag, so its state is ``unknown``. The core fails it over on the second site's
    endpoint (``dr_site = "secondary"``), whose driver imports the replicas and registers and
    starts the VMs as the DR role does (:mod:`.drsite`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

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
from ftbridge.errors import BackendUnavailable, ConfigError, Conflict, FtbridgeError, NotFound, UnsupportedOperation
from ftbridge.inventory import InventoryPart
from ftbridge.model import HostState, Secondary
from ftbridge_ovirt import assemble as A, naming as N, snapcopy
from ftbridge_ovirt.client import Engine, value
from ftbridge_ovirt.config import OvirtConfig, StorageMapping

if TYPE_CHECKING:
    from ftbridge_ovirt.drsite import DrSite

MECHANISMS: dict[str, MechanismRules] = {
    "ovirt-copy": MechanismRules(
        name="ovirt-copy",
        description="point-in-time copies of a VM's disks on another storage domain of its data center "
        "(a live snapshot cloned onto the target for a running VM); survives the loss of the "
        "primary's domain, array or site; lag = age of the copy, refreshed by a new one",
        same_hosts=True,
        refreshable=True,
        rto=300.0,  # an estimate: swap the disks for their copies and boot
    ),
    "ovirt-dr": MechanismRules(
        name="ovirt-dr",
        description="array-replicated storage domain paired with one at a second site (oVirt DR role mapping); "
        "survives the loss of the site; made by the array, not by ftbridge",
        rto=900.0,  # an estimate: import and attach the replicas, register the VMs, boot
    ),
}

_FAILED = frozenset({"failed", "aborted"})
#: VM states in which the VM runs now (a restart has nothing to do)
_RUNNING_NOW = frozenset({"up", "powering_up", "wait_for_launch", "reboot_in_progress", "migrating"})


#: what a filtered session (``filter = true``) can do: read; it can follow no change it makes
READ_ONLY = frozenset({Capability.INVENTORY, Capability.REPLICATION_STATUS, Capability.HEALTH})


class OvirtDriver(Driver, StoragePlacement, Failover):
    """oVirt through the engine's REST API."""

    name = "ovirt"
    api_versions = (2, 2)  # the driver contract it is written for (ftbridge.drivers.API_VERSION)
    Config = OvirtConfig
    capabilities = frozenset(
        {
            Capability.INVENTORY,
            Capability.MOVE_DISK,
            Capability.PROTECT,
            Capability.UNPROTECT,
            Capability.REPLICATION_STATUS,
            Capability.HEALTH,
            Capability.PROMOTE,
            Capability.TEST_FAILOVER,
            Capability.REPROTECT,
            Capability.FENCE,
            Capability.RESTART,
        }
    )
    mechanisms = MECHANISMS
    default_concurrency = 4

    def __init__(self, config: DriverConfig, *, endpoint: str) -> None:
        super().__init__(config, endpoint=endpoint)
        if not isinstance(config, OvirtConfig):
            raise ConfigError(f"endpoints.{endpoint}: not an ovirt endpoint configuration", endpoint=endpoint)
        self.cfg = config
        self._engine: Engine | None = None
        self._pairs: dict[str, StorageMapping] = {}
        self._luns: dict[str, str] = {}
        self._mapping: Any = None  # drmap.DrMapping of dr_mapping_file, when given

    # lifecycle --------------------------------------------------------------------------
    def open(self) -> None:
        self.close()
        self._load_dr()
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
        offered = ["ovirt-copy", *(["ovirt-dr"] if self._pairs else [])]
        return BackendInfo(
            product=(pi.name if pi is not None else None) or "oVirt Engine",
            version=version,
            # a filtered session may read but not change (see Engine._q): plans leave it alone
            capabilities=READ_ONLY if self.cfg.filter else self.capabilities,
            details={"vendor": pi.vendor if pi is not None else None, "mechanisms": offered},
        )

    def _load_dr(self) -> None:
        pairs = list(self.cfg.dr_storage_mappings)
        self._mapping = None
        if self.cfg.dr_mapping_file is not None:
            from ftbridge_ovirt import drmap

            self._mapping = drmap.load(self.cfg.dr_mapping_file)
            if self.cfg.dr_site == "primary":
                pairs += self._mapping.storage_mappings()
                self._luns = {
                    str(x["primary_logical_unit_id"]): str(x["secondary_logical_unit_id"])
                    for x in self._mapping.luns or ()
                }
        if self.cfg.dr_site == "secondary":
            pairs = []
        if pairs and not self.cfg.dr_secondary_endpoint:
            raise ConfigError(
                f"endpoints.{self.endpoint}.dr_secondary_endpoint: required when storage domains "
                "are paired for ovirt-dr (the endpoint or site that holds the replicas)",
                endpoint=self.endpoint,
            )
        self._pairs = {p.primary_name: p for p in pairs}

    @property
    def e(self) -> Engine:
        if self._engine is None:
            raise BackendUnavailable("the driver is not open", endpoint=self.endpoint)
        return self._engine

    # inventory ----------------------------------------------------------------------------
    def _scope(self) -> A.Scope:
        return A.scope(
            self.e.data_centers(),
            self.e.clusters(),
            self.e.hosts(),
            self.cfg.data_center,
            self.cfg.cluster,
            filtered=self.cfg.filter,
        )

    def _templates(self, sc: A.Scope, vms: list[Any]) -> dict[str, Any]:
        """Templates, read only when a VM in scope uses one (a thin clone depends on its template's disk)."""
        if not any(
            v.template is not None
            and v.template.id != A.BLANK_TEMPLATE
            and v.cluster is not None
            and v.cluster.id in sc.clusters
            for v in vms
        ):
            return {}
        return {t.id: t for t in self.e.templates()}

    def inventory(self) -> InventoryPart:
        """Five requests for any number of VMs (six when a VM uses a template): data centers (with
        domains, networks, vNIC profiles), clusters, hosts, VMs (with disks, tags, NICs), copies."""
        sc = self._scope()
        vms = self.e.vms()
        copies = self.e.disks(N.copy_search())
        return A.inventory(
            sc,
            vms,
            copies,
            self.endpoint,
            self._pairs,
            self.cfg.dr_secondary_endpoint,
            templates=self._templates(sc, vms),
            luns=self._luns,
        )

    def replication_status(self, vm_id: str) -> tuple[Secondary, ...]:
        sc = self._scope()
        vm = self._vm(vm_id)
        sets = A.group_copies(self.e.disks(N.copy_search(vm_id))).get(vm_id, {})
        return A.vm(
            vm, sc, self.endpoint, sets, self._pairs, self.cfg.dr_secondary_endpoint, time.time(), luns=self._luns
        ).secondaries

    # operations ---------------------------------------------------------------------------
    def _op(self, kind: str, vm: str, corr: str, **data: str) -> Operation:
        return Operation(id=corr, endpoint=self.endpoint, kind=kind, vm=vm, data=data)

    def _vm(self, vm_id: str, follow: str | None = "disk_attachments.disk,tags,nics") -> Any:
        try:
            return self.e.vm(vm_id, follow=follow)
        except NotFound:
            raise NotFound(f"VM {vm_id} does not exist", endpoint=self.endpoint) from None

    def _not_hosted_engine(self, vm: Any, doing: str) -> None:
        if value(vm.origin) in A.HOSTED_ENGINE_ORIGINS:
            raise Conflict(
                f"{vm.name} is the hosted engine, run by ovirt-ha-agent: the engine does not let anything {doing} it",
                endpoint=self.endpoint,
            )

    def move_disk(self, vm_id: str, disk_id: str, datastore_id: str) -> Operation:
        vm = self._vm(vm_id)
        self._not_hosted_engine(vm, "move the disks of")
        if not any(d.id == disk_id for _, d in A.image_disks(vm)):
            raise NotFound(f"VM {vm.name} has no disk {disk_id} on a storage domain", endpoint=self.endpoint)
        corr = N.correlation_id("move_disk", vm_id)
        self.e.move_disk(disk_id, datastore_id, corr)
        return self._op("move_disk", vm_id, corr, disk=disk_id, target=datastore_id)

    def protect(self, vm_id: str, spec: SecondarySpec) -> Operation:
        return self._protect("protect", vm_id, spec)

    def reprotect(self, vm_id: str, spec: SecondarySpec) -> Operation:
        """A fresh copy set where ``spec`` says (after a promote, or to refresh an aged copy)."""
        return self._protect("reprotect", vm_id, spec)

    def _protect(self, kind: str, vm_id: str, spec: SecondarySpec) -> Operation:
        if spec.mechanism == "ovirt-dr":
            raise UnsupportedOperation(
                "ovirt-dr secondaries come from array replication: pair the domains on the "
                "array and in dr_storage_mappings",
                endpoint=self.endpoint,
            )
        if spec.mechanism != "ovirt-copy":
            raise UnsupportedOperation(
                f"mechanism {spec.mechanism!r} is not an oVirt mechanism (offered: {', '.join(MECHANISMS)})",
                endpoint=self.endpoint,
            )
        vm = self._vm(vm_id)
        self._not_hosted_engine(vm, "copy")
        disks = {d.id: d for _, d in A.copyable(vm)}
        in_place = {d.id for _, d in A.image_disks(vm) if d.shareable} | {d.id for _, d in A.lun_disks(vm)}
        wanted = {k: v for k, v in spec.disks.items() if k not in in_place}
        if not disks:
            raise Conflict(
                f"{vm.name} has no disk a copy can hold (shareable disks stay in place, direct LUNs are not copied)",
                endpoint=self.endpoint,
            )
        if set(wanted) != set(disks):
            raise Conflict(
                f"ovirt-copy must place every copyable disk of {vm.name}: {sorted(disks)} "
                f"(spec names {sorted(spec.disks)})",
                endpoint=self.endpoint,
            )
        running = value(vm.status) != "down"
        if running and any(value(d.storage_type) == "managed_block_storage" for d in disks.values()):
            raise Conflict(
                f"{vm.name} runs with a disk on managed block storage: the engine copies no such disk "
                "of a running VM (no snapshot clone: ManagedBlockStorageDomainValidator)",
                endpoint=self.endpoint,
            )
        self._check_room(wanted, disks, running=running)
        set_id = N.new_set()
        corr = N.correlation_id(kind, vm_id)
        layout = ",".join(f"{k}={v}" for k, v in sorted(wanted.items()))
        if running:
            job = snapcopy.CopyJob(vm=vm_id, set_id=set_id, cluster=vm.cluster.id, disks=wanted, corr=corr)
            snapcopy.start(self.e, job)
            if spec.metadata_datastore:
                self.e.set_lease(vm_id, spec.metadata_datastore, corr)
            return self._op(
                kind, vm_id, corr, secondary_id=set_id, disks=layout, path="snapshot", cluster=vm.cluster.id
            )
        started: list[str] = []
        try:
            for disk_id, sd_id in sorted(wanted.items()):
                alias = str(N.CopyAlias(vm=vm_id, disk=disk_id, set=set_id))
                self.e.copy_disk(disk_id, sd_id, alias, corr)
                started.append(disk_id)
            if spec.metadata_datastore:
                self.e.set_lease(vm_id, spec.metadata_datastore, corr)
        except FtbridgeError as exc:
            if started:
                exc.message += (
                    f" ({len(started)} copies of set {set_id} already started: poll "
                    f"{corr} and unprotect {set_id} to remove them)"
                )
            raise
        return self._op(kind, vm_id, corr, secondary_id=set_id, disks=layout, path="copy")

    def _check_room(self, wanted: Mapping[str, str], disks: Mapping[str, Any], *, running: bool = False) -> None:
        """Refuse before the first step, as the engine would (StorageDomainValidator: the target
        above its critical-space blocker, and room for the copy by the engine's own count)."""
        sc = self._scope()
        need: dict[str, int] = {}
        for disk_id, sd_id in wanted.items():
            sd = sc.domains.get(sd_id)
            if sd is None:
                raise NotFound(f"storage domain {sd_id} is not a data domain in scope", endpoint=self.endpoint)
            kind = value(sd.storage.type) if sd.storage is not None else ""
            if running and kind == "managed_block_storage":
                raise Conflict(
                    f"storage domain {sd.name} is managed block storage: the engine clones no snapshot onto it",
                    endpoint=self.endpoint,
                )
            need[sd_id] = need.get(sd_id, 0) + A.clone_size(disks[disk_id], kind or "")
        for sd_id, size in need.items():
            sd = sc.domains[sd_id]
            if value(sd.status) != "active":
                raise Conflict(f"storage domain {sd.name} is {value(sd.status)}", endpoint=self.endpoint)
            if value(sd.storage.type) == "managed_block_storage":
                continue  # the engine does not count room on vendor-managed block storage
            avail = int(sd.available or 0)
            blocker = int(sd.critical_space_action_blocker or 0)
            if avail < size or avail // A.GIB < blocker:
                raise Conflict(
                    f"storage domain {sd.name} has {avail >> 30} GiB free, {size >> 30} GiB needed "
                    f"and {blocker} GiB kept free (critical space blocker)",
                    endpoint=self.endpoint,
                )

    def _copies(self, vm_id: str, set_id: str) -> list[tuple[Any, Any]]:
        sets = A.group_copies(self.e.disks(N.copy_search(vm_id, set_id))).get(vm_id, {})
        return sets.get(set_id, [])

    def unprotect(self, vm_id: str, secondary_id: str) -> Operation:
        if secondary_id.startswith("dr:"):
            raise UnsupportedOperation(
                "ovirt-dr replication is configured on the array, not removed by ftbridge", endpoint=self.endpoint
            )
        copies = self._copies(vm_id, secondary_id)
        if not copies:
            raise NotFound(f"VM {vm_id} has no ovirt-copy secondary {secondary_id}", endpoint=self.endpoint)
        if any(value(d.status) == "locked" or d.vms for _, d in copies):
            raise Conflict(
                f"copy set {secondary_id} is still being written; remove it once its copy ends", endpoint=self.endpoint
            )
        corr = N.correlation_id("unprotect", vm_id)
        for _, d in copies:
            self.e.remove_disk(d.id, corr)
        return self._op("unprotect", vm_id, corr, secondary_id=secondary_id)

    # polling --------------------------------------------------------------------------------
    #: how many of the newest events of the VM's ftbridge operations pending_operations reads
    pending_events = 200
    #: how many distinct operations among them it asks the engine's jobs about (newest first):
    #: the one a crash lost is the newest; an older one runs still only if that many were started
    #: on the VM after it
    pending_scan = 20

    def pending_operations(self, vm_id: str) -> list[Operation]:
        """ftbridge's operations on the VM that the engine still runs, found from the engine alone.

        The engine shows no correlation id on a job and searches jobs by an exact correlation id
        only, but its audit log shows each command's correlation id and is searched with ``*``.
        Each correlation id carries a marker of its VM (:func:`.naming.correlation_id`), so one
        request lists the events of the VM's ftbridge operations (the newest
        :attr:`pending_events`, newest first), and one jobs search per distinct correlation id
        among the newest :attr:`pending_scan` of them says whether it still runs: an operation
        is listed while one of its jobs is ``started``; one whose jobs ended, or were cleared by
        the engine, is not.

        Others' operations on the VM (the engine's UI, other tools) are not listed: no job the
        engine shows names its VM, and the core takes a listed operation for the action's own
        (it journals it and adopts its outcome), so a job that cannot be told to be ftbridge's
        on this VM must not be offered as one. What they hold, the engine refuses (409), and the
        core retries.

        A found operation's ``kind`` is the method its correlation id names; its ``data`` holds
        ``found = "1"`` and what the engine shows of it: the test VM of a ``test_failover`` or
        ``cleanup_test`` (the VM other than ``vm_id`` its events name). :meth:`poll` follows it
        by its jobs (see :meth:`_poll_found`); a found ``protect``/``reprotect`` is then also
        settled: the live snapshot and transient clone VM its lost handle left on the VM are
        finished or rolled back, so none stays on the production VM.
        """
        marker = N.vm_marker(vm_id)
        ops: dict[str, tuple[str, list[Any]]] = {}  # correlation id -> (kind, its events, newest first)
        for ev in self.e.events(N.events_search(vm_id), limit=self.pending_events):
            corr = str(ev.correlation_id or "")
            parsed = N.parse_correlation_id(corr)
            if parsed is None or parsed.marker != marker:
                continue  # the search's `*` also matches ids ftbridge did not make this way
            if corr in ops:
                ops[corr][1].append(ev)
            elif len(ops) < self.pending_scan:
                ops[corr] = (parsed.kind, [ev])
        found: list[Operation] = []
        for corr, (kind, evs) in ops.items():
            state, _, _ = self._jobs_state(corr)
            if state is not OpState.RUNNING:
                continue
            data = {"found": "1"}
            if kind in ("test_failover", "cleanup_test"):
                # the oldest event naming another VM: the test VM it made or removes
                others = [ev.vm.id for ev in evs if ev.vm is not None and ev.vm.id and ev.vm.id != vm_id]
                if others:
                    data["test_id"] = others[-1]
                elif self.cfg.dr_site == "secondary":
                    data["test_id"] = vm_id  # at the second site of ovirt-dr the test runs the VM itself
                    data["dr"] = "1"
            found.append(self._op(kind, vm_id, corr, **data))
        return found

    def poll(self, op: Operation) -> OperationStatus:
        if op.data.get("found") == "1":
            return self._poll_found(op)
        handler = getattr(self, f"_poll_{op.kind}", None)
        if handler is None:
            return self._poll_jobs(op)
        try:
            return handler(op)  # type: ignore[no-any-return]
        except KeyError as exc:  # a handle this driver did not make (or made for another kind)
            raise NotFound(
                f"operation {op.id} ({op.kind}) lacks {exc.args[0]!r}: not a handle this driver made",
                endpoint=self.endpoint,
            ) from exc

    def _jobs_state(self, op: Operation | str) -> tuple[OpState | None, float, str]:
        """What the engine's jobs of one correlation id say: RUNNING while one is ``started``
        (with the share that finished), FAILED when one failed or was aborted, SUCCEEDED when all
        finished; None when the engine shows none (never made, or cleared since)."""
        jobs = self.e.jobs(op if isinstance(op, str) else op.id)
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

    def _poll_found(self, op: Operation) -> OperationStatus:
        """An operation :meth:`pending_operations` found again, followed by what the engine shows.

        The lost handle held what only ftbridge knew (the disk's target, the copy set and its
        layout); the engine shows the operation's jobs. So: RUNNING while a job runs, FAILED
        when one failed. When all finished, the operations whose every step the method itself
        asked the engine for (``move_disk``, ``unprotect``, ``promote``, ``restart``, ``fence``,
        ``lease``, ``test_failover``) succeeded, with the result the engine shows (the VM and
        where it runs, the test VM). ``cleanup_test`` with its test VM known goes on as its own
        poll does. ``protect``/``reprotect`` of a running VM take further steps in later polls
        (:mod:`.snapcopy`), and a lost handle would leave its live snapshot on the production VM
        for good (it grows, and slows the VM) and its transient clone VM beside it. So once their
        jobs end (finished or failed), what the engine shows of ftbridge's copy machinery on the
        VM is settled under this operation's correlation id (:func:`.snapcopy.tidy`): the steps
        that need nothing the handle held are finished (a Down clone removed with its disks kept
        as the copies, the snapshot of a whole set removed), the one that does (cloning the
        snapshot onto the lost target domains) is rolled back (the snapshot and the set's
        floating copies removed); RUNNING meanwhile, and the next poll looks again. When nothing
        of it is left, NotFound says the outcome is the estate's to tell (the core checks its
        postcondition: a whole secondary the lost protect made is found there; otherwise it
        protects again); FAILED when a job had failed. Jobs the engine cleared: NotFound too.
        Every ftbridge copy set left on the VM is settled, not only this operation's: nothing the
        engine shows ties a set to a correlation id. No other ftbridge protect of the VM can be in
        flight meanwhile: the core runs one action per VM at a time, and one run per estate.
        """
        if op.kind == "cleanup_test" and op.data.get("test_id"):
            return self._poll_cleanup_test(op)
        state, progress, msg = self._jobs_state(op)
        if state is None:
            raise NotFound(f"the engine shows no job of {op.id} any more (cleared)", endpoint=self.endpoint)
        if state is OpState.RUNNING:
            return OperationStatus(OpState.RUNNING, progress, "the engine runs this operation's jobs")
        if op.kind in ("protect", "reprotect"):
            vm_id = op.vm
            disks = {d.id for _, d in A.copyable(self._vm(vm_id))}
            tidied = snapcopy.tidy(
                self.e,
                vm_id,
                op.id,
                disks,
                lambda set_id: self._copies(vm_id, set_id),
                failed=msg if state is OpState.FAILED else "",
            )
            if tidied is not None:
                return tidied
        if state is OpState.FAILED:
            return OperationStatus(OpState.FAILED, 1.0, msg, retryable=True)
        if op.kind in ("protect", "reprotect", "cleanup_test"):
            raise NotFound(
                f"the engine's jobs of {op.id} ended; what the lost handle would have done next is unknown: "
                "look at the estate",
                endpoint=self.endpoint,
            )
        result: dict[str, str] = {}
        if op.kind in ("promote", "restart"):
            vm = self._vm(op.vm, follow=None)
            result = {"vm_id": op.vm, **({"host": vm.host.id} if vm.host is not None else {})}
        elif op.kind == "test_failover" and op.data.get("test_id"):
            twin = self.e.vm(op.data["test_id"], follow=None)
            result = {"test_id": twin.id, **({"host": twin.host.id} if twin.host is not None else {})}
        return OperationStatus(OpState.SUCCEEDED, 1.0, result=result)

    def _result(self, op: Operation) -> dict[str, str]:
        return {k: v for k, v in op.data.items() if k in ("secondary_id", "test_id", "host", "vm_id")}

    def _poll_jobs(self, op: Operation, effect: Any = None) -> OperationStatus:
        state, progress, msg = self._jobs_state(op)
        if state is None:
            if effect is not None and self._effect_seen(effect):
                return OperationStatus(
                    OpState.SUCCEEDED, 1.0, "the engine cleared its jobs; the effect is there", result=self._result(op)
                )
            raise NotFound(
                f"no engine job has correlation id {op.id} (unknown, or cleared by the engine)", endpoint=self.endpoint
            )
        if state is OpState.FAILED:
            return OperationStatus(state, 1.0, msg, retryable=True, result=self._result(op))
        if state is OpState.SUCCEEDED and effect is not None and not self._effect_seen(effect):
            return OperationStatus(OpState.RUNNING, 0.9, "the engine's jobs ended; waiting for the effect")
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
            return bool(d.storage_domains) and d.storage_domains[0].id == op.data["target"] and value(d.status) == "ok"

        return self._poll_jobs(op, effect)

    def _poll_protect(self, op: Operation) -> OperationStatus:
        set_id = op.data["secondary_id"]
        want = dict(x.split("=", 1) for x in op.data.get("disks", "").split(",") if x)
        if op.data.get("path") == "snapshot":
            state, _, msg = self._jobs_state(op)
            job = snapcopy.CopyJob(vm=op.vm, set_id=set_id, cluster=op.data["cluster"], disks=want, corr=op.id)
            return snapcopy.advance(
                self.e, job, lambda: self._copies(op.vm, set_id), failed=msg if state is OpState.FAILED else ""
            )

        def effect() -> bool:
            copies = self._copies(op.vm, set_id)
            return {p.disk for p, _ in copies} == set(want) and all(value(d.status) == "ok" for _, d in copies)

        status = self._poll_jobs(op, effect)
        if status.state is OpState.FAILED:
            self._roll_back_copies(op.kind, op.vm, set_id)
        return status

    _poll_reprotect = _poll_protect

    def _roll_back_copies(self, kind: str, vm_id: str, set_id: str) -> None:
        """A failed protect leaves no half secondary: remove the copies that did complete (under
        a correlation id of the protect or reprotect whose copies they are)."""
        corr = N.correlation_id(kind, vm_id)
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
            spm = [
                h.name
                for h in sc.hosts.values()
                if sc.clusters[h.cluster.id].data_center.id == dc.id
                and h.spm is not None
                and value(h.spm.status) == "spm"
            ]
            notes.append(
                f"data center {dc.name}: SPM {spm[0]}"
                if spm
                else f"data center {dc.name}: no SPM host, storage operations will fail"
            )
        return HealthReport(
            hosts={h.id: A.host_state(h) for h in sc.hosts.values()},
            datastores={k: value(sd.status) == "active" for k, sd in sc.domains.items()},
            quorum=None,
            notes=tuple(notes),
        )

    def _usable_copies(self, vm: Any, set_id: str, sc: A.Scope) -> dict[str, Any]:
        """copyable disk id -> copy disk, refusing copies that cannot stand in for the VM."""
        copies = self._copies(vm.id, set_id)
        if not copies:
            raise NotFound(f"VM {vm.name} has no ovirt-copy secondary {set_id}", endpoint=self.endpoint)
        by_disk = {p.disk: d for p, d in copies}
        primary = {d.id for _, d in A.copyable(vm)}
        if set(by_disk) != primary:
            raise Conflict(
                f"copy set {set_id} does not cover every copyable disk of {vm.name} (stale); reprotect first",
                endpoint=self.endpoint,
            )
        for d in by_disk.values():
            sd = sc.domains.get(d.storage_domains[0].id) if d.storage_domains else None
            if value(d.status) != "ok" or d.vms:
                raise Conflict(f"copy {d.alias} is still being made", endpoint=self.endpoint)
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
        up = [
            h
            for h in sc.hosts.values()
            if A.host_state(h) is HostState.UP and sc.clusters[h.cluster.id].data_center.id == dc
        ]
        same = [h for h in up if h.cluster.id == vm.cluster.id]
        if not (same or up):
            raise Conflict(f"no host of {vm.name}'s data center is up", endpoint=self.endpoint)
        return sorted(same or up, key=lambda h: h.name)[0]

    def _still_runs(self, vm: Any, sc: A.Scope) -> bool:
        status = value(vm.status) or "unknown"
        host = sc.hosts.get(vm.host.id) if vm.host is not None else None
        host_up = host is not None and A.host_state(host) is HostState.UP
        disks_up = all(
            d.storage_domains[0].id in sc.domains and value(sc.domains[d.storage_domains[0].id].status) == "active"
            for _, d in A.image_disks(vm)
        )
        return status in A.MAY_RUN and host_up and disks_up

    def _bring_down(self, vm: Any, sc: A.Scope, corr: str, *, force: bool = False) -> None:
        """Make sure no instance of the VM runs, in a way the engine accepts and that proves it:
        stop it through a host the engine reaches; confirm the reboot of a host the engine reports
        down (FenceVdsManualyCommand accepts it); anything else (a host that is merely unreachable)
        only when forced: the operator then vouches the host is off."""
        status = value(vm.status) or "unknown"
        if status == "down":
            return
        host = sc.hosts.get(vm.host.id) if vm.host is not None else None
        hstatus = value(host.status) if host is not None else None
        state = A.host_state(host) if host is not None else HostState.UNKNOWN
        if state is HostState.UP or hstatus == "non_operational":
            self.e.stop_vm(vm.id, corr)
        elif host is not None and (state is HostState.DOWN or force):
            self.e.fence(host.id, "manual", corr)
        else:
            where = f"host {host.name} is {hstatus}" if host is not None else "the engine does not say where it runs"
            raise Conflict(
                f"VM {vm.name} is {status} and {where}: nothing proves it is not running. Fence the "
                "host (power management), or power it off and confirm it in the engine, or force",
                endpoint=self.endpoint,
            )

    def promote(self, vm_id: str, secondary_id: str, *, host_id: str | None = None, force: bool = False) -> Operation:
        """ovirt-copy: detach the copied disks, attach the copies (shareable disks and LUNs stay
        attached as they are), keep the lease readable, start the VM. ovirt-dr: on the second
        site's endpoint, bring the replica over (:mod:`.drsite`)."""
        if secondary_id.startswith("dr:"):
            if self.cfg.dr_site == "secondary":
                return self._dr_bring_up(vm_id, secondary_id, host_id, test=False)
            raise UnsupportedOperation(
                "an ovirt-dr secondary is brought up at the second site's engine: the core promotes it on "
                f"endpoint {self.cfg.dr_secondary_endpoint or '(dr_secondary_endpoint)'}",
                endpoint=self.endpoint,
            )
        vm = self._vm(vm_id)
        self._not_hosted_engine(vm, "promote")
        sc = self._scope()
        copies = self._usable_copies(vm, secondary_id, sc)
        if self._still_runs(vm, sc) and not force:
            raise Conflict(
                f"VM {vm.name} still runs on a reachable host with its storage: refusing to promote "
                "(fence it first, or force)",
                endpoint=self.endpoint,
            )
        host = self._run_host(vm, sc, host_id)
        corr = N.correlation_id("promote", vm_id)
        self._bring_down(vm, sc, corr, force=force)
        for att, disk in A.copyable(vm):
            self.e.detach_disk(vm_id, disk.id, corr)
            self.e.attach_disk(
                vm_id,
                copies[disk.id].id,
                interface=value(att.interface) or self.cfg.copy_interface,
                bootable=bool(att.bootable),
                corr=corr,
            )
            self.e.update_disk_alias(copies[disk.id].id, disk.alias or f"{vm.name}_{disk.id[:8]}", corr)
        lease = vm.lease.storage_domain.id if (vm.lease is not None and vm.lease.storage_domain is not None) else None
        if lease is not None and (lease not in sc.domains or value(sc.domains[lease].status) != "active"):
            first = next(iter(copies.values())).storage_domains[0].id
            self.e.set_lease(vm_id, first, corr)
        if host.cluster.id != vm.cluster.id:  # a VM runs only in its cluster: follow the surviving host
            self.e.set_cluster(vm_id, host.cluster.id, corr)
        self.e.start_vm(vm_id, corr, host_id=host.id)
        return self._op("promote", vm_id, corr, secondary_id=secondary_id, host=host.id, vm_id=vm_id)

    def _poll_promote(self, op: Operation) -> OperationStatus:
        if op.data.get("dr") == "1":
            return self._poll_dr(op)

        def effect() -> bool:
            return value(self.e.vm(op.vm, follow=None).status) == "up"

        return self._poll_jobs(op, effect)

    def restart(self, vm_id: str, *, host_id: str | None = None) -> Operation:
        """Start the VM from its own disks on a surviving host. The engine starts only a VM it
        sees Down: one on a host it reports down is cleared first (a confirmation the engine
        accepts for a host in that state); one on a host it cannot reach stays Unknown, and this
        refuses, until the host is fenced or confirmed rebooted."""
        vm = self._vm(vm_id)
        self._not_hosted_engine(vm, "restart")
        corr = N.correlation_id("restart", vm_id)
        status = value(vm.status) or "unknown"
        if status in _RUNNING_NOW:
            return self._op(
                "restart", vm_id, corr, host=vm.host.id if vm.host is not None else "", vm_id=vm_id, running="1"
            )
        sc = self._scope()
        if status in ("unknown", "not_responding"):
            host = sc.hosts.get(vm.host.id) if vm.host is not None else None
            if host is None or A.host_state(host) is not HostState.DOWN:
                where = f"host {host.name} is {value(host.status)}" if host is not None else "its host is unknown"
                raise Conflict(
                    f"VM {vm.name} is {status} and {where}: the engine starts it elsewhere only once the "
                    "host is fenced or confirmed rebooted",
                    endpoint=self.endpoint,
                )
            self.e.fence(host.id, "manual", corr)
        elif status not in ("down", "suspended"):
            raise Conflict(f"VM {vm.name} is {status}: nothing to restart", endpoint=self.endpoint)
        target = self._run_host(vm, sc, host_id)
        if target.cluster.id != vm.cluster.id:
            self.e.set_cluster(vm_id, target.cluster.id, corr)
        self.e.start_vm(vm_id, corr, host_id=target.id)
        return self._op("restart", vm_id, corr, host=target.id, vm_id=vm_id)

    def _poll_restart(self, op: Operation) -> OperationStatus:
        vm = self._vm(op.vm, follow=None)
        status = value(vm.status)
        if status == "up":
            host = vm.host.id if vm.host is not None else op.data.get("host", "")
            return OperationStatus(OpState.SUCCEEDED, 1.0, result={"host": host, "vm_id": op.vm})
        if op.data.get("running") == "1":
            return OperationStatus(OpState.RUNNING, 0.5, f"the VM is {status}")
        state, _, msg = self._jobs_state(op)
        if state is OpState.FAILED or (state is OpState.SUCCEEDED and status == "down"):
            return OperationStatus(OpState.FAILED, 1.0, msg or f"the VM is {status}", retryable=True)
        return OperationStatus(OpState.RUNNING, 0.5, f"the VM is {status}")

    def test_failover(self, vm_id: str, secondary_id: str, *, host_id: str | None = None) -> Operation:
        """A stateless twin with the copies attached and its NICs unplugged: writes are discarded.
        Shareable disks and LUNs stay with production (a twin writing them would write
        production's data): the twin runs without them."""
        if secondary_id.startswith("dr:"):
            if self.cfg.dr_site == "secondary":
                return self._dr_bring_up(vm_id, secondary_id, host_id, test=True)
            raise UnsupportedOperation(
                "an ovirt-dr secondary is tested at the second site's engine: the core runs "
                f"it on endpoint {self.cfg.dr_secondary_endpoint}",
                endpoint=self.endpoint,
            )
        vm = self._vm(vm_id)
        self._not_hosted_engine(vm, "test")
        sc = self._scope()
        copies = self._usable_copies(vm, secondary_id, sc)
        host = self._run_host(vm, sc, host_id)
        corr = N.correlation_id("test_failover", vm_id)
        twin = self.e.add_vm(
            name=N.test_vm_name(vm.name),
            cluster_id=host.cluster.id,
            description=N.test_description(vm_id, secondary_id),
            corr=corr,
            memory=vm.memory,
            stateless=True,
        )
        try:
            for att, disk in A.copyable(vm):
                self.e.attach_disk(
                    twin.id,
                    copies[disk.id].id,
                    interface=value(att.interface) or self.cfg.copy_interface,
                    bootable=bool(att.bootable),
                    corr=corr,
                )
            for nic in vm.nics or self.e.nics(vm_id):
                self.e.add_nic(
                    twin.id,
                    name=nic.name,
                    profile_id=nic.vnic_profile.id if nic.vnic_profile else None,
                    plugged=False,
                    corr=corr,
                )
            self.e.start_vm(twin.id, corr, host_id=host.id)
        except FtbridgeError:
            try:
                self.e.remove_vm(twin.id, N.correlation_id("cleanup_test", vm_id), detach_only=True)
            except FtbridgeError:
                pass
            raise
        return self._op("test_failover", vm_id, corr, secondary_id=secondary_id, test_id=twin.id, host=host.id)

    def _poll_test_failover(self, op: Operation) -> OperationStatus:
        if op.data.get("dr") == "1":
            return self._poll_dr(op)
        return self._poll_jobs(op, lambda: value(self.e.vm(op.data["test_id"], follow=None).status) == "up")

    def cleanup_test(self, vm_id: str, test_id: str) -> Operation:
        """Remove the test twin (its copies stay); at the second site of ovirt-dr, stop and remove
        the registered VM (its disks stay on the replica), then the replica domains once no VM
        uses them, without formatting them."""
        corr = N.correlation_id("cleanup_test", vm_id)
        dr = "1" if self.cfg.dr_site == "secondary" else "0"
        try:
            twin = self.e.vm(test_id, follow=None)
        except NotFound:
            return self._op("cleanup_test", vm_id, corr, test_id=test_id, dr=dr)
        owner = N.parse_test_description(twin.description)
        if owner is not None and owner[0] == vm_id:
            dr = "0"
        elif not (dr == "1" and test_id == vm_id):
            raise Conflict(f"VM {twin.name} is not a test failover of {vm_id}: not removing it", endpoint=self.endpoint)
        self._cleanup_step(twin, corr)
        return self._op("cleanup_test", vm_id, corr, test_id=test_id, dr=dr)

    def _cleanup_step(self, twin: Any, corr: str, *, detach_only: bool = True) -> bool:
        """One step towards "the twin is gone"; True when it is. Its disks stay (detach only)."""
        status = value(twin.status)
        if status != "down":
            try:
                self.e.stop_vm(twin.id, corr, reason="ftbridge test failover cleanup")
            except Conflict:
                return False
            return (
                False
                if value(self.e.vm(twin.id, follow=None).status) != "down"
                else self._remove_twin(twin, corr, detach_only)
            )
        return self._remove_twin(twin, corr, detach_only)

    def _remove_twin(self, twin: Any, corr: str, detach_only: bool) -> bool:
        try:
            self.e.remove_vm(twin.id, corr, detach_only=detach_only)
        except Conflict:
            return False  # stateless snapshot still being dropped: try again on the next poll
        return True

    def _poll_cleanup_test(self, op: Operation) -> OperationStatus:
        try:
            twin = self.e.vm(op.data["test_id"], follow=None)
        except NotFound:
            if op.data.get("dr") == "1" and not self._dr_site().release(op.id):
                return OperationStatus(OpState.RUNNING, 0.8, "removing the replica domains from the engine")
            return OperationStatus(OpState.SUCCEEDED, 1.0, result=self._result(op))
        if self._cleanup_step(twin, op.id):
            return OperationStatus(OpState.RUNNING, 0.7, "the test VM is gone")
        return OperationStatus(OpState.RUNNING, 0.5, "waiting for the test VM to stop")

    def fence(self, vm_id: str) -> Operation:
        """Make sure the VM does not run, provably: stop it through a host the engine reaches,
        confirm the reboot of a host the engine reports down, or power an unreachable host off
        through its power management. A host that is merely unreachable and has no power
        management proves nothing: Conflict (the core then needs the operator's force)."""
        vm = self._vm(vm_id, follow=None)
        self._not_hosted_engine(vm, "fence")
        corr = N.correlation_id("fence", vm_id)
        status = value(vm.status) or "unknown"
        if status == "down":
            return self._op("fence", vm_id, corr, done="1")
        sc = self._scope()
        host = sc.hosts.get(vm.host.id) if vm.host is not None else None
        if host is not None and value(host.status) in ("non_responsive", "connecting"):
            if not (host.power_management is not None and host.power_management.enabled):
                raise Conflict(
                    f"host {host.name} of VM {vm.name} is {value(host.status)} and has no power "
                    "management: nothing proves the VM is not running. Power the host off and confirm "
                    "it in the engine ('Confirm Host has been rebooted'), or force the promotion",
                    endpoint=self.endpoint,
                )
            self.e.fence(host.id, "stop", corr)
            return self._op("fence", vm_id, corr, host=host.id)
        self._bring_down(vm, sc, corr)
        return self._op("fence", vm_id, corr)

    def _poll_fence(self, op: Operation) -> OperationStatus:
        if op.data.get("done") == "1":
            return OperationStatus(OpState.SUCCEEDED, 1.0)
        return self._poll_jobs(op, lambda: value(self.e.vm(op.vm, follow=None).status) == "down")

    # the second site of ovirt-dr -----------------------------------------------------------------
    def _dr_site(self) -> DrSite:
        from ftbridge_ovirt.drsite import DrSite, secret_lookup

        if self._mapping is None:
            raise ConfigError(
                f"endpoints.{self.endpoint}.dr_mapping_file: needed to fail ovirt-dr over here", endpoint=self.endpoint
            )
        return DrSite(
            self.e,
            self._mapping,
            endpoint=self.endpoint,
            extra_clusters={p.primary_name: p.secondary_name for p in self.cfg.dr_cluster_mappings},
            secret=secret_lookup(self.cfg.dr_vault, self.endpoint),
        )

    def _dr_bring_up(self, vm_id: str, secondary_id: str, host_id: str | None, *, test: bool) -> Operation:
        kind = "test_failover" if test else "promote"
        corr = N.correlation_id(kind, vm_id)
        vm, was_up = self._dr_site().bring_over(vm_id, corr)
        start = was_up is not False or test
        if test:  # isolated, and whatever it writes is dropped when it stops
            for nic in vm.nics or ():
                if nic.plugged:
                    self.e.update_nic(vm_id, nic.id, plugged=False, corr=corr)
            self.e.set_stateless(vm_id, True, corr)
        if start and value(vm.status) == "down":
            self.e.start_vm(vm_id, corr, host_id=host_id)
        data = {"secondary_id": secondary_id, "dr": "1", "start": "1" if start else "0", "vm_id": vm_id}
        if test:
            data["test_id"] = vm_id
        return self._op(kind, vm_id, corr, **data)

    def _poll_dr(self, op: Operation) -> OperationStatus:
        vm = self._vm(op.vm, follow=None)
        status = value(vm.status)
        result = {**self._result(op), "host": vm.host.id if vm.host is not None else ""}
        if op.data.get("start") != "1":
            return OperationStatus(OpState.SUCCEEDED, 1.0, "registered; it was down, so it stays down", result=result)
        if status == "up":
            return OperationStatus(OpState.SUCCEEDED, 1.0, result=result)
        state, _, msg = self._jobs_state(op)
        if state is OpState.FAILED or (state is OpState.SUCCEEDED and status == "down"):
            return OperationStatus(OpState.FAILED, 1.0, msg or f"the VM is {status}", retryable=True)
        return OperationStatus(OpState.RUNNING, 0.8, f"the VM is {status}")

    # extras -------------------------------------------------------------------------------------
    def ex_set_lease(self, vm_id: str, datastore_id: str | None) -> Operation:
        """Put the VM's storage lease on a domain (None removes it): the tie-breaker that lets only
        one instance run belongs on a domain that survives what the VM's disks may not."""
        self._vm(vm_id, follow=None)
        corr = N.correlation_id("lease", vm_id)
        self.e.set_lease(vm_id, datastore_id, corr)
        return self._op("lease", vm_id, corr)

    def ex_dr_pairs(self) -> dict[str, StorageMapping]:
        """The ovirt-dr storage pairs in force (config plus mapping file), by primary domain name."""
        return dict(self._pairs)

    def ex_dr_mapping(self, *, secondary: OvirtDriver | None = None) -> Any:
        """The oVirt DR role's mapping (:class:`ftbridge_ovirt.drmap.DrMapping`) for the paired
        domains, both directions. ``secondary``: an open driver of the second site, whose URL,
        user and CA the file names and whose vNIC profiles and clusters it maps to."""
        from ftbridge_ovirt import drexport

        sc = self._scope()
        vms = self.e.vms()
        profiles = clusters = None
        if secondary is not None:
            ssc = secondary._scope()
            profiles = {
                (n.name, p.name): (p.id, ssc.dcs[n.data_center.id].name if n.data_center else "")
                for n in ssc.networks.values()
                for p in (n.vnic_profiles or ())
            }
            clusters = [c.name for c in ssc.clusters.values()]
        return drexport.build(
            self.cfg,
            self.endpoint,
            sc,
            vms,
            self._pairs,
            self._mapping,
            secondary=secondary.cfg if secondary is not None else None,
            secondary_profiles=profiles,
            secondary_clusters=clusters,
        )
