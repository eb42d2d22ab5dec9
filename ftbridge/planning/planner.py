"""The planner: turn audit findings into ordered, capacity-safe actions.

Five passes, each over the VMs (or datastores) it concerns, biggest first so large items
find room before small ones fragment it:

1. **primary**: primary files on storage only one host mounts move to shared storage the
   VM's host mounts, kept separated from the VM's good secondaries. A mechanism that blocks
   primary moves (vSphere FT) is turned off, the VM moved, and turned on again with a new
   placement; the three steps are planned together or not at all.
2. **separation by moving the primary**: when a secondary shares a domain with part of the
   primary, moving that part can cost fewer bytes than re-creating the whole secondary (and
   may empty a datastore that is over its headroom): then it is preferred.
3. **secondaries**: a missing or bad secondary (broken, unseparated, on the primary's host,
   FT metadata on local storage, or a lagging copy of a ``refreshable`` mechanism) gets a new
   one, separated from the primary's final place at the policy's level, on another host where
   the mechanism needs one, near the primary's hosts where it is ``same_hosts``, within the
   mechanism's limits; the bad one is removed only after it (make before break), unless the
   mechanism allows fewer secondaries per VM than that takes (``max_secondaries_per_vm``):
   then the wrong copy goes first, in a window the plan marks. A VM with a good copy besides
   a bad one just loses the bad one. When a host's FT slots are full the pass repeats, so
   slots freed by earlier removals are used.
4. **headroom**: a datastore below its headroom (what the removals planned so far did not
   relieve) gets the set of disks moved off that frees enough with the fewest bytes *and*
   finds room elsewhere (exact on small sets, greedy beyond:
   :func:`~ftbridge.planning.cover.choose_cover`).
5. **room for the copies still missing**: a new secondary that found no datastore with the
   room gets it on one that would take it but for room, by moving other VMs' disks off it
   (disks no finding asks to move; each move under the rules of any primary move), the copy
   waiting for them; taken back whole if the copy still cannot be placed
   (:meth:`Planner._room_for_copies`). Then primaries that found no room in pass 1 try again
   (later passes may have freed some).

Why secondaries before headroom: both take room from the same datastores (a copy goes to
another array, whose datastores also take the disks that leave an over-full one of that
array), and where room is short the pass that goes first wins it. A VM without a good copy
is an error, a datastore below its headroom a warning; and a copy is one large item where a
headroom fix chooses among many sets of disks, so it fits in what the copies leave more often
than the other way round. Measured on ``contrib/bench/optimality.py`` before pass 5 existed:
the ``tight`` family fixed 93 findings instead of 90 (of the optimum's 102; with pass 5, 101),
no instance of any family fewer;
``tests/test_plan_planner.py`` holds an estate where the other order leaves a copy unplaced.

**Repair step** (:mod:`ftbridge.planning.repair`): a finding left open for lack of room that
this plan's own placements took gets it by putting those placements elsewhere.

Capacity is tracked by :mod:`ftbridge.planning.ledger`, targets found through
:mod:`ftbridge.planning.index`. Everything iterates in sorted order: the same input gives the
same plan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from ftbridge.audit import Finding, raise_headroom
from ftbridge.config import Config, Policy
from ftbridge.drivers.base import MechanismRules, SecondarySpec
from ftbridge.inventory import Inventory
from ftbridge.model import (
    VM,
    Datastore,
    Disk,
    FailureDomain,
    Host,
    HostState,
    Level,
    Location,
    Secondary,
    SecondaryDisk,
    SecondaryState,
)
from ftbridge.planning.actions import Action, PlanResult, Unfixable
from ftbridge.planning.capabilities import offers
from ftbridge.planning.cover import choose_cover
from ftbridge.planning.explain import cannot, joined, outside, plural, size
from ftbridge.planning.index import CandidateIndex, Query
from ftbridge.planning.ledger import HostLedger, Release, SpaceLedger, Undo
from ftbridge.planning.repair import Repair, datastore_only

#: rules whose findings are about one secondary and are closed by removing it
SECONDARY_RULES = frozenset(
    {"secondary-unhealthy", "secondary-not-separated", "secondary-on-primary-host", "ft-metadata-not-shared"}
)
#: how many hosts a placement compares before settling (balance without scanning a cluster)
HOST_CHOICES = 3
#: pass 5 (room for a copy by moving other VMs' disks): datastores tried per VM, the closest
#: to having the room first; disks weighed per run at most (each weighing is one target query)
ROOM_TARGETS = 6
ROOM_WORK = 2_000

Rules = Mapping[str, Mapping[str, MechanismRules]]
#: per endpoint, the operations it can carry out (None: not known here, nothing is ruled out)
Capabilities = Mapping[str, frozenset[str] | None]
Accept = Callable[[int], bool]
_Cand = tuple[int, str, "_VM", str]  # a disk that may leave a datastore: (bytes, key, its VM, disk id)


@dataclass(slots=True)
class _Snap:
    placement: Mapping[str, str]
    config: str | None
    present: Mapping[str, Secondary]
    bad: frozenset[str]
    last: str | None
    done: frozenset[str]


@dataclass(slots=True)
class _VM:
    """One VM as the plan changes it: where its disks are and which secondaries it has."""

    vm: VM
    policy: Policy
    findings: list[Finding]
    #: where its disks are and which secondaries it has: immutable here, replaced on change
    #: (:meth:`place`, :meth:`set_secondary`), so a snapshot shares them instead of copying
    placement: Mapping[str, str]
    config: str | None
    present: Mapping[str, Secondary]
    #: immutable, replaced on change: most VMs' are the one empty frozenset, and a snapshot
    #: (:meth:`snapshot`) shares them instead of copying
    bad: frozenset[str]
    last: str | None = None
    unavailable: str | None = None
    done: frozenset[str] = frozenset()  # finding ids handled (closed or explained)
    level: Level = field(init=False)  # the policy's, asked once (Policy.level builds it)

    def __post_init__(self) -> None:
        self.level = self.policy.level

    def snapshot(self) -> _Snap:
        return _Snap(self.placement, self.config, self.present, self.bad, self.last, self.done)

    def restore(self, snap: _Snap) -> None:
        self.placement, self.config, self.present = snap.placement, snap.config, snap.present
        self.bad, self.last, self.done = snap.bad, snap.last, snap.done

    def place(self, disk: str, datastore: str) -> None:
        """Disk ``disk`` planned on ``datastore``: a new mapping (a snapshot keeps the old one)."""
        self.placement = {**self.placement, disk: datastore}

    def set_secondary(self, key: str, sec: Secondary | None) -> None:
        """Secondary ``key`` planned as ``sec`` (None: removed): a new mapping, as :meth:`place`."""
        present = dict(self.present)
        if sec is None:
            present.pop(key, None)
        else:
            present[key] = sec
        self.present = present

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
class Prepared:
    """What every planning run over one inventory and config starts from: datastores in
    their fixed order, each one's headroom percentage (the audit's rule:
    :func:`~ftbridge.audit.raise_headroom`), the managed VMs on the datastores below their
    headroom (the only ones the plan looks for there), policies, host groups, and the initial
    load per host of the mechanisms with host limits. Built once by :func:`prepare` and shared by the runs."""

    ds_list: list[Datastore]
    pos: dict[tuple[str, str], int]
    pct: list[float]
    on_ds: dict[int, list[VM]]
    policies: dict[tuple[str, str, tuple[str, ...]], Policy | None]
    names_free: bool
    hosts_by_group: dict[tuple[str, str | None], list[Host]]
    #: (endpoint, mechanism) -> host -> [pairs, vCPUs] (see :class:`HostLedger`)
    host_loads: dict[tuple[str, str], dict[str, list[int]]]


def prepare(
    inv: Inventory,
    config: Config,
    findings: Iterable[Finding] = (),
    limited: Iterable[tuple[str, str]] = (),
) -> Prepared:
    """``findings``: those the runs will plan (their over-headroom datastores are the ones whose
    VMs are listed); ``limited``: the (endpoint, mechanism) pairs with per-host limits."""
    ds_list = sorted(inv.datastores, key=lambda d: (d.endpoint, d.id))
    pos = {(d.endpoint, d.id): i for i, d in enumerate(ds_list)}
    over = {
        j
        for f in findings
        if f.rule == "datastore-over-headroom" and (j := pos.get((f.endpoint, f.datastore or ""))) is not None
    }
    # per endpoint, only the datastores over their headroom (id -> position): the loop over every
    # VM asks this small table, which stays in cache, not one of every datastore
    over_in: dict[str, dict[str, int]] = {}
    for j in over:
        over_in.setdefault(ds_list[j].endpoint, {})[ds_list[j].id] = j
    host_loads: dict[tuple[str, str], dict[str, list[int]]] = {k: {} for k in limited}
    # when no policy selects by name, a VM's policy depends on its endpoint and tags only
    names_free = all(sel.name == "*" for p in config.policies for sel in p.match)
    policies: dict[tuple[str, str, tuple[str, ...]], Policy | None] = {}
    touched: dict[str, dict[str, float]] = {}  # per endpoint: datastore id -> headroom %
    on_ds: dict[int, list[VM]] = {}
    # in inventory order: its work per VM is light, so reading the VMs in the order they lie
    # in memory beats keeping hosts and datastores in cache (Inventory.vms_by_host, measured:
    # 1.7 against 2.2 s at a million VMs)
    for vm in inv.vms:
        ep = vm.endpoint
        if host_loads:
            for s in vm.secondaries:
                loads = host_loads.get((ep, s.mechanism))
                if loads is not None:
                    for hid in {x for x in (s.host, vm.host) if x is not None}:
                        load = loads.setdefault(hid, [0, 0])
                        load[0] += 1
                        load[1] += vm.vcpus
        key = (ep, "" if names_free else vm.name, vm.tags)
        try:
            p = policies[key]
        except KeyError:
            p = policies[key] = config.policy_for(vm)
        if p is None:
            continue
        seen = touched.get(ep)
        if seen is None:
            seen = touched[ep] = {}
        raise_headroom(seen, vm, p)  # the audit's rule, from this same pass
        if not over:
            continue  # (a managed VM is listed too: which VMs may move is _leavers's rule)
        where = over_in.get(ep)
        if where is None:
            continue
        for on in (vm.config_datastore, *(d.datastore for d in vm.disks)):
            if on and (j := where.get(on)) is not None:
                listed = on_ds.setdefault(j, [])
                if not listed or listed[-1] is not vm:  # once per VM
                    listed.append(vm)
    pct = [touched.get(d.endpoint, {}).get(d.id, 0.0) for d in ds_list]
    hosts_by_group: dict[tuple[str, str | None], list[Host]] = {}
    for h in sorted(inv.hosts, key=lambda h: (h.endpoint, h.id)):
        hosts_by_group.setdefault((h.endpoint, h.cluster), []).append(h)
        hosts_by_group.setdefault((h.endpoint, "\0all"), []).append(h)
    return Prepared(ds_list, pos, pct, on_ds, policies, names_free, hosts_by_group, host_loads)


def limited_mechanisms(known: Rules) -> list[tuple[str, str]]:
    """The (endpoint, mechanism) pairs whose rules limit the load per host."""
    return [
        (ep, name)
        for ep, mechs in known.items()
        for name, r in mechs.items()
        if r.max_vms_per_host is not None or r.max_vcpus_per_host is not None
    ]


@dataclass
class _Fail:
    category: str
    reason: str
    #: for "capacity": a target would have had the room but for what this plan placed there,
    #: so placing differently (best fit) might keep it; False when the room was never there
    room: bool = True


class Planner:
    """One planning run. Build it, call :meth:`run` once.

    ``tight``: place by best fit (the fullest target that fits) instead of balance (the
    roomiest), on every endpoint or on the endpoints named. Endpoints never share a datastore
    or a host, so each endpoint's part of a run depends on its own findings alone: a run over
    some endpoints' findings plans them exactly as a run over all would.
    """

    def __init__(
        self,
        inv: Inventory,
        config: Config,
        findings: Sequence[Finding],
        rules: Rules,
        known_rules: Rules | None = None,
        *,
        tight: bool | frozenset[str] = False,
        smallest_first: bool = False,
        capabilities: Capabilities | None = None,
        prepared: Prepared | None = None,
    ) -> None:
        self.smallest_first = smallest_first
        self.caps: Capabilities = capabilities or {}
        self.inv = inv
        self.config = config
        self.findings = list(findings)
        self.rules = rules
        self.known = known_rules if known_rules is not None else rules
        self.undo = Undo()
        est = prepared if prepared is not None else prepare(inv, config, self.findings, limited_mechanisms(self.known))
        self.ds_list = est.ds_list
        self.pos = est.pos
        self._policies = est.policies
        self._names_free = est.names_free
        self.on_ds = est.on_ds
        self.ledger = SpaceLedger(
            [d.capacity for d in self.ds_list],
            [d.free for d in self.ds_list],
            est.pct,
            self.undo,
            reserve=[d.reserve for d in self.ds_list],
        )
        self.index = CandidateIndex(self.ds_list, self.ledger, tight=tight)
        self.ledger.on_change = self.index.update
        self.hosts_by_group = est.hosts_by_group
        self.host_ledgers: dict[tuple[str, str], HostLedger] = {}
        self._init_host_ledgers(est.host_loads)
        self.actions: list[Action] = []
        self.states: dict[tuple[str, str], _VM] = {}
        self.why: dict[str, _Fail] = {}
        self._candidate_locs: dict[tuple[int, str | None, str | None], Location] = {}
        #: per copy or disk move that claimed releases: (the claims, its other dependencies),
        #: so the repair step can put it elsewhere (:meth:`_lift`, :meth:`_put`)
        self._claims: dict[str, tuple[list[Release], list[str]]] = {}
        #: placements the repair step considered putting elsewhere (its work, bounded)
        self.repair = Repair(self)
        self._on_any: dict[str, dict[int, list[VM]]] = {}  # per endpoint, for pass 5 (:meth:`_vms_on`)
        #: endpoints where a finding is left open because the plan took the room a target had
        #: (after :meth:`run`): where placing by best fit instead of balance may fix more
        self.short_of_room: set[str] = set()

    # -- set-up --------------------------------------------------------------------------
    def policy(self, vm: VM) -> Policy | None:
        key = (vm.endpoint, "" if self._names_free else vm.name, vm.tags)
        if key not in self._policies:
            self._policies[key] = self.config.policy_for(vm)
        return self._policies[key]

    def _init_host_ledgers(self, loads: Mapping[tuple[str, str], Mapping[str, list[int]]]) -> None:
        for ep, name in limited_mechanisms(self.known):
            if (ep, name) not in loads:
                raise ValueError(f"prepare() was not told that {ep}'s {name} has host limits")
            self.host_ledgers[(ep, name)] = HostLedger(self.known[ep][name], self.undo, loads[(ep, name)])

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
                frozenset(),
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
        self._drop_actions(n)
        st.restore(snap)

    def _drop_actions(self, n: int) -> None:
        """Take back the actions from the ``n``-th on, with the claims filed for them: a later
        action given the same id must not inherit them (the repair step reads them)."""
        for a in self.actions[n:]:
            self._claims.pop(a.id, None)
        del self.actions[n:]

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
        st.done = st.done.union(a.closes)
        return a

    def _explain(self, f: Finding, category: str, reason: str) -> None:
        self._blame(f, _Fail(category, reason))

    def _blame(self, f: Finding, fail: _Fail) -> None:
        """``f`` stays open for ``fail`` (the first reason found is kept)."""
        self.why.setdefault(f.id, fail)

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

    def can(self, endpoint: str, capability: str) -> bool:
        """May the plan ask this endpoint for ``capability``? (what its driver declares and its
        site narrowed; unknown here: yes)"""
        return offers(self.caps, endpoint, capability)

    def _cannot(self, endpoint: str, capability: str, what: str) -> _Fail:
        return _Fail("placement", cannot(endpoint, capability, what))

    # -- the failure model: the inventory's locations, on the plan's placement -----------
    def prim_loc(self, st: _VM, ids: Iterable[str] | None = None) -> Location:
        """The primary's location with its files where the plan has put them (or at ``ids``)."""
        return self.inv.primary_location(st.vm, st.primary() if ids is None else ids)

    def _kept_separated(self, st: _VM) -> list[Location]:
        """Locations of the secondaries a primary move must stay apart from: kept ones that are
        separated now (a move must not make them worse)."""
        level, now = st.level, self.prim_loc(st)
        out = []
        for s in sorted(st.present.values(), key=lambda s: s.id):
            if s.id in st.bad or s.missing:
                continue
            loc = self.inv.secondary_location(st.vm, s)
            if now.separated_from(loc, level):
                out.append(loc)
        return out

    def _primary_accept(self, st: _VM, sources: set[str], *, strict: bool = False, local: bool = False) -> Accept:
        """A primary move's target must keep the primary whole in one domain (not split across
        two, unless it already was and ``strict`` is off) and apart from kept secondaries.
        ``local``: also in the site its hosts run in (a preference: storage near its compute)."""
        level = st.level
        keep_whole = strict or self.prim_loc(st).split(level) is None
        kept = self._kept_separated(st)
        base = st.primary() - sources
        seen: dict[int, bool] = {}

        def accept(i: int) -> bool:
            ok = seen.get(i)
            if ok is None:
                loc = self.prim_loc(st, base | {self.ds_list[i].id})
                ok = (
                    (not keep_whole or loc.split(level) is None)
                    and (not local or loc.split(Level.SITE) is None)
                    and all(loc.separated_from(k, level) for k in kept)
                )
                seen[i] = ok
            return ok

        return accept

    def _host_domain(self, st: _VM, prim: Location) -> tuple[FailureDomain, ...]:
        """The domain at the policy's level that holds every host of the primary (at ``prim``),
        when there is one: a secondary must avoid it as it avoids the primary's storage."""
        if st.level not in (Level.SITE, Level.ROOM):
            return ()  # an array or a datastore holds no host
        d = prim.domain_of_hosts(st.level)
        return (d,) if d is not None and d.as_dict() else ()

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
            st.findings = vm_findings[key]  # sorted in place: no second list per VM
            st.findings.sort(key=lambda f: f.id)
            for f in st.findings:
                sid = f.secondary
                if (
                    sid is not None
                    and sid in st.present
                    and ((f.rule in SECONDARY_RULES and f.fixable) or self._refresh(st, f))
                ):
                    st.bad |= {sid}
            gone = st.of("primary-unavailable")
            if gone:
                st.unavailable = f"{gone[0].message.split(': ', 1)[-1]}: fail over first, then plan again"
            elif st.vm.host is not None and not self._host_ok(st.vm.endpoint, st.vm.host):
                st.unavailable = f"its host {self.host_name(st.vm.endpoint, st.vm.host)} is not up"
        work = sorted(
            (st for st in self.states.values() if st.findings),
            key=lambda st: ((st.vm.size if self.smallest_first else -st.vm.size), st.vm.endpoint, st.vm.id),
        )
        # between two VMs' fixes nothing is taken back: the undo log is cleared there
        for st in work:
            if st.of("primary-not-shared"):
                self._fix_primary(st)
                self.undo.clear()
        for st in work:
            if st.of("primary-split"):
                self._fix_split(st)
                self.undo.clear()
        for st in work:
            if st.of("secondary-not-separated"):
                self._separate_by_move(st)
                self.undo.clear()
        # secondaries before headroom: where room is short, a VM without a good copy (an error)
        # gets it before a datastore below its headroom (a warning) does (see the docstring)
        no_room = self._fix_secondaries(work)
        for f in sorted(ds_findings, key=lambda f: f.id):
            self._fix_headroom(f)
            self.undo.clear()
        self._room_for_copies(no_room)
        self._primaries_again(work)
        result = self._result(ds_findings)
        self.ledger.on_change = None  # no cycle left: the run's state is freed as soon as dropped
        return result

    # -- pass 1: primary to shared storage ----------------------------------------------
    def _fix_primary(self, st: _VM) -> None:
        (f,) = st.of("primary-not-shared")[:1]
        vm, ep = st.vm, st.vm.endpoint
        if st.unavailable:
            self._explain(f, "unavailable", st.unavailable)
            return
        local = {x for x in st.primary() if (d := self.ds(ep, x)) is not None and not d.shared}
        stuck = [d for d in vm.disks if st.placement[d.id] in local and not _movable(d)]
        if stuck:
            self._explain(f, "placement", f"{_why_fixed(stuck[0], vm)}: detach it or accept the local primary")
            return
        sep = self._sep_only(st)
        if sep is not None:
            # a secondary that is wrong only for sharing a domain with the local primary: moving
            # the primary away from it fixes both findings for the price of one copy
            tx = self._begin(st)
            st.bad -= {sep.id}
            closes = [f.id, *(x.id for x in st.of("secondary-not-separated", sep.id))]
            fail = self._move_primary(st, local, closes, "move off non-shared storage, away from its secondary")
            if fail is None and not self._offending(st, sep):
                return
            self._rollback(tx, st)
        fail = self._relocate(
            st, local, [f.id], "its primary must move to shared storage", "move off non-shared storage"
        )
        if fail is not None:
            self._blame(f, fail)

    def _relocate(self, st: _VM, sources: set[str], closes: list[str], need: str, why: str) -> _Fail | None:
        """Move the primary files on ``sources``, turning off (and on again at the new place)
        secondaries that forbid primary moves. A VM split across domains lands whole in one if
        it can; otherwise it is at least not split further. Planned whole or not at all."""
        ep = st.vm.endpoint
        fail: _Fail | None = None
        for strict in (True, False) if st.of("primary-split") else (False,):
            tx = self._begin(st)
            blocking = sorted((s for s in st.present.values() if self.blocks_move(ep, s)), key=lambda s: s.id)
            window = self._window_off(st, blocking, need)
            fail = self._move_primary(st, sources, closes, why, strict=strict)
            if fail is None and blocking:
                fail = self._window_on(st, blocking, window)
            if fail is None:
                return None
            self._rollback(tx, st)
        return fail

    # -- pass 1b: a primary split across domains -----------------------------------------
    def _fix_split(self, st: _VM) -> None:
        """Bring the VM's storage into the domain its hosts run in (or, when they do not say, the
        domain that holds most of its bytes): then one loss at the policy's level no longer
        stops a VM that two losses could each stop."""
        (f,) = st.of("primary-split")[:1]
        vm, ep, level = st.vm, st.vm.endpoint, st.level
        if st.unavailable:
            self._explain(f, "unavailable", st.unavailable)
            return
        prim = self.prim_loc(st)
        if prim.split(level) is None:  # the move off local storage already brought it together
            for a in self.actions:
                if a.vm == vm.id and a.endpoint == ep and a.kind in ("move_disk", "move_vm"):
                    a.closes.append(f.id)
                    st.done |= {f.id}
            return
        home = prim.domain_of_hosts(level)
        if home is None or home.label(level) is None:
            weight: dict[str, int] = {}
            for d in vm.disks:
                x = self.ds(ep, st.placement[d.id])
                if x is not None and x.domain.label(level) is not None:
                    key = str(x.domain.label(level))
                    weight[key] = weight.get(key, 0) + d.size
            if not weight:
                self._explain(f, "placement", f"{f.message.split(': ', 1)[-1]}; its labels do not say where it belongs")
                return
            top = min(weight, key=lambda k: (-weight[k], k))
            home = FailureDomain(**{level.value: top})
        stray = {x for x in st.primary() if (pd := self.ds(ep, x)) is not None and pd.domain.separated_at(home, level)}
        deps = [
            dep
            for dep in vm.depends_on
            if (xd := self.ds(ep, dep.datastore)) is None or xd.domain.separated_at(home, level)
        ]
        if deps:
            dep = deps[0]
            self._explain(
                f,
                "placement",
                f"its {dep.kind} on {self.ds_name(ep, dep.datastore)} lies outside {level.value} "
                f"{home.label(level)} and a plan does not move it: move that file, or run {vm.name} where it is",
            )
            return
        if not stray:
            self._explain(f, "placement", f"{f.message.split(': ', 1)[-1]}; no file of its own lies elsewhere")
            return
        fail = self._relocate(
            st,
            stray,
            [f.id],
            f"its storage must join {level.value} {home.label(level)}",
            f"bring {vm.name}'s storage into {level.value} {home.label(level)}, where it runs",
        )
        if fail is not None:
            self._blame(f, fail)

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
                res.room,
            )
        for a in window:
            a.detail["restore"] = res.id
        return None

    def _primary_query(
        self, st: _VM, disks: Sequence[Disk], exclude: Iterable[str], *, strict: bool = False
    ) -> tuple[Query, list[str], Accept]:
        """Where primary disks may go: shared, mounted by its host, holding their content, in
        the domain its hosts run in and apart from kept secondaries (the model decides those
        two, through the accept function; the query's ``avoid`` only narrows the search)."""
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
        exclude = set(exclude)
        q = Query(
            ep,
            sum(d.size for d in disks),
            pol.headroom,
            st.level if avoid else None,
            avoid,
            kinds,
            True,
            host,
            frozenset(i for x in exclude if (i := self.pos.get((ep, x))) is not None),
            content=frozenset(d.content for d in disks) or frozenset({"images"}),
            need_thin=sum(d.used if d.thin else d.size for d in disks),
        )
        return q, names, self._primary_accept(st, exclude, strict=strict)

    def _no_target(self, q: Query, names: list[str], what: str, accept: Accept | None = None, also: str = "") -> _Fail:
        count, best, room = self.index.survey(q, accept)
        where = self._target_words(q, names, what) + also
        if count == 0:
            return _Fail("placement", f"no {where}")
        assert best is not None
        return _Fail(
            "capacity",
            f"no {where} has {size(q.need)} free above its {q.pct:g}% headroom "
            f"(the most: {size(max(room, 0))} on {self.ds_list[best].name})",
            self._room_taken(q, accept),
        )

    def _room_taken(self, q: Query, accept: Accept | None) -> bool:
        """Would some target of ``q`` have had the room but for what this plan has placed on
        it? Then placing differently (best fit, which keeps big holes for big items) might leave
        it; if not, the room was never there (or only the plan's own frees could make it)."""
        ledger = self.ledger
        return self.index.any_fits(q, lambda i: ledger.potential(i, q.pct) + ledger.taken[i], accept)

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

    def _move_primary(
        self, st: _VM, sources: set[str], closes: list[str], why: str, *, strict: bool = False
    ) -> _Fail | None:
        """Plan moving every primary file on ``sources`` elsewhere; None when planned."""
        vm = st.vm
        if st.config in sources:
            return self._move_vm(st, sources, closes, why, strict=strict)
        if not self.can(vm.endpoint, "move_disk"):
            return self._cannot(vm.endpoint, "move_disk", "move a disk")
        disks = sorted((d for d in vm.disks if st.placement[d.id] in sources), key=lambda d: (-d.size, d.id))
        q, names, accept = self._primary_query(st, disks, sources, strict=strict)
        # storage near its compute first (the site of the hosts that run it), then anywhere allowed
        target = self.index.find(q, self._primary_accept(st, sources, strict=strict, local=True))
        if target is None:
            target = self.index.find(q, accept)
        if target is not None:
            for d in disks:
                self._move_disk(st, d, target, closes, why, q.pct)
            return None
        for d in disks:  # no single target for all: place disk by disk
            qd, names, accept = self._primary_query(st, [d], sources, strict=strict)
            t = self.index.find(qd, accept)
            if t is None:
                return self._no_target(qd, names, "shared datastore", accept, self._compute_words(st))
            self._move_disk(st, d, t, closes, why, qd.pct)
        return None

    def _compute_words(self, st: _VM) -> str:
        if st.level not in (Level.SITE, Level.ROOM):
            return ""
        hosts = self.prim_loc(st).hosts
        return f" in the {st.policy.separation} of the hosts that run it ({joined(h.name for h in hosts[:3])})"

    def _move_disk(self, st: _VM, d: Disk, target: int, closes: list[str], why: str, pct: float) -> Action:
        ep = st.vm.endpoint
        disk = d.id
        src = st.placement[disk]
        dst = self.ds_list[target]
        nbytes = d.space_on(dst)
        claims = self.ledger.take(target, nbytes, pct)
        if claims:  # what the repair step must know to put this move elsewhere
            self._claims[f"a{len(self.actions) + 1:05d}"] = (claims, [st.last] if st.last else [])
        a = self._action(
            st,
            "move_disk",
            f"{why}: disk {disk} ({size(nbytes)}) from {self.ds_name(ep, src)} to {dst.name}",
            nbytes=nbytes,
            datastores=[src, dst.id],
            deps=[x for x, _ in claims],
            closes=closes,
            disk=disk,
            **{"from": src},
            to=dst.id,
        )
        i = self.pos.get((ep, src))
        if i is not None:
            self.ledger.release(i, d.used, a.id)
        st.place(disk, dst.id)
        return a

    def _move_vm(
        self, st: _VM, sources: set[str], closes: list[str], why: str, *, strict: bool = False
    ) -> _Fail | None:
        vm, ep = st.vm, st.vm.endpoint
        if not self.can(ep, "move_vm"):
            return self._cannot(ep, "move_vm", f"move {vm.name}'s config file")
        movable = [d for d in vm.disks if _movable(d)]
        stuck = [d for d in vm.disks if not _movable(d) and st.placement[d.id] in sources]
        if stuck:
            return _Fail("placement", _why_fixed(stuck[0], vm))
        q, names, accept = self._primary_query(st, movable, sources, strict=strict)
        choice: tuple[int, int] | None = None  # (bytes, target)
        # a datastore that already holds some of the VM's disks saves their copy
        for x in sorted({st.placement[d.id] for d in movable} - sources):
            i = self.pos.get((ep, x))
            if i is None:
                continue
            rest = [d for d in movable if st.placement[d.id] != x]
            qx = replace(q, need=sum(d.size for d in rest), need_thin=sum(d.used if d.thin else d.size for d in rest))
            if self.index.admits(i, qx, accept):
                need = qx.need_on(self.ds_list[i])
                if choice is None or need < choice[0]:
                    choice = (need, i)
        if choice is None:
            t = self.index.find(q, self._primary_accept(st, sources, strict=strict, local=True))
            if t is None:
                t = self.index.find(q, accept)
            if t is None:
                return self._no_target(q, names, "shared datastore", accept, self._compute_words(st))
            choice = (q.need_on(self.ds_list[t]), t)
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
                self.ledger.release(i, d.used, a.id)
            st.place(d.id, dst.id)
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
        """Primary datastores that share a failure with secondary ``s`` at the policy's level (the
        model says which); empty when the primary's hosts share it too (moving storage alone
        would not help) or the cause is not a datastore of the VM's own files."""
        ep = st.vm.endpoint
        mine, _ = self.prim_loc(st).culprits(self.inv.secondary_location(st.vm, s), st.level)
        if any(p.kind == "host" for p in mine):
            return set()
        own = {x for x in st.primary() if self.inv.store_place(ep, x) in mine}
        return own if len(own) == len(mine) else set()

    def _separate_by_move(self, st: _VM) -> None:
        vm, ep = st.vm, st.vm.endpoint
        s = self._sep_only(st)
        if s is None:
            return
        sid = s.id
        fs = st.of("secondary-not-separated", sid)
        level = st.level
        sec_domains = [d.domain for x in s.datastores if (d := self.ds(ep, x)) is not None]
        offending = self._offending(st, s)
        if not offending:
            return
        disks = [d for d in vm.disks if st.placement[d.id] in offending]
        if any(not _movable(d) for d in disks):
            return
        if st.config in offending and len(disks) != len(vm.disks):
            return  # the config can only move with every disk: that is never cheaper
        cost_move = sum(d.size for d in disks)
        cost_recreate = vm.size
        relieves = any(self.ledger.headroom_deficit(self.pos[(ep, p)]) > 0 for p in offending)
        if not (cost_move < cost_recreate or (cost_move == cost_recreate and relieves)):
            return
        tx = self._begin(st)
        st.bad -= {sid}  # kept: the moved disks must land apart from it
        why = (
            f"separate the primary from secondary {sid} ({outside(level, sec_domains)}) by moving "
            f"{size(cost_move)} instead of re-creating the secondary ({size(cost_recreate)})"
        )
        fail = self._move_primary(st, offending, [f.id for f in fs], why)
        if fail is not None:
            self._rollback(tx, st)

    # -- pass 4: datastores below their headroom (after pass 3) --------------------------
    def _fix_headroom(self, f: Finding) -> None:
        ep = f.endpoint
        i = self.pos.get((ep, f.datastore or ""))
        if i is None or not f.fixable:
            return
        deficit = self.ledger.headroom_deficit(i)
        if deficit <= 0:
            return  # earlier moves and removals free enough; closes are attached at the end
        ds = self.ds_list[i]
        cands, misses, skipped_ft, short = self._leavers(i, self.on_ds.get(i, []))
        why = (
            f"free {ds.name}: {size(ds.capacity - self.ledger.end_free[i])} used of {size(ds.capacity)}, "
            f"its {self.ledger.pct[i]:g}% headroom needs {size(deficit)} more free"
        )
        done, banned = choose_cover(cands, deficit, lambda picks: self._move_off(i, picks, [f.id], why, False))
        if done:
            return
        if short:
            # disks that fit only where this plan's own placements are: with the repair step
            more = []
            for c in misses:
                q, _, accept = self._primary_query(c[2], [next(x for x in c[2].vm.disks if x.id == c[3])], {ds.id})
                if self._room_taken(q, accept):
                    more.append(c)
            if (
                more
                and choose_cover([*cands, *more], deficit, lambda picks: self._move_off(i, picks, [f.id], why, True))[0]
            ):
                return
        movable = sum(c[0] for c in cands if c[1] not in banned)
        extra = (
            f"; {plural(skipped_ft, 'VM')} with FT-like secondaries are not moved for headroom" if skipped_ft else ""
        )
        self.why[f.id] = _Fail(
            "capacity",
            f"{ds.name} needs {size(deficit)} moved off to keep {self.ledger.pct[i]:g}% "
            f"free, but its disks that fit elsewhere total {size(movable)}{extra}: "
            f"grow it or free space by hand",
            room=short or bool(banned),
        )

    def _leavers(
        self, i: int, vms: Iterable[VM], owner: _VM | None = None
    ) -> tuple[list[_Cand], list[_Cand], int, bool]:
        """The disks of ``vms`` on datastore ``i`` that a primary move may take off it (not
        ``owner``'s): (those with a target now, those with none now, how many VMs stay for an
        FT-like secondary, whether a disk found no target only because of this plan's own
        placements). A VM its manager places, one that is down or whose host is not up is
        never among them."""
        ds = self.ds_list[i]
        ep = ds.endpoint
        cands: list[_Cand] = []
        misses: list[_Cand] = []
        skipped_ft = 0
        short = False
        for vm in sorted(vms, key=lambda v: v.id):
            if vm.managed_by is not None or (owner is not None and vm is owner.vm):
                continue
            st = self.state(vm)
            if st is None or st.unavailable or (vm.host is not None and not self._host_ok(ep, vm.host)):
                continue
            if any(self.blocks_move(ep, s) for s in st.present.values()):
                skipped_ft += 1
                continue
            for d in vm.disks:
                if _movable(d) and d.used > 0 and st.placement[d.id] == ds.id and self.can(ep, "move_disk"):
                    q, _, accept = self._primary_query(st, [d], {ds.id})
                    if self.index.find(q, accept) is not None:
                        cands.append((d.used, f"{vm.id}/{d.id}", st, d.id))
                    else:
                        misses.append((d.used, f"{vm.id}/{d.id}", st, d.id))
                        if not short:
                            short = self._room_taken(q, accept)  # the plan took the room it needs
        return cands, misses, skipped_ft, short

    def _move_off(self, i: int, picks: list[_Cand], closes: list[str], why: str, repair: bool) -> str | None:
        """Move ``picks`` off datastore ``i`` (largest first) or take everything back: the key
        of the disk that found no room, None when planned. ``repair``: make room where this
        plan's own placements took it (:meth:`~ftbridge.planning.repair.Repair.room_for`)."""
        picks = sorted(picks, key=lambda c: (-c[0], c[1]))
        marks = {id(c[2]): self._begin(c[2]) for c in picks}
        mark, n = self.undo.mark(), len(self.actions)
        budget = self.repair.budget()
        for _nbytes, key, st, disk in picks:
            dk = next(x for x in st.vm.disks if x.id == disk)
            q, _, accept = self._primary_query(st, [dk], {self.ds_list[i].id})
            t = self.index.find(q, accept)
            if t is None and repair and self.repair.room_for(q, accept, n, budget, st.vm.id):
                t = self.index.find(q, accept)
            if t is None:
                self.undo.rollback(mark)
                self._drop_actions(n)
                for c in picks:
                    c[2].restore(marks[id(c[2])][2])
                return key
            self._move_disk(st, dk, t, list(closes), why, q.pct)
        return None

    # -- pass 5: room for the copies still missing ---------------------------------------
    def _room_for_copies(self, stuck: list[_VM]) -> None:
        """VMs whose new secondary found no datastore with the room: make it on one that would
        take the copy but for room, by moving disks of *other* VMs off it, disks no finding
        asks to move (the fewest bytes that free enough and find room elsewhere, each move
        under the rules of any primary move: storage the VM's host mounts, its primary whole
        in one domain, apart from its own copies), then place the copy there, after them.

        The moves say what they make room for and help close the copy's findings; if the copy
        still cannot be placed they are taken back. What an exact optimum does on
        capacity-tight estates (``contrib/bench/optimality.py``) and the other passes do not:
        each of them moves only what a finding needs. Largest VM first; for copies a mechanism
        places by datastore alone; on at most :data:`ROOM_TARGETS` datastores per VM, those
        closest to having the room; at most :data:`ROOM_WORK` disks weighed per run."""
        work = 0
        for st in sorted(stuck, key=lambda st: (-st.vm.size, st.vm.endpoint, st.vm.id)):
            if work >= ROOM_WORK:
                return
            ep = st.vm.endpoint
            usable = [(m, r) for m in self._mechanisms(st, [], None) if (r := self.rule(ep, m)) and datastore_only(r)]
            if st.unavailable or not usable:
                continue
            m, r = usable[0]
            q, _, prim = self._secondary_query(st, r)
            accept = self._secondary_accept(st, prim, m, r, None)
            for i in self.index.roomiest(q, ROOM_TARGETS, accept):
                shortfall = q.need_on(self.ds_list[i]) - self.ledger.potential(i, q.pct)
                if shortfall <= 0:
                    # room there now (freed since pass 3): left alone; placing the copy again
                    # whenever such room is there fixed fewer findings in all (optimality.py's
                    # tight family: 99 against 101)
                    continue
                cands, _, _, _ = self._leavers(i, self._vms_on(ep).get(i, ()), st)
                work += len(cands)
                if self._copy_after_moves(st, i, shortfall, cands):
                    break

    def _copy_after_moves(self, st: _VM, i: int, shortfall: int, cands: list[_Cand]) -> bool:
        """Move ``shortfall`` bytes of ``cands`` off datastore ``i`` and plan ``st``'s new
        secondary, or take it all back (False)."""
        mark, n, snap = self._begin(st)
        others = {id(c[2]): (c[2], c[2].snapshot()) for c in cands}
        why = f"make room on {self.ds_list[i].name} for a secondary of {st.vm.name}"
        done, _ = choose_cover(cands, shortfall, lambda picks: self._move_off(i, picks, [], why, False))
        if done and self._replace(st) is None:
            made = [a for a in self.actions[n:] if a.vm == st.vm.id and a.kind == "protect"]
            for a in self.actions[n:]:
                if a.vm != st.vm.id:  # the moves help close what the copy closes
                    a.closes.extend(c for m in made for c in m.closes if c not in a.closes)
            self.undo.clear()
            return True
        self._rollback((mark, n, snap), st)
        for other, before in others.values():
            other.restore(before)
        return False

    def _vms_on(self, endpoint: str) -> dict[int, list[VM]]:
        """One endpoint's VMs by the datastores holding their primary files (built on first
        need, for pass 5 only: the other passes look only at datastores over their headroom)."""
        found = self._on_any.get(endpoint)
        if found is None:
            found = self._on_any[endpoint] = {}
            for vm in self.inv.vms_of(endpoint).values():
                for x in vm.primary_datastores:
                    j = self.pos.get((endpoint, x))
                    if j is not None:
                        found.setdefault(j, []).append(vm)
        return found

    # -- pass 3: secondaries -------------------------------------------------------------
    def _fix_secondaries(self, work: list[_VM]) -> list[_VM]:
        """Pass 3; returns the VMs whose new copy found no room (for pass 5)."""
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
                self.undo.clear()
                if res is not None and res.category == "capacity" and res.room and self.repair.fix([st]):
                    res = None  # room made where this plan's own placements had taken it
                    self.undo.clear()
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
        short = [st for st, fail in failures.values() if fail.category == "capacity" and fail.room]
        if short:  # nothing else costs the repair step anything
            for st in self.repair.fix(short):
                failures.pop(id(st), None)
        for st, fail in failures.values():
            for f in st.findings:
                if f.rule == "no-secondary" or (
                    f.secondary in st.bad and (f.rule in SECONDARY_RULES or self._refresh(st, f))
                ):
                    self._blame(f, fail)
        return [st for st, fail in failures.values() if fail.category == "capacity"]

    def _primaries_again(self, work: list[_VM]) -> None:
        """Primaries that found no room off non-shared storage in the first pass try again at
        the end: the later passes may have freed room since (a move waits for those frees),
        and the repair step may make room where this plan's placements took it
        (:meth:`~ftbridge.planning.repair.Repair.room_for`). Only for findings left open for
        capacity, bounded like the repair step; a VM with a secondary that forbids primary
        moves is left as it is."""
        for st in work:
            fs = st.of("primary-not-shared")
            fail = self.why.get(fs[0].id) if fs else None
            if fail is None or fail.category != "capacity" or fs[0].id in st.done:
                continue
            if any(self.blocks_move(st.vm.endpoint, s) for s in st.present.values()):
                continue
            if self.repair.spent():
                break
            self._fix_primary(st)
            if fs[0].id not in st.done:
                ep = st.vm.endpoint
                local = {x for x in st.primary() if (d := self.ds(ep, x)) is not None and not d.shared}
                disks = [d for d in st.vm.disks if st.placement[d.id] in local]
                if disks and all(_movable(d) for d in disks):
                    tx = self._begin(st)
                    q, _, accept = self._primary_query(st, disks, local)
                    budget = self.repair.budget()
                    if self.repair.room_for(q, accept, len(self.actions), budget, st.vm.id):
                        self._fix_primary(st)
                    if fs[0].id not in st.done:
                        self._rollback(tx, st)
            self.undo.clear()

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
        st.set_secondary(s.id, None)
        st.bad -= {s.id}
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
        if not self.can(ep, "protect"):
            return self._cannot(ep, "protect", f"create a secondary for {vm.name}")
        if replaces and not self.can(ep, "unprotect"):
            return self._cannot(ep, "unprotect", f"remove {vm.name}'s wrong secondary")
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
            sspec, target, host, claims, deps_host = res
            spec = sspec.to_dict()
            existing = sorted(s.id for s in st.present.values() if not s.id.startswith("+"))
            nbytes = sum(d.space_on(self.ds_list[target]) for d in vm.disks)
            dst = self.ds_list[target]
            if claims:  # what the repair step must know to move this copy elsewhere
                self._claims[f"a{len(self.actions) + 1:05d}"] = (claims, [st.last] if st.last else [])
            a = self._action(
                st,
                "protect",
                self._protect_reason(st, m, replaces, dst, host, nbytes),
                nbytes=nbytes,
                datastores=sorted(
                    {*sspec.disks.values(), *(x for x in (sspec.config_datastore, sspec.metadata_datastore) if x)}
                ),
                deps=[*(x for x, _ in claims), *deps_host],
                closes=closes,
                mechanism=m,
                spec=spec,
                replaces=list(replaces),
                existing=existing,
                primary={d.id: st.placement[d.id] for d in vm.disks},
            )
            st.set_secondary(
                "+" + a.id,
                Secondary(
                    id="+" + a.id,
                    mechanism=m,
                    host=host,
                    state=SecondaryState.SYNCING,
                    config_datastore=sspec.config_datastore,
                    metadata_datastore=sspec.metadata_datastore,
                    disks=tuple(SecondaryDisk(disk=d.id, datastore=dst.id, size=d.space_on(dst)) for d in vm.disks),
                ),
            )
            for w in window:
                w.detail["restore"] = a.id
            return a
        if len(fails) == 1:
            return fails[0][1]
        order = {"limits": 0, "capacity": 1, "placement": 2, "unavailable": 3}
        cat = min((f.category for _, f in fails), key=lambda c: order.get(c, 9))
        room = any(f.room for _, f in fails if f.category == "capacity")
        return _Fail(cat, "; ".join(f"{m}: {f.reason}" for m, f in fails), room)

    def _protect_reason(
        self, st: _VM, m: str, replaces: Sequence[str], dst: Datastore, host: str | None, nbytes: int
    ) -> str:
        why = f"replace {joined(replaces)}" if replaces else "create a secondary"
        where = f"on {dst.name}" + (f", host {self.host_name(st.vm.endpoint, host)}" if host else "")
        prim, _ = self._domains(st.vm.endpoint, st.primary())
        return f"{why}: {m} {where}, {outside(st.level, prim) or 'apart from the primary'} ({size(nbytes)})"

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
    ) -> _Fail | tuple[SecondarySpec, int, str | None, list[Release], list[str]]:
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
        base, names, prim = self._secondary_query(st, r)
        hl = self.host_ledgers.get((ep, m))
        if not (r.needs_other_host or r.host_must_mount):
            accept = self._secondary_accept(st, prim, m, r, None)
            t = self.index.find(base, accept)
            if t is None:
                return self._no_target(base, names, "datastore", accept)
            claims = self.ledger.take(t, base.need_on(self.ds_list[t]), pol.headroom)
            return self._spec(m, r, vm, t, None, None), t, None, claims, []
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
        hosts = self._candidate_hosts(st, r, hl, prim)
        if not hosts:
            where = ""
            if st.level in (Level.SITE, Level.ROOM):
                where = f" outside the {pol.separation} of {vm.name}'s primary"
            return _Fail("placement", f"no other host that is up in {vm.name}'s cluster{where} for a {m} secondary")
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
            t = self.index.find(q, self._secondary_accept(st, prim, m, r, h.id))
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
            fail = self._no_target(last_q if r.host_must_mount else base, names, "datastore", None)
            if r.host_must_mount:
                fail = _Fail(
                    fail.category,
                    fail.reason.replace(
                        f"that host {self.host_name(ep, last_q.host)} mounts", "that another host mounts"
                    ),
                    fail.room,
                )
            return fail
        _, host, t = best
        meta: str | None = None
        if r.needs_metadata_datastore:
            meta = self._metadata(st, prim, m, r, host, t)
            if meta is None:
                return _Fail(
                    "placement",
                    f"no shared datastore that hosts {self.host_name(ep, host)} and "
                    f"{self.host_name(ep, y)} both mount, for {m}'s metadata, "
                    f"apart from the primary at {pol.separation} level",
                )
        claims = self.ledger.take(t, base.need_on(self.ds_list[t]), pol.headroom)
        hdeps: list[str] = []
        if hl is not None:
            hdeps += hl.take(host, vm.vcpus)
            if y is not None:
                hdeps += hl.take(y, vm.vcpus)
        return self._spec(m, r, vm, t, host, meta), t, host, claims, hdeps

    def _secondary_query(self, st: _VM, r: MechanismRules) -> tuple[Query, list[str], Location]:
        """Where a new secondary of ``st``'s VM may go, host aside: apart from its primary (where
        the plan has put it) and what it depends on, on the mechanism's kinds, near the
        primary's hosts where ``same_hosts``; with the primary's names and location."""
        vm, ep, pol = st.vm, st.vm.endpoint, st.policy
        prim_ids = st.primary()
        prim = self.prim_loc(st, prim_ids)
        avoid, names = self._domains(ep, prim_ids | {d.datastore for d in vm.depends_on} if vm.depends_on else prim_ids)
        avoid = (*avoid, *self._host_domain(st, prim))
        near = None
        if r.same_hosts:
            # the copy stays within the hosts that see the primary (oVirt: its data center)
            near = frozenset(h for x in prim_ids if (pd := self.ds(ep, x)) is not None for h in pd.hosts)
        q = Query(
            ep,
            vm.size,
            pol.headroom,
            st.level,
            avoid,
            r.secondary_kinds,
            None,
            None,
            frozenset(),
            near,
            frozenset(d.content for d in vm.disks) or frozenset({"images"}),
            sum(d.used if d.thin else d.size for d in vm.disks),
        )
        return q, names, prim

    def _limits(self, r: MechanismRules) -> str:
        parts = []
        if r.max_vms_per_host is not None:
            parts.append(f"{r.max_vms_per_host} VMs")
        if r.max_vcpus_per_host is not None:
            parts.append(f"{r.max_vcpus_per_host} vCPUs")
        return "limits " + " and ".join(parts) + " per host"

    def _candidate_hosts(
        self, st: _VM, r: MechanismRules, hl: HostLedger | None, prim: Location
    ) -> list[tuple[int, Host]]:
        """Hosts that may run the secondary: up, not the primary's own where the mechanism
        forbids it, and never in a domain whose loss would also take the primary (the model
        decides); the primary's host last, the least loaded first."""
        vm, ep, level = st.vm, st.vm.endpoint, st.level
        cluster = self.inv.cluster_of(vm)
        group = self.hosts_by_group.get((ep, cluster), []) if cluster else self.hosts_by_group.get((ep, "\0all"), [])
        out = []
        for h in group:
            if h.state is not HostState.UP or (r.needs_other_host and h.id == vm.host):
                continue
            if not prim.separated_from(Location((self.inv.host_place(ep, h.id),), ()), level):
                continue
            pref = 2 if h.id == vm.host else 0
            load = hl.load(h.id) if hl is not None else (0, 0)
            out.append(((pref, load[1], load[0], h.id), h))
        out.sort(key=lambda x: x[0])
        return [(k[0], h) for k, h in out]

    def _candidate(
        self, st: _VM, m: str, r: MechanismRules, t: int, host: str | None, meta: str | None = None
    ) -> Secondary:
        """The secondary a spec would create, as the model sees it (before it exists)."""
        d = self.ds_list[t].id
        return Secondary(
            id="?",
            mechanism=m,
            disks=tuple(SecondaryDisk(x.id, d) for x in st.vm.disks),
            config_datastore=d if r.has_config else None,
            host=host,
            metadata_datastore=meta,
        )

    def _candidate_location(
        self, st: _VM, m: str, r: MechanismRules, t: int, host: str | None, meta: str | None = None
    ) -> Location:
        """Where the candidate secondary would live, as the model says. A candidate holds every
        disk (and its config) on datastore ``t``, so its location depends on ``t``, its host and
        its metadata datastore alone, whatever the VM of the endpoint: asked once per run."""
        key = (t, host, meta)
        loc = self._candidate_locs.get(key)
        if loc is None:
            loc = self._candidate_locs[key] = self.inv.secondary_location(
                st.vm, self._candidate(st, m, r, t, host, meta)
            )
        return loc

    def _secondary_accept(self, st: _VM, prim: Location, m: str, r: MechanismRules, host: str | None) -> Accept:
        """The model's verdict on a candidate target: no one loss at the policy's level takes
        both the primary and the new secondary (its storage and what can run it)."""
        level = st.level

        def accept(i: int) -> bool:
            return prim.separated_from(self._candidate_location(st, m, r, i, host), level)

        return accept

    def _metadata(self, st: _VM, prim: Location, m: str, r: MechanismRules, host: str, t: int) -> str | None:
        """A shared datastore both hosts mount for the FT tie-breaker: the secondary cannot take
        over without it, so it must survive what the secondary survives."""
        ep, other, level = st.vm.endpoint, st.vm.host, st.level

        def ok(i: int) -> bool:
            if other is not None and other not in self.ds_list[i].hosts:
                return False
            return prim.separated_from(self._candidate_location(st, m, r, t, host, self.ds_list[i].id), level)

        for need in (0, -(1 << 62)):
            found = self.index.find(Query(ep, need, 0.0, None, (), None, True, host, content=frozenset()), accept=ok)
            if found is not None:
                return self.ds_list[found].id
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
                fail = self.why[f.id]
                cat, reason = fail.category, fail.reason
                if cat == "capacity" and fail.room:
                    self.short_of_room.add(f.endpoint)
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


def _movable(d: Disk) -> bool:
    """A disk a plan may move: not a LUN or pass-through, not shared with other VMs (moving it
    moves it under them too)."""
    return d.movable and not d.shared_by


def _why_fixed(d: Disk, vm: VM) -> str:
    if d.shared_by:
        return f"disk {d.id} of {vm.name} is shared with {plural(len(d.shared_by), 'other VM')}: it is not moved"
    return f"disk {d.id} of {vm.name} cannot be moved ({d.kind})"


def _sources(a: Action) -> list[str]:
    src = a.detail.get("from")
    if isinstance(src, str):
        return [src]
    return list(src) if isinstance(src, list) else []
