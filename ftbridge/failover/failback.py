"""After a failover: move VMs back (failback) and give them secondaries again (reprotect).

Both produce ordinary plan documents and run them through :func:`ftbridge.apply.apply_plan`,
so they are journaled, locked and resumable like any apply:

* **failback** is a planned migration: each VM a failover promoted goes back to the datastores
  (and host) recorded in its step's ``original``, with ``move_vm``/``move_disk`` actions, once
  those are healthy again; VMs whose original place is still down are listed, not moved;
* **reprotect** reuses the planner, keeping only its ``protect`` actions (and those whose
  prerequisites are protects too): a failover removes no primary, it only leaves VMs without
  the secondary they were promoted from.
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


def failback_document(
    plan: FailoverPlan, inv: Inventory, config: Config
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """move_vm (to the original config datastore and host) then move_disk for disks that lived
    elsewhere, per VM whose original place is healthy again."""
    from ftbridge import __version__

    actions: list[dict[str, Any]] = []
    waiting: list[dict[str, str]] = []
    for s in plan.steps:
        vm = _current(inv, s)
        orig_disks: dict[str, str] = dict(s.original.get("disks") or {})
        if vm is None:
            waiting.append({"vm": s.vm_name, "endpoint": s.endpoint, "reason": "the VM is not found"})
            continue
        if not orig_disks:
            waiting.append({"vm": s.vm_name, "endpoint": s.endpoint, "reason": "the failover plan has no original"})
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
            waiting.append({"vm": s.vm_name, "endpoint": s.endpoint, "reason": f"datastore {name} is not back"})
            continue
        h = inv.host(s.endpoint, host) if host else None
        if host and (h is None or h.state is not HostState.UP):
            host = None  # storage goes back now; the VM stays on its survivor until its host is back
        if h is not None and not all(
            host in d.hosts for x in {target, *orig_disks.values()} if (d := inv.datastore(s.endpoint, x))
        ):
            host = None
        where = {d.id: d.datastore for d in vm.disks}
        movable = [d for d in vm.disks if d.movable]
        at_home = where == {k: v for k, v in orig_disks.items() if k in where} and vm.config_datastore == target
        if at_home and (host is None or vm.host == host):
            continue
        sizes = {d.id: d.size for d in vm.disks}
        mv_id = f"a{len(actions) + 1}"
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
            actions.append(
                {
                    "id": f"a{len(actions) + 1}",
                    "kind": "move_disk",
                    "endpoint": vm.endpoint,
                    "vm": vm.id,
                    "vm_name": vm.name,
                    "disk": dk.id,
                    "from": target,
                    "to": home,
                    "bytes": sizes[dk.id],
                    "datastores": sorted({target, home}),
                    "depends_on": [mv_id],
                    "closes": [],
                    "reason": f"fail back disk {dk.id} of {vm.name} to its original datastore",
                }
            )
    doc = document(
        config,
        actions,
        fingerprint=inv.fingerprint(),
        estate=estate_of(inv, {a["endpoint"] for a in actions}),
        created_at=plan.created_at,
        generator=f"ftbridge {__version__} failback ({plan.scope})",
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
    result = apply_plan(config, path, yes=yes, resume=resume, live_checks=True, on_event=on_event)
    return AfterResult(result, waiting)


def reprotect_document(inv: Inventory, config: Config) -> tuple[dict[str, Any], int]:
    """The planner's plan, restricted to protect actions; returns it and how many it left out."""
    from ftbridge.planning import make_plan

    full = make_plan(inv, config)
    keep: list[dict[str, Any]] = []
    kept: set[str] = set()
    for a in full["actions"]:
        if a["kind"] == "protect" and all(d in kept for d in a["depends_on"]):
            keep.append(a)
            kept.add(a["id"])
    dropped = sum(1 for a in full["actions"] if a["kind"] == "protect") - len(keep)
    doc = dict(full)
    doc["actions"] = keep
    summary = dict(full["summary"])
    summary["actions"] = len(keep)
    summary["by_kind"] = {k: (len(keep) if k == "protect" else 0) for k in summary["by_kind"]}
    summary["bytes_moved"] = sum(a["bytes"] for a in keep)
    summary["closed"] = len({c for a in keep for c in a["closes"]})
    doc["summary"] = summary
    doc["generator"] = str(full["generator"]) + " reprotect"
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
    result = apply_plan(config, path, yes=yes, resume=resume, on_event=on_event)
    return AfterResult(result, [], doc)
