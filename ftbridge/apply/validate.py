"""Checking a plan against the live inventory before anything runs.

:func:`revalidate` walks the plan in order over a copy of the live inventory, applying each
action's effect as it goes, so a later action is checked against the state the earlier ones
leave: every VM, disk, datastore and host the plan names must exist, be where the plan
expects (or already where the action puts it), and targets must have the room. Any problem
refuses the whole plan: a partly valid plan is a plan for another estate.

:func:`preview` says, for a dry run, which actions are already done.
"""

from __future__ import annotations

from dataclasses import replace

from ftbridge.inventory import Inventory
from ftbridge.model import VM, PowerState, Secondary, SecondaryDisk, SecondaryState
from ftbridge.planning.explain import size
from ftbridge.planning.planfile import (
    CleanupTestAction,
    FenceAction,
    MoveDiskAction,
    MoveVMAction,
    PlanAction,
    PlanDoc,
    PromoteAction,
    ProtectAction,
    TestFailoverAction,
    UnprotectAction,
)


def _done(a: PlanAction, vm: VM) -> bool:
    where = {d.id: d.datastore for d in vm.disks}
    if isinstance(a, FenceAction):
        return vm.power is PowerState.OFF
    if isinstance(a, PromoteAction):
        return bool(a.secondary_disks) and all(where.get(k) == x for k, x in a.secondary_disks.items() if k in where)
    if isinstance(a, (TestFailoverAction, CleanupTestAction)):
        return False
    if isinstance(a, MoveDiskAction):
        return where.get(a.disk) == a.to
    if isinstance(a, MoveVMAction):
        return all(where.get(x) == a.to for x in a.disks) and (a.config_from is None or vm.config_datastore == a.to)
    if isinstance(a, ProtectAction):
        return any(_matches(a, s) and s.state is SecondaryState.IN_SYNC for s in vm.secondaries)
    assert isinstance(a, UnprotectAction)
    return all(s.id != a.secondary for s in vm.secondaries)


def _matches(a: ProtectAction, s: Secondary) -> bool:
    spec = a.spec
    return (
        s.id not in a.existing
        and s.mechanism == spec.mechanism
        and {d.disk: d.datastore for d in s.disks} == dict(spec.disks)
        and (spec.host is None or s.host == spec.host)
    )


def preview(doc: PlanDoc, inv: Inventory) -> list[tuple[PlanAction, str]]:
    """Each action with ``"done"`` (its postcondition holds now) or ``"to run"``."""
    out = []
    for a in doc.actions:
        vm = inv.vm(a.endpoint, a.vm)
        out.append((a, "done" if vm is not None and _done(a, vm) else "to run"))
    return out


def revalidate(doc: PlanDoc, inv: Inventory) -> list[str]:
    """Every reason the plan cannot run on this inventory; empty: it can."""
    problems: list[str] = []
    vms: dict[tuple[str, str], VM] = {}
    free = {(d.endpoint, d.id): d.free for d in inv.datastores}

    def ds_ok(a: PlanAction, ds_id: str | None, what: str) -> bool:
        if ds_id is None:
            return True
        d = inv.datastore(a.endpoint, ds_id)
        if d is None:
            problems.append(f"{a.id}: {what} datastore {ds_id} of {a.vm_name} no longer exists")
            return False
        if not d.accessible:
            problems.append(f"{a.id}: {what} datastore {d.name} is not accessible")
            return False
        return True

    def take(a: PlanAction, ds_id: str, nbytes: int) -> None:
        key = (a.endpoint, ds_id)
        if key in free:
            free[key] -= nbytes
            if free[key] < 0:
                d = inv.datastore(a.endpoint, ds_id)
                problems.append(f"{a.id}: {d.name if d else ds_id} lacks {size(-free[key])} for {a.vm_name}")
                free[key] = 0

    for a in doc.actions:
        key = (a.endpoint, a.vm)
        vm = vms.get(key) or inv.vm(a.endpoint, a.vm)
        if vm is None:
            problems.append(f"{a.id}: VM {a.vm_name} ({a.endpoint}/{a.vm}) no longer exists")
            continue
        if _done(a, vm):
            vms[key] = vm
            continue
        where = {d.id: d.datastore for d in vm.disks}
        sizes = {d.id: d.size for d in vm.disks}
        if isinstance(a, MoveDiskAction):
            if where.get(a.disk) != a.source:
                problems.append(
                    f"{a.id}: disk {a.disk} of {a.vm_name} is on {where.get(a.disk)}, the plan expects {a.source}"
                )
                continue
            if ds_ok(a, a.to, "target"):
                take(a, a.to, sizes[a.disk])
                free[(a.endpoint, a.source)] = free.get((a.endpoint, a.source), 0) + sizes[a.disk]
            vm = replace(vm, disks=tuple(replace(d, datastore=a.to) if d.id == a.disk else d for d in vm.disks))
        elif isinstance(a, MoveVMAction):
            wrong = [x for x in a.disks if where.get(x) not in (*a.source, a.to)]
            if wrong:
                problems.append(f"{a.id}: disk {wrong[0]} of {a.vm_name} is not where the plan expects")
                continue
            if ds_ok(a, a.to, "target"):
                take(a, a.to, sum(sizes.get(x, 0) for x in a.disks if where.get(x) != a.to))
            vm = replace(
                vm,
                disks=tuple(replace(d, datastore=a.to) if d.id in a.disks else d for d in vm.disks),
                config_datastore=a.to if a.config_from is not None else vm.config_datastore,
            )
        elif isinstance(a, ProtectAction):
            if where != dict(a.primary):
                problems.append(
                    f"{a.id}: the primary of {a.vm_name} is not where the plan placed its secondary against"
                )
                continue
            if set(a.spec.disks) != set(where):
                problems.append(f"{a.id}: {a.vm_name}'s disks changed since the plan was made")
                continue
            ok = all(
                ds_ok(a, x, "secondary")
                for x in {*a.spec.disks.values(), a.spec.config_datastore, a.spec.metadata_datastore}
                if x
            )
            h = inv.host(a.endpoint, a.spec.host) if a.spec.host else None
            if a.spec.host and (h is None or h.state.value != "up"):
                problems.append(f"{a.id}: host {h.name if h else a.spec.host} for {a.vm_name}'s secondary is not up")
            if ok:
                for did, x in a.spec.disks.items():
                    take(a, x, sizes.get(did, 0))
            vm = replace(
                vm,
                secondaries=(
                    *vm.secondaries,
                    Secondary(
                        id="+" + a.id,
                        mechanism=a.spec.mechanism,
                        host=a.spec.host,
                        state=SecondaryState.IN_SYNC,
                        disks=tuple(SecondaryDisk(disk=k, datastore=x) for k, x in a.spec.disks.items()),
                    ),
                ),
            )
        else:
            assert isinstance(a, UnprotectAction)
            vm = replace(vm, secondaries=tuple(s for s in vm.secondaries if s.id != a.secondary))
        vms[key] = vm
    return problems
