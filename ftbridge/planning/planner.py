"""The planner: turn audit findings into ordered, capacity-safe actions.

Four passes, each over the VMs (or datastores) it concerns, biggest first so large items
find room before small ones fragment it:

1. **primary**: primary files on storage only one host mounts move to shared storage the
   VM's host mounts, kept separated from the VM's good secondaries. A mechanism that blocks
   primary moves (vSphere FT) is turned off, the VM moved, and turned on again with a new
   placement; the three steps are planned together or not at all.
2. **separation by moving the primary**: when a secondary shares a domain with part of the
   primary, moving that part can cost fewer bytes than re-creating the whole secondary (and
   may empty a datastore that is over its headroom): then it is preferred.
3. **headroom**: a datastore below its headroom gets the set of disks moved off that frees
   enough with the fewest bytes (exact subset-sum on small sets, greedy beyond).
4. **secondaries**: a missing or bad secondary (broken, unseparated, on the primary's host,
   FT metadata on local storage, or a lagging copy of a ``refreshable`` mechanism) gets a new
   one, separated from the primary's final place at the policy's level, on another host where
   the mechanism needs one, near the primary's hosts where it is ``same_hosts``, within the
   mechanism's limits; the bad one is removed only after it (make before break), unless the
   mechanism allows fewer secondaries per VM than that takes (``max_secondaries_per_vm``):
   then the wrong copy goes first, in a window the plan marks. A VM with a good copy besides
   a bad one just loses the bad one. When a host's FT slots are full the pass repeats, so
   slots freed by earlier removals are used. Over-headroom datastores that these removals did
   not relieve after all get a second headroom pass.

Capacity is tracked by :mod:`ftbridge.planning.ledger`, targets found through
:mod:`ftbridge.planning.index`. Everything iterates in sorted order: the same input gives the
same plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from ftbridge.audit import Finding
from ftbridge.config import Config, Policy
from ftbridge.drivers.base import MechanismRules, SecondarySpec
from ftbridge.inventory import Inventory
from ftbridge.model import (
    VM,
    Datastore,
    FailureDomain,
    Host,
    HostState,
    Level,
    Secondary,
    SecondaryDisk,
    SecondaryState,
)
from ftbridge.planning.actions import Action, PlanResult, Unfixable
from ftbridge.planning.explain import joined, outside, plural, size
from ftbridge.planning.index import CandidateIndex, Query
from ftbridge.planning.ledger import HostLedger, SpaceLedger, Undo

#: rules whose findings are about one secondary and are closed by removing it
SECONDARY_RULES = frozenset(
    {"secondary-unhealthy", "secondary-not-separated", "secondary-on-primary-host", "ft-metadata-not-shared"}
)
#: how many hosts a placement compares before settling (balance without scanning a cluster)
HOST_CHOICES = 3
#: above this many candidate disks, the headroom pass uses greedy instead of subset-sum
EXACT_STATES = 50_000

Rules = Mapping[str, Mapping[str, MechanismRules]]


@dataclass(frozen=True)
class _Snap:
    placement: dict[str, str]
    config: str | None
    present: dict[str, Secondary]
    bad: set[str]
    last: str | None
    done: set[str]


@dataclass
class _VM:
    """One VM as the plan changes it: where its disks are and which secondaries it has."""

    vm: VM
    policy: Policy
    findings: list[Finding]
    placement: dict[str, str]
    config: str | None
    present: dict[str, Secondary]
    bad: set[str]
    last: str | None = None
    unavailable: str | None = None
    done: set[str] = field(default_factory=set)  # finding ids handled (closed or explained)

    def snapshot(self) -> _Snap:
        return _Snap(dict(self.placement), self.config, dict(self.present), set(self.bad), self.last, set(self.done))

    def restore(self, snap: _Snap) -> None:
        self.placement, self.config, self.present = dict(snap.placement), snap.config, dict(snap.present)
        self.bad, self.last, self.done = set(snap.bad), snap.last, set(snap.done)

    def primary(self) -> set[str]:
        ids = set(self.placement.values())
        if self.config:
            ids.add(self.config)
        return ids

    def of(self, rule: str, secondary: str | None = None) -> list[Finding]:
        return [f for f in self.findings if f.rule == rule and (secondary is None or f.secondary == secondary)]

    def about(self, secondary: str) -> list[Finding]:
        return [f for f in self.findings if f.secondary == secondary]


@dataclass
class _Fail:
    category: str
    reason: str


class Planner:
    """One planning run. Build it, call :meth:`run` once."""

    def __init__(
        self,
        inv: Inventory,
        config: Config,
        findings: Sequence[Finding],
        rules: Rules,
        known_rules: Rules | None = None,
        *,
        tight: bool = False,
        smallest_first: bool = False,
    ) -> None:
        self.smallest_first = smallest_first
        self.inv = inv
        self.config = config
        self.findings = list(findings)
        self.rules = rules
        self.known = known_rules if known_rules is not None else rules
        self.undo = Undo()
        self.ds_list: list[Datastore] = sorted(inv.datastores, key=lambda d: (d.endpoint, d.id))
        self.pos = {(d.endpoint, d.id): i for i, d in enumerate(self.ds_list)}
        self._policies: dict[tuple[str, str, tuple[str, ...]], Policy | None] = {}
        # when no policy selects by name, a VM's policy depends on its endpoint and tags only
        self._names_free = all(sel.name == "*" for p in config.policies for sel in p.match)
        pct, self.on_ds = self._scan()
        self.ledger = SpaceLedger([d.capacity for d in self.ds_list], [d.free for d in self.ds_list], pct, self.undo)
        self.index = CandidateIndex(self.ds_list, self.ledger, tight=tight)
        self.ledger.on_change = self.index.update
        self.hosts_by_group: dict[tuple[str, str | None], list[Host]] = {}
        for h in sorted(inv.hosts, key=lambda h: (h.endpoint, h.id)):
            self.hosts_by_group.setdefault((h.endpoint, h.cluster), []).append(h)
            self.hosts_by_group.setdefault((h.endpoint, "\0all"), []).append(h)
        self.host_ledgers: dict[tuple[str, str], HostLedger] = {}
        self._init_host_ledgers()
        self.actions: list[Action] = []
        self.states: dict[tuple[str, str], _VM] = {}
        self.why: dict[str, _Fail] = {}

    # -- set-up --------------------------------------------------------------------------
    def policy(self, vm: VM) -> Policy | None:
        key = (vm.endpoint, "" if self._names_free else vm.name, vm.tags)
        if key not in self._policies:
            self._policies[key] = self.config.policy_for(vm)
        return self._policies[key]

    def _scan(self) -> tuple[list[float], dict[int, list[VM]]]:
        """Per datastore: the audit's headroom percentage, and the managed VMs on it."""
        pct = [0.0] * len(self.ds_list)
        on_ds: dict[int, list[VM]] = {}
        pos = self.pos
        for vm in self.inv.vms:
            p = self.policy(vm)
            if p is None:
                continue
            touched = set(vm.primary_datastores)
            for s in vm.secondaries:
                touched |= s.datastores
            for ds_id in touched:
                i = pos.get((vm.endpoint, ds_id))
                if i is not None and p.headroom > pct[i]:
                    pct[i] = p.headroom
            for ds_id in vm.primary_datastores:
                i = pos.get((vm.endpoint, ds_id))
                if i is not None:
                    on_ds.setdefault(i, []).append(vm)
        return pct, on_ds

    def _init_host_ledgers(self) -> None:
        for ep, mechs in self.known.items():
            for name, r in mechs.items():
                if r.max_vms_per_host is not None or r.max_vcpus_per_host is not None:
                    self.host_ledgers[(ep, name)] = HostLedger(r, self.undo)
        if not self.host_ledgers:
            return
        for vm in self.inv.vms:
            for s in vm.secondaries:
                hl = self.host_ledgers.get((vm.endpoint, s.mechanism))
                if hl is not None:
                    for h in {x for x in (s.host, vm.host) if x is not None}:
                        hl.add_initial(h, vm.vcpus)

    def state(self, vm: VM) -> _VM | None:
        key = (vm.endpoint, vm.id)
        st = self.states.get(key)
        if st is None:
            policy = self.policy(vm)
            if policy is None:
                return None
            st = _VM(
                vm,
                policy,
                [],
                {d.id: d.datastore for d in vm.disks},
                vm.config_datastore,
                {s.id: s for s in vm.secondaries},
                set(),
            )
            self.states[key] = st
        return st

    # -- small helpers -------------------------------------------------------------------
    def ds(self, endpoint: str, ds_id: str) -> Datastore | None:
        i = self.pos.get((endpoint, ds_id))
        return self.ds_list[i] if i is not None else None

    def ds_name(self, endpoint: str, ds_id: str) -> str:
        d = self.ds(endpoint, ds_id)
        return d.name if d else ds_id

    def host_name(self, endpoint: str, host_id: str | None) -> str:
        h = self.inv.host(endpoint, host_id)
        return h.name if h else str(host_id)

    def rule(self, endpoint: str, mechanism: str) -> MechanismRules | None:
        return self.known.get(endpoint, {}).get(mechanism)

    def blocks_move(self, endpoint: str, s: Secondary) -> bool:
        r = self.rule(endpoint, s.mechanism)
        return r is not None and r.blocks_primary_move

    def _refresh(self, st: _VM, f: Finding) -> bool:
        """A lagging (or stale) copy of a point-in-time mechanism: a fresh copy fixes it."""
        if f.rule != "secondary-lag" or f.secondary is None:
            return False
        s = st.present.get(f.secondary)
        r = self.rule(st.vm.endpoint, s.mechanism) if s is not None else None
        return r is not None and r.refreshable

    def _begin(self, st: _VM) -> tuple[int, int, _Snap]:
        return self.undo.mark(), len(self.actions), st.snapshot()

    def _rollback(self, tx: tuple[int, int, _Snap], st: _VM) -> None:
        mark, n, snap = tx
        self.undo.rollback(mark)
        del self.actions[n:]
        st.restore(snap)

    def _action(
        self,
        st: _VM,
        kind: str,
        reason: str,
        *,
        nbytes: int = 0,
        datastores: Iterable[str] = (),
        deps: Iterable[str] = (),
        closes: Iterable[str] = (),
        **detail: object,
    ) -> Action:
        aid = f"a{len(self.actions) + 1:05d}"
        depends = [st.last] if st.last else []
        depends += [d for d in deps if d not in depends and d != aid]
        a = Action(
            aid,
            kind,
            st.vm.endpoint,
            st.vm.id,
            st.vm.name,
            reason,
            nbytes,
            sorted(set(datastores)),
            depends,
            list(closes),
            dict(detail),
        )
        self.actions.append(a)
        st.last = aid
        st.done.update(a.closes)
        return a

    def _explain(self, f: Finding, category: str, reason: str) -> None:
        self.why.setdefault(f.id, _Fail(category, reason))

    def _domains(self, endpoint: str, ds_ids: Iterable[str]) -> tuple[tuple[FailureDomain, ...], list[str]]:
        out, names = [], []
        for x in sorted(set(ds_ids)):
            d = self.ds(endpoint, x)
            if d is not None:
                out.append(d.domain)
                names.append(d.name)
        return tuple(out), names

    def _host_ok(self, endpoint: str, host_id: str | None) -> bool:
        h = self.inv.host(endpoint, host_id)
        return h is not None and h.state is HostState.UP

    # -- the run -------------------------------------------------------------------------
    def run(self) -> PlanResult:
        vm_findings: dict[tuple[str, str], list[Finding]] = {}
        ds_findings: list[Finding] = []
        for f in self.findings:
            if f.vm is not None:
                vm_findings.setdefault((f.endpoint, f.vm), []).append(f)
            elif f.rule == "datastore-over-headroom":
                ds_findings.append(f)
        for key in sorted(vm_findings):
            vm = self.inv.vm(*key)
            st = self.state(vm) if vm is not None else None
            if st is None:
                continue
            st.findings = sorted(vm_findings[key], key=lambda f: f.id)
            for f in st.findings:
                if f.secondary in st.present and ((f.rule in SECONDARY_RULES and f.fixable) or self._refresh(st, f)):
                    st.bad.add(f.secondary)
            gone = st.of("primary-unavailable")
            if gone:
                st.unavailable = f"{gone[0].message.split(': ', 1)[-1]}: fail over first, then plan again"
            elif st.vm.host is not None and not self._host_ok(st.vm.endpoint, st.vm.host):
                st.unavailable = f"its host {self.host_name(st.vm.endpoint, st.vm.host)} is not up"
        work = sorted(
            (st for st in self.states.values() if st.findings),
            key=lambda st: ((st.vm.size if self.smallest_first else -st.vm.size), st.vm.endpoint, st.vm.id),
        )
        for st in work:
            if st.of("primary-not-shared"):
                self._fix_primary(st)
        for st in work:
            if st.of("secondary-not-separated"):
                self._separate_by_move(st)
        expected = self._expected_removals()
        for f in sorted(ds_findings, key=lambda f: f.id):
            self._fix_headroom(f, expected)
        self._fix_secondaries(work)
        for f in sorted(ds_findings, key=lambda f: f.id):
            self._fix_headroom(f, {})  # what the secondaries pass did not free after all
        return self._result(ds_findings)

    def _expected_removals(self) -> dict[int, int]:
        """Bytes per datastore that removing bad secondaries will free (if their fix works out)."""
        out: dict[int, int] = {}
        for st in self.states.values():
            if st.unavailable:
                continue
            for sid in st.bad:
                s = st.present.get(sid)
                if s is None:
                    continue
                sizes = {d.id: d.size for d in st.vm.disks}
                for sd in s.disks:
                    i = self.pos.get((st.vm.endpoint, sd.datastore))
                    if i is not None:
                        out[i] = out.get(i, 0) + (sd.size or sizes.get(sd.disk, 0))
        return out

    # -- pass 1: primary to shared storage ----------------------------------------------
    def _fix_primary(self, st: _VM) -> None:
        (f,) = st.of("primary-not-shared")[:1]
        vm, ep = st.vm, st.vm.endpoint
        if st.unavailable:
            self._explain(f, "unavailable", st.unavailable)
            return
        local = {x for x in st.primary() if (d := self.ds(ep, x)) is not None and not d.shared}
        stuck = [d for d in vm.disks if st.placement[d.id] in local and not d.movable]
        if stuck:
            self._explain(
                f,
                "placement",
                f"disk {stuck[0].id} of {vm.name} cannot be moved (pass-through or "
                f"similar): detach it or accept the local primary",
            )
            return
        sep = self._sep_only(st)
        if sep is not None:
            # a secondary that is wrong only for sharing a domain with the local primary: moving
            # the primary away from it fixes both findings for the price of one copy
            tx = self._begin(st)
            st.bad.discard(sep.id)
            closes = [f.id, *(x.id for x in st.of("secondary-not-separated", sep.id))]
            fail = self._move_primary(st, local, closes, "move off non-shared storage, away from its secondary")
            if fail is None and not self._offending(st, sep):
                return
            self._rollback(tx, st)
        tx = self._begin(st)
        blocking = sorted((s for s in st.present.values() if self.blocks_move(ep, s)), key=lambda s: s.id)
        window = self._window_off(st, blocking, "its primary must move to shared storage")
        fail = self._move_primary(st, local, [f.id], "move off non-shared storage")
        if fail is None and blocking:
            fail = self._window_on(st, blocking, window)
        if fail is not None:
            self._rollback(tx, st)
            self._explain(f, fail.category, fail.reason)

    def _window_off(self, st: _VM, blocking: list[Secondary], why: str) -> list[Action]:
        """Turn off secondaries that forbid primary moves: the VM runs without them until re-created."""
        out = []
        for s in blocking:
            out.append(
                self._unprotect(
                    st,
                    s,
                    f"{s.mechanism} must be off while {st.vm.name}'s storage moves ({why}); "
                    f"a new secondary is created right after the move",
                    window=True,
                )
            )
        return out

    def _window_on(self, st: _VM, blocking: list[Secondary], window: list[Action]) -> _Fail | None:
        prefer = [s.mechanism for s in blocking]
        res = self._protect(st, prefer, [], restrict=prefer, replaces=[s.id for s in blocking])
        if isinstance(res, _Fail):
            return _Fail(
                res.category,
                f"moving {st.vm.name}'s primary needs {prefer[0]} off, and it could not "
                f"be turned on again afterwards: {res.reason}",
            )
        for a in window:
            a.detail["restore"] = res.id
        return None

    def _primary_query(self, st: _VM, need: int, exclude: Iterable[str]) -> tuple[Query, list[str]]:
        """Where a primary disk may go: shared, mounted by its host, apart from kept secondaries."""
        vm, ep, pol = st.vm, st.vm.endpoint, st.policy
        kept = [s for s in st.present.values() if s.id not in st.bad and s.target_endpoint is None]
        avoid_ids = {x for s in kept for x in s.datastores}
        avoid, names = self._domains(ep, avoid_ids)
        kinds: frozenset[str] | None = None
        for s in kept:
            r = self.rule(ep, s.mechanism)
            if r is not None and r.primary_kinds is not None:
                kinds = r.primary_kinds if kinds is None else kinds & r.primary_kinds
        if kinds is None and not kept:
            # the secondary it may get later must remain possible (pvesr: primary on zfspool)
            usable = [r for m, r in self.rules.get(ep, {}).items() if pol.counts(m)]
            if usable and all(r.primary_kinds is not None for r in usable):
                kinds = frozenset().union(*(r.primary_kinds or frozenset() for r in usable))
        host = vm.host if vm.host is not None and self.inv.host(ep, vm.host) is not None else None
        q = Query(
            ep,
            need,
            pol.headroom,
            pol.level if avoid else None,
            avoid,
            kinds,
            True,
            host,
            frozenset(i for x in exclude if (i := self.pos.get((ep, x))) is not None),
        )
        return q, names

    def _no_target(self, q: Query, names: list[str], what: str) -> _Fail:
        count, best, room = self.index.survey(q)
        where = self._target_words(q, names, what)
        if count == 0:
            return _Fail("placement", f"no {where}")
        assert best is not None
        return _Fail(
            "capacity",
            f"no {where} has {size(q.need)} free above its {q.pct:g}% headroom "
            f"(the most: {size(max(room, 0))} on {self.ds_list[best].name})",
        )

    def _target_words(self, q: Query, names: list[str], what: str) -> str:
        parts = [what]
        if q.kinds is not None:
            parts.insert(0, "/".join(sorted(q.kinds)))
        sep = outside(q.level, q.avoid, names)
        if sep:
            parts.append(sep)
        if q.host is not None:
            parts.append(f"that host {self.host_name(q.endpoint, q.host)} mounts")
        elif q.near is not None:
            parts.append("that a host of the primary's mounts")
        return " ".join(parts)

    def _move_primary(self, st: _VM, sources: set[str], closes: list[str], why: str) -> _Fail | None:
        """Plan moving every primary file on ``sources`` elsewhere; None when planned."""
        vm = st.vm
        if st.config in sources:
            return self._move_vm(st, sources, closes, why)
        disks = sorted((d for d in vm.disks if st.placement[d.id] in sources), key=lambda d: (-d.size, d.id))
        total = sum(d.size for d in disks)
        q, names = self._primary_query(st, total, sources)
        target = self.index.find(q)
        if target is not None:
            for d in disks:
                self._move_disk(st, d.id, d.size, target, closes, why, q.pct)
            return None
        for d in disks:  # no single target for all: place disk by disk
            qd, names = self._primary_query(st, d.size, sources)
            t = self.index.find(qd)
            if t is None:
                return self._no_target(qd, names, "shared datastore")
            self._move_disk(st, d.id, d.size, t, closes, why, qd.pct)
        return None

    def _move_disk(
        self, st: _VM, disk: str, nbytes: int, target: int, closes: list[str], why: str, pct: float
    ) -> Action:
        ep = st.vm.endpoint
        src = st.placement[disk]
        dst = self.ds_list[target]
        deps = self.ledger.consume(target, nbytes, pct)
        a = self._action(
            st,
            "move_disk",
            f"{why}: disk {disk} ({size(nbytes)}) from {self.ds_name(ep, src)} to {dst.name}",
            nbytes=nbytes,
            datastores=[src, dst.id],
            deps=deps,
            closes=closes,
            disk=disk,
            **{"from": src},
            to=dst.id,
        )
        i = self.pos.get((ep, src))
        if i is not None:
            self.ledger.release(i, nbytes, a.id)
        st.placement[disk] = dst.id
        return a

    def _move_vm(self, st: _VM, sources: set[str], closes: list[str], why: str) -> _Fail | None:
        vm, ep = st.vm, st.vm.endpoint
        movable = [d for d in vm.disks if d.movable]
        stuck = [d for d in vm.disks if not d.movable and st.placement[d.id] in sources]
        if stuck:
            return _Fail("placement", f"disk {stuck[0].id} of {vm.name} cannot be moved (pass-through or similar)")
        total = sum(d.size for d in movable)
        q, names = self._primary_query(st, total, sources)
        choice: tuple[int, int] | None = None  # (bytes, target)
        # a datastore that already holds some of the VM's disks saves their copy
        for x in sorted({st.placement[d.id] for d in movable} - sources):
            i = self.pos.get((ep, x))
            if i is None:
                continue
            need = sum(d.size for d in movable if st.placement[d.id] != x)
            if (
                self.index.find(
                    Query(q.endpoint, need, q.pct, q.level, q.avoid, q.kinds, True, q.host),
                    accept=i.__eq__,
                )
                is not None
            ):
                if choice is None or need < choice[0]:
                    choice = (need, i)
        if choice is None:
            t = self.index.find(q)
            if t is None:
                return self._no_target(q, names, "shared datastore")
            choice = (total, t)
        need, target = choice
        dst = self.ds_list[target]
        moving = [d for d in movable if st.placement[d.id] != dst.id]
        srcs = sorted({st.placement[d.id] for d in moving} | ({st.config} if st.config else set()))
        deps = self.ledger.consume(target, need, q.pct)
        a = self._action(
            st,
            "move_vm",
            f"{why}: config and {plural(len(moving), 'disk')} ({size(need)}) "
            f"from {joined(self.ds_name(ep, s) for s in srcs)} to {dst.name}",
            nbytes=need,
            datastores=[*srcs, dst.id],
            deps=deps,
            closes=closes,
            disks=[d.id for d in moving],
            **{"from": srcs},
            to=dst.id,
            config_from=st.config,
        )
        for d in moving:
            i = self.pos.get((ep, st.placement[d.id]))
            if i is not None:
                self.ledger.release(i, d.size, a.id)
            st.placement[d.id] = dst.id
        st.config = dst.id
        return None

    # -- pass 2: separation by moving part of the primary -------------------------------
    def _sep_only(self, st: _VM) -> Secondary | None:
        """The VM's one bad secondary when its only fault is sharing a domain with the primary:
        then moving (part of) the primary is a fix too."""
        if st.unavailable or len(st.bad) != 1:
            return None
        (sid,) = st.bad
        s = st.present.get(sid)
        if (
            s is None
            or s.state is not SecondaryState.IN_SYNC
            or s.target_endpoint is not None
            or self.blocks_move(st.vm.endpoint, s)
            or (s.host is not None and s.host == st.vm.host)
        ):
            return None
        if any(
            f.rule != "secondary-not-separated" and (f.rule in SECONDARY_RULES or self._refresh(st, f))
            for f in st.about(sid)
        ):
            return None
        return s

    def _offending(self, st: _VM, s: Secondary) -> set[str]:
        """Primary datastores not separated from secondary ``s`` at the policy's level."""
        ep, level = st.vm.endpoint, st.policy.level
        sec_domains = [d.domain for x in s.datastores if (d := self.ds(ep, x)) is not None]
        return {
            p
            for p in st.primary()
            if (d := self.ds(ep, p)) is not None and any(not d.domain.separated_at(sd, level) for sd in sec_domains)
        }

    def _separate_by_move(self, st: _VM) -> None:
        vm, ep = st.vm, st.vm.endpoint
        s = self._sep_only(st)
        if s is None:
            return
        sid = s.id
        fs = st.of("secondary-not-separated", sid)
        level = st.policy.level
        sec_domains = [d.domain for x in s.datastores if (d := self.ds(ep, x)) is not None]
        offending = self._offending(st, s)
        if not offending:
            return
        disks = [d for d in vm.disks if st.placement[d.id] in offending]
        if any(not d.movable for d in disks):
            return
        if st.config in offending and len(disks) != len(vm.disks):
            return  # the config can only move with every disk: that is never cheaper
        cost_move = sum(d.size for d in disks)
        cost_recreate = vm.size
        relieves = any(self.ledger.headroom_deficit(self.pos[(ep, p)]) > 0 for p in offending)
        if not (cost_move < cost_recreate or (cost_move == cost_recreate and relieves)):
            return
        tx = self._begin(st)
        st.bad.discard(sid)  # kept: the moved disks must land apart from it
        why = (
            f"separate the primary from secondary {sid} ({outside(level, sec_domains)}) by moving "
            f"{size(cost_move)} instead of re-creating the secondary ({size(cost_recreate)})"
        )
        fail = self._move_primary(st, offending, [f.id for f in fs], why)
        if fail is not None:
            self._rollback(tx, st)

    # -- pass 3: datastores below their headroom ----------------------------------------
    def _fix_headroom(self, f: Finding, expected: dict[int, int]) -> None:
        ep = f.endpoint
        i = self.pos.get((ep, f.datastore or ""))
        if i is None or not f.fixable:
            return
        deficit = self.ledger.headroom_deficit(i) - expected.get(i, 0)
        if deficit <= 0:
            return  # earlier moves (or removals to come) free enough; closes are attached at the end
        ds = self.ds_list[i]
        cands: list[tuple[int, str, _VM, str]] = []  # (bytes, sort key, vm, disk)
        skipped_ft = 0
        for vm in sorted(self.on_ds.get(i, []), key=lambda v: v.id):
            st = self.state(vm)
            if st is None or st.unavailable or (vm.host is not None and not self._host_ok(ep, vm.host)):
                continue
            if any(self.blocks_move(ep, s) for s in st.present.values()):
                skipped_ft += 1
                continue
            for d in vm.disks:
                if d.movable and d.size > 0 and st.placement[d.id] == ds.id:
                    q, _ = self._primary_query(st, d.size, {ds.id})
                    if self.index.find(q) is not None:
                        cands.append((d.size, f"{vm.id}/{d.id}", st, d.id))
        why = (
            f"free {ds.name}: {size(ds.capacity - self.ledger.end_free[i])} used of {size(ds.capacity)}, "
            f"its {self.ledger.pct[i]:g}% headroom needs {size(deficit)} more free"
        )
        banned: set[str] = set()
        for _ in range(len(cands) + 1):
            live = [c for c in cands if c[1] not in banned]
            chosen = min_cover([c[0] for c in live], deficit)
            if chosen is None:
                break
            picks = sorted((live[k] for k in chosen), key=lambda c: (-c[0], c[1]))
            marks = {id(c[2]): self._begin(c[2]) for c in picks}
            mark, n = self.undo.mark(), len(self.actions)
            failed = None
            for nbytes, key, st, disk in picks:
                q, _ = self._primary_query(st, nbytes, {ds.id})
                t = self.index.find(q)
                if t is None:
                    failed = key
                    break
                self._move_disk(st, disk, nbytes, t, [f.id], why, q.pct)
            if failed is None:
                return
            self.undo.rollback(mark)
            del self.actions[n:]
            for c in picks:
                c[2].restore(marks[id(c[2])][2])
            banned.add(failed)
        movable = sum(c[0] for c in cands if c[1] not in banned)
        extra = (
            f"; {plural(skipped_ft, 'VM')} with FT-like secondaries are not moved for headroom" if skipped_ft else ""
        )
        self.why[f.id] = _Fail(
            "capacity",
            f"{ds.name} needs {size(deficit)} moved off to keep {self.ledger.pct[i]:g}% "
            f"free, but its disks that fit elsewhere total {size(movable)}{extra}: "
            f"grow it or free space by hand",
        )

    # -- pass 4: secondaries -------------------------------------------------------------
    def _fix_secondaries(self, work: list[_VM]) -> None:
        tasks: list[_VM] = []
        for st in work:
            sec_findings = [
                f
                for f in st.findings
                if f.rule == "no-secondary"
                or (f.secondary in st.bad and (f.rule in SECONDARY_RULES or self._refresh(st, f)))
            ]
            if not sec_findings:
                continue
            if st.unavailable:
                for f in sec_findings:
                    self._explain(f, "unavailable", st.unavailable)
                continue
            counted = [s for s in st.present.values() if st.policy.counts(s.mechanism)]
            good = [
                s
                for s in counted
                if s.id not in st.bad and s.state is SecondaryState.IN_SYNC and not s.id.startswith("+")
            ]
            bad = sorted((st.present[x] for x in st.bad if x in st.present), key=lambda s: s.id)
            missing = bool(st.of("no-secondary")) and not counted
            if bad and good:
                for s in bad:  # a duplicate: the good copy stays, the bad one goes
                    self._unprotect(
                        st,
                        s,
                        f"remove secondary {s.id}: {self._sec_problem(st, s)}; "
                        f"{st.vm.name} keeps secondary {joined(g.id for g in good)}",
                        keeps=[g.id for g in good],
                    )
                continue
            if missing or bad:
                tasks.append(st)
        failures: dict[int, tuple[_VM, _Fail]] = {}
        pending = tasks
        for _ in range(6):  # later passes use slots freed by earlier removals
            progress = False
            retry: list[_VM] = []
            for st in pending:
                res = self._replace(st)
                if res is None:
                    progress = True
                    failures.pop(id(st), None)
                else:
                    failures[id(st)] = (st, res)
                    if res.category in ("limits", "capacity"):
                        retry.append(st)
            pending = retry
            if not progress or not pending:
                break
        for st, fail in failures.values():
            for f in st.findings:
                if f.rule == "no-secondary" or (
                    f.secondary in st.bad and (f.rule in SECONDARY_RULES or self._refresh(st, f))
                ):
                    self._explain(f, fail.category, fail.reason)

    def _sec_problem(self, st: _VM, s: Secondary) -> str:
        msgs = [
            f.message.split(": ", 1)[-1]
            for f in st.findings
            if f.secondary == s.id and (f.rule in SECONDARY_RULES or self._refresh(st, f))
        ]
        return "; ".join(msgs) or "not a valid copy"

    def _replace(self, st: _VM) -> _Fail | None:
        """A new secondary, then removal of the bad ones it replaces; None when planned."""
        bad = sorted((st.present[x] for x in st.bad if x in st.present), key=lambda s: s.id)
        prefer = [s.mechanism for s in bad]
        tx = self._begin(st)
        closes = [f.id for f in st.of("no-secondary")]
        res = self._protect(st, prefer, closes, replaces=[s.id for s in bad])
        if isinstance(res, _Fail):
            self._rollback(tx, st)
            return res
        for s in bad:
            if s.id in st.present:  # not already removed to make room for its replacement
                self._unprotect(
                    st,
                    s,
                    f"remove secondary {s.id} ({self._sec_problem(st, s)}) once its replacement is in sync",
                    after=res.id,
                )
        return None

    def _unprotect(
        self,
        st: _VM,
        s: Secondary,
        reason: str,
        *,
        after: str | None = None,
        keeps: Sequence[str] = (),
        window: bool = False,
    ) -> Action:
        ep, vm = st.vm.endpoint, st.vm
        closes = [f.id for f in st.findings if f.secondary == s.id]
        deps = [after] if after else []
        a = self._action(
            st,
            "unprotect",
            reason,
            datastores=sorted(s.datastores),
            deps=deps,
            closes=closes,
            secondary=s.id,
            mechanism=s.mechanism,
            after=after,
            keeps=list(keeps),
            window=window,
            restore=None,
        )
        sizes = {d.id: d.size for d in vm.disks}
        freed: dict[str, int] = {}
        for sd in s.disks:
            freed[sd.datastore] = freed.get(sd.datastore, 0) + (sd.size or sizes.get(sd.disk, 0))
        for x, n in sorted(freed.items()):
            i = self.pos.get((ep, x))
            if i is not None:
                self.ledger.release(i, n, a.id)
        hl = self.host_ledgers.get((ep, s.mechanism))
        if hl is not None:
            for h in sorted(x for x in {s.host, vm.host} if x is not None):
                hl.release(h, vm.vcpus, a.id)
        st.present.pop(s.id, None)
        st.bad.discard(s.id)
        return a

    def _mechanisms(self, st: _VM, prefer: Sequence[str], restrict: Sequence[str] | None) -> list[str]:
        offered = list(self.rules.get(st.vm.endpoint, {}))
        if st.vm.mechanisms is not None:  # the platform says only these can protect this VM
            offered = [m for m in offered if m in st.vm.mechanisms]
        order = [m for m in prefer if m in offered] + offered
        out: list[str] = []
        for m in order:
            if m not in out and st.policy.counts(m) and (restrict is None or m in restrict):
                out.append(m)
        return out

    def _protect(
        self,
        st: _VM,
        prefer: Sequence[str],
        closes: list[str],
        *,
        restrict: Sequence[str] | None = None,
        replaces: Sequence[str] = (),
    ) -> Action | _Fail:
        vm, ep, pol = st.vm, st.vm.endpoint, st.policy
        mechs = self._mechanisms(st, prefer, restrict)
        if not mechs:
            offered = list(self.rules.get(ep, {}))
            if vm.mechanisms is not None and offered:
                usable = [m for m in offered if m in vm.mechanisms]
                return _Fail(
                    "placement",
                    f"{vm.name} can be protected by {', '.join(usable) or 'none'} of {ep}'s mechanisms "
                    f"({', '.join(offered)}); policy {pol.name} counts "
                    f"{', '.join(pol.mechanisms) or 'any'}",
                )
            if not offered:
                return _Fail(
                    "placement",
                    f"endpoint {ep} offers no secondary mechanism the planner knows (is its driver installed here?)",
                )
            return _Fail(
                "placement",
                f"endpoint {ep} offers {', '.join(offered)}; policy {pol.name} counts only {', '.join(pol.mechanisms)}",
            )
        fails: list[tuple[str, _Fail]] = []
        for m in mechs:
            r = self.rules[ep][m]
            mark = self._begin(st)
            window = self._make_room(st, m, r, replaces)
            if isinstance(window, _Fail):
                fails.append((m, window))
                continue
            res = self._place(st, m, r)
            if isinstance(res, _Fail):
                self._rollback(mark, st)
                fails.append((m, res))
                continue
            sspec, target, host, deps_space, deps_host = res
            spec = sspec.to_dict()
            existing = sorted(s.id for s in st.present.values() if not s.id.startswith("+"))
            nbytes = vm.size
            why = f"replace {joined(replaces)}" if replaces else "create a secondary"
            dst = self.ds_list[target]
            where = f"on {dst.name}" + (f", host {self.host_name(ep, host)}" if host else "")
            prim, _ = self._domains(ep, st.primary())
            a = self._action(
                st,
                "protect",
                f"{why}: {m} {where}, {outside(pol.level, prim) or 'apart from the primary'} ({size(nbytes)})",
                nbytes=nbytes,
                datastores=sorted(
                    {*sspec.disks.values(), *(x for x in (sspec.config_datastore, sspec.metadata_datastore) if x)}
                ),
                deps=[*deps_space, *deps_host],
                closes=closes,
                mechanism=m,
                spec=spec,
                replaces=list(replaces),
                existing=existing,
                primary={d.id: st.placement[d.id] for d in vm.disks},
            )
            st.present["+" + a.id] = Secondary(
                id="+" + a.id,
                mechanism=m,
                host=host,
                state=SecondaryState.SYNCING,
                config_datastore=sspec.config_datastore,
                metadata_datastore=sspec.metadata_datastore,
                disks=tuple(SecondaryDisk(disk=d.id, datastore=dst.id, size=d.size) for d in vm.disks),
            )
            for w in window:
                w.detail["restore"] = a.id
            return a
        if len(fails) == 1:
            return fails[0][1]
        order = {"limits": 0, "capacity": 1, "placement": 2, "unavailable": 3}
        cat = min((f.category for _, f in fails), key=lambda c: order.get(c, 9))
        return _Fail(cat, "; ".join(f"{m}: {f.reason}" for m, f in fails))

    def _make_room(self, st: _VM, m: str, r: MechanismRules, replaces: Sequence[str]) -> list[Action] | _Fail:
        """When the mechanism allows fewer secondaries per VM than a make-before-break needs
        (vSphere FT: one), the secondaries being replaced go first: a window the plan opens
        only for copies that are wrong anyway, and closes with the new one."""
        limit = r.max_secondaries_per_vm
        same = sorted((s for s in st.present.values() if s.mechanism == m), key=lambda s: s.id)
        if limit is None or len(same) + 1 <= limit:
            return []
        going = [s for s in same if s.id in replaces]
        if len(same) - len(going) + 1 > limit:
            return _Fail("limits", f"{st.vm.name} already has {len(same)} {m} secondaries; {m} allows {limit} per VM")
        out = []
        for s in going[: len(same) + 1 - limit]:
            out.append(
                self._unprotect(
                    st,
                    s,
                    f"{m} allows {limit} secondary per VM, so {s.id} ({self._sec_problem(st, s)}) goes before its "
                    f"replacement is made: {st.vm.name} has no {m} copy until the new one is in sync",
                    window=True,
                )
            )
        return out

    def _place(
        self, st: _VM, m: str, r: MechanismRules
    ) -> _Fail | tuple[SecondarySpec, int, str | None, list[str], list[str]]:
        vm, ep, pol = st.vm, st.vm.endpoint, st.policy
        if r.primary_kinds is not None:
            for d in vm.disks:
                x = self.ds(ep, st.placement[d.id])
                if x is not None and x.kind not in r.primary_kinds:
                    return _Fail(
                        "placement",
                        f"{m} needs the primary on {'/'.join(sorted(r.primary_kinds))}; "
                        f"disk {d.id} is on {x.kind} datastore {x.name}",
                    )
        if r.max_vcpus_per_vm is not None and vm.vcpus > r.max_vcpus_per_vm:
            return _Fail(
                "limits",
                f"{vm.name} has {vm.vcpus} vCPUs; {m} allows at most {r.max_vcpus_per_vm} "
                f"per VM (reduce its vCPUs or protect it another way)",
            )
        if r.max_disks is not None and len(vm.disks) > r.max_disks:
            return _Fail("limits", f"{vm.name} has {len(vm.disks)} disks; {m} allows at most {r.max_disks}")
        prim_ids = st.primary()
        avoid, names = self._domains(ep, prim_ids)
        need = vm.size
        base = Query(ep, need, pol.headroom, pol.level, avoid, r.secondary_kinds, None, None, frozenset())
        hl = self.host_ledgers.get((ep, m))
        if r.same_hosts:
            # the copy stays within the hosts that see the primary (oVirt: its data center)
            near = frozenset(h for x in prim_ids if (pd := self.ds(ep, x)) is not None for h in pd.hosts)
            base = replace(base, near=near)
        if not (r.needs_other_host or r.host_must_mount):
            t = self.index.find(base)
            if t is None:
                return self._no_target(base, names, "datastore")
            deps = self.ledger.consume(t, need, pol.headroom)
            return self._spec(m, r, vm, t, None, None), t, None, deps, []
        y = vm.host
        if hl is not None and y is not None and not hl.fits(y, vm.vcpus):
            # the platform counts the VM's own host too, for every pair: a replacement made
            # before the old secondary goes needs room there as well
            n, c = hl.load(y)
            load = f"its host {self.host_name(ep, y)} carries {n} {m} VMs and {c} vCPUs ({self._limits(r)})"
            if not any(s.mechanism == m for s in st.present.values()):
                return _Fail("limits", f"{load}: {m} cannot be turned on for {vm.name} there")
            return _Fail(
                "limits",
                f"{load}: a new secondary cannot be added while the old one exists, and "
                f"removing the old one first would leave {vm.name} without a copy: "
                f"free FT capacity on that host, or move {vm.name} to another host",
            )
        hosts = self._candidate_hosts(st, r, hl)
        if not hosts:
            return _Fail("placement", f"no other host that is up in {vm.name}'s cluster for a {m} secondary")
        best: tuple[tuple[int, int], str, int] | None = None
        full: list[str] = []
        tried = 0
        last_q: Query | None = None
        for pref, h in hosts:
            if hl is not None and not hl.fits(h.id, vm.vcpus):
                n, c = hl.load(h.id)
                full.append(f"{h.name} {n}/{c}")
                continue
            q = replace(base, host=h.id if r.host_must_mount else None)
            last_q = q
            t = self.index.find(q)
            if t is None:
                continue
            score = (pref, -self.ledger.potential(t, pol.headroom))
            if best is None or score < best[0]:
                best = (score, h.id, t)
            tried += 1
            if tried >= HOST_CHOICES:
                break
        if best is None:
            if last_q is None:
                return _Fail(
                    "limits",
                    f"no host can take {vm.name}'s {vm.vcpus}-vCPU {m} secondary: "
                    f"{joined(full)} VMs/vCPUs ({self._limits(r)})",
                )
            fail = self._no_target(last_q if r.host_must_mount else base, names, "datastore")
            if r.host_must_mount:
                fail = _Fail(
                    fail.category,
                    fail.reason.replace(
                        f"that host {self.host_name(ep, last_q.host)} mounts", "that another host mounts"
                    ),
                )
            return fail
        _, host, t = best
        meta: str | None = None
        if r.needs_metadata_datastore:
            meta = self._metadata(ep, host, y)
            if meta is None:
                return _Fail(
                    "placement",
                    f"no shared datastore that hosts {self.host_name(ep, host)} and "
                    f"{self.host_name(ep, y)} both mount, for {m}'s metadata",
                )
        deps = self.ledger.consume(t, need, pol.headroom)
        hdeps: list[str] = []
        if hl is not None:
            hdeps += hl.take(host, vm.vcpus)
            if y is not None:
                hdeps += hl.take(y, vm.vcpus)
        return self._spec(m, r, vm, t, host, meta), t, host, deps, hdeps

    def _limits(self, r: MechanismRules) -> str:
        parts = []
        if r.max_vms_per_host is not None:
            parts.append(f"{r.max_vms_per_host} VMs")
        if r.max_vcpus_per_host is not None:
            parts.append(f"{r.max_vcpus_per_host} vCPUs")
        return "limits " + " and ".join(parts) + " per host"

    def _candidate_hosts(self, st: _VM, r: MechanismRules, hl: HostLedger | None) -> list[tuple[int, Host]]:
        vm, ep = st.vm, st.vm.endpoint
        y = self.inv.host(ep, vm.host)
        group = (
            self.hosts_by_group.get((ep, y.cluster), [])
            if y is not None and y.cluster
            else self.hosts_by_group.get((ep, "\0all"), [])
        )
        level = st.policy.level if st.policy.level in (Level.SITE, Level.ROOM) else None
        out = []
        for h in group:
            if h.state is not HostState.UP or (r.needs_other_host and h.id == vm.host):
                continue
            pref = 0 if (level is None or y is None or h.domain.separated_at(y.domain, level)) else 1
            if h.id == vm.host:
                pref = 2
            load = hl.load(h.id) if hl is not None else (0, 0)
            out.append(((pref, load[1], load[0], h.id), h))
        out.sort(key=lambda x: x[0])
        return [(k[0], h) for k, h in out]

    def _metadata(self, ep: str, host: str, other: str | None) -> str | None:
        def mounted(i: int) -> bool:
            return other is None or other in self.ds_list[i].hosts

        for need in (0, -(1 << 62)):
            t = self.index.find(Query(ep, need, 0.0, None, (), None, True, host), accept=mounted)
            if t is not None:
                return self.ds_list[t].id
        return None

    def _spec(self, m: str, r: MechanismRules, vm: VM, t: int, host: str | None, meta: str | None) -> SecondarySpec:
        d = self.ds_list[t].id
        return SecondarySpec(
            mechanism=m,
            disks={x.id: d for x in vm.disks},
            config_datastore=d if r.has_config else None,
            host=host,
            metadata_datastore=meta,
        )

    # -- results -------------------------------------------------------------------------
    def _result(self, ds_findings: list[Finding]) -> PlanResult:
        closed: set[str] = set()
        for a in self.actions:
            closed.update(a.closes)
        if ds_findings:
            freeing: dict[tuple[str, str], list[Action]] = {}
            for a in self.actions:
                srcs = (
                    _sources(a) if a.kind in ("move_disk", "move_vm") else a.datastores if a.kind == "unprotect" else []
                )
                for x in srcs:
                    freeing.setdefault((a.endpoint, x), []).append(a)
            for f in ds_findings:
                i = self.pos.get((f.endpoint, f.datastore or ""))
                if i is None or self.ledger.headroom_deficit(i) > 0:
                    continue
                helping = freeing.get((f.endpoint, self.ds_list[i].id), [])
                if helping:
                    for a in helping:
                        if f.id not in a.closes:
                            a.closes.append(f.id)
                    closed.add(f.id)
        unfixable = []
        for f in self.findings:
            if f.id in closed:
                continue
            if f.id in self.why:
                cat, reason = self.why[f.id].category, self.why[f.id].reason
            elif not f.fixable:
                cat, reason = "manual", f"not something a plan can fix: {f.fix}"
            else:
                cat, reason = "placement", "no action found for this finding: " + f.fix
            unfixable.append(Unfixable(f.id, f.rule, f.endpoint, cat, reason, f.vm, f.vm_name, f.datastore))
        unfixable.sort(key=lambda u: (u.endpoint, u.vm_name or "", u.datastore or "", u.rule, u.finding))
        used = sorted({p.name for p in self._policies.values() if p is not None})
        return PlanResult(
            self.actions, unfixable, len(self.findings), sum(f.fixable for f in self.findings), closed, used
        )


def _sources(a: Action) -> list[str]:
    src = a.detail.get("from")
    if isinstance(src, str):
        return [src]
    return list(src) if isinstance(src, list) else []


def min_cover(sizes: Sequence[int], need: int) -> list[int] | None:
    """Indexes of ``sizes`` whose sum is at least ``need`` and as small as possible.

    Exact subset-sum (sums reached, each with the item that first reached it) while the number
    of distinct sums stays small; otherwise the better of "one item big enough" and "largest
    first, then drop what is not needed".
    """
    if need <= 0:
        return []
    if sum(sizes) < need:
        return None
    order = sorted(range(len(sizes)), key=lambda k: (-sizes[k], k))
    # greedy upper bound
    greedy: list[int] = []
    acc = 0
    for k in order:
        if acc >= need:
            break
        greedy.append(k)
        acc += sizes[k]
    for k in sorted(greedy, key=lambda k: (sizes[k], k)):
        if acc - sizes[k] >= need:
            greedy.remove(k)
            acc -= sizes[k]
    best_sum, best = acc, greedy
    singles = [k for k in order if sizes[k] >= need]
    if singles:
        k = min(singles, key=lambda k: (sizes[k], k))
        if sizes[k] < best_sum:
            best_sum, best = sizes[k], [k]
    if best_sum == need:
        return sorted(best)
    reached: dict[int, tuple[int, int]] = {0: (-1, -1)}  # sum -> (item, previous sum)
    for k in order:
        s = sizes[k]
        for total in list(reached):
            if total >= need:
                continue
            new = total + s
            if new >= best_sum or new in reached:
                continue
            reached[new] = (k, total)
            if new >= need:
                best_sum = new
        if len(reached) > EXACT_STATES:
            return sorted(best)
    if best_sum not in reached:
        return sorted(best)
    out = []
    total = best_sum
    while total:
        k, total = reached[total]
        out.append(k)
    return sorted(out)
