"""Carrying failover out with the apply machinery: a failover plan becomes a plan document.

There is one executor in ftbridge (:mod:`ftbridge.apply`): journal, lock, resume, limits and
progress come from it. This module only translates:

* a :class:`~ftbridge.failover.plan.FailoverPlan` into ``fence`` and ``promote``/``restart``
  actions in recovery order: each recovery group that brings any VM up is a *stage* (plan
  schema 2, :data:`~ftbridge.planning.planfile.BARRIER_SCHEMA_VERSION`): every promote of a
  group waits for all promotes of the group before it, as a barrier the scheduler keeps, not as
  n x m ``depends_on`` edges (4,000 VMs in two groups were 4 million edges); a promote waits for
  its fence through an edge. Documents written before (schema 1, the edges spelled out) still
  load and run the same;
* a test failover into ``test_failover`` + ``cleanup_test`` pairs (the cleanup waits for the
  test and takes its instance id from the journaled result, so a killed test is cleaned up by
  ``--resume``);

and reads the journal back for what people ask after a failover: how long each VM was down.
The documents are written under the state directory; a failover's is derived from the
failover plan alone, so running the same plan again finds its unfinished run.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ftbridge.apply.events import EventSink, ignore
from ftbridge.apply.journal import DONE_STATES, Journal
from ftbridge.apply.service import ApplyResult, apply_plan
from ftbridge.config import Config
from ftbridge.domains import DomainSelector, Failed
from ftbridge.errors import ConfigError
from ftbridge.failover.plan import Blocked, FailoverPlan, affected_by, estate_of, plan_failover
from ftbridge.failover.recovery import RecoveryPlan
from ftbridge.gcpause import gc_frozen
from ftbridge.inventory import Inventory
from ftbridge.model import VM
from ftbridge.planning.planfile import (
    BARRIER_SCHEMA_VERSION,
    PLAN_KIND,
    PLAN_SCHEMA_VERSION,
    config_digest,
    content_digest,
    estate_id,
    write_plan,
)

FAILOVER_DIR = "failover"
TEST_DIR = "failover-tests"


# -- documents ---------------------------------------------------------------------------------
def document(
    config: Config,
    actions: list[dict[str, Any]],
    *,
    fingerprint: str,
    estate: str,
    created_at: float,
    generator: str,
    made_by: str,
    endpoints: Iterable[str] = (),
    groups: list[str] | None = None,
) -> dict[str, Any]:
    """A plan document the apply accepts, for actions built outside the planner (``made_by``:
    which producer, a key of :data:`ftbridge.planning.planfile.MADE_BY`). With ``groups`` (the
    stages' names, in order; actions name theirs by ``stage``) it is a schema 2 document."""
    names = sorted({a["endpoint"] for a in actions} | set(endpoints))
    by_kind: dict[str, int] = {}
    for a in actions:
        by_kind[a["kind"]] = by_kind.get(a["kind"], 0) + 1
    doc: dict[str, Any] = {
        "schema_version": PLAN_SCHEMA_VERSION if groups is None else BARRIER_SCHEMA_VERSION,
        "kind": PLAN_KIND,
        "plan_id": "",
        "created_at": datetime.fromtimestamp(created_at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "generator": generator,
        "made_by": made_by,
        "inventory": {"fingerprint": fingerprint, "estate_id": estate if names else "", "vms": 0, "datastores": 0},
        "endpoints": [{"name": n, "driver": config.endpoints[n].driver, "mechanisms": []} for n in names],
        "config": {"digest": config_digest(config), "policies": {}},
        "summary": {"actions": len(actions), "by_kind": dict(sorted(by_kind.items())), "bytes_moved": 0},
        "actions": actions,
        "unfixable": [],
        "names": {},
    }
    if groups is not None:
        doc["groups"] = groups
    doc["plan_id"] = content_digest(doc)
    return doc  # checked where it is read: the apply's load_plan (every producer's output is applied in tests)


def _action(n: int, kind: str, endpoint: str, vm: str, vm_name: str, reason: str, **detail: Any) -> dict[str, Any]:
    return {
        "id": f"a{n}",
        "kind": kind,
        "endpoint": endpoint,
        "vm": vm,
        "vm_name": vm_name,
        **detail,
        "bytes": 0,
        "datastores": [],
        "depends_on": [],
        "closes": [],
        "reason": reason,
    }


def failover_document(plan: FailoverPlan, config: Config) -> dict[str, Any]:
    """Fence and promote actions in recovery order (see the module docstring)."""
    from ftbridge import __version__

    actions: list[dict[str, Any]] = []
    groups: list[str] = []  # one stage per recovery group that brings any VM up, in order
    group: int | None = None
    steps = sorted(plan.steps, key=lambda s: (s.group_index, s.order, s.endpoint, s.vm_name))
    for s in steps:
        if s.group_index != group:
            groups.append(s.group)
            group = s.group_index
        deps: list[str] = []
        if s.fence:
            fence = _action(
                len(actions) + 1,
                "fence",
                s.endpoint,
                s.vm,
                s.vm_name,
                f"power off the primary of {s.vm_name} before it comes up elsewhere (no split brain)",
                host=s.original.get("host"),
            )
            actions.append(fence)
            deps.append(fence["id"])
        if s.kind == "restart":
            up = _action(
                len(actions) + 1,
                "restart",
                s.endpoint,
                s.vm,
                s.vm_name,
                f"fail over ({plan.scope}): {s.why}"
                + (" (FORCED while the primary may still run)" if s.forced else ""),
                host=s.host,
                original_host=s.original.get("host"),
                ha_grace=s.ha_grace,
                fenced=s.fence,
                forced=s.forced,
                group=s.group,
                group_index=s.group_index,
                order=s.order,
            )
        else:
            assert s.secondary is not None and s.mechanism is not None
            up = _action(
                len(actions) + 1,
                "promote",
                s.endpoint,
                s.vm,
                s.vm_name,
                f"fail over ({plan.scope}): run {s.vm_name} from its {s.mechanism} secondary {s.secondary}"
                + (" (FORCED while the primary may still run)" if s.forced else ""),
                secondary=s.secondary,
                mechanism=s.mechanism,
                host=s.host,
                target_endpoint=s.target_endpoint,
                secondary_disks=dict(s.secondary_disks),
                secondary_config=s.secondary_config,
                fenced=s.fence,
                forced=s.forced,
                group=s.group,
                group_index=s.group_index,
                order=s.order,
                lag=s.lag,
            )
            up["datastores"] = sorted(
                set(s.secondary_disks.values()) | ({s.secondary_config} if s.secondary_config else set())
            )
        up["depends_on"] = deps
        up["stage"] = len(groups) - 1  # waits for every promote of the stage before (a barrier)
        actions.append(up)
    return document(
        config,
        actions,
        fingerprint=plan.fingerprint,
        estate=plan.estate_id,
        created_at=plan.created_at,
        generator=f"ftbridge {__version__} failover ({plan.scope})",
        made_by="failover",
        endpoints={s.target_endpoint for s in plan.steps if s.target_endpoint},
        groups=groups,
    )


def test_document(plan: FailoverPlan, config: Config, *, keep: bool = False) -> dict[str, Any]:
    """test_failover + cleanup_test per VM; unique per invocation (a test is run again and again).
    ``keep``: no cleanup_test, the test instances stay up for inspection (``--keep``)."""
    from ftbridge import __version__

    actions: list[dict[str, Any]] = []
    for s in plan.steps:
        t = _action(
            len(actions) + 1,
            "test_failover",
            s.endpoint,
            s.vm,
            s.vm_name,
            f"start {s.vm_name} isolated from its {s.mechanism} secondary {s.secondary}",
            secondary=s.secondary,
            mechanism=s.mechanism,
            host=s.host,
        )
        actions.append(t)
        if keep:
            continue
        c = _action(
            len(actions) + 1,
            "cleanup_test",
            s.endpoint,
            s.vm,
            s.vm_name,
            f"remove the test instance of {s.vm_name}",
            after=t["id"],
        )
        c["depends_on"] = [t["id"]]
        actions.append(c)
    return document(
        config,
        actions,
        fingerprint=plan.fingerprint,
        estate=plan.estate_id,
        created_at=time.time(),
        generator=f"ftbridge {__version__} failover test{' --keep' if keep else ''} {time.time_ns()}",
        made_by="failover-test",
    )


# -- selection -----------------------------------------------------------------------------------
def select(
    inv: Inventory, vms: list[str] | None, domains: list[str] | None, *, for_test: bool = False
) -> tuple[list[VM], Failed]:
    """The VMs in scope and what counts as failed, as ``failover plan`` chooses them.

    For a test nothing has failed: without ``--domain`` every protected VM (or the named ones)
    is in scope and only its own primary storage is out of bounds for the copy it starts from.
    """
    chosen: list[VM] = []
    for ref in vms or []:
        found = inv.find_vm(ref)
        if found is None:
            raise ConfigError(f"--vm {ref!r}: no such VM (or the name is not unique: use ENDPOINT/NAME)")
        chosen.append(found)
    if domains:
        failed = Failed.from_selectors(inv, [DomainSelector.parse(d) for d in domains])
        in_domain = affected_by(inv, failed)
        if vms:
            keys = {(v.endpoint, v.id) for v in chosen}
            return [v for v in in_domain if (v.endpoint, v.id) in keys], failed
        return in_domain, failed
    if for_test:
        if not vms:
            chosen = [v for v in inv.vms if v.secondaries]
        return chosen, Failed(
            frozenset(),
            frozenset((v.endpoint, d) for v in chosen for d in v.primary_datastores),
            "test of " + (", ".join(vms) if vms else "every protected VM"),
        )
    if vms:
        return chosen, Failed(
            frozenset((v.endpoint, v.host) for v in chosen if v.host),
            frozenset((v.endpoint, d) for v in chosen for d in v.primary_datastores),
            "VMs " + ", ".join(vms),
        )
    failed = Failed.from_inventory(inv)
    return affected_by(inv, failed), failed


# -- running -------------------------------------------------------------------------------------
@dataclass
class VMOutcome:
    endpoint: str
    vm: str
    vm_name: str
    state: str  # restarted | promoted | failed | not-run (run) / ok | failed (test)
    message: str = ""
    seconds: float | None = None  # recovery time (run) or test duration (test)
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "vm": self.vm,
            "vm_name": self.vm_name,
            "state": self.state,
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "message": self.message,
            **self.detail,
        }


@dataclass
class FailoverResult:
    apply: ApplyResult
    vms: list[VMOutcome]
    blocked: list[Blocked]
    total_seconds: float | None = None  # the whole run's recovery time: start to last VM up

    @property
    def ok(self) -> bool:
        return all(v.state in ("promoted", "restarted", "ok") for v in self.vms)

    def summary(self) -> dict[str, Any]:
        return {
            **self.apply.summary(),
            "recovery_s": None if self.total_seconds is None else round(self.total_seconds, 3),
            "vms": [v.to_dict() for v in self.vms],
            "blocked": [
                {"endpoint": b.endpoint, "vm": b.vm, "vm_name": b.vm_name, "reason": b.reason} for b in self.blocked
            ],
        }


def _times(journal_path: Path, run_id: int | None) -> tuple[dict[str, float], dict[str, float], float | None]:
    """(first start per action, end per done action, run start) from the journal's events."""
    start: dict[str, float] = {}
    end: dict[str, float] = {}
    run_start = None
    if run_id is None or not journal_path.exists():
        return start, end, run_start
    j = Journal(journal_path)
    try:
        kinds = ("run_started", "action_started", "action_succeeded", "action_skipped")
        for aid, at, event in j.event_times(run_id, kinds):
            if event == "run_started" and run_start is None:
                run_start = at
            elif aid and event == "action_started":
                start.setdefault(aid, at)
            elif aid and event in ("action_succeeded", "action_skipped"):
                end[aid] = at
    finally:
        j.close()
    return start, end, run_start


def _unfinished_doc(config: Config, folder: str) -> Path | None:
    jpath = Path(config.state_dir) / "journal.sqlite"
    j = Journal.existing(jpath)
    if j is None:
        return None
    try:
        run = j.latest_unfinished(str(Path(config.state_dir) / folder))
    finally:
        j.close()
    return Path(run.plan_path) if run is not None and run.plan_path and Path(run.plan_path).exists() else None


def run_failover(
    config: Config,
    plan: FailoverPlan,
    *,
    yes: bool = False,
    resume: bool = False,
    force: bool = False,
    on_event: EventSink = ignore,
) -> FailoverResult:
    """Carry the failover plan out through :func:`ftbridge.apply.apply_plan` (live checks).
    ``force``: the operator's --force now (steps the plan forced need it again at run time)."""
    with gc_frozen():  # the plan, its document and the estate live as long as this (see gc_frozen)
        return _run_failover(config, plan, yes=yes, resume=resume, force=force, on_event=on_event)


def _run_failover(
    config: Config, plan: FailoverPlan, *, yes: bool, resume: bool, force: bool, on_event: EventSink
) -> FailoverResult:
    doc = failover_document(plan, config)
    path = Path(config.state_dir) / FAILOVER_DIR / f"failover-{doc['plan_id']}.json"
    if not path.exists():
        write_plan(doc, path)
    result = apply_plan(
        config, path, yes=yes, resume=resume, live_checks=True, accept=("failover",), force=force, on_event=on_event
    )
    out = FailoverResult(result, [], list(plan.blocked))
    if result.dry_run or (result.already_applied and not result.outcomes):
        return out
    start, end, run_start = _times(result.journal, result.run_id)
    by_vm: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for a in doc["actions"]:
        by_vm.setdefault((a["endpoint"], a["vm"]), []).append(a)
    last_up = None
    for (ep, vm), acts in by_vm.items():
        promote = next(a for a in acts if a["kind"] in ("promote", "restart"))
        o = result.outcomes.get(promote["id"])
        first = min((start[a["id"]] for a in acts if a["id"] in start), default=None)
        done_at = end.get(promote["id"])
        restarted = promote["kind"] == "restart"
        detail = {
            "how": promote["kind"],
            "group": promote["group"],
            "secondary": promote.get("secondary"),
            "host": promote["host"],
            "forced": promote["forced"],
            "fenced": promote["fenced"],
            "lag_s": 0.0 if restarted else promote["lag"],
        }
        if o is not None and o.state in DONE_STATES:
            secs = done_at - first if done_at is not None and first is not None else None
            if done_at is not None:
                last_up = max(last_up or done_at, done_at)
            state = "restarted" if restarted else "promoted"
            if restarted:
                detail["by"] = "platform HA" if "HA" in o.message else "ftbridge"
            out.vms.append(VMOutcome(ep, vm, promote["vm_name"], state, o.message, secs, detail))
        else:
            why = o.message if o else "not run"
            fence = next((a for a in acts if a["kind"] == "fence"), None)
            fo = result.outcomes.get(fence["id"]) if fence else None
            if fo is not None and fo.state not in DONE_STATES:
                why = f"fence: {fo.message}"
            out.vms.append(VMOutcome(ep, vm, promote["vm_name"], "failed", why, None, detail))
    if run_start is not None and last_up is not None:
        out.total_seconds = last_up - run_start
    return out


def run_test(
    config: Config,
    plan: FailoverPlan | None,
    *,
    resume: bool = False,
    keep: bool = False,
    on_event: EventSink = ignore,
) -> FailoverResult:
    """Test failover: start each secondary isolated, verify, clean up; journaled like an apply.

    With ``resume`` the newest unfinished test run is continued (its cleanups run) instead.
    With ``keep`` the test instances stay up (state ``kept``) until ``failover test --cleanup``
    (:func:`ftbridge.failover.cleanup.run_cleanup`) removes them.
    """
    path = _unfinished_doc(config, TEST_DIR) if resume else None
    blocked: list[Blocked] = []
    if path is None:
        if plan is None:
            raise ConfigError("nothing to resume: no unfinished test failover in the journal")
        doc = test_document(plan, config, keep=keep)
        path = Path(config.state_dir) / TEST_DIR / f"test-{doc['plan_id']}.json"
        write_plan(doc, path)
        blocked = list(plan.blocked)
        resume = False
    import json

    doc = json.loads(path.read_text(encoding="utf-8"))
    result = apply_plan(
        config, path, yes=True, resume=resume, live_checks=True, accept=("failover-test",), on_event=on_event
    )
    return test_outcomes(doc, result, blocked)


def test_outcomes(doc: dict[str, Any], result: ApplyResult, blocked: list[Blocked]) -> FailoverResult:
    """Per VM, how a test failover document's run went (test and cleanup, or a kept test's cleanup)."""
    out = FailoverResult(result, [], blocked)
    start, end, _ = _times(result.journal, result.run_id)
    acts = doc["actions"]
    cleanups = {c["after"]: c for c in acts if c["kind"] == "cleanup_test" and c.get("after")}
    for t in (a for a in acts if a["kind"] == "test_failover"):
        c = cleanups.get(t["id"])
        ot = result.outcomes.get(t["id"])
        oc = result.outcomes.get(c["id"]) if c is not None else None
        tested = ot is not None and ot.state in DONE_STATES
        ok = tested and (c is None or (oc is not None and oc.state in DONE_STATES))
        last = c["id"] if c is not None else t["id"]
        secs = end[last] - start[t["id"]] if ok and last in end and t["id"] in start else None
        why = ""
        if not ok:
            bad = ot if not tested else oc
            step = "test" if bad is ot else "cleanup"
            why = f"{step}: {bad.message}" if bad is not None else "not run"
        detail = {"secondary": t["secondary"], "host": t["host"]}
        if c is None and ok:
            detail["kept"] = True
        out.vms.append(VMOutcome(t["endpoint"], t["vm"], t["vm_name"], "ok" if ok else "failed", why, secs, detail))
    for c in (a for a in acts if a["kind"] == "cleanup_test" and not a.get("after")):  # --cleanup of kept tests
        oc = result.outcomes.get(c["id"])
        ok = oc is not None and oc.state in DONE_STATES
        why = "" if ok else (f"cleanup: {oc.message}" if oc is not None else "not run")
        secs = end[c["id"]] - start[c["id"]] if ok and c["id"] in end and c["id"] in start else None
        detail = {"test_id": c.get("test_id"), "cleanup": True}
        out.vms.append(VMOutcome(c["endpoint"], c["vm"], c["vm_name"], "ok" if ok else "failed", why, secs, detail))
    for b in blocked:
        out.vms.append(VMOutcome(b.endpoint, b.vm, b.vm_name, "failed", f"cannot test: {b.reason}"))
    return out


def test_plan(
    inv: Inventory,
    config: Config,
    vms: list[str] | None,
    domains: list[str] | None,
    recovery: RecoveryPlan | None = None,
) -> FailoverPlan:
    """What a test would start: the failover plan without the split-brain guard (production
    keeps running; the test instance is isolated)."""
    chosen, failed = select(inv, vms, domains, for_test=True)
    if domains:
        # a test proves the copies start: each VM is tested from its copy (its own storage
        # counts as lost too), and a copy inside the domain is reported as what it is
        theirs = frozenset((v.endpoint, d) for v in chosen for d in v.primary_datastores)
        failed = Failed(failed.hosts, failed.datastores | theirs, failed.why)
        return plan_failover(inv, config, chosen, failed, recovery=recovery, force=True)
    # nothing failed: each VM's copy only has to lie outside its *own* primary storage
    steps, blocked = [], []
    for vm in chosen:
        own = Failed(frozenset(), frozenset((vm.endpoint, d) for d in vm.primary_datastores), failed.why)
        one = plan_failover(inv, config, [vm], own, recovery=recovery, force=True)
        steps += one.steps
        blocked += one.blocked
    whole = plan_failover(inv, config, [], failed, recovery=recovery)
    whole.steps, whole.blocked = steps, blocked
    whole.estate_id = estate_of(inv, {s.endpoint for s in steps})
    return whole


test_document.__test__ = False  # type: ignore[attr-defined]
test_outcomes.__test__ = False  # type: ignore[attr-defined]
test_plan.__test__ = False  # type: ignore[attr-defined]

__all__ = ["FailoverResult", "VMOutcome", "estate_id", "failover_document", "run_failover", "run_test", "select"]
