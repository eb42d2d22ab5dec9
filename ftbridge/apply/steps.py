"""Running one action: postcondition, precondition, start, journal the handle, wait, verify.

The order inside an attempt is what makes re-running harmless:

1. an operation journaled by an earlier attempt (or an earlier, crashed run) is found again
   by its handle and waited for; if the crash came between starting an operation and
   journaling it, the driver's ``pending_operations`` finds it;
2. the postcondition is checked first: a disk already on its target, a secondary already
   there and in sync, a secondary already gone, means the action is done (``skipped``);
3. the precondition is checked against the live state: the primary is where the plan
   expected, and, for a removal, the VM keeps a *verified* copy: the replacement (or the
   copy the plan keeps) must be ``in_sync`` by ``replication_status`` before anything goes;
4. the operation starts, its handle is journaled *before* waiting on it;
5. success is verified (a new secondary is waited for until ``in_sync``) and journaled.

Failover documents (:mod:`ftbridge.failover.run`) add five kinds that ride on the same steps:
``fence`` (done once the primary is off), ``restart`` (done once the VM runs again from its own
storage; with an HA grace the platform's HA gets that long first), ``promote`` (done once the
VM runs from the secondary's datastores), ``test_failover`` and ``cleanup_test`` (the test
instance's id travels from the first to the second through the journaled result). A restart or
a promotion is refused while the primary may still run (its host is not reported down and no
power-off was reported through a host that answers) unless the action was fenced or forced:
checked on a fresh read of the estate just before it starts.

Retryable errors (``FtbridgeError.retryable``, or a failed operation marked retryable) are
retried with exponential backoff; nothing else is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from ftbridge.apply.events import ApplyEvent, EventSink
from ftbridge.apply.interrupt import Interrupted
from ftbridge.apply.journal import DONE_STATES, FAILED, RUNNING, SKIPPED, SUCCEEDED, ActionRecord, Journal
from ftbridge.apply.validate import fenced
from ftbridge.drivers.base import (
    Driver,
    Failover,
    HealthReport,
    MechanismRules,
    Operation,
    OperationStatus,
    OpState,
    PromoteResult,
    ProtectResult,
    RestartResult,
    ResultMissing,
    SecondarySpec,
    StoragePlacement,
    TestFailoverResult,
)
from ftbridge.errors import Conflict, FtbridgeError, NotFound, OperationTimeout, UnsupportedOperation
from ftbridge.inventory import Inventory, InventoryPart
from ftbridge.model import VM, Datastore, Host, HostState, PowerState, Secondary, SecondaryState
from ftbridge.planning.planfile import (
    CleanupTestAction,
    FenceAction,
    MoveDiskAction,
    MoveVMAction,
    PlanAction,
    PromoteAction,
    ProtectAction,
    RestartAction,
    TestFailoverAction,
    UnprotectAction,
)

#: kinds that change where a VM's files are: they run only on a fresh read of what they need
_STORAGE_ACTIONS = (MoveDiskAction, MoveVMAction, ProtectAction, UnprotectAction)

#: the journal records an action's caller waits for (see Executor._record): the one before any
#: request to the platform, and an operation adopted after a crash
_WAITED = frozenset({"action_started", "op_adopted"})
#: kinds whose effect the platform does not show (a test instance is just another VM): only the
#: journal knows they ran, so every record of theirs is waited for
_JOURNAL_ONLY = (TestFailoverAction, CleanupTestAction)
#: kinds whose operation's own result matters: an operation adopted after a crash counts as theirs
_ADOPT_RESULT = frozenset({"fence", "restart", "promote", "test_failover", "cleanup_test"})

T = TypeVar("T")


class StepFailed(Exception):
    """An action cannot (or must not) go on; the message says why, for a person."""


@dataclass(frozen=True)
class Settings:
    retries: int = 3
    backoff: float = 1.0
    operation_timeout: float = 3600.0
    poll_interval: float = 1.0  # the longest pause between two polls of one operation
    max_backoff: float = 60.0


@dataclass(frozen=True)
class Outcome:
    action: str
    state: str
    attempts: int
    message: str = ""


@dataclass(frozen=True)
class _Read:
    """One live state read of an endpoint: when it began, and the hosts and datastores it
    covered (asked for, or reported)."""

    began: float
    hosts: frozenset[str]
    stores: frozenset[str]

    def serves(self, since: float | None, max_age: float, hosts: Collection[str], stores: Collection[str]) -> bool:
        fresh = self.began >= since if since is not None else time.monotonic() - self.began < max_age
        return fresh and self.hosts.issuperset(hosts) and self.stores.issuperset(stores)


class LiveView:
    """The estate as the apply knows it: the inventory taken at start, plus its own effects."""

    def __init__(self, inv: Inventory) -> None:
        self._lock = threading.Lock()
        self._vms: dict[tuple[str, str], VM] = {}
        #: (endpoint, name) -> id -> VM: ``named`` is asked per action, a scan would cost O(VMs)
        self._named: dict[tuple[str, str], dict[str, VM]] = {}
        for v in inv.vms:
            self._put(v)
        self._ds = {(d.endpoint, d.id): d for d in inv.datastores}
        self._hosts = {(h.endpoint, h.id): h for h in inv.hosts}

    def vm(self, endpoint: str, vm_id: str) -> VM | None:
        with self._lock:
            return self._vms.get((endpoint, vm_id))

    def _put(self, vm: VM) -> None:
        old = self._vms.get((vm.endpoint, vm.id))
        if old is not None and old.name != vm.name:
            self._named.get((old.endpoint, old.name), {}).pop(old.id, None)
        self._vms[(vm.endpoint, vm.id)] = vm
        self._named.setdefault((vm.endpoint, vm.name), {})[vm.id] = vm

    def set_vm(self, vm: VM) -> None:
        with self._lock:
            self._put(vm)

    def datastore(self, endpoint: str, ds_id: str | None) -> Datastore | None:
        with self._lock:
            return self._ds.get((endpoint, ds_id or ""))

    def host_up(self, endpoint: str, host_id: str | None) -> bool:
        with self._lock:
            h = self._hosts.get((endpoint, host_id or ""))
        return h is not None and h.state is HostState.UP

    def host(self, endpoint: str, host_id: str | None) -> Host | None:
        with self._lock:
            return self._hosts.get((endpoint, host_id or ""))

    def host_states(self, endpoint: str, states: Mapping[str, HostState]) -> None:
        """Host states as a fresh health read reports them."""
        with self._lock:
            for hid, st in states.items():
                h = self._hosts.get((endpoint, hid))
                if h is not None and h.state is not st:
                    self._hosts[(endpoint, hid)] = replace(h, state=st)

    def live(self, endpoint: str, report: HealthReport, datastores: Collection[str]) -> None:
        """Hosts and datastores as a live read reports them; a datastore asked for (``datastores``)
        that the report leaves out is gone from the view: the platform no longer lists it."""
        self.host_states(endpoint, report.hosts)
        with self._lock:
            for ds_id, ok in report.datastores.items():
                d = self._ds.get((endpoint, ds_id))
                if d is not None and d.accessible is not ok:
                    self._ds[(endpoint, ds_id)] = replace(d, accessible=ok)
            for ds_id in datastores:
                if ds_id not in report.datastores:
                    self._ds.pop((endpoint, ds_id), None)

    def refresh(self, endpoint: str, part: InventoryPart) -> None:
        """One endpoint as a fresh ``inventory()`` read it (the failover's live checks)."""
        with self._lock:
            for v in part.vms:
                self._put(v)
            for d in part.datastores:
                self._ds[(d.endpoint, d.id)] = d
            for h in part.hosts:
                self._hosts[(h.endpoint, h.id)] = h

    def named(self, endpoint: str, name: str) -> list[VM]:
        """VMs by name: a promotion may give the VM a new id (a Proxmox standby's VMID)."""
        with self._lock:
            return list(self._named.get((endpoint, name), {}).values())


class Executor:
    """Runs actions for one apply run; thread-safe (one driver call per endpoint at a time)."""

    def __init__(
        self,
        drivers: dict[str, Driver],
        view: LiveView,
        journal: Journal,
        run_id: int,
        records: dict[str, ActionRecord],
        settings: Settings,
        emit: EventSink,
        sleep: Callable[[float], None] = time.sleep,
        *,
        force: bool = False,
    ) -> None:
        self.drivers = drivers
        self.force = force  # the operator's --force now: what lets an action marked forced run
        self.view = view
        self.journal = journal
        self.run_id = run_id
        self.records = records
        self.settings = settings
        self.emit = emit
        self.sleep = sleep
        self.results: dict[str, dict[str, Any]] = {k: r.result for k, r in records.items() if r.result}
        self._ep_locks = {ep: threading.Lock() for ep in drivers}
        self._results_lock = threading.Lock()
        self._attempts: dict[str, int] = {}
        self._fresh: dict[str, float] = {}  # endpoint -> monotonic time of its last live read
        self._reads: dict[str, _Read] = {}  # endpoint -> its last live state read
        self._live_locks = {ep: threading.Lock() for ep in drivers}

    # -- plumbing ------------------------------------------------------------------------
    def call(self, endpoint: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Drivers need not be thread-safe: calls to one endpoint go one at a time (they are short)."""
        with self._ep_locks[endpoint]:
            return fn(*args, **kwargs)

    def placement(self, a: PlanAction) -> StoragePlacement:
        drv = self.drivers[a.endpoint]
        if not isinstance(drv, StoragePlacement):
            raise StepFailed(f"driver {drv.name} of endpoint {a.endpoint} cannot place storage")
        return drv

    def failover(self, a: PlanAction) -> Failover:
        drv = self.drivers[_runs_on(a)]
        if not isinstance(drv, Failover):
            raise StepFailed(f"driver {drv.name} of endpoint {_runs_on(a)} cannot fail over")
        return drv

    def refresh(self, endpoint: str, *, max_age: float | None = None) -> bool:
        """Read the endpoint again (at most once per ``max_age`` seconds, the poll interval by
        default); False when it cannot be read now: then nothing about it is proven."""
        age = self.settings.poll_interval if max_age is None else max_age
        last = self._fresh.get(endpoint)
        if last is not None and time.monotonic() - last < age:
            return True
        drv = self.drivers.get(endpoint)
        if not isinstance(drv, StoragePlacement):
            return False
        try:
            part = self.call(endpoint, drv.inventory)
        except FtbridgeError:
            return False
        self.view.refresh(endpoint, part)
        self._fresh[endpoint] = time.monotonic()
        return True

    def _health(
        self, endpoint: str, since: float | None = None, *, hosts: Collection[str] = (), stores: Collection[str] = ()
    ) -> bool:
        """Hosts' and datastores' states as the endpoint reports them now (its
        :meth:`~ftbridge.drivers.base.StoragePlacement.live_state`, else its health call), for
        at least these ``hosts`` and ``stores``. The last read serves when it began after
        ``since`` (steps running at once share one read; without ``since``, when it is younger
        than the poll interval) *and* covered them: asked for them or reported them, as a driver
        may read only what it is asked. False when it cannot be read: then nothing is proven."""
        drv = self.drivers.get(endpoint)
        lock = self._live_locks.get(endpoint)
        if drv is None or lock is None:
            return False
        with lock:  # one read at a time per endpoint: a step waiting here takes the next one's answer
            last = self._reads.get(endpoint)
            if last is not None and last.serves(since, self.settings.poll_interval, hosts, stores):
                return True
            began = time.monotonic()
            try:
                if isinstance(drv, StoragePlacement):
                    report = self.call(endpoint, drv.live_state, hosts, stores)
                elif isinstance(drv, Failover):
                    report = self.call(endpoint, drv.health)
                else:
                    return False
            except FtbridgeError:
                return False
            self.view.live(endpoint, report, stores)
            self._reads[endpoint] = _Read(
                began, frozenset(hosts) | report.hosts.keys(), frozenset(stores) | report.datastores.keys()
            )
            return True

    def _depends_on(self, a: PlanAction, endpoint: str) -> tuple[list[str], list[str]]:
        """The hosts and datastores of ``endpoint`` an action depends on: the VM's host and the
        storage it needs, the targets and hosts the action names."""
        hosts: set[str] = set()
        stores: set[str] = set(a.datastores)
        vm = self.view.vm(a.endpoint, a.vm)
        if vm is not None and endpoint == a.endpoint:
            stores |= vm.needed_datastores
            if vm.host:
                hosts.add(vm.host)
            for sec in vm.secondaries:
                if sec.target_endpoint is None:
                    stores |= sec.needed_datastores
                    if sec.host:
                        hosts.add(sec.host)
        for name in ("to", "host"):
            value = getattr(a, name, None)
            if isinstance(value, str) and value:
                (stores if name == "to" else hosts).add(value)
        if isinstance(a, ProtectAction):
            stores |= set(a.spec.disks.values())
            stores |= {x for x in (a.spec.config_datastore, a.spec.metadata_datastore) if x}
            if a.spec.host:
                hosts.add(a.spec.host)
        return sorted(hosts), sorted(stores)

    def _live(self, a: PlanAction) -> None:
        """Read the hosts and datastores the action depends on again, just before it changes
        anything. A change of storage needs that answer; a failover step may go on without it
        (its own checks treat an endpoint that does not answer as proving nothing)."""
        since = time.monotonic()
        for ep in dict.fromkeys((a.endpoint, _runs_on(a))):
            hosts, stores = self._depends_on(a, ep)
            if not self._health(ep, since, hosts=hosts, stores=stores) and isinstance(a, _STORAGE_ACTIONS):
                raise StepFailed(
                    f"endpoint {ep} cannot be read now: the state of what {a.kind} of {a.vm_name} "
                    "depends on is unknown, so it does not run"
                )

    def _may_run(self, vm: VM) -> bool:
        """The model's answer on a fresh read of the hosts: could the primary still be running?"""
        if not self._health(vm.endpoint, hosts=[vm.host] if vm.host else []):
            return True  # its endpoint does not answer: nothing is proven
        now = self.view.vm(vm.endpoint, vm.id) or vm
        return now.may_run(self.view.host(now.endpoint, now.host))

    def rules(self, endpoint: str) -> dict[str, MechanismRules]:
        return dict(type(self.drivers[endpoint]).mechanisms)

    def _record(self, a: PlanAction, state: str, event: str, message: str = "", **kw: Any) -> None:
        """Journal and report a state change. Handles and outcomes (everything but
        ``action_started`` and adoption) are not waited for, as a resume finds them out from the
        platform (see ``wait`` in :meth:`~ftbridge.apply.journal.Journal.record`), except for the
        kinds only the journal remembers (a lost test failover would be run twice, and the
        first test instance never cleaned up)."""
        wait = event in _WAITED or isinstance(a, _JOURNAL_ONLY)
        self.journal.record(self.run_id, a.id, state, event, wait=wait, **kw)
        self.emit(
            ApplyEvent.about(
                event,
                a,
                state=state,
                attempt=kw.get("attempts"),
                message=message or (kw.get("error") or ""),
            )
        )

    def _delay(self, tries: int) -> float:
        return float(min(self.settings.max_backoff, self.settings.backoff * 2 ** max(0, tries - 1)))

    # -- one action ----------------------------------------------------------------------
    def run(self, a: PlanAction) -> Outcome:
        rec = self.records.get(a.id)
        attempts = rec.attempts if rec else 0
        try:
            return self._run(a, rec, attempts)
        except Interrupted:  # asked to stop while waiting: it stays running, its operation journaled
            return Outcome(a.id, RUNNING, max(attempts, self._attempts.get(a.id, attempts)), "interrupted")
        except (StepFailed, FtbridgeError) as exc:
            msg = exc.one_line() if isinstance(exc, FtbridgeError) else str(exc)
        except Exception as exc:  # a bug (ours or a driver's): fail this action, keep the run consistent
            msg = f"internal error: {type(exc).__name__}: {exc}"
        attempts = max(attempts, self._attempts.get(a.id, attempts))
        self._record(a, FAILED, "action_failed", msg, error=msg)
        return Outcome(a.id, FAILED, attempts, msg)

    def _run(self, a: PlanAction, rec: ActionRecord | None, attempts: int) -> Outcome:
        ep = a.endpoint
        drv = self.drivers[ep]
        # 1. an operation already started for this action: find it again and wait for it
        if rec is not None and rec.state not in DONE_STATES:
            if rec.operation is not None:
                op = Operation.from_dict(rec.operation)
                self.emit(
                    ApplyEvent.about(
                        "action_resumed",
                        a,
                        message=f"waiting for operation {op.id} journaled earlier",
                    )
                )
                status = self._wait_found(a, op)
                if status is not None and status.state is OpState.SUCCEEDED:
                    return self._succeeded(a, attempts, status)
            elif rec.state == RUNNING:
                for op in self.call(ep, drv.pending_operations, a.vm):
                    self._record(
                        a, RUNNING, "op_adopted", f"found operation {op.id} still running", operation=op.to_dict()
                    )
                    adopted = self._wait_found(a, op)
                    if (
                        adopted is not None
                        and a.kind in _ADOPT_RESULT
                        and op.kind == a.kind
                        and adopted.state is OpState.SUCCEEDED
                    ):
                        return self._succeeded(a, attempts, adopted)
        tries = 0
        while True:
            tries += 1
            attempts += 1
            self._attempts[a.id] = attempts
            self._record(a, RUNNING, "action_started", attempts=attempts, operation=None)
            done, result = self._postcondition(a)
            if done:
                self._set_result(a.id, result)
                self._record(a, SKIPPED, "action_skipped", "already done", result=result or None)
                return Outcome(a.id, SKIPPED, attempts, "already done")
            self._live(a)
            self._precondition(a)
            if isinstance(a, RestartAction) and a.ha_grace > 0 and tries == 1:
                by_ha = self._wait_for_ha(a)
                if by_ha is not None:
                    host = self.view.host(a.endpoint, by_ha.host)
                    msg = f"restarted by the platform's HA on {host.name if host else by_ha.host}"
                    result = {"host": by_ha.host, "by": "platform HA"}
                    self._set_result(a.id, result)
                    self._record(a, SUCCEEDED, "action_succeeded", msg, result=result)
                    return Outcome(a.id, SUCCEEDED, attempts, msg)
                self.emit(
                    ApplyEvent.about(
                        "note",
                        a,
                        message=f"the platform's HA did not restart {a.vm_name} within {a.ha_grace:.0f}s: "
                        "ftbridge restarts it",
                    )
                )
                self._live(a)
                self._precondition(a)  # the estate moved on while we waited
            started = time.monotonic()
            try:
                op = self._start(a)
            except FtbridgeError as exc:
                if isinstance(exc, NotFound) and isinstance(a, CleanupTestAction):
                    self._record(a, SKIPPED, "action_skipped", "the test instance is gone already")
                    return Outcome(a.id, SKIPPED, attempts, "already gone")
                if isinstance(exc, Conflict) and tries <= self.settings.retries + 1:
                    busy = self.call(ep, drv.pending_operations, a.vm)
                    if busy:  # something still runs on the VM (after a crash): let it end, then look again
                        for other in busy:
                            self._wait_found(a, other)
                        continue
                if exc.retryable and tries <= self.settings.retries:
                    self._retry(a, tries, exc.one_line())
                    continue
                raise
            self._record(a, RUNNING, "op_started", f"operation {op.id}", operation=op.to_dict())
            status = self._wait(a, op, started)
            if status.state is OpState.SUCCEEDED:
                return self._succeeded(a, attempts, status)
            if status.retryable and tries <= self.settings.retries:
                self._retry(a, tries, status.message)
                continue
            raise StepFailed(f"{a.kind} of {a.vm_name} failed: {status.message or 'the platform gave no reason'}")

    def _retry(self, a: PlanAction, tries: int, why: str) -> None:
        delay = self._delay(tries)
        self.emit(
            ApplyEvent.about(
                "action_retry",
                a,
                attempt=tries,
                message=f"{why}; retrying in {delay:.1f}s",
            )
        )
        self.sleep(delay)

    def _wait_found(self, a: PlanAction, op: Operation) -> OperationStatus | None:
        """:meth:`_wait` for an operation found again (journaled by an earlier run, or listed by
        ``pending_operations``); None when the platform has forgotten it since (NotFound: its
        tasks cleared, or the driver leaves the outcome to the estate). The caller then decides
        from the live estate: the action's postcondition comes next."""
        try:
            return self._wait(a, op)
        except NotFound:
            return None

    def _wait(self, a: PlanAction, op: Operation, started: float | None = None) -> OperationStatus:
        """Poll until the operation ends; transient poll errors are retried, a timeout fails.

        ``started``: when this run asked for the operation (None: it was found running). Between
        two polls the executor waits as long as the progress the platform reports says is left,
        at the rate seen since the start (or since the first poll), up to the poll interval. With
        no progress reported, or none since the last poll (an operation held at 99%), it backs
        off: 10, 20, 40 ms... up to the poll interval. Backing off alone saw a 50 ms operation
        end only at its 70 ms poll; a 1,000-VM failover took 1.75x the operations' time."""
        drv = self.drivers[a.endpoint]
        deadline = time.monotonic() + self.settings.operation_timeout
        delay = min(0.01, self.settings.poll_interval)
        origin: tuple[float, float] | None = (started, 0.0) if started is not None else None
        seen: float | None = None  # the progress the last poll reported
        errors = 0
        while True:
            try:
                status = self.call(a.endpoint, drv.poll, op)
                errors = 0
            except FtbridgeError as exc:
                errors += 1
                if not exc.retryable or errors > self.settings.retries:
                    raise
                self.sleep(self._delay(errors))
                continue
            self.emit(
                ApplyEvent.about(
                    "action_progress",
                    a,
                    progress=status.progress,
                    message=status.message,
                )
            )
            if status.done:
                return status
            now = time.monotonic()
            if now > deadline:
                raise OperationTimeout(
                    f"operation {op.id} ({a.kind} of {a.vm_name}) still running after "
                    f"{self.settings.operation_timeout:.0f}s; its handle is journaled: "
                    f"'ftbridge apply --resume' waits for it",
                    endpoint=a.endpoint,
                )
            if origin is None:
                origin = (now, status.progress)
            left = _time_left(origin, now, status.progress, seen)
            seen = status.progress
            if left is None:
                self.sleep(delay)
                delay = min(delay * 2, self.settings.poll_interval)
            else:
                self.sleep(min(left, self.settings.poll_interval))

    def _set_result(self, action_id: str, result: dict[str, Any]) -> None:
        if result:
            with self._results_lock:
                self.results[action_id] = result

    def _succeeded(self, a: PlanAction, attempts: int, status: OperationStatus) -> Outcome:
        result: dict[str, Any] = {}
        message = "done"
        if isinstance(a, FenceAction):
            vm = self._vm(a)
            self.view.set_vm(replace(vm, power=PowerState.OFF))
        elif isinstance(a, RestartAction):
            result = self._restarted(a, status)
            message = f"restarted by ftbridge on {result['host']}"
        elif isinstance(a, PromoteAction):
            result = self._promoted(a, status)
        elif isinstance(a, TestFailoverAction):
            try:
                tested = TestFailoverResult.read(status)
            except ResultMissing as exc:
                raise StepFailed(f"test failover of {a.vm_name}: {exc}") from exc
            result = {"test_id": tested.test_id, "host": tested.host or a.host or ""}
        elif isinstance(a, CleanupTestAction):
            pass
        elif isinstance(a, (MoveDiskAction, MoveVMAction)):
            self._moved(a)
        elif isinstance(a, ProtectAction):
            named = ProtectResult.read(status)
            sid = named.secondary_id if named else None
            if not sid:
                match = self._match(a, self._secondaries(a))
                sid = match.id if match else None
            if not sid:
                raise StepFailed(f"protect of {a.vm_name} succeeded but no matching secondary is there")
            sec, why = self._await_in_sync(a, [sid])
            if sec is None:
                raise StepFailed(f"new secondary of {a.vm_name} did not reach in_sync: {why}")
            result = {"secondary_id": sid}
        else:
            self._secondaries(a)  # refresh the view
        self._set_result(a.id, result)
        self._record(a, SUCCEEDED, "action_succeeded", message, result=result or None)
        return Outcome(a.id, SUCCEEDED, attempts, message)

    # -- failover ------------------------------------------------------------------------
    def _restarted(self, a: RestartAction, status: OperationStatus) -> dict[str, Any]:
        """The driver says the VM runs again; a platform that re-registers it elsewhere (vSphere:
        its .vmx on a surviving host) gives it a new id: the view follows the VM there."""
        restarted = RestartResult.read(status, vm_id=a.vm)
        host, new_id = restarted.host or a.host or "", restarted.vm_id
        vm = self.view.vm(a.endpoint, a.vm)
        if vm is not None:
            self.view.set_vm(replace(vm, id=new_id, host=host or vm.host, power=PowerState.ON))
        return {"vm_id": new_id, "host": host, "by": "ftbridge", "fenced": a.fenced, "forced": a.forced}

    def _runs_again(self, a: RestartAction) -> VM | None:
        """The VM running from its own storage on a host that answers (HA may have done it), by
        its id or, re-registered under a new one, by its name."""
        for vm in (self.view.vm(a.endpoint, a.vm), *self.view.named(a.endpoint, a.vm_name)):
            if vm is not None and vm.power is PowerState.ON and self.view.host_up(a.endpoint, vm.host):
                return vm
        return None

    def _wait_for_ha(self, a: RestartAction) -> VM | None:
        """Give the platform's HA ``ha_grace`` seconds to restart the VM, reading the estate
        again each poll; the VM as it runs when HA did, else None."""
        deadline = time.monotonic() + a.ha_grace
        delay = min(0.05, self.settings.poll_interval)
        while True:
            if self.refresh(a.endpoint, max_age=0.0) and (vm := self._runs_again(a)) is not None:
                return vm
            if time.monotonic() >= deadline:
                return None
            self.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, self.settings.poll_interval)

    def _promoted(self, a: PromoteAction, status: OperationStatus) -> dict[str, Any]:
        """The driver says the VM runs from the secondary: record where (and how) in the view."""
        promoted = PromoteResult.read(status, vm_id=a.vm)
        new_id, host = promoted.vm_id, promoted.host or a.host
        if a.target_endpoint is not None:  # the copy runs at the other endpoint now
            return {
                "vm_id": new_id,
                "host": host,
                "endpoint": a.target_endpoint,
                "secondary": a.secondary,
                "forced": a.forced,
                "fenced": a.fenced,
            }
        vm = self.view.vm(a.endpoint, a.vm) or self.view.vm(a.endpoint, new_id)
        if vm is not None:
            disks = tuple(replace(d, datastore=a.secondary_disks.get(d.id, d.datastore)) for d in vm.disks)
            cfg = a.secondary_config or (next(iter(a.secondary_disks.values()), None) or vm.config_datastore)
            secs = tuple(s for s in vm.secondaries if s.id != a.secondary)
            now = replace(
                vm, id=new_id, disks=disks, config_datastore=cfg, host=host, power=PowerState.ON, secondaries=secs
            )
            self.view.set_vm(now)
            if new_id != a.vm:  # the old id is the stopped original: it no longer stands for the VM
                self.view.set_vm(replace(vm, power=PowerState.OFF))
        return {"vm_id": new_id, "host": host, "secondary": a.secondary, "forced": a.forced, "fenced": a.fenced}

    def _runs_from_secondary(self, a: PromoteAction) -> VM | None:
        """The VM (by id, or by name under a new id) running from the secondary's datastores."""
        if a.target_endpoint is not None:  # registered and running at the other endpoint
            self.refresh(a.target_endpoint)
            return next((v for v in self.view.named(a.target_endpoint, a.vm_name) if v.power is PowerState.ON), None)
        if not a.secondary_disks:
            return None
        cands = [v for v in (self.view.vm(a.endpoint, a.vm), *self.view.named(a.endpoint, a.vm_name)) if v]
        for v in cands:
            on_copy = all(a.secondary_disks.get(d.id) == d.datastore for d in v.disks if d.id in a.secondary_disks)
            placed = any(d.id in a.secondary_disks for d in v.disks)
            if v.power is PowerState.ON and placed and on_copy and all(s.id != a.secondary for s in v.secondaries):
                return v
        return None

    def _usable_secondary(self, a: PromoteAction | TestFailoverAction) -> None:
        """The secondary is there, trusted (in sync or merely stale) and its storage answers."""
        try:
            # a copy another endpoint keeps is read as the inventory saw it: the source may be gone
            secs = self._vm(a).secondaries if _runs_on(a) != a.endpoint else self._secondaries(a)
        except UnsupportedOperation:
            secs = self._vm(a).secondaries
        sec = next((s for s in secs if s.id == a.secondary), None)
        if sec is None:
            raise StepFailed(f"{a.vm_name} has no secondary {a.secondary} any more")
        dr_unknown = sec.state is SecondaryState.UNKNOWN and _runs_on(a) != a.endpoint
        if sec.state not in (SecondaryState.IN_SYNC, SecondaryState.STALE) and not dr_unknown:
            raise StepFailed(f"secondary {a.secondary} of {a.vm_name} is {sec.state.value}: not usable")
        if sec.target_endpoint is None:
            down = [
                x
                for x in sorted(sec.needed_datastores)
                if (d := self.view.datastore(a.endpoint, x)) and not d.accessible
            ]
            if down:
                raise StepFailed(f"secondary {a.secondary} of {a.vm_name} is on inaccessible storage ({down[0]})")

    # -- state of the VM -----------------------------------------------------------------
    def _vm(self, a: PlanAction) -> VM:
        vm = self.view.vm(a.endpoint, a.vm)
        if vm is None:
            raise StepFailed(f"VM {a.vm_name} ({a.endpoint}/{a.vm}) no longer exists")
        return vm

    def _secondaries(self, a: PlanAction) -> tuple[Secondary, ...]:
        """Fresh secondaries of the VM (and the view updated with them)."""
        secs = self.call(a.endpoint, self.placement(a).replication_status, a.vm)
        vm = self.view.vm(a.endpoint, a.vm)
        if vm is not None:
            self.view.set_vm(replace(vm, secondaries=tuple(secs)))
        return tuple(secs)

    def _moved(self, a: MoveDiskAction | MoveVMAction) -> None:
        vm = self._vm(a)
        ids = {a.disk} if isinstance(a, MoveDiskAction) else set(a.disks)
        disks = tuple(replace(d, datastore=a.to) if d.id in ids else d for d in vm.disks)
        cfg = a.to if isinstance(a, MoveVMAction) and a.config_from is not None else vm.config_datastore
        host = a.host if isinstance(a, MoveVMAction) and a.host is not None else vm.host
        self.view.set_vm(replace(vm, disks=disks, config_datastore=cfg, host=host))

    def _match(self, a: ProtectAction, secs: tuple[Secondary, ...]) -> Secondary | None:
        """The secondary this protect created, if any: its placement equals the spec."""
        spec = a.spec
        for s in secs:
            if s.id in a.existing or s.mechanism != spec.mechanism:
                continue
            if {d.disk: d.datastore for d in s.disks} != dict(spec.disks):
                continue
            if spec.host is not None and s.host != spec.host:
                continue
            if spec.config_datastore is not None and s.config_datastore != spec.config_datastore:
                continue
            if spec.metadata_datastore is not None and s.metadata_datastore != spec.metadata_datastore:
                continue
            return s
        return None

    def _await_in_sync(self, a: PlanAction, ids: list[str]) -> tuple[Secondary | None, str]:
        """Poll replication_status until one of ``ids`` is in_sync: (that one, ""). Stops at once
        when none is syncing any more (broken, stale, gone) and at the timeout: (None, what each
        is, with the platform's reason), so a copy that breaks at once is reported as broken."""
        deadline = time.monotonic() + self.settings.operation_timeout
        delay = min(0.01, self.settings.poll_interval)
        while True:
            secs = {s.id: s for s in self._secondaries(a)}
            ready = [secs[i] for i in ids if i in secs and secs[i].state is SecondaryState.IN_SYNC]
            if ready:
                return ready[0], ""
            alive = [secs[i] for i in ids if i in secs and secs[i].state is SecondaryState.SYNCING]
            late = time.monotonic() > deadline
            if not alive or late:
                return None, "; ".join(_sync_state(i, secs.get(i), late, self.settings.operation_timeout) for i in ids)
            self.sleep(delay)
            delay = min(delay * 2, self.settings.poll_interval)

    # -- the checks ----------------------------------------------------------------------
    def _postcondition(self, a: PlanAction) -> tuple[bool, dict[str, Any]]:
        if isinstance(a, FenceAction):
            return fenced(a, self._vm(a), self.view.host), {}
        if isinstance(a, RestartAction):
            self._vm(a)
            v = self._runs_again(a)
            return (True, {"host": v.host, "by": "earlier"}) if v is not None else (False, {})
        if isinstance(a, PromoteAction):
            v = self._runs_from_secondary(a)
            if v is None:
                return False, {}
            return True, {
                "vm_id": v.id,
                "host": v.host,
                "secondary": a.secondary,
                "forced": a.forced,
                "fenced": a.fenced,
            }
        if isinstance(a, _JOURNAL_ONLY):
            return False, {}  # nothing on the platform says "tested": the journal does
        if isinstance(a, MoveDiskAction):
            vm = self._vm(a)
            disk = next((d for d in vm.disks if d.id == a.disk), None)
            return disk is not None and disk.datastore == a.to, {}
        if isinstance(a, MoveVMAction):
            vm = self._vm(a)
            where = {d.id: d.datastore for d in vm.disks}
            done = all(where.get(x) == a.to for x in a.disks) and (a.config_from is None or vm.config_datastore == a.to)
            return done and (a.host is None or vm.host == a.host), {}
        if isinstance(a, ProtectAction):
            self._vm(a)
            match = self._match(a, self._secondaries(a))
            if match is None:
                return False, {}
            why = _sync_state(match.id, match, False, 0.0)
            if match.state is SecondaryState.SYNCING:
                found, why = self._await_in_sync(a, [match.id])
                match = found or match
            if match.state is not SecondaryState.IN_SYNC:
                raise StepFailed(
                    f"secondary of {a.vm_name} created by an earlier attempt is not in sync ({why}); "
                    "check it on the platform, remove it, and resume"
                )
            return True, {"secondary_id": match.id}
        assert isinstance(a, UnprotectAction)
        self._vm(a)
        return all(s.id != a.secondary for s in self._secondaries(a)), {}

    def _precondition(self, a: PlanAction) -> None:
        """Raise :class:`StepFailed` when the action must not run now."""
        vm = self._vm(a)
        if isinstance(a, FenceAction):
            return
        if isinstance(a, RestartAction):
            self._not_running(a, vm, "restart")
            gone = [
                x
                for x in sorted(vm.needed_datastores)
                if (d := self.view.datastore(a.endpoint, x)) is None or not d.accessible
            ]
            if gone:
                raise StepFailed(f"refusing to restart {a.vm_name} from its primary: {gone[0]} is not accessible")
            if a.host is not None and not self.view.host_up(a.endpoint, a.host):
                raise StepFailed(f"host {a.host} chosen for {a.vm_name} is not up")
            return
        if isinstance(a, PromoteAction):
            self._usable_secondary(a)
            self._not_running(a, vm, "promote")
            if a.host is not None and not self.view.host_up(_runs_on(a), a.host):
                raise StepFailed(f"host {a.host} chosen for {a.vm_name} is not up")
            return
        if isinstance(a, TestFailoverAction):
            self._usable_secondary(a)
            return
        if isinstance(a, CleanupTestAction):
            if not self._test_id(a):
                raise StepFailed(f"no test instance of {a.vm_name} is known (from {a.after})")
            return
        if isinstance(a, (MoveDiskAction, MoveVMAction)):
            rules = self.rules(a.endpoint)
            blocking = [s for s in vm.secondaries if (r := rules.get(s.mechanism)) and r.blocks_primary_move]
            if blocking:
                raise StepFailed(
                    f"{a.vm_name} has a {blocking[0].mechanism} secondary ({blocking[0].id}): "
                    "its storage cannot move while it exists"
                )
            target = self.view.datastore(a.endpoint, a.to)
            if target is None or not target.accessible:
                raise StepFailed(f"target datastore {a.to} of {a.vm_name} is missing or not accessible")
            where = {d.id: d.datastore for d in vm.disks}
            if isinstance(a, MoveDiskAction):
                if a.disk not in where:
                    raise StepFailed(f"{a.vm_name} has no disk {a.disk} any more")
                if where[a.disk] != a.source:
                    raise StepFailed(
                        f"disk {a.disk} of {a.vm_name} is on {where[a.disk]}, the plan expected "
                        f"{a.source}: make a new plan"
                    )
            else:
                wrong = [x for x in a.disks if where.get(x) not in (*a.source, a.to)]
                if wrong:
                    raise StepFailed(f"disk {wrong[0]} of {a.vm_name} is not where the plan expected: make a new plan")
            return
        if isinstance(a, ProtectAction):
            where = {d.id: d.datastore for d in vm.disks}
            if where != dict(a.primary):
                diff = next(k for k in sorted(set(where) | set(a.primary)) if where.get(k) != a.primary.get(k))
                raise StepFailed(
                    f"the primary of {a.vm_name} is not where the plan placed its secondary against "
                    f"(disk {diff} on {where.get(diff)}, plan expects {a.primary.get(diff)}): "
                    "make a new plan"
                )
            if a.spec.host is not None and not self.view.host_up(a.endpoint, a.spec.host):
                raise StepFailed(f"host {a.spec.host} for the secondary of {a.vm_name} is not up")
            return
        assert isinstance(a, UnprotectAction)
        self._safe_to_remove(a, vm)

    def _not_running(self, a: RestartAction | PromoteAction, vm: VM, what: str) -> None:
        """No split brain: refuse unless the primary is proven not to run, fenced or forced (in the
        document *and* by --force on this run's command line)."""
        if a.forced and self.force:
            return
        if self._may_run(vm):
            host = self.view.host(vm.endpoint, vm.host)
            where = (
                f"its host {host.name} cannot be reached ({host.state.value})"
                if host is not None and host.state in (HostState.UNREACHABLE, HostState.UNKNOWN)
                else "its endpoint cannot be read"
                if vm.endpoint not in self._reads and vm.endpoint not in self._fresh
                else "it still runs on a reachable host"
            )
            fence = "its fence did not prove it off" if a.fenced else "plan with --fence or --force"
            raise StepFailed(f"refusing to {what} {a.vm_name}: {where}, so it may still run (split brain); {fence}")

    def _safe_to_remove(self, a: UnprotectAction, vm: VM) -> None:
        """Never remove a VM's last good copy before its replacement is verified, and never any
        copy while the primary cannot be read (checked on a read taken after every wait)."""
        required: list[str] = []
        if a.window:
            pass  # a copy turned off on purpose; the plan's restore re-creates it
        elif a.after is not None:
            with self._results_lock:
                res = self.results.get(a.after) or {}
            sid = res.get("secondary_id")
            if not sid:
                raise StepFailed(
                    f"the replacement for secondary {a.secondary} of {a.vm_name} ({a.after}) "
                    "is not known to be done: not removing it"
                )
            required = [str(sid)]
        else:
            required = list(a.keeps)
        if required:
            found, why = self._await_in_sync(a, required)
            if found is None:
                raise StepFailed(f"the copy that replaces it is not in sync ({why}): not removing {a.secondary}")
        if not a.window:
            secs = self._secondaries(a)
            others = [s for s in secs if s.id != a.secondary and s.state is SecondaryState.IN_SYNC]
            if not others:
                raise StepFailed(f"refusing to remove secondary {a.secondary} of {a.vm_name}: no other in-sync copy")
        hosts, stores = self._depends_on(a, a.endpoint)
        if not self._health(a.endpoint, time.monotonic(), hosts=hosts, stores=stores):
            raise StepFailed(
                f"refusing to remove secondary {a.secondary} of {a.vm_name}: endpoint {a.endpoint} "
                "cannot be read now, so its primary is not known to be readable"
            )
        now = self._vm(a)
        lost = now.primary_unreadable(
            self.view.host(a.endpoint, now.host), lambda x: self.view.datastore(a.endpoint, x)
        )
        if lost is not None:
            raise StepFailed(
                f"refusing to remove {a.mechanism} secondary {a.secondary} of {a.vm_name}: its primary "
                f"cannot be read now ({lost}); the copy stays"
            )

    def _test_id(self, a: CleanupTestAction) -> str:
        """The test instance to remove: named in the action, or the result of its test action."""
        if a.test_id:
            return a.test_id
        with self._results_lock:
            return str((self.results.get(a.after or "") or {}).get("test_id") or "")

    def _start(self, a: PlanAction) -> Operation:
        self.journal.may_act()  # the lease may have lapsed since action_started: ask nothing then
        if isinstance(a, FenceAction):
            return self.call(a.endpoint, self.failover(a).fence, a.vm)
        if isinstance(a, RestartAction):
            return self.call(a.endpoint, self.failover(a).restart, a.vm, host_id=a.host)
        if isinstance(a, PromoteAction):
            return self.call(
                _runs_on(a), self.failover(a).promote, a.vm, a.secondary, host_id=a.host, force=a.forced and self.force
            )
        if isinstance(a, TestFailoverAction):
            return self.call(a.endpoint, self.failover(a).test_failover, a.vm, a.secondary, host_id=a.host)
        if isinstance(a, CleanupTestAction):
            return self.call(a.endpoint, self.failover(a).cleanup_test, a.vm, self._test_id(a))
        drv = self.placement(a)
        if isinstance(a, MoveDiskAction):
            return self.call(a.endpoint, drv.move_disk, a.vm, a.disk, a.to)
        if isinstance(a, MoveVMAction):
            if a.host is not None:
                return self.call(a.endpoint, drv.move_vm, a.vm, a.to, host_id=a.host)
            return self.call(a.endpoint, drv.move_vm, a.vm, a.to)
        if isinstance(a, ProtectAction):
            spec = SecondarySpec.from_dict(a.spec.model_dump())
            return self.call(a.endpoint, drv.protect, a.vm, spec)
        assert isinstance(a, UnprotectAction)
        return self.call(a.endpoint, drv.unprotect, a.vm, a.secondary)


def _time_left(origin: tuple[float, float], now: float, progress: float, seen: float | None) -> float | None:
    """Seconds until an operation should end, at the rate its progress grew since ``origin``
    (when, at what progress); None when that says nothing: less than 5% done since, or no
    progress since the last poll (``seen``), such as an operation the platform holds. At least
    a millisecond, so that an estimate that falls short does not poll in a tight loop."""
    at, base = origin
    if progress - base < 0.05 or progress == seen or now <= at:
        return None
    return max(0.001, (1.0 - progress) * (now - at) / (progress - base))


def _sync_state(sid: str, sec: Secondary | None, late: bool, timeout: float) -> str:
    """One secondary's state in words, for a wait that ended without it in sync."""
    if sec is None:
        return f"{sid} is no longer listed"
    if late and sec.state is SecondaryState.SYNCING:
        return f"{sid} is still syncing after {timeout:.0f}s"
    return f"{sid} is {sec.state.value}" + (f": {sec.reason}" if sec.reason else " (the platform gives no reason)")


def _runs_on(a: PlanAction) -> str:
    """The endpoint whose driver carries the action out: a DR copy's own endpoint for its promotion."""
    target = getattr(a, "target_endpoint", None)
    return str(target) if target else a.endpoint
