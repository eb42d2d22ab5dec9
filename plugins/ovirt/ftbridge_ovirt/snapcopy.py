"""A point-in-time copy of a running VM's disks, the way the engine allows one.

The engine refuses to copy (or cold-move) a disk plugged into a VM that is not Down
(ovirt-engine MoveOrCopyDiskCommand.checkCanBeMoveInVm -> DiskValidator.isDiskPluggedToAnyNonDownVm:
"The disk ... is plugged to non-Down VMs"). What it does allow on a running VM:

1. a live snapshot without memory (CreateSnapshotForVmCommand), of the disks to copy; the
   engine freezes the guest's file systems through the guest agent when it can, so the copy is
   file-system consistent with a guest agent and crash-consistent without one;
2. a new VM cloned from that snapshot (AddVmFromSnapshotCommand, ``POST /vms`` with the
   snapshot), its disks placed on the target domains under ftbridge's copy aliases: collapsed,
   independent copies of the disks as they were at the snapshot;
3. the transient VM removed with ``detach_only``, which leaves its disks floating: the copies;
4. the snapshot removed (a live merge of what the guest wrote meanwhile).

Each step starts from what the engine shows, not from memory, so :func:`advance` resumes after a
crash or when two pollers meet: the snapshot is found by its description, the transient VM by
its name, the copies by their aliases (:mod:`.naming`). Cost: a read of the disks' data and a
write of it on the target (plus the qcow2 overhead the engine reserves), a guest freeze of a
moment while the snapshot is taken, and a merge of the writes made while the copy ran.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ftbridge.drivers import OperationStatus, OpState
from ftbridge.errors import Conflict, FtbridgeError, NotFound
from ftbridge_ovirt import naming as N
from ftbridge_ovirt.client import Engine, value


@dataclass(frozen=True, slots=True)
class CopyJob:
    """What one snapshot copy needs to find its pieces again (all of it sits in the handle)."""

    vm: str
    set_id: str
    cluster: str
    disks: Mapping[str, str]  # primary disk id -> target domain id
    corr: str


def start(e: Engine, job: CopyJob) -> None:
    """Step 1: the live snapshot of exactly the disks to copy."""
    e.add_snapshot(job.vm, N.snapshot_description(job.set_id), sorted(job.disks), job.corr)


def _snapshot(e: Engine, job: CopyJob) -> Any:
    want = N.snapshot_description(job.set_id)
    return next((s for s in e.snapshots(job.vm) if s.description == want), None)


def _clone(e: Engine, job: CopyJob) -> Any:
    name = N.clone_vm_name(job.set_id)
    return next((v for v in e.vms(search=f"name={name}") if v.name == name), None)


def advance(
    e: Engine, job: CopyJob, copies: Callable[[], list[tuple[Any, Any]]], *, failed: str = ""
) -> OperationStatus:
    """Look at where the copy stands, take the next step, and say so.

    ``copies`` lists the set's copy disks; ``failed`` is the message of an engine job of this
    operation that failed: before the copies are whole the copy is abandoned (:func:`abandon`);
    after, only the snapshot's removal can have failed, and the copies are kept.
    """
    snap = _snapshot(e, job)
    clone = _clone(e, job)
    have = copies()
    whole = {p.disk for p, _ in have} == set(job.disks) and all(value(d.status) == "ok" and not d.vms for _, d in have)
    if failed and not (whole and clone is None):
        abandon(e, job, copies)
        return OperationStatus(OpState.FAILED, 1.0, failed, retryable=True)
    if failed and snap is not None and value(snap.snapshot_status) == "ok":
        return OperationStatus(
            OpState.FAILED,
            1.0,
            f"copy set {job.set_id} is made, but removing its snapshot '{snap.description}' failed ({failed}): "
            "remove that snapshot in the engine",
            result={"secondary_id": job.set_id},
        )
    if clone is not None:
        status = value(clone.status)
        if status == "down":
            _tolerate(lambda: e.remove_vm(clone.id, job.corr, detach_only=True))
            return OperationStatus(OpState.RUNNING, 0.8, "keeping the cloned disks as the copies")
        return OperationStatus(OpState.RUNNING, 0.5, "the engine is cloning the snapshot's disks")
    if snap is None:
        if whole:
            return OperationStatus(OpState.SUCCEEDED, 1.0, result={"secondary_id": job.set_id})
        if not have:
            return OperationStatus(
                OpState.FAILED,
                1.0,
                f"the snapshot of copy set {job.set_id} is gone and no copy was made",
                retryable=True,
            )
        return OperationStatus(
            OpState.FAILED,
            1.0,
            f"copy set {job.set_id} is incomplete and its snapshot is gone: unprotect it and protect again",
            retryable=True,
        )
    if value(snap.snapshot_status) != "ok":
        return OperationStatus(
            OpState.RUNNING, 0.95 if whole else 0.1, "merging the snapshot" if whole else "taking the live snapshot"
        )
    if not have:
        aliases = {d: (sd, str(N.CopyAlias(vm=job.vm, disk=d, set=job.set_id))) for d, sd in job.disks.items()}
        try:
            e.clone_vm(
                name=N.clone_vm_name(job.set_id),
                description=N.clone_description(job.vm, job.set_id),
                cluster_id=job.cluster,
                snapshot_id=snap.id,
                disks=aliases,
                corr=job.corr,
            )
        except Conflict as exc:
            if _clone(e, job) is None:  # refused (room, a domain down), not raced by another poller
                abandon(e, job, copies)
                return OperationStatus(OpState.FAILED, 1.0, exc.message, retryable=exc.retryable)
        return OperationStatus(OpState.RUNNING, 0.3, "cloning the snapshot's disks onto the target domains")
    if whole:
        _tolerate(lambda: e.remove_snapshot(job.vm, snap.id, job.corr))
        return OperationStatus(OpState.RUNNING, 0.9, "removing the snapshot")
    return OperationStatus(OpState.RUNNING, 0.6, "waiting for the copies")


def abandon(e: Engine, job: CopyJob, copies: Callable[[], list[tuple[Any, Any]]]) -> None:
    """Leave no half secondary: drop the transient VM with its disks, the snapshot, the copies."""
    clone = _clone(e, job)
    if clone is not None and value(clone.status) == "down":
        _tolerate(lambda: e.remove_vm(clone.id, job.corr, detach_only=False))
    snap = _snapshot(e, job)
    if snap is not None and value(snap.snapshot_status) == "ok":
        _tolerate(lambda: e.remove_snapshot(job.vm, snap.id, job.corr))
    for _, d in copies():
        if value(d.status) != "locked" and not d.vms:
            _tolerate(functools.partial(e.remove_disk, d.id, job.corr))


def _tolerate(step: Callable[[], object]) -> None:
    """A step another poller already took (409 while in progress, 404 once done) is no failure."""
    try:
        step()
    except (Conflict, NotFound):
        pass
    except FtbridgeError as exc:
        if not exc.retryable:
            raise
