"""``ftbridge watch``: the loop that keeps protection true, acting only as the leader.

Every cycle, every controller (leader or not) reads inventory and health from each endpoint
that answers, audits, updates its metrics and feeds the failure detector. Only the leader then
acts, always through the existing planner and executor (journaled, locked, limited, resumable):

1. **resume** the runs a previous leader left unfinished in the shared journal (their plan
   documents are kept in the journal too, so any controller can carry them on);
2. **fail over** once a failure is confirmed: write the failover plan (``plan_failover``, which
   leaves in-cluster restarts to the platform's HA) and raise the event, once per failure
   whichever controller leads; run it for the VMs whose policy says ``auto_failover`` unless the
   storm guard holds; never before the old leader's lease plus the settle delay have passed;
3. **refresh** point-in-time copies before their age reaches the RPO (the audit is run with each
   policy's RPO scaled by ``[watch] refresh_at``, so the planner makes its usual fresh copy a
   little early), and **re-create** broken or missing secondaries of ``auto_reprotect`` policies;
   VMs the detector suspects are left alone.

Every journal write is fenced (:mod:`ftbridge.coordination`): a controller that lost the
leadership mid-run has its next write refused and stops acting; its run is resumed by the new
leader. Events go to a callback as dicts (the CLI prints JSON lines); services never print.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ftbridge.apply.events import ApplyEvent
from ftbridge.apply.journal import Fence, Journal, StaleLeader
from ftbridge.apply.service import apply_plan
from ftbridge.audit import Finding, audit
from ftbridge.config import Config
from ftbridge.coordination.base import Coordinator, Leadership
from ftbridge.drivers.base import Failover, HealthReport
from ftbridge.errors import FtbridgeError, PlanError
from ftbridge.failover.plan import FailoverPlan, affected_by, plan_failover
from ftbridge.failover.run import failover_document
from ftbridge.inventory import Inventory
from ftbridge.planning import make_plan, rules_for, write_plan
from ftbridge.services import lastseen
from ftbridge.services.health import assess
from ftbridge.services.inventory import collect
from ftbridge.services.session import Session
from ftbridge.watch.detect import Detector, Verdict, observe
from ftbridge.watch.metrics import Metrics

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]
#: rules whose findings ``auto_reprotect`` lets the controller fix by itself
REPROTECT_RULES = frozenset({"no-secondary", "secondary-unhealthy"})
PLAN_META = "plan:"  # journal meta: the plan documents of the runs controllers started
INCIDENT_META = "incident:"  # journal meta: failures already planned for


def pack(doc: dict[str, Any], live_checks: bool) -> str:
    raw = json.dumps({"live_checks": live_checks, "doc": doc}, sort_keys=True, separators=(",", ":")).encode()
    return base64.b64encode(zlib.compress(raw, 9)).decode()


def unpack(text: str) -> tuple[dict[str, Any], bool]:
    data = json.loads(zlib.decompress(base64.b64decode(text)))
    return dict(data["doc"]), bool(data["live_checks"])


@dataclass
class Observed:
    inv: Inventory
    health: dict[str, HealthReport | None]
    unreachable: dict[str, str]
    durations: dict[str, float]


def refusal(config: Config, coordinator: Coordinator) -> str | None:
    """Why ``auto_failover`` must be refused here, or None: the coordination must keep quorum
    outside any one site it could lose (every site the config or the members name)."""
    auto = [p.name for p in config.policies if p.auto_failover]
    if not auto:
        return None
    sites = sorted({r.site for r in config.domains if r.site} | {m.site for m in config.coordination.members if m.site})
    ok, why = coordinator.safe_quorum(sites or ["(unlabelled)"])
    if ok:
        return None
    return f"policies.{auto[0]}.auto_failover = true is refused: {why}"


class Controller:
    def __init__(
        self,
        config: Config,
        coordinator: Coordinator,
        *,
        emit: Emit,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.coordinator = coordinator
        self.emit = emit
        self.metrics = metrics or Metrics()
        self.store = coordinator.store()
        self.store.fence = Fence(0, self._not_leading)
        self.journal = Journal(store=self.store)
        settings = config.watch
        self.detector = Detector(settings.confirm_cycles, settings.storm_fraction)
        self.stop = threading.Event()
        self.work_dir = Path(config.state_dir) / "watch"
        self._lead: Leadership | None = None
        self._storm = False
        self._settling_said = False
        self._stale = False  # set once a write was refused: stop acting until re-elected

    def _not_leading(self) -> None:
        raise StaleLeader(f"controller {self.coordinator.name} does not lead: it must not write")

    def _event(self, event: str, **data: Any) -> None:
        self.emit({"event": event, "controller": self.coordinator.name, **data})

    # -- the loop -------------------------------------------------------------------------
    def run(self, cycles: int | None = None) -> None:
        n = 0
        interval = self.config.watch.interval
        while not self.stop.is_set():
            t0 = time.monotonic()
            self.cycle()
            n += 1
            if cycles is not None and n >= cycles:
                break
            self.stop.wait(max(0.0, interval - (time.monotonic() - t0)))

    def cycle(self) -> None:
        t0 = time.monotonic()
        m = self.metrics
        ok = True
        try:
            lead = self._elect()
            if lead is not None and self._leads():
                self.coordinator.check()
                self._resume_left_runs()  # first: what we observe next shows their effect
            seen = self._observe()
            verdict = self._assess(seen)
            if lead is not None and self._leads():
                self._act(seen, verdict)
        except StaleLeader as exc:
            ok = False
            self._refused(exc)
        except FtbridgeError as exc:
            ok = False
            self._event("cycle_failed", message=exc.one_line())
        elapsed = time.monotonic() - t0
        m["ftbridge_cycle_duration_seconds"].set(elapsed)
        m["ftbridge_cycles"].inc()
        if ok:
            m["ftbridge_cycle_last_success_timestamp_seconds"].set(time.time())
        self._event("cycle_finished", seconds=round(elapsed, 3), leader=self._leads(), ok=ok)

    def _leads(self) -> bool:
        return self._lead is not None and self.coordinator.leading is not None and not self._stale

    def _refused(self, exc: StaleLeader) -> None:
        self.metrics["ftbridge_journal_writes_refused"].inc()
        self._stale = True
        self._event("journal_write_refused", message=exc.one_line())
        self.coordinator.resign()  # a fresh campaign next cycle, with a fresh lease
        self._lead = None
        self.store.fence = Fence(0, self._not_leading)
        self.metrics["ftbridge_leader"].set(0)

    def _elect(self) -> Leadership | None:
        try:
            lead = self.coordinator.campaign()
        except FtbridgeError as exc:
            self._event("coordination_unreachable", message=exc.one_line())
            lead = None
        if lead is not None and (self._lead is None or self._lead.epoch != lead.epoch):
            self.store.fence = self.coordinator.fence()
            self._stale = False
            self._settling_said = False
        elif lead is None and self._lead is not None:
            self.store.fence = Fence(0, self._not_leading)
        self._lead = lead
        m = self.metrics
        m["ftbridge_leader"].set(1 if lead is not None else 0)
        try:
            seen = lead or self.coordinator.leader()
        except FtbridgeError:
            seen = None
        if seen is not None:
            m["ftbridge_leader_epoch"].set(seen.epoch)
            m["ftbridge_leader_since_timestamp_seconds"].set(seen.since)
        return lead

    # -- looking ------------------------------------------------------------------------
    def _observe(self) -> Observed:
        """Inventory and health of every endpoint that answers; the others are unknown, not down."""
        names = list(self.config.endpoints)
        seen = Observed(Inventory(collected_at=time.time()), {}, {}, {})
        parts: dict[str, tuple[Inventory, HealthReport | None, float]] = {}
        with Session(self.config) as session:

            def one(name: str) -> tuple[Inventory, HealthReport | None, float]:
                t = time.monotonic()
                inv = collect(session, [name])
                drv = session.driver(name)
                rep = drv.health() if isinstance(drv, Failover) else None
                return inv, rep, time.monotonic() - t

            with ThreadPoolExecutor(max_workers=max(1, min(8, len(names)))) as pool:
                futures = {n: pool.submit(one, n) for n in names}
                for n, fut in futures.items():
                    try:
                        parts[n] = fut.result()
                    except FtbridgeError as exc:
                        seen.unreachable[n] = exc.one_line()
        answered = [parts[n] for n in names if n in parts]
        seen.inv = Inventory(
            [e for inv, _, _ in answered for e in inv.endpoints],
            [h for inv, _, _ in answered for h in inv.hosts],
            [d for inv, _, _ in answered for d in inv.datastores],
            [v for inv, _, _ in answered for v in inv.vms],
            time.time(),
        )
        for n, (_, rep, secs) in parts.items():
            seen.health[n] = rep
            seen.durations[n] = secs
        m = self.metrics
        for n in names:
            m["ftbridge_endpoint_up"].labels(n).set(0 if n in seen.unreachable else 1)
            if n in seen.durations:
                m["ftbridge_inventory_duration_seconds"].labels(n).set(seen.durations[n])
        for n, why in seen.unreachable.items():
            self._event("endpoint_unreachable", endpoint=n, message=why)
        return seen

    def _assess(self, seen: Observed) -> Verdict:
        inv = seen.inv
        report = audit(inv, self.config)
        m = self.metrics
        m["ftbridge_findings"].clear()
        counts: dict[tuple[str, str], int] = {}
        for f in report.findings:
            counts[(f.rule, f.severity.value)] = counts.get((f.rule, f.severity.value), 0) + 1
        for (rule, sev), n in counts.items():
            m["ftbridge_findings"].labels(rule, sev).set(n)
        health = assess(inv, self.config)
        for g in ("ftbridge_vm_protected", "ftbridge_vm_secondary_lag_seconds", "ftbridge_vm_rpo_seconds"):
            m[g].clear()
        for v in health.vms:
            if v.policy is None:
                continue
            m["ftbridge_vm_protected"].labels(v.endpoint, v.name, v.policy).set(1 if v.status == "ok" else 0)
            if v.rpo is not None:
                m["ftbridge_vm_rpo_seconds"].labels(v.endpoint, v.name, v.policy).set(v.rpo)
            if v.lag is not None:
                m["ftbridge_vm_secondary_lag_seconds"].labels(v.endpoint, v.name, v.policy, v.mechanism or "").set(
                    v.lag
                )
        obs = observe(inv, seen.health, frozenset(seen.unreachable))
        verdict = self.detector.update(inv, obs)
        m["ftbridge_suspect_components"].set(verdict.suspects)
        failed = verdict.failed
        m["ftbridge_failed_components"].set(len(failed.hosts) + len(failed.datastores) if failed else 0)
        m["ftbridge_storm_guard"].set(1 if verdict.storm else 0)
        if verdict.storm != self._storm:
            self._storm = verdict.storm
            self._event("storm_guard", holds=verdict.storm, message=verdict.storm_reason or "the storm guard let go")
        self._event(
            "observed",
            vms=len(inv.vms),
            findings=len(report.findings),
            suspects=verdict.suspects,
            failed=failed.why if failed else None,
            unreachable=sorted(seen.unreachable),
        )
        return verdict

    # -- acting (leader only) --------------------------------------------------------------
    def _act(self, seen: Observed, verdict: Verdict) -> None:
        self.coordinator.check()
        if verdict.failed is not None:
            self._failover(seen.inv, verdict)
        self._refresh(seen.inv, verdict)

    def _apply(self, doc: dict[str, Any], *, live_checks: bool, resume: bool) -> Any:
        path = self.work_dir / "plans" / f"{doc['plan_id']}.json"
        if not path.exists():
            write_plan(doc, path)
        return apply_plan(
            self.config,
            path,
            yes=True,
            resume=resume,
            live_checks=live_checks,
            accept=("failover",) if live_checks else ("plan",),  # what the controller writes, nothing else
            journal=self.journal,
            coordinated=True,
            on_event=self._on_apply_event,
        )

    def _on_apply_event(self, e: ApplyEvent) -> None:
        if e.event == "action_progress":
            return
        if e.event in ("action_succeeded", "action_skipped", "action_failed", "action_blocked"):
            outcome = e.event.removeprefix("action_")
            self.metrics["ftbridge_actions"].labels(e.kind or "", outcome).inc()
        self.emit({**e.to_dict(), "controller": self.coordinator.name})

    def _resume_left_runs(self) -> None:
        """Carry on the runs a previous leader (or this controller, before a crash) left running."""
        for run in self.journal.runs(unfinished=True):
            if run.status != "running":
                continue  # finished with failures: the next cycle plans afresh
            packed = self.store.get_meta(PLAN_META + run.plan_id)
            if packed is None:
                continue  # not a controller's run (a person's apply): theirs to resume
            doc, live = unpack(packed)
            if live and not self.coordinator.may_touch_failed_domains():
                self._settling()
                continue  # a failover: the old leader's lease and the settle delay first
            self._event("run_resuming", run=run.id, plan_id=run.plan_id, left_by_pid=run.pid)
            result = self._apply(doc, live_checks=live, resume=True)
            self._event("run_resumed", run=result.run_id, plan_id=run.plan_id, outcome=result.counts())

    def _start(self, doc: dict[str, Any], *, live_checks: bool) -> Any:
        self.store.set_meta(PLAN_META + doc["plan_id"], pack(doc, live_checks))
        try:
            return self._apply(doc, live_checks=live_checks, resume=False)
        except PlanError as exc:  # the same plan ran before (unfinished runs are resumed above)
            self._event("plan_skipped", plan_id=doc["plan_id"], message=exc.one_line())
            return None

    def _failover(self, inv: Inventory, verdict: Verdict) -> None:
        failed = verdict.failed
        assert failed is not None
        key = INCIDENT_META + verdict.incident
        known = self.store.get_meta(key)
        if known is not None:
            # planned already, by this controller or an earlier leader: a run it started resumes
            # above; one it meant to start but died before journaling starts now, exactly once
            # (the apply's own journal refuses a second run of the same plan)
            meta = json.loads(known)
            pid = meta.get("plan_id")
            if meta.get("auto") and pid and self.journal.latest_run(pid) is None:
                if not self.coordinator.may_touch_failed_domains():
                    self._settling()
                    return
                packed = self.store.get_meta(PLAN_META + pid)
                if packed is not None:
                    left, _ = unpack(packed)
                    self._run_failover(left, str(meta.get("scope", "")))
            return
        if not self.coordinator.may_touch_failed_domains():
            self._settling()
            return
        inv, seen = lastseen.fill(inv, lastseen.load(Path(self.config.state_dir)))
        vms = affected_by(inv, failed)
        plan = plan_failover(inv, self.config, vms, failed, last_seen=seen)
        path = self.work_dir / "failover" / f"failover-{verdict.incident}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        plan.save(path)
        auto = self._auto_part(inv, plan)
        run = bool(auto and auto.steps) and not verdict.storm
        doc = failover_document(auto, self.config) if run and auto is not None else None
        if doc is not None:  # the document first: a successor finds it even if we die right after
            self.store.set_meta(PLAN_META + doc["plan_id"], pack(doc, True))
        self.store.set_meta(
            key,
            json.dumps(
                {
                    "plan": str(path),
                    "scope": failed.why,
                    "at": time.time(),
                    "auto": run,
                    "plan_id": doc["plan_id"] if doc is not None else None,
                },
                sort_keys=True,
            ),
        )
        self.metrics["ftbridge_failover_plans"].inc()
        self._event(
            "failover_planned",
            scope=failed.why,
            incident=verdict.incident,
            plan=str(path),
            steps=len(plan.steps),
            restarts=sum(s.kind == "restart" for s in plan.steps),
            ha_first=sum(s.kind == "restart" and s.ha_grace > 0 for s in plan.steps),
            blocked=len(plan.blocked),
            auto=len(auto.steps) if auto else 0,
            storm_guard=verdict.storm,
        )
        if doc is not None:
            self._run_failover(doc, failed.why)

    def _run_failover(self, doc: dict[str, Any], scope: str) -> None:
        result = self._start(doc, live_checks=True)
        if result is None:
            return
        ok = not result.failures()
        self.metrics["ftbridge_failovers"].labels("ok" if ok else "failed").inc()
        self._event("failover_finished", scope=scope, run=result.run_id, ok=ok, outcome=result.counts())

    def _settling(self) -> None:
        if not self._settling_said:
            self._settling_said = True
            self._event("settling", message="new leader: waiting out the old lease and the settle delay")

    def _auto_part(self, inv: Inventory, plan: FailoverPlan) -> FailoverPlan | None:
        """The steps of VMs whose policy says auto_failover."""
        keep = []
        for s in plan.steps:
            vm = inv.vm(s.endpoint, s.vm)
            policy = self.config.policy_for(vm) if vm is not None else None
            if policy is not None and policy.auto_failover:
                keep.append(s)
        if not keep:
            return None
        return replace(plan, steps=keep)

    def _refresh(self, inv: Inventory, verdict: Verdict) -> None:
        """Fresh copies before the RPO is reached; re-created secondaries where the policy says so."""
        early = self._early_config()
        leave = {(v.endpoint, v.id) for v in affected_by(inv, verdict.failed)} if verdict.failed else set()
        _, known = rules_for(inv)
        refreshable = {(ep, name) for ep, rules in known.items() for name, r in rules.items() if r.refreshable}
        findings = [f for f in audit(inv, early).findings if self._ours(inv, f, leave, refreshable)]
        if not findings:
            return
        findings.sort(key=lambda f: (-(f.evidence.get("lag") or 0.0), f.endpoint, f.vm or ""))
        chosen: list[Finding] = []
        vms: set[tuple[str, str | None]] = set()
        for f in findings:  # the most urgent VMs first, within the per-cycle limit
            if (f.endpoint, f.vm) not in vms and len(vms) >= self.config.watch.max_actions // 2:
                continue
            vms.add((f.endpoint, f.vm))
            chosen.append(f)
        doc = make_plan(inv, early, chosen)
        if not doc["actions"]:
            return
        self._event("refresh_planned", plan_id=doc["plan_id"], actions=len(doc["actions"]), vms=len(vms))
        result = self._start(doc, live_checks=False)
        if result is not None:
            self._event("refresh_finished", run=result.run_id, plan_id=doc["plan_id"], outcome=result.counts())

    def _ours(self, inv: Inventory, f: Finding, leave: set[tuple[str, str]], refreshable: set[tuple[str, str]]) -> bool:
        vm = inv.vm(f.endpoint, f.vm) if f.vm is not None else None
        if vm is None or (vm.endpoint, vm.id) in leave:
            return False
        policy = self.config.policy_for(vm)
        if policy is None:
            return False
        if f.rule == "secondary-lag":
            sec = next((s for s in vm.secondaries if s.id == f.secondary), None)
            return sec is not None and (vm.endpoint, sec.mechanism) in refreshable
        return policy.auto_reprotect and f.rule in REPROTECT_RULES

    def _early_config(self) -> Config:
        """The config with every RPO scaled by ``refresh_at``: a copy is due before it is late."""
        at = self.config.watch.refresh_at
        return replace(
            self.config, policies=tuple(p.model_copy(update={"rpo": p.rpo * at}) for p in self.config.policies)
        )
