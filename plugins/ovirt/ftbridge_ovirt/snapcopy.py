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
from collections.abc import Callable, Collection, Mapping
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


def _snapshot(e: Engine, vm: str, set_id: str) -> Any:
    want = N.snapshot_description(set_id)
    return next((s for s in e.snapshots(vm) if s.description == want), None)


def _clone(e: Engine, set_id: str) -> Any:
    name = N.clone_vm_name(set_id)
    return next((v for v in e.vms(search=f"name={name}") if v.name == name), None)


def advance(
    e: Engine, job: CopyJob, copies: Callable[[], list[tuple[Any, Any]]], *, failed: str = ""
) -> OperationStatus:
    """Look at where the copy stands, take the next step, and say so.

    ``copies`` lists the set's copy disks; ``failed`` is the message of an engine job of this
    operation that failed: before the copies are whole the copy is abandoned (:func:`abandon`);
    after, only the snapshot's removal can have failed, and the copies are kept.
    """
    snap = _snapshot(e, job.vm, job.set_id)
    clone = _clone(e, job.set_id)
    have = copies()
    whole = _whole(have, job.disks)
    if failed and (ended := _failed(e, job.vm, job.set_id, job.corr, copies, snap, clone, whole, failed)):
        return ended
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
            if _clone(e, job.set_id) is None:  # refused (room, a domain down), not raced by another poller
                abandon(e, job.vm, job.set_id, job.corr, copies)
                return OperationStatus(OpState.FAILED, 1.0, exc.message, retryable=exc.retryable)
        return OperationStatus(OpState.RUNNING, 0.3, "cloning the snapshot's disks onto the target domains")
    if whole:
        _tolerate(lambda: e.remove_snapshot(job.vm, snap.id, job.corr))
        return OperationStatus(OpState.RUNNING, 0.9, "removing the snapshot")
    return OperationStatus(OpState.RUNNING, 0.6, "waiting for the copies")


def _whole(have: list[tuple[Any, Any]], disks: Collection[str]) -> bool:
    """Do the copies cover exactly ``disks``, each made (ok) and floating (no VM holds it)?"""
    return {p.disk for p, _ in have} == set(disks) and all(value(d.status) == "ok" and not d.vms for _, d in have)


def _failed(
    e: Engine,
    vm: str,
    set_id: str,
    corr: str,
    copies: Callable[[], list[tuple[Any, Any]]],
    snap: Any,
    clone: Any,
    whole: bool,
    failed: str,
) -> OperationStatus | None:
    """How copy set ``set_id`` ends when an engine job of its operation failed (``failed``, its
    message): before its copies are whole (or while its transient VM stands) it is abandoned;
    after, only its snapshot's removal can have failed, and the copies are kept. None: neither
    (no snapshot left to name), the caller's steps decide."""
    if not (whole and clone is None):
        abandon(e, vm, set_id, corr, copies)
        return OperationStatus(OpState.FAILED, 1.0, failed, retryable=True)
    if snap is not None and value(snap.snapshot_status) == "ok":
        return OperationStatus(
            OpState.FAILED,
            1.0,
            f"copy set {set_id} is made, but removing its snapshot '{snap.description}' failed ({failed}): "
            "remove that snapshot in the engine",
            result={"secondary_id": set_id},
        )
    return None


def abandon(e: Engine, vm: str, set_id: str, corr: str, copies: Callable[[], list[tuple[Any, Any]]]) -> None:
    """Leave no half secondary of copy set ``set_id`` of ``vm``: drop the transient VM with its
    disks, the snapshot, the copies (the engine's calls under ``corr``)."""
    clone = _clone(e, set_id)
    if clone is not None and value(clone.status) == "down":
        _tolerate(lambda: e.remove_vm(clone.id, corr, detach_only=False))
    snap = _snapshot(e, vm, set_id)
    if snap is not None and value(snap.snapshot_status) == "ok":
        _tolerate(lambda: e.remove_snapshot(vm, snap.id, corr))
    for _, d in copies():
        if value(d.status) != "locked" and not d.vms:
            _tolerate(functools.partial(e.remove_disk, d.id, corr))


def leftovers(e: Engine, vm: str) -> dict[str, tuple[Any, Any]]:
    """copy set -> (its snapshot, its transient VM), either None: what the engine shows of
    ftbridge's copy machinery on ``vm`` (snapshots by description, clones by name and the VM
    their description names)."""
    out: dict[str, tuple[Any, Any]] = {}
    for s in e.snapshots(vm):
        set_id = N.parse_snapshot_description(s.description)
        if set_id is not None:
            out[set_id] = (s, None)
    for v in e.vms(search=N.clone_vm_search()):
        parsed = N.parse_clone_description(v.description)
        if parsed is not None and parsed[0] == vm and v.name == N.clone_vm_name(parsed[1]):
            out[parsed[1]] = (out.get(parsed[1], (None, None))[0], v)
    return out


def tidy(
    e: Engine,
    vm: str,
    corr: str,
    disks: Collection[str],
    copies: Callable[[str], list[tuple[Any, Any]]],
    *,
    failed: str = "",
) -> OperationStatus | None:
    """Settle what copies whose handle was lost left on ``vm``, from what the engine shows; None
    when nothing is left.

    The lost handle held the copy's target domains (:class:`CopyJob`), so the one step that
    needs them, cloning the snapshot (2), is not taken: a snapshot with no clone and no whole
    set of copies is rolled back (:func:`abandon`). The steps that need nothing more are
    finished: a transient VM that is Down is removed with ``detach_only`` (3: its disks, already
    under the set's copy aliases, are the copies), and the snapshot of a set whose copies are
    whole (``disks``, the VM's copyable disks, each ok and floating) is removed (4). A snapshot
    not ``ok`` (being taken or merged) or a transient VM not Down (being made) is waited for.
    ``failed`` (an engine job of ``corr`` failed) settles as :func:`advance` does: a whole set
    keeps its copies and names the snapshot to remove by hand, anything else is abandoned.
    """
    found = leftovers(e, vm)
    # A snapshot is LOCKED while it is taken or removed, and OK again when its removal fails
    # (ovirt-engine snapshots/RemoveSnapshotCommand.java: updateStatus LOCKED, then OK on
    # failure), so anything but ok is the engine still at work; the transient VM is Down once
    # cloned (AddVmFromSnapshotCommand) and only then removed (RemoveVmCommand; with detach_only
    # its disks stay: canRemoveVmWithDetachDisks), as :func:`advance` does.
    for snap, clone in found.values():
        if clone is not None and value(clone.status) != "down":
            return OperationStatus(OpState.RUNNING, 0.5, f"the engine is making the transient VM {clone.name}")
        if snap is not None and value(snap.snapshot_status) != "ok":
            return OperationStatus(OpState.RUNNING, 0.5, f"the engine takes or merges snapshot '{snap.description}'")
    for set_id, (snap, clone) in sorted(found.items()):
        whole = _whole(copies(set_id), disks)
        set_copies = functools.partial(copies, set_id)
        if failed and (ended := _failed(e, vm, set_id, corr, set_copies, snap, clone, whole, failed)):
            return ended
        if clone is not None:
            _tolerate(functools.partial(e.remove_vm, clone.id, corr, detach_only=True))
            return OperationStatus(OpState.RUNNING, 0.8, f"keeping the disks of {clone.name} as copy set {set_id}")
        if whole:
            _tolerate(functools.partial(e.remove_snapshot, vm, snap.id, corr))
            return OperationStatus(OpState.RUNNING, 0.9, f"removing snapshot '{snap.description}'")
        abandon(e, vm, set_id, corr, set_copies)
        return OperationStatus(
            OpState.RUNNING, 0.5, f"rolling back copy set {set_id}: its snapshot was never cloned whole"
        )
    return None


def _tolerate(step: Callable[[], object]) -> None:
    """A step another poller already took (409 while in progress, 404 once done) is no failure."""
    try:
        step()
    except (Conflict, NotFound):
        pass
    except FtbridgeError as exc:
        if not exc.retryable:
            raise
