"""The planner's repair step: make room by putting this plan's own placements elsewhere.

A finding left open for lack of room where some target would have had it but for what this
plan itself placed there (a new copy, a headroom pick, a primary retried) gets that room by
lifting those placements and landing them elsewhere: an ejection chain, bounded in depth
(:data:`REPAIR_DEPTH`) and work (:data:`REPAIR_WORK`, :data:`REPAIR_WORK_EACH`). Nothing on
disk moves because of it, only this plan's own choices change, so the plan's step-order safety
is untouched; it costs nothing when no such finding is left.

Every verdict on a target is the planner's (its queries and accept functions, the model's
rules): this module only decides *which* of the plan's own placements to put elsewhere, and
undoes what it tried (:class:`~ftbridge.planning.ledger.Undo`) when a chain does not close.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, cast

from ftbridge.drivers.base import MechanismRules
from ftbridge.model import SecondaryDisk
from ftbridge.planning.actions import Action, before
from ftbridge.planning.cover import min_cover
from ftbridge.planning.explain import size
from ftbridge.planning.index import Query

if TYPE_CHECKING:
    from ftbridge.planning.planner import _VM, Accept, Planner

#: the repair step's bounds: placements it may consider moving in one run, and per VM (or
#: primary, or headroom pick) it tries to fix; how many placements one repair may move in a chain
REPAIR_WORK = 2_000
REPAIR_WORK_EACH = 200
REPAIR_DEPTH = 2


def datastore_only(r: MechanismRules) -> bool:
    """A mechanism whose copy is placed by datastore alone (no host, no tie-breaker): the
    repair step may move such a copy to another datastore."""
    return not (r.needs_other_host or r.host_must_mount or r.needs_metadata_datastore)


@dataclass
class Liftable:
    """This plan's placements the repair step may put elsewhere, by the datastore they take
    room on (:meth:`Repair._registry`); ``seen``: actions looked at so far."""

    on: dict[int, list[Action]] = field(default_factory=dict)
    seen: int = 0


class Repair:
    """The repair step of one planner run: its registry of liftable placements (built on first
    need), the VMs it tried (each once per run) and the work it spent (:attr:`work`)."""

    def __init__(self, planner: Planner) -> None:
        # a weak reference back to the planner that owns this: no reference cycle, so a run's
        # state goes as soon as the run is dropped, though planning pauses the cyclic collector
        self.p = cast("Planner", weakref.proxy(planner))
        self.work = 0
        self._reg: Liftable | None = None
        self._tried: set[int] = set()  # the VMs (their state's id) it tried

    def budget(self) -> int:
        """The work one more fix may spend: its share, within what is left for the run."""
        return min(REPAIR_WORK, self.work + REPAIR_WORK_EACH)

    def spent(self) -> bool:
        return self.work >= REPAIR_WORK

    def _registry(self, upto: int) -> Liftable:
        """The registry of what the repair step may put elsewhere, brought up to action ``upto``
        (the actions after it belong to a fix still in progress). Built on first need only."""
        reg = self._reg
        if reg is None:
            reg = self._reg = Liftable()
        for a in self.p.actions[reg.seen : upto]:
            i = self._target(a)
            if i is not None:
                reg.on.setdefault(i, []).append(a)
        reg.seen = max(reg.seen, upto)
        return reg

    def _target(self, a: Action) -> int | None:
        """Where action ``a`` takes space that the repair step may free by putting it elsewhere:
        a copy whose mechanism places it by datastore alone, or a disk move made for room or
        shared storage (not one that brings a split VM together, nor of a VM whose secondary
        forbids primary moves); None for anything else."""
        st = self.p.states.get((a.endpoint, a.vm))
        if st is None:
            return None
        if a.kind == "protect":
            r = self.p.rule(a.endpoint, a.detail["mechanism"])
            sec = st.present.get("+" + a.id)
            if r is None or not datastore_only(r) or sec is None or not sec.disks:
                return None
            return self.p.pos.get((a.endpoint, sec.disks[0].datastore))
        if a.kind == "move_disk" and st.placement.get(a.detail["disk"]) == a.detail["to"]:
            if any(c.startswith("primary-split:") for c in a.closes):
                return None
            if any(self.p.blocks_move(a.endpoint, s) for s in st.present.values()):
                return None
            return self.p.pos.get((a.endpoint, a.detail["to"]))
        return None

    def fix(self, stuck: list[_VM]) -> list[_VM]:
        """The repair step for VMs whose new secondary found no room where some target would
        have had it but for what this plan placed there: make that room by putting those
        placements elsewhere (:meth:`room_for`), then plan the fix again. Returns the VMs it
        fixed. Called as soon as such a VM fails (later VMs then fill what is left) and once
        more for those still failing at the end of the pass; each VM is tried once per run.
        Bounded: at most :data:`REPAIR_WORK` placements considered per run,
        :data:`REPAIR_WORK_EACH` per VM, counted in :attr:`work`; largest VM first.
        Called only when such a finding is left."""
        upto = len(self.p.actions)  # this plan's placements so far (the fixes below add more)
        self._registry(upto)  # taken as they stand now
        fixed = []
        for st in sorted(stuck, key=lambda st: (-st.vm.size, st.vm.endpoint, st.vm.id)):
            if self.spent():
                break
            if id(st) in self._tried:
                continue  # one repair per VM and run
            self._tried.add(id(st))
            budget = self.budget()
            if self.p._replace(st) is None:  # an earlier repair left room for it
                fixed.append(st)
                continue
            for q, accept, attempt in self._ways(st):
                tx = self.p._begin(st)
                if self.room_for(q, accept, upto, budget, st.vm.id) and attempt():
                    fixed.append(st)
                    break
                self.p._rollback(tx, st)
        return fixed

    def _ways(self, st: _VM) -> Iterator[tuple[Query, Accept, Callable[[], bool]]]:
        """The ways to fix a VM's missing or bad secondary, each as (where it needs room, the
        model's verdict on a target, the fix): a new copy by each mechanism that places by
        datastore."""
        ep = st.vm.endpoint
        prefer = [st.present[x].mechanism for x in sorted(st.bad) if x in st.present]
        for m in self.p._mechanisms(st, prefer, None):
            r = self.p.rules[ep][m]
            if datastore_only(r):
                q, _, prim = self.p._secondary_query(st, r)
                yield q, self.p._secondary_accept(st, prim, m, r, None), lambda: self.p._replace(st) is None

    def room_for(self, q: Query, accept: Accept, upto: int, budget: int, skip_vm: str) -> bool:
        """Make room for ``q`` on a target that would have it but for placements of this plan
        (its first ``upto`` actions, and what this step moved since): an ejection chain. Lift
        one of them (the smallest that frees enough) or the set that frees enough with the
        fewest bytes, hold the room, and land what was lifted elsewhere (:meth:`_land`, chains
        of at most :data:`REPAIR_DEPTH`). Targets with the smallest shortfall first. True when
        the room is there (a :meth:`CandidateIndex.find` for ``q`` now finds a target); on False
        everything is as before. Nothing on disk moves because of it: only this plan's own
        choices change, so the plan's step order stays safe."""
        ledger, ds = self.p.ledger, self.p.ds_list
        reg = self._registry(upto)

        def room(i: int) -> int:
            return ledger.potential(i, q.pct) + ledger.taken[i]  # were this plan's placements not there

        targets = sorted(
            (q.need_on(ds[i]) - ledger.potential(i, q.pct), i)
            for i in self.p.index.fitting(q, room, accept)
            if i in reg.on
        )
        # chains that leave t alone first; then swaps (a chain may end on t again, beside the
        # room held there, when it frees enough)
        for swap in (False, True):
            for short, t in targets:
                there = sorted((a for a in reg.on[t] if a.vm != skip_vm), key=lambda a: (a.bytes, a.id))
                tries = [[y] for y in there if y.bytes >= short]
                cover = min_cover([y.bytes for y in there], short)
                if cover is not None and len(cover) > 1:
                    tries.append([there[k] for k in cover])
                need = q.need_on(ds[t])
                avoid = frozenset() if swap else frozenset({t})
                for out in tries:
                    if self.work >= budget:
                        return False
                    mark = self.p.undo.mark()
                    for y in out:
                        self._lift(y, t, reg)
                    # the room is held on t while the lifted ones land elsewhere
                    if ledger.potential(t, q.pct) >= need:
                        hold = ledger.take(t, need, q.pct)
                        if all(self._land(y, t, REPAIR_DEPTH, reg, budget, avoid) for y in out):
                            ledger.give_back(t, need, hold)
                            return True
                    self.p.undo.rollback(mark)
        return False

    def _land(
        self, y: Action, frm: int, depth: int, reg: Liftable, budget: int, avoid: frozenset[int] = frozenset()
    ) -> bool:
        """Put lifted ``y`` (planned on datastore ``frm``) elsewhere, not on ``avoid``, on room
        that is free or freed by actions planned before it (it waits for those); with
        ``depth`` > 1 it may take the place of another placement, lifted and landed the same
        way. True when landed; on False the caller rolls back."""
        self.work += 1
        sty = self.p.states[(y.endpoint, y.vm)]
        q, accept = self._lift_query(y, sty, frm)
        q = replace(q, exclude=q.exclude | avoid)
        ledger, ds = self.p.ledger, self.p.ds_list

        def spare(i: int) -> int:
            """Room for it, waiting at most for releases of actions planned before it (the
            dependency graph stays acyclic)."""
            early = sum(n for a, n in ledger.releases[i] if before(a, y.id))
            return ledger.free[i] + early - ledger.floor(i, q.pct) - q.need_on(ds[i])

        t = self.p.index.find(q, lambda i: spare(i) >= 0 and accept(i))
        if t is not None:
            self._put(y, sty, t, reg)
            return True
        if depth <= 1:
            return False
        targets = sorted(
            (-spare(i), i)
            for i in self.p.index.fitting(q, lambda i: spare(i) + q.need + ledger.taken[i], accept)
            if i in reg.on
        )
        for short, t2 in targets:
            for z in sorted(reg.on[t2], key=lambda a: (a.bytes, a.id)):
                if z.bytes < short or z.vm == y.vm:
                    continue
                if self.work >= budget:
                    return False
                mark = self.p.undo.mark()
                self._lift(z, t2, reg)
                if spare(t2) >= 0:
                    self._put(y, sty, t2, reg)
                    if self._land(z, t2, depth - 1, reg, budget, avoid):
                        return True
                self.p.undo.rollback(mark)
        return False

    def _lift_query(self, y: Action, sty: _VM, frm: int) -> tuple[Query, Accept]:
        """Where lifted ``y`` may land, as it was first placed (the model decides)."""
        if y.kind == "protect":
            m = y.detail["mechanism"]
            r = self.p.rules[y.endpoint][m]
            q, _, prim = self.p._secondary_query(sty, r)
            return replace(q, exclude=frozenset({frm})), self.p._secondary_accept(sty, prim, m, r, None)
        d = next(x for x in sty.vm.disks if x.id == y.detail["disk"])
        q, _, accept = self.p._primary_query(sty, [d], {y.detail["from"]})
        return replace(q, exclude=q.exclude | {frm}), accept

    def _lift(self, y: Action, frm: int, reg: Liftable) -> None:
        """Take back the room ``y`` takes on datastore ``frm`` (it is to land elsewhere:
        :meth:`_put`); a moved disk is back at its source meanwhile. Undoable."""
        claims, _ = self.p._claims.get(y.id, ([], []))
        self.p.ledger.give_back(frm, y.bytes, claims)
        reg.on[frm].remove(y)
        st = self.p.states[(y.endpoint, y.vm)]
        if y.kind == "move_disk":
            st.place(y.detail["disk"], y.detail["from"])

        def inverse() -> None:
            reg.on[frm].append(y)
            if y.kind == "move_disk":
                st.place(y.detail["disk"], y.detail["to"])

        self.p.undo.push(inverse)

    def _put(self, y: Action, sty: _VM, to: int, reg: Liftable) -> None:
        """Plan lifted ``y`` on datastore ``to`` (the caller checked the model and that the room
        is free or freed by actions planned before ``y``: it waits for those, so every
        dependency still points at an earlier action). Undoable."""
        vm, ep, dst = sty.vm, y.endpoint, self.p.ds_list[to]
        old_detail = dict(y.detail)
        old = (y.reason, y.bytes, y.datastores, y.depends_on)
        had = self.p._claims.pop(y.id, None)
        others = list(had[1]) if had is not None else list(y.depends_on)  # what it waits for besides room
        key = "+" + y.id
        old_sec = sty.present.get(key)
        if y.kind == "protect":
            m = y.detail["mechanism"]
            spec = self.p._spec(m, self.p.rules[ep][m], vm, to, None, None)
            nbytes = sum(d.space_on(dst) for d in vm.disks)
            sty.set_secondary(
                key,
                replace(
                    sty.present[key],
                    disks=tuple(SecondaryDisk(disk=d.id, datastore=dst.id, size=d.space_on(dst)) for d in vm.disks),
                    config_datastore=spec.config_datastore,
                ),
            )
            y.detail["spec"] = spec.to_dict()
            y.datastores = sorted({*spec.disks.values(), *([spec.config_datastore] if spec.config_datastore else [])})
            y.reason = self.p._protect_reason(sty, m, y.detail["replaces"], dst, None, nbytes)
        else:
            disk, src = y.detail["disk"], y.detail["from"]
            d = next(x for x in vm.disks if x.id == disk)
            nbytes = d.space_on(dst)
            sty.place(disk, dst.id)
            y.detail["to"] = dst.id
            y.datastores = sorted({src, dst.id})
            why = y.reason[: y.reason.rindex(": disk ")]
            y.reason = f"{why}: disk {disk} ({size(nbytes)}) from {self.p.ds_name(ep, src)} to {dst.name}"
        claims = self.p.ledger.take(to, nbytes, sty.policy.headroom, lambda a: before(a, y.id))
        y.depends_on = others + [a for a, _ in claims if a not in others]
        if claims:
            self.p._claims[y.id] = (claims, others)
        y.bytes = nbytes
        reg.on.setdefault(to, []).append(y)

        def inverse() -> None:
            y.reason, y.bytes, y.datastores, y.depends_on = old
            y.detail.clear()
            y.detail.update(old_detail)
            self.p._claims.pop(y.id, None)
            if had is not None:
                self.p._claims[y.id] = had
            if old_sec is not None:
                sty.set_secondary(key, old_sec)
            if y.kind == "move_disk":
                sty.place(y.detail["disk"], y.detail["from"])
            reg.on[to].remove(y)

        self.p.undo.push(inverse)
