"""Checking a plan against the live inventory before anything runs.

:func:`revalidate` walks the plan in order over a copy of the live inventory, applying each
action's effect as it goes, so a later action is checked against the state the earlier ones
leave: every VM, disk, datastore and host the plan names must exist, be where the plan
expects (or already where the action puts it), and targets must have the room. Any problem
refuses the whole plan: a partly valid plan is a plan for another estate.

:func:`preview` says, for a dry run, which actions are already done, and :func:`effects_present`
whether a whole plan's effects show in the estate (what "nothing to do" means: the estate says
so, not a journal entry). New secondaries are checked with the model's own separation rule
(:meth:`ftbridge.model.Location.shared_failure`) against the live labels.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import replace

from ftbridge.config import Config
from ftbridge.errors import PlanError
from ftbridge.inventory import Inventory
from ftbridge.model import VM, Disk, Host, HostState, PowerState, Secondary, SecondaryDisk, SecondaryState
from ftbridge.planning.explain import size
from ftbridge.planning.planfile import (
    MADE_BY,
    CleanupTestAction,
    FenceAction,
    MoveDiskAction,
    MoveVMAction,
    PlanAction,
    PlanDoc,
    PromoteAction,
    ProtectAction,
    RestartAction,
    TestFailoverAction,
    UnprotectAction,
)

#: what ``ftbridge apply`` runs: documents made by the planner (and failover reprotect's subset)
ORDINARY: tuple[str, ...] = ("plan", "reprotect")

#: the command that runs each other kind of document, for the refusal's hint
_RUN_WITH = {
    "failover": "ftbridge failover run",
    "failover-test": "ftbridge failover test",
    "failback": "ftbridge failover failback",
}


def check_origin(doc: PlanDoc, accept: Collection[str], source: str) -> None:
    """Refuse a document this caller does not run, or one holding kinds its producer never
    writes. Judged on the actions themselves: an id is a digest anyone can recompute."""
    made_by = doc.made_by
    kinds = MADE_BY.get(made_by)
    if kinds is None:
        raise PlanError(f"{source}: made_by {made_by!r} is unknown (known: {', '.join(MADE_BY)}); nothing was changed")
    if made_by not in accept:
        hint = _RUN_WITH.get(made_by)
        raise PlanError(
            f"{source}: a {made_by} document, not one this command runs ({', '.join(accept)}); nothing was changed",
            hint=f"it is run by '{hint}'" if hint else None,
        )
    bad = next((a for a in doc.actions if a.kind not in kinds), None)
    if bad is not None:
        raise PlanError(
            f"{source}: action {bad.id}: a {made_by} document cannot hold a {bad.kind} action "
            f"(it holds {', '.join(sorted(kinds))}); nothing was changed"
        )


def fenced(a: FenceAction, vm: VM, host_of: Callable[[str, str | None], Host | None]) -> bool:
    """A fence's postcondition: the primary cannot run on the host it was fenced on (it is off
    there, the host is down, or the VM already runs somewhere else: never fence it again)."""
    if a.host is not None and vm.host != a.host:
        return True
    return not vm.may_run(host_of(vm.endpoint, vm.host))


def _done(a: PlanAction, vm: VM, inv: Inventory) -> bool:
    where = {d.id: d.datastore for d in vm.disks}
    if isinstance(a, FenceAction):
        return fenced(a, vm, inv.host)
    if isinstance(a, RestartAction):
        host = inv.host(vm.endpoint, vm.host)
        return vm.power is PowerState.ON and host is not None and host.state is HostState.UP
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
        out.append((a, "done" if vm is not None and _done(a, vm, inv) else "to run"))
    return out


def effects_present(doc: PlanDoc, inv: Inventory) -> bool:
    """Does the estate show every action's effect (a disk on its target, a secondary in sync
    where the plan put it, a removed one gone)? Failover and test kinds never count as shown."""
    for a in doc.actions:
        vm = inv.vm(a.endpoint, a.vm)
        if vm is None or isinstance(a, (TestFailoverAction, CleanupTestAction)) or not _done(a, vm, inv):
            return False
    return True


def revalidate(doc: PlanDoc, inv: Inventory, config: Config | None = None) -> list[str]:
    """Every reason the plan cannot run on this inventory; empty: it can. With ``config``, a
    new secondary must also still be separated from its primary at its policy's level."""
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

    order = {a.id: n for n, a in enumerate(doc.actions)}
    for a in doc.actions:
        if isinstance(a, UnprotectAction) and a.window:
            # a window turns the only copy off on purpose: only with the protect that ends it
            r = doc.action(a.restore) if a.restore in order else None
            if (
                not isinstance(r, ProtectAction)
                or (r.endpoint, r.vm) != (a.endpoint, a.vm)
                or order[r.id] < order[a.id]
            ):
                problems.append(
                    f"{a.id}: turns {a.mechanism} off for {a.vm_name} with no later protect action of "
                    "it to restore it (restore)"
                )
    for a in doc.actions:
        key = (a.endpoint, a.vm)
        vm = vms.get(key) or inv.vm(a.endpoint, a.vm)
        if vm is None:
            problems.append(f"{a.id}: VM {a.vm_name} ({a.endpoint}/{a.vm}) no longer exists")
            continue
        if _done(a, vm, inv):
            vms[key] = vm
            continue
        where = {d.id: d.datastore for d in vm.disks}
        disks = {d.id: d for d in vm.disks}

        def on(ds_id: str, disk_id: str, a: PlanAction = a, disks: dict[str, Disk] = disks) -> int:
            """Bytes the disk takes on that datastore (thin stays thin where it can)."""
            d, t = disks.get(disk_id), inv.datastore(a.endpoint, ds_id)
            return 0 if d is None else d.space_on(t) if t is not None else d.size

        if isinstance(a, MoveDiskAction):
            if where.get(a.disk) != a.source:
                problems.append(
                    f"{a.id}: disk {a.disk} of {a.vm_name} is on {where.get(a.disk)}, the plan expects {a.source}"
                )
                continue
            if ds_ok(a, a.to, "target"):
                take(a, a.to, on(a.to, a.disk))
                free[(a.endpoint, a.source)] = free.get((a.endpoint, a.source), 0) + disks[a.disk].used
            vm = replace(vm, disks=tuple(replace(d, datastore=a.to) if d.id == a.disk else d for d in vm.disks))
        elif isinstance(a, MoveVMAction):
            wrong = [x for x in a.disks if where.get(x) not in (*a.source, a.to)]
            if wrong:
                problems.append(f"{a.id}: disk {wrong[0]} of {a.vm_name} is not where the plan expects")
                continue
            if ds_ok(a, a.to, "target"):
                take(a, a.to, sum(on(a.to, x) for x in a.disks if where.get(x) != a.to))
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
                    take(a, x, on(x, did))
            new = Secondary(
                id="+" + a.id,
                mechanism=a.spec.mechanism,
                host=a.spec.host,
                state=SecondaryState.IN_SYNC,
                config_datastore=a.spec.config_datastore,
                metadata_datastore=a.spec.metadata_datastore,
                disks=tuple(SecondaryDisk(disk=k, datastore=x) for k, x in a.spec.disks.items()),
            )
            policy = config.policy_for(vm) if config is not None else None
            if ok and policy is not None:
                why = inv.primary_location(vm).shared_failure(inv.secondary_location(vm, new), policy.level)
                if why is not None:
                    problems.append(
                        f"{a.id}: {a.vm_name}'s new secondary would not be separated at "
                        f"{policy.separation} level: {why}"
                    )
            vm = replace(vm, secondaries=(*vm.secondaries, new))
        elif isinstance(a, UnprotectAction):
            lost = inv.primary_unreadable(vm)
            if lost is not None:
                problems.append(f"{a.id}: {a.vm_name}'s primary cannot be read ({lost}): its copies stay")
            vm = replace(vm, secondaries=tuple(s for s in vm.secondaries if s.id != a.secondary))
        else:  # check_origin keeps failover kinds out of what is revalidated; never crash on one
            problems.append(f"{a.id}: a {a.kind} action is not something a plan holds")
        vms[key] = vm
    return problems
