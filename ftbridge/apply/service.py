"""``apply``: carry a plan out through the drivers, journaled, locked, resumable.

The order of checks is the order of cost and of harm: the plan file (corrupt, unknown
action), what made it (a producer this caller does not run, a kind its producer never writes,
a forced step without ``force``), the endpoints it names (another estate), the estate lock
(another run on it), then the live inventory (another estate, or a stale plan unless
``revalidate``; the actions are re-checked against it whatever the fingerprint says). Nothing changes on
any platform before all of them passed, and nothing changes at all without ``yes``: then
the result is a preview of what would run.

``resume`` continues the latest unfinished run of the same plan (without one, it is a plain
apply, checks included): operations the journal
holds handles for (or that the driver still lists as running on the VM) are waited for
*before* the inventory is taken, so the inventory shows their effect; then every action not
done runs again from its postcondition. The staleness check is skipped on resume (the estate
changed because of this plan); each action's own pre- and postconditions guard it instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from ftbridge.apply.events import ApplyEvent, EventSink, ignore
from ftbridge.apply.interrupt import Interrupted, RunInterrupted, current_stop, stoppable
from ftbridge.apply.journal import BLOCKED, DONE_STATES, FAILED, PENDING, RUNNING, Journal, RunRecord
from ftbridge.apply.locks import CONTROLLER_HOLDER, EstateLock
from ftbridge.apply.scheduler import Limits, run_actions
from ftbridge.apply.steps import Executor, LiveView, Outcome, Settings
from ftbridge.apply.validate import ORDINARY, check_origin, effects_present, preview, revalidate
from ftbridge.config import Config
from ftbridge.drivers.base import Driver, Operation
from ftbridge.errors import FtbridgeError, NotFound, PartialFailure, PlanError
from ftbridge.gcpause import gc_frozen
from ftbridge.inventory import Inventory
from ftbridge.planning.planfile import PlanAction, PlanDoc, estate_id, load_plan
from ftbridge.services.inventory import collect
from ftbridge.services.session import Session


class ConfirmationRequired(FtbridgeError):
    """A dry run: the plan is valid, but ``--yes`` was not given, so nothing changed."""

    exit_code = 2


@dataclass
class ApplyResult:
    plan_id: str
    plan_path: str
    journal: Path
    actions: list[PlanAction]
    run_id: int | None = None
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    dry_run: bool = False
    resumed: bool = False
    already_applied: bool = False
    preview: list[tuple[PlanAction, str]] = field(default_factory=list)
    elapsed: float = 0.0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes.values():
            out[o.state] = out.get(o.state, 0) + 1
        return dict(sorted(out.items()))

    def failures(self) -> list[tuple[PlanAction, Outcome]]:
        by_id = {a.id: a for a in self.actions}
        return [(by_id[o.action], o) for o in self.outcomes.values() if o.state in (FAILED, BLOCKED)]

    def summary(self) -> dict[str, object]:
        return {
            "plan_id": self.plan_id,
            "run": self.run_id,
            "actions": len(self.actions),
            **self.counts(),
            "resumed": self.resumed,
            "elapsed_s": round(self.elapsed, 3),
        }

    def raise_for_failures(self) -> None:
        """:class:`PartialFailure` (exit 1) when some actions failed or could not run."""
        bad = self.failures()
        if bad:
            failed = sum(1 for _, o in bad if o.state == FAILED)
            blocked = len(bad) - failed
            more = f", {blocked} could not run because of them" if blocked else ""
            raise PartialFailure(
                f"{failed} of {len(self.actions)} actions failed{more} (journal {self.journal}, run {self.run_id})",
                hint=f"fix the cause, then: ftbridge apply {self.plan_path} --yes --resume",
            )


def settings_for(config: Config) -> Settings:
    s = config.apply
    return Settings(
        retries=s.retries,
        backoff=s.backoff,
        operation_timeout=s.operation_timeout,
        poll_interval=min(1.0, max(0.05, s.backoff)),
    )


def apply_plan(
    config: Config,
    plan_path: str | Path,
    *,
    yes: bool = False,
    resume: bool = False,
    revalidate_plan: bool = False,
    live_checks: bool = False,
    accept: Collection[str] = ORDINARY,
    force: bool = False,
    coordinated: bool = False,
    on_event: EventSink = ignore,
    sleep: Callable[[float], None] = time.sleep,
    journal: Journal | None = None,
    stop: threading.Event | None = None,
) -> ApplyResult:
    """Apply (or, without ``yes``, preview) a plan file. Raises PlanError, LockBusy, ...

    ``live_checks``: the plan is stale by nature (a failover: the estate changed because
    something failed), so only its estate is checked up front and every action's own
    precondition decides, live, whether it may run.

    ``accept``: the producers (``made_by``) this caller runs; ``ftbridge apply`` runs ordinary
    plans only, whatever the file's id says. ``force``: the operator said ``--force`` now; an
    action the document marks forced is refused without it (a file is not a confirmation).

    ``journal``: the journal to use (the caller's, e.g. a watch controller's fenced etcd store;
    the caller closes it); default: the SQLite journal in the state directory.

    ``coordinated``: the caller is an elected watch controller whose journal writes are fenced:
    an estate lock another *controller* holds (a deposed leader, frozen) does not stop it (the
    election and the fencing token decide between controllers); one a person's run holds does.

    ``stop``: once set (default: the enclosing ``interrupt.stopping`` block's), no new action
    starts, waits end, the run is marked interrupted and :class:`RunInterrupted` says what is left
    (see :mod:`ftbridge.apply.interrupt`).
    """
    t0 = time.monotonic()
    stop = stop if stop is not None else current_stop()
    if stop is not None:
        sleep = stoppable(stop, sleep)
    doc = load_plan(plan_path)
    check_origin(doc, accept, str(plan_path))
    forced = [a for a in doc.actions if getattr(a, "forced", False)]
    if forced and yes and not force:
        a = forced[0]
        raise ConfirmationRequired(
            f"{plan_path}: action {a.id} would {a.kind} {a.vm_name} while its primary may still run "
            f"(forced in the file{f', and {len(forced) - 1} more' if len(forced) > 1 else ''}); "
            "a file is no confirmation: nothing was changed",
            hint="give --force on the command line to run forced actions",
        )
    endpoints = _check_endpoints(doc, config, str(plan_path))
    state_dir = Path(config.state_dir)
    given = journal
    jpath = journal.path if journal is not None else state_dir / "journal.sqlite"
    result = ApplyResult(doc.plan_id, str(plan_path), jpath, list(doc.actions))
    with ExitStack() as stack:
        if yes:  # before reading the journal: a run in progress shows up as LockBusy
            holder = f"{CONTROLLER_HOLDER} apply {plan_path}" if coordinated else f"ftbridge apply {plan_path}"
            share = CONTROLLER_HOLDER if coordinated else None
            stack.enter_context(EstateLock.for_endpoints(config, endpoints, holder=holder, yield_to=share))
        if given is None:
            journal = Journal.existing(jpath)
            if journal is not None:
                stack.callback(journal.close)
        last = journal.latest_run(doc.plan_id) if journal else None
        unfinished = last if last is not None and last.status != "done" else None
        if unfinished is not None and not resume:
            assert journal is not None
            raise PlanError(
                f"plan {doc.plan_id} has an unfinished run (#{unfinished.id}, "
                f"{_progress(journal, unfinished)}): continue it with --resume",
                hint=f"journal {jpath}",
            )
        session = stack.enter_context(Session(config))
        drivers = {ep: session.driver(ep) for ep in endpoints}  # opened here, before any worker thread
        resuming = resume and unfinished is not None
        if resuming and yes:
            assert journal is not None and unfinished is not None
            try:
                _settle_in_flight(doc, journal, unfinished, drivers, settings_for(config), on_event, sleep)
            except Interrupted:
                raise RunInterrupted.of_run(doc.plan_id, list(doc.actions), journal, unfinished.id) from None
        inv = collect(session, endpoints)
        if stop is not None and stop.is_set():
            raise RunInterrupted(plan_id=doc.plan_id)
        if not resuming:
            # what is left to do is the estate's answer, not the journal's: a plan run to the end
            # before is done only while the estate still shows its effects (a reset estate does not)
            if last is not None and last.status == "done" and effects_present(doc, inv):
                result.already_applied = True
                result.run_id = last.id
                result.elapsed = time.monotonic() - t0
                return result
            if live_checks:
                if doc.inventory.estate_id and estate_id(inv) != doc.inventory.estate_id:
                    raise PlanError(f"{plan_path}: plan was made for another estate: its hosts and datastores differ")
            else:
                _check_fresh(doc, inv, str(plan_path), revalidate_plan, config)
        if not yes:
            result.dry_run = True
            result.preview = preview(doc, inv)
            result.elapsed = time.monotonic() - t0
            return result
        if journal is None:
            journal = Journal(jpath)
            stack.callback(journal.close)
        stack.enter_context(gc_frozen())  # the plan and the estate live as long as the run (see gc_frozen)
        if resuming:
            assert unfinished is not None
            run_id = unfinished.id
            journal.resume_run(run_id)
            result.resumed = True
        else:
            run_id = journal.start_run(
                doc.plan_id, str(plan_path), inv.fingerprint(), [(a.id, a.kind, a.endpoint, a.vm) for a in doc.actions]
            )
        result.run_id = run_id
        records = journal.actions(run_id)
        on_event(
            ApplyEvent(
                "run_started",
                message=f"run {run_id} of plan {doc.plan_id}",
                data={
                    "run": run_id,
                    "plan_id": doc.plan_id,
                    "actions": len(doc.actions),
                    "done": sum(r.state in DONE_STATES for r in records.values()),
                    "resumed": resuming,
                    # for displays: what each action acts on and copies (events name the VM only)
                    "action_vms": {a.id: a.vm for a in doc.actions},
                    "action_bytes": {a.id: a.bytes for a in doc.actions if a.bytes},
                },
            )
        )
        settings = settings_for(config)
        executor = Executor(drivers, LiveView(inv), journal, run_id, records, settings, on_event, sleep, force=force)
        limits = Limits(
            {ep: config.apply.concurrency_per_endpoint or type(drivers[ep]).default_concurrency for ep in endpoints},
            config.apply.concurrency_per_datastore,
            one_cpu=all(type(drivers[ep]).in_process for ep in endpoints),
        )
        states = {aid: (PENDING if r.state == RUNNING else r.state) for aid, r in records.items()}
        result.outcomes = run_actions(list(doc.actions), states, executor, limits, journal, run_id, on_event, stop=stop)
        for a in doc.actions:  # actions done in an earlier run of this plan
            if a.id not in result.outcomes and records[a.id].state in DONE_STATES:
                result.outcomes[a.id] = Outcome(a.id, records[a.id].state, records[a.id].attempts, "done earlier")
        ok = all(o.state in DONE_STATES for o in result.outcomes.values()) and len(result.outcomes) == len(doc.actions)
        result.elapsed = time.monotonic() - t0
        summary = result.summary()
        if not ok and stop is not None and stop.is_set():
            journal.finish_run(run_id, "interrupted", {k: v for k, v in summary.items() if k != "plan_id"})
            raise RunInterrupted.of_run(doc.plan_id, list(doc.actions), journal, run_id)
        journal.finish_run(run_id, "done" if ok else "failed", {k: v for k, v in summary.items() if k != "plan_id"})
        on_event(ApplyEvent("run_finished", state="done" if ok else "failed", data=summary))
    return result


def _check_endpoints(doc: PlanDoc, config: Config, source: str) -> list[str]:
    names = sorted(e.name for e in doc.endpoints)
    for e in doc.endpoints:
        cfg = config.endpoints.get(e.name)
        if cfg is None:
            raise PlanError(
                f"{source}: plan was made for another estate: endpoint {e.name} is not configured "
                f"in {config.source} (configured: {', '.join(sorted(config.endpoints)) or 'none'})"
            )
        if cfg.driver != e.driver:
            raise PlanError(
                f"{source}: plan was made for another estate: endpoint {e.name} uses driver "
                f"{cfg.driver} here, {e.driver} in the plan"
            )
    used = {a.endpoint for a in doc.actions}
    if not used <= set(names):
        raise PlanError(
            f"{source}: malformed plan: actions name endpoints it does not list: {', '.join(sorted(used - set(names)))}"
        )
    return names


def _check_fresh(doc: PlanDoc, inv: Inventory, source: str, revalidate_plan: bool, config: Config) -> None:
    if estate_id(inv) != doc.inventory.estate_id and not revalidate_plan:
        raise PlanError(
            f"{source}: plan was made for another estate: its hosts and datastores differ from "
            f"these endpoints' ({doc.inventory.estate_id} vs {estate_id(inv)})",
            hint="make a new plan with 'ftbridge plan', or check with --revalidate",
        )
    unchanged = inv.fingerprint() == doc.inventory.fingerprint
    if not unchanged and not revalidate_plan:
        raise PlanError(
            f"{source}: stale plan: the estate changed since the plan was made "
            f"(inventory {doc.inventory.fingerprint[:12]}, now {inv.fingerprint()[:12]}); nothing was changed",
            hint="make a new plan with 'ftbridge plan', or re-check it with --revalidate",
        )
    # the actions are checked whatever the fingerprint says: it is a claim of the file, no proof
    problems = revalidate(doc, inv, config)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        what = "plan does not hold on this estate" if unchanged else "stale plan"
        raise PlanError(
            f"{source}: {what}: {problems[0]}{more}; nothing was changed",
            hint="make a new plan with 'ftbridge plan'",
        )


def _progress(journal: Journal, run: RunRecord) -> str:
    recs = journal.actions(run.id)
    done = sum(r.state in DONE_STATES for r in recs.values())
    return f"{done} of {len(recs)} actions done, pid {run.pid}"


def _settle_in_flight(
    doc: PlanDoc,
    journal: Journal,
    run: RunRecord,
    drivers: dict[str, Driver],
    settings: Settings,
    emit: EventSink,
    sleep: Callable[[float], None],
) -> None:
    """Wait for the operations a crashed run left running, so the inventory shows their effect."""
    records = journal.actions(run.id)
    for a in doc.actions:
        rec = records.get(a.id)
        if rec is None or rec.state in DONE_STATES or not (rec.operation or rec.state == RUNNING):
            continue
        drv = drivers[a.endpoint]
        ops = [Operation.from_dict(rec.operation)] if rec.operation else drv.pending_operations(a.vm)
        if not rec.operation and ops:
            # started but not journaled before the crash: journal it now, so the action takes the
            # operation's own result (a test instance's id, a promoted VM's new id) once it ends
            mine = next((op for op in ops if op.kind == a.kind), ops[0])
            journal.record(run.id, a.id, RUNNING, "op_adopted", operation=mine.to_dict())
        for op in ops:
            emit(
                ApplyEvent(
                    "note",
                    action=a.id,
                    vm=a.vm_name,
                    endpoint=a.endpoint,
                    message=f"waiting for operation {op.id} left by pid {run.pid or '?'}",
                )
            )
            deadline = time.monotonic() + settings.operation_timeout
            delay = 0.01
            while time.monotonic() < deadline:
                try:
                    if drv.poll(op).done:
                        break
                except NotFound:
                    break
                except FtbridgeError as exc:
                    if not exc.retryable:
                        raise
                sleep(delay)
                delay = min(delay * 2, settings.poll_interval)


__all__ = ["ApplyResult", "ConfirmationRequired", "apply_plan"]
