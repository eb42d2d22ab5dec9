"""After a failover: move VMs back (failback) and give them secondaries again (reprotect).

Both produce ordinary plan documents and run them through :func:`ftbridge.apply.apply_plan`,
so they are journaled, locked and resumable like any apply:

* **failback** is a planned migration: each VM a failover brought up elsewhere goes back to the
  datastores and host recorded in its step's ``original``, with ``move_vm``/``move_disk``
  actions, once *all* of that place is healthy again (its host up and its datastores
  accessible); a VM whose original place is still down is listed and left alone (exit 1), never
  half moved. What is left to do is read from the estate, so a failback run again does nothing;
* **reprotect** reuses the planner, keeping the actions that give VMs the secondaries their
  policy wants: ``protect``, and the ``unprotect`` of a wrong copy once its replacement exists
  (make before break). A failover removes no primary; it leaves VMs without the secondary they
  were promoted from, or with one that now sits beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftbridge.apply.events import EventSink, ignore
from ftbridge.apply.service import ApplyResult, apply_plan
from ftbridge.config import Config
from ftbridge.failover.plan import FailoverPlan, Step, estate_of
from ftbridge.failover.run import _unfinished_doc, document
from ftbridge.inventory import Inventory
from ftbridge.model import VM, HostState, PowerState
from ftbridge.planning.planfile import content_digest, write_plan

FAILBACK_DIR = "failback"
REPROTECT_DIR = "reprotect"


@dataclass
class AfterResult:
    """An apply's result, plus the VMs left alone and why."""

    apply: ApplyResult | None
    waiting: list[dict[str, str]] = field(default_factory=list)
    doc: dict[str, Any] = field(default_factory=dict)


def _current(inv: Inventory, s: Step) -> VM | None:
    """The VM a step promoted: same id, or (a promotion that changed its id) same name, running."""
    vm = inv.vm(s.endpoint, s.vm)
    if vm is not None and vm.power is PowerState.ON:
        return vm
    named = [v for v in inv.vms if v.endpoint == s.endpoint and v.name == s.vm_name and v.power is PowerState.ON]
    return named[0] if len(named) == 1 else vm


def _move_disk(vm: VM, disk: str, src: str, home: str, size: int, deps: list[str], scope: str) -> dict[str, Any]:
    return {
        "id": f"d{vm.id}-{disk}",  # renumbered once the document is complete
        "kind": "move_disk",
        "endpoint": vm.endpoint,
        "vm": vm.id,
        "vm_name": vm.name,
        "disk": disk,
        "from": src,
        "to": home,
        "bytes": size,
        "datastores": sorted({src, home}),
        "depends_on": deps,
        "closes": [],
        "reason": f"fail back disk {disk} of {vm.name} to its original datastore ({scope})",
    }


def failback_document(
    plan: FailoverPlan, inv: Inventory, config: Config
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """move_vm (to the original config datastore and host) then move_disk for disks that lived
    elsewhere, per VM whose original place is healthy again (on a platform without move_vm: the
    disks one by one)."""
    from ftbridge import __version__
    from ftbridge.planning import capabilities_for, offers

    caps = capabilities_for(inv)

    actions: list[dict[str, Any]] = []
    waiting: list[dict[str, str]] = []
    for s in plan.steps:
        vm = _current(inv, s)
        orig_disks: dict[str, str] = dict(s.original.get("disks") or {})
        if vm is None:
            waiting.append({"vm": s.vm, "vm_name": s.vm_name, "endpoint": s.endpoint, "reason": "the VM is not found"})
            continue
        if not orig_disks:
            waiting.append(
                {
                    "vm": s.vm,
                    "vm_name": s.vm_name,
                    "endpoint": s.endpoint,
                    "reason": "the failover plan has no original",
                }
            )
            continue
        target = s.original.get("config_datastore") or max(
            set(orig_disks.values()), key=list(orig_disks.values()).count
        )
        host = s.original.get("host")
        down = [
            x
            for x in sorted({target, *orig_disks.values()})
            if (d := inv.datastore(s.endpoint, x)) is None or not d.accessible
        ]
        if down:
            name = d.name if (d := inv.datastore(s.endpoint, down[0])) else down[0]
            waiting.append(
                {"vm": s.vm, "vm_name": s.vm_name, "endpoint": s.endpoint, "reason": f"datastore {name} is not back"}
            )
            continue
        h = inv.host(s.endpoint, host) if host else None
        if host and (h is None or h.state is not HostState.UP):
            name = h.name if h else host
            state = h.state.value if h else "missing"
            waiting.append({"vm": s.vm_name, "endpoint": s.endpoint, "reason": f"host {name} is not back ({state})"})
            continue
        if h is not None and not all(
            host in d.hosts for x in {target, *orig_disks.values()} if (d := inv.datastore(s.endpoint, x))
        ):
            waiting.append(
                {"vm": s.vm_name, "endpoint": s.endpoint, "reason": f"host {h.name} no longer mounts its datastores"}
            )
            continue
        where = {d.id: d.datastore for d in vm.disks}
        movable = [d for d in vm.disks if d.movable]
        at_home = where == {k: v for k, v in orig_disks.items() if k in where} and (
            vm.config_datastore is None or vm.config_datastore == target
        )
        if at_home and (host is None or vm.host == host):
            continue
        if vm.config_datastore is None and not offers(caps, vm.endpoint, "move_vm"):
            # its platform keeps the config in the cluster: the disks go home one by one, and the
            # platform (its HA, its balancer, an operator) moves the VM between hosts
            for dk in movable:
                home = orig_disks.get(dk.id)
                if home is None or home == where.get(dk.id):
                    continue
                actions.append(_move_disk(vm, dk.id, where[dk.id], home, dk.size, [], plan.scope))
            if at_home and host is not None and vm.host != host:
                waiting.append(
                    {
                        "vm": s.vm_name,
                        "endpoint": s.endpoint,
                        "reason": f"its files are home; {vm.endpoint} moves VMs between hosts itself (no move_vm): "
                        f"migrate it back to {h.name if h else host} there",
                    }
                )
            continue
        sizes = {d.id: d.size for d in vm.disks}
        mv_id = f"m{vm.id}"
        actions.append(
            {
                "id": mv_id,
                "kind": "move_vm",
                "endpoint": vm.endpoint,
                "vm": vm.id,
                "vm_name": vm.name,
                "disks": [d.id for d in movable],
                "from": sorted(
                    {d.datastore for d in movable} | ({vm.config_datastore} if vm.config_datastore else set())
                ),
                "to": target,
                "config_from": vm.config_datastore,
                "host": host if host != vm.host else None,
                "bytes": sum(d.size for d in movable if d.datastore != target),
                "datastores": sorted({target, *(d.datastore for d in movable)}),
                "depends_on": [],
                "closes": [],
                "reason": f"fail back {vm.name} to where it ran before the failover ({plan.scope})",
            }
        )
        for dk in movable:
            home = orig_disks.get(dk.id)
            if home is None or home == target:
                continue
            actions.append(_move_disk(vm, dk.id, target, home, sizes[dk.id], [mv_id], plan.scope))
    for n, a in enumerate(actions, 1):  # ids in document order
        old = a["id"]
        a["id"] = f"a{n}"
        for b in actions:
            b["depends_on"] = [a["id"] if d == old else d for d in b["depends_on"]]
    doc = document(
        config,
        actions,
        fingerprint=inv.fingerprint(),
        estate=estate_of(inv, {a["endpoint"] for a in actions}),
        created_at=plan.created_at,
        generator=f"ftbridge {__version__} failback ({plan.scope})",
        made_by="failback",
    )
    return doc, waiting


def run_failback(
    config: Config,
    plan: FailoverPlan,
    inv: Inventory | None,
    *,
    yes: bool = False,
    resume: bool = False,
    on_event: EventSink = ignore,
) -> AfterResult:
    """Plan the way back from a fresh inventory and apply it (``resume``: the unfinished one)."""
    path = _unfinished_doc(config, FAILBACK_DIR) if resume else None
    waiting: list[dict[str, str]] = []
    if path is None:
        assert inv is not None
        doc, waiting = failback_document(plan, inv, config)
        path = Path(config.state_dir) / FAILBACK_DIR / f"failback-{doc['plan_id']}.json"
        write_plan(doc, path)
        resume = False
    result = apply_plan(config, path, yes=yes, resume=resume, live_checks=True, accept=("failback",), on_event=on_event)
    return AfterResult(result, waiting)


def reprotect_document(inv: Inventory, config: Config) -> tuple[dict[str, Any], int]:
    """The planner's plan, restricted to what gives VMs their secondaries: protect actions, and
    the removal of a wrong copy once its replacement is made; returns it and how many protect
    actions it left out (they needed a move first: 'ftbridge plan' has those)."""
    from ftbridge.planning import make_plan

    full = make_plan(inv, config)
    keep: list[dict[str, Any]] = []
    kept: set[str] = set()
    for a in full["actions"]:
        replaced = a["kind"] == "unprotect" and (a.get("after") in kept or a.get("window"))
        if (a["kind"] == "protect" or replaced) and all(d in kept for d in a["depends_on"]):
            keep.append(a)
            kept.add(a["id"])
    # a window (one copy off before its replacement) only with the protect that closes it
    keep = [a for a in keep if not (a["kind"] == "unprotect" and a.get("window") and a.get("restore") not in kept)]
    dropped = sum(1 for a in full["actions"] if a["kind"] == "protect") - sum(a["kind"] == "protect" for a in keep)
    doc = dict(full)
    doc["actions"] = keep
    summary = dict(full["summary"])
    summary["actions"] = len(keep)
    summary["by_kind"] = {k: sum(a["kind"] == k for a in keep) for k in summary["by_kind"]}
    summary["bytes_moved"] = sum(a["bytes"] for a in keep)
    summary["closed"] = len({c for a in keep for c in a["closes"]})
    doc["summary"] = summary
    doc["generator"] = str(full["generator"]) + " reprotect"
    doc["made_by"] = "reprotect"
    doc["plan_id"] = content_digest(doc)
    return doc, dropped


def run_reprotect(
    config: Config, inv: Inventory | None, *, yes: bool = False, resume: bool = False, on_event: EventSink = ignore
) -> AfterResult:
    """Re-establish secondaries where policy wants them, through the apply."""
    path = _unfinished_doc(config, REPROTECT_DIR) if resume else None
    doc: dict[str, Any] = {}
    if path is None:
        assert inv is not None
        doc, _ = reprotect_document(inv, config)
        path = Path(config.state_dir) / REPROTECT_DIR / f"reprotect-{doc['plan_id']}.json"
        write_plan(doc, path)
        resume = False
    result = apply_plan(config, path, yes=yes, resume=resume, accept=("reprotect",), on_event=on_event)
    return AfterResult(result, [], doc)
