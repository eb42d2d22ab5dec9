"""The lab engine's state: its tables, jobs, faults, and the space rules every command shares.

Commands live in the mixins of :mod:`.storage`, :mod:`.vms`, :mod:`.hosts` and :mod:`.dr`; each
checks what the real engine checks before it accepts a command (its ``validate()`` step,
answered with HTTP 409 and the engine's own message), then completes at once or starts a job.
The engine source each rule comes from is cited beside it and in the plugin README's rule table.
"""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from ftbridge_ovirt.lab.audit import Audit, render
from ftbridge_ovirt.lab.model import (
    GIB,
    Cluster,
    DataCenter,
    Disk,
    Domain,
    Event,
    Host,
    Job,
    Lun,
    Network,
    OvfEntity,
    Profile,
    Template,
    Vm,
    lab_uuid,
)

#: VM states in which a qemu process may exist on some host
RUNNING = frozenset(
    {
        "up",
        "powering_up",
        "wait_for_launch",
        "paused",
        "migrating",
        "powering_down",
        "reboot_in_progress",
        "unknown",
        "not_responding",
        "saving_state",
        "restoring_state",
    }
)
#: QCOW_OVERHEAD_FACTOR (StorageConstants.java): room a cloned qcow2 volume is given above its data
QCOW_OVERHEAD = 1.1


class Fault(Exception):
    """What the engine answers when it refuses: an HTTP code, a reason and a detail."""

    def __init__(self, code: int, reason: str, detail: str = "") -> None:
        super().__init__(f"{code} {reason}: {detail}")
        self.code, self.reason, self.detail = code, reason, detail


def conflict(detail: str) -> Fault:
    """A validation failure, as the REST layer wraps it: 409, "Operation Failed", "[...]"."""
    return Fault(409, "Operation Failed", f"[{detail}]")


class EngineState:
    """One engine's tables. Callers hold :attr:`lock` (the server does, per request)."""

    def __init__(
        self,
        estate_name: str,
        *,
        op_seconds: float = 0.2,
        ha_restart: bool = True,
        ha_delay: float = 0.3,
        seed: int = 0,
        job_ttl: float = 900.0,
    ) -> None:
        self.lock = threading.RLock()
        self.estate_name = estate_name
        self.op_seconds = op_seconds
        self.ha_restart = ha_restart
        self.ha_delay = ha_delay
        self.job_ttl = job_ttl  # the engine clears ended jobs after a while; so does the lab
        self.dcs: dict[str, DataCenter] = {}
        self.clusters: dict[str, Cluster] = {}
        self.hosts: dict[str, Host] = {}
        self.domains: dict[str, Domain] = {}
        self.luns: dict[str, Lun] = {}
        self.networks: dict[str, Network] = {}
        self.profiles: dict[str, Profile] = {}
        self.vms: dict[str, Vm] = {}
        self.templates: dict[str, Template] = {}
        self.disks: dict[str, Disk] = {}
        self.jobs: dict[str, Job] = {}
        #: the audit log, oldest first (``/events`` lists it newest first)
        self.events: list[Event] = []
        #: the caller as the audit log names it (``${UserName}``)
        self.audit_user = "admin@internal-authz"
        #: True: jobs started from now on run until released (``OvirtLab.hold_jobs``)
        self.hold = False
        self.pending_restarts: dict[str, float] = {}
        #: host id -> the fault injected into it: "failed" (reported down) or "partitioned"
        self.host_faults: dict[str, str] = {}
        #: VM id -> host id: VMs the engine was told are down while they still run on a partitioned host
        self.ghosts: dict[str, str] = {}
        #: domain id -> what its OVF store describes (replicas: what the array copied)
        self.ovf: dict[str, list[OvfEntity]] = {}
        self.spm: dict[str, str | None] = {}
        self.faults: dict[str, Any] = {}
        self.rng = random.Random(seed)
        self.reset_faults()

    # ids ------------------------------------------------------------------------------
    def uid(self, kind: str, key: str) -> str:
        return lab_uuid(self.estate_name, kind, key)

    # lookups ---------------------------------------------------------------------------
    def space(self, disk: Disk) -> int:
        """Bytes a disk takes on its domain: a sparse qcow2 volume its data, anything else its size."""
        return disk.used if (disk.sparse and disk.format == "cow") else disk.size

    def used(self, sd_id: str) -> int:
        return sum(self.space(d) for d in self.disks.values() if d.domain == sd_id or d.moving_to == sd_id)

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

    def disk_owners(self) -> dict[str, list[Vm]]:
        """disk id -> the VMs it is attached to: one pass, for listings."""
        out: dict[str, list[Vm]] = {}
        for vm in self.vms.values():
            for a in vm.attachments:
                out.setdefault(a.disk, []).append(vm)
        return out

    def vms_of_disk(self, disk_id: str) -> list[Vm]:
        return [vm for vm in self.vms.values() if any(a.disk == disk_id for a in vm.attachments)]

    def get(self, table: str, obj_id: str, what: str) -> Any:
        obj = getattr(self, table).get(obj_id)
        if obj is None:
            raise Fault(404, "Not Found", f"{what} {obj_id} not found")
        return obj

    def dc_of_cluster(self, cluster_id: str) -> str:
        return self.clusters[cluster_id].dc

    # space, as StorageDomainValidator counts it ------------------------------------------
    def clone_size(self, disk: Disk, target: Domain) -> int:
        """Bytes a copy of ``disk`` needs on ``target``: getTotalSizeForClonedDisk
        (StorageDomainValidator.java) over getTotalActualSizeOfDisk (ImagesHandler.java): the
        data only for a sparse disk on file storage or a qcow2 one on block storage, else the
        full size; qcow2 then gets QCOW_OVERHEAD_FACTOR on top."""
        size = float(disk.size)
        if (target.file_based and disk.sparse) or (target.block_based and disk.format == "cow"):
            size = float(min(disk.size, disk.used))
        if disk.format == "cow":
            size = math.ceil(QCOW_OVERHEAD * size)
        return int(size)

    def check_room(self, target: Domain, need: int, verb: str, what: str = "Virtual Disk") -> None:
        """isDomainWithinThresholds, then validateRequiredSpace (StorageDomainValidator.java);
        vendor-managed block storage is not checked (isVendorManagedBlock)."""
        if target.storage_type == "managed_block_storage":
            return
        avail = self.available(target.id)
        if avail // GIB < target.critical_space or avail < need:
            raise conflict(f"Cannot {verb} {what}. Low disk space on Storage Domain {target.name}.")

    # jobs --------------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> None:
        """Finish the jobs whose time has come; restart HA VMs whose turn has come."""
        now = time.time() if now is None else now
        for job in sorted(self.jobs.values(), key=lambda j: j.deadline):
            if job.status == "started" and not job.held and job.deadline <= now:
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
                self.ha_restart_now(vid)

    def ha_restart_now(self, vm_id: str) -> None:  # pragma: no cover - the VM mixin defines it
        raise NotImplementedError

    def start_job(
        self,
        kind: str,
        corr: str | None,
        description: str,
        *,
        on_finish: Callable[[], None] | None = None,
        on_fail: Callable[[], None] | None = None,
        instant: bool = False,
        audit: Audit | None = None,
        vm: str | None = None,
        host: str | None = None,
        sd: str | None = None,
    ) -> Job:
        """The job of a command the engine accepted, and the audit-log entry it writes as it
        executes it (``audit``: its type and values; ``vm``, ``host``, ``sd``: the objects the
        entry names), both with the caller's correlation id."""
        now = time.time()
        duration = 0.0 if instant else self.op_seconds + float(self.faults["slow_jobs"])
        job = Job(
            id=str(uuid.uuid4()),
            correlation_id=corr,
            description=description,
            start=now,
            deadline=now + duration,
            fail=(not instant) and self._should_fail(kind),
            on_finish=on_finish,
            on_fail=on_fail,
            held=self.hold and not instant,
        )
        self.jobs[job.id] = job
        if audit is not None:
            self.log_event(audit, corr, vm=vm, host=host, sd=sd, now=now)
        if instant:
            self.tick(now)
        return job

    def log_event(
        self,
        audit: Audit,
        corr: str | None,
        *,
        vm: str | None = None,
        host: str | None = None,
        sd: str | None = None,
        now: float | None = None,
    ) -> Event:
        code, text = render(audit, self.audit_user)
        ev = Event(
            index=len(self.events) + 1,
            code=code,
            description=text,
            time=time.time() if now is None else now,
            correlation_id=corr,
            vm=vm,
            host=host,
            storage_domain=sd,
        )
        self.events.append(ev)
        return ev

    def release_jobs(self) -> None:
        """Stop holding jobs; the held ones end now (as their kind would: finished or failed)."""
        self.hold = False
        now = time.time()
        for job in self.jobs.values():
            if job.held:
                job.held = False
                job.deadline = min(job.deadline, now)
        self.tick(now)

    def _should_fail(self, kind: str) -> bool:
        f = self.faults
        if f["fail_next"].get(kind, 0) > 0:
            f["fail_next"][kind] -= 1
            return True
        return kind in f["fail_kinds"]

    def jobs_for(self, corr: str) -> list[Job]:
        return [j for j in self.jobs.values() if j.correlation_id == corr]

    def reset_faults(self) -> None:
        self.faults = {"error_rate": 0.0, "slow": 0.0, "slow_jobs": 0.0, "fail_kinds": set(), "fail_next": Counter()}

    # test helpers -------------------------------------------------------------------------
    def names(self, table: str) -> Iterable[str]:
        return [o.name for o in getattr(self, table).values()]
