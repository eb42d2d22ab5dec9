"""Capacity as the apply will meet it: space per datastore, FT slots per host, with undo.

The plan must stay safe under every order the apply may run it in, so the ledgers are
pessimistic: space an action takes counts as taken from the moment the plan is written, and
space an action frees (the source of a move, a removed secondary) counts as free only for an
action that explicitly waits for it. Such a wait is a *claim*: the claiming action gets the
freeing action in its ``depends_on``. Claims only ever point at actions planned earlier, so
the dependency graph stays acyclic by construction.

Every change is recorded in an :class:`Undo` log, so the planner can try a multi-step fix
(FT off, move, FT on) and take it back whole when its last step finds no room.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ftbridge.drivers.base import MechanismRules


class Undo:
    """A log of inverse operations; :meth:`rollback` returns the state to a :meth:`mark`."""

    __slots__ = ("_log",)

    def __init__(self) -> None:
        self._log: list[Callable[[], None]] = []

    def mark(self) -> int:
        return len(self._log)

    def push(self, inverse: Callable[[], None]) -> None:
        self._log.append(inverse)

    def rollback(self, mark: int) -> None:
        while len(self._log) > mark:
            self._log.pop()()

    def clear(self) -> None:
        """Forget what can no longer be taken back: call only with no :meth:`mark` pending.
        The log holds a closure per change; kept for a whole run it costs memory in proportion
        to the plan (hundreds of MiB at a million VMs)."""
        self._log.clear()


Release = tuple[str, int]  # (action id, bytes)


class SpaceLedger:
    """Free bytes per datastore (dense integer ids), pessimistic now and exact at the end.

    ``free``: what is certainly free whatever the order (initial free, minus every planned
    consumption, plus the releases claimed so far). ``end_free``: what is free once the whole
    plan ran (every release counted): the datastore-over-headroom check after apply sees it.
    ``pct``: the headroom the audit will apply, the highest of the policies of the VMs whose
    files are on it, raised when a VM with a stricter policy is placed there.
    """

    def __init__(
        self,
        capacity: list[int],
        free: list[int],
        pct: list[float],
        undo: Undo,
        on_change: Callable[[int], None] | None = None,
        reserve: list[int] | None = None,
    ) -> None:
        self.capacity = capacity
        #: bytes the platform refuses to go below (oVirt's low-space blocker): never planned into
        self.reserve = reserve or [0] * len(capacity)
        self.free = list(free)
        self.end_free = list(free)
        self.pct = list(pct)
        self.releases: list[list[Release]] = [[] for _ in capacity]
        self.released = [0] * len(capacity)  # unclaimed bytes per datastore
        self.taken = [0] * len(capacity)  # bytes the plan's actions take per datastore
        self.undo = undo
        self.on_change = on_change

    def keep(self, i: int, pct: float = 0.0) -> int:
        """Bytes that must stay free, as the audit computes it (``int(capacity * pct / 100)``)."""
        own = self.pct[i]
        return int(self.capacity[i] * (pct if pct > own else own) / 100)

    def floor(self, i: int, pct: float = 0.0) -> int:
        """Bytes an action must leave free: the headroom, or the platform's reserve if larger."""
        keep = self.keep(i, pct)
        return keep if keep > self.reserve[i] else self.reserve[i]

    def potential(self, i: int, pct: float = 0.0) -> int:
        """Bytes an action may take here, counting releases it could wait for."""
        return self.free[i] + self.released[i] - self.floor(i, pct)

    def headroom_deficit(self, i: int) -> int:
        """Bytes missing at the end of the plan for the audit's headroom; <= 0: none."""
        return self.keep(i) - self.end_free[i]

    def consume(self, i: int, nbytes: int, pct: float) -> list[str]:
        """Take ``nbytes`` (caller checked :meth:`potential`); returns the actions to wait for."""
        return [action_id for action_id, _ in self.take(i, nbytes, pct)]

    def take(self, i: int, nbytes: int, pct: float, only: Callable[[str], bool] | None = None) -> list[Release]:
        """:meth:`consume`, returning the releases claimed (action, bytes): what :meth:`give_back`
        needs to take the consumption back later. ``only``: the actions whose releases may be
        claimed (the caller checked they hold enough); None: any."""
        old = (self.free[i], self.end_free[i], self.pct[i], self.releases[i], self.released[i], self.taken[i])
        need = nbytes - (self.free[i] - self.floor(i, pct))
        claims: list[Release] = []
        if need > 0:
            remaining: list[Release] = []
            for action_id, amount in self.releases[i]:
                if need > 0 and (only is None or only(action_id)):
                    take = min(amount, need)
                    need -= take
                    self.free[i] += take
                    self.released[i] -= take
                    claims.append((action_id, take))
                    if amount - take:
                        remaining.append((action_id, amount - take))
                else:
                    remaining.append((action_id, amount))
            self.releases[i] = remaining
        self.free[i] -= nbytes
        self.end_free[i] -= nbytes
        self.taken[i] += nbytes
        self.pct[i] = max(self.pct[i], pct)

        def inverse() -> None:
            self.free[i], self.end_free[i], self.pct[i], self.releases[i], self.released[i], self.taken[i] = old
            self._changed(i)

        self.undo.push(inverse)
        self._changed(i)
        return claims

    def give_back(self, i: int, nbytes: int, claims: Sequence[Release]) -> None:
        """An earlier :meth:`take` of ``nbytes`` is withdrawn (the plan puts that copy elsewhere):
        its bytes are free again, except those it had claimed from releases, which are
        releases again (an action must still wait for them). The headroom it raised stays
        raised (pessimistic: other placements may rely on it)."""
        claimed = sum(n for _, n in claims)
        old = (self.free[i], self.end_free[i], self.releases[i], self.released[i], self.taken[i])
        self.free[i] += nbytes - claimed
        self.end_free[i] += nbytes
        self.taken[i] -= nbytes
        if claims:
            self.releases[i] = [*self.releases[i], *claims]
            self.released[i] += claimed

        def inverse() -> None:
            self.free[i], self.end_free[i], self.releases[i], self.released[i], self.taken[i] = old
            self._changed(i)

        self.undo.push(inverse)
        self._changed(i)

    def release(self, i: int, nbytes: int, action_id: str) -> None:
        """``action_id`` frees ``nbytes`` here when it completes."""
        if nbytes <= 0:
            return
        old = (self.end_free[i], self.releases[i], self.released[i])
        self.releases[i] = [*self.releases[i], (action_id, nbytes)]
        self.released[i] += nbytes
        self.end_free[i] += nbytes

        def inverse() -> None:
            self.end_free[i], self.releases[i], self.released[i] = old
            self._changed(i)

        self.undo.push(inverse)
        self._changed(i)

    def _changed(self, i: int) -> None:
        if self.on_change is not None:
            self.on_change(i)


HostRelease = tuple[str, int, int]  # (action id, vms, vcpus)


class HostLedger:
    """Per-host load of one limited mechanism (vSphere FT: VMs and vCPUs per host).

    Counted as the platform counts: every (VM, secondary) pair loads the secondary's host and
    the VM's own host. Pessimistic like :class:`SpaceLedger`: a pair being removed stops
    counting only for actions that wait for its removal.
    """

    def __init__(self, rules: MechanismRules, undo: Undo, loads: Mapping[str, Sequence[int]] | None = None) -> None:
        """``loads``: per host, the (pairs, vCPUs) it carries before the plan."""
        self.rules = rules
        self.vms: dict[str, int] = {h: n for h, (n, _) in (loads or {}).items()}
        self.vcpus: dict[str, int] = {h: c for h, (_, c) in (loads or {}).items()}
        self.releases: dict[str, list[HostRelease]] = {}
        self.undo = undo

    def load(self, host: str) -> tuple[int, int]:
        return self.vms.get(host, 0), self.vcpus.get(host, 0)

    def fits(self, host: str, vcpus: int) -> bool:
        """Could one more pair of ``vcpus`` go here, waiting for releases if need be?"""
        n, c = self.load(host)
        for _, rn, rc in self.releases.get(host, ()):
            n, c = n - rn, c - rc
        return self._ok(n, c, vcpus)

    def _ok(self, n: int, c: int, vcpus: int) -> bool:
        r = self.rules
        return (r.max_vms_per_host is None or n + 1 <= r.max_vms_per_host) and (
            r.max_vcpus_per_host is None or c + vcpus <= r.max_vcpus_per_host
        )

    def take(self, host: str, vcpus: int, *, check: bool = True) -> list[str]:
        """Add a pair here; with ``check``, claim releases until it fits (caller ran fits())."""
        old = (self.vms.get(host, 0), self.vcpus.get(host, 0), self.releases.get(host, []))
        deps: list[str] = []
        if check:
            rels = list(self.releases.get(host, []))
            while rels and not self._ok(*self.load(host), vcpus):
                action_id, rn, rc = rels.pop(0)
                self.vms[host] = self.vms.get(host, 0) - rn
                self.vcpus[host] = self.vcpus.get(host, 0) - rc
                deps.append(action_id)
            self.releases[host] = rels
        self.vms[host] = self.vms.get(host, 0) + 1
        self.vcpus[host] = self.vcpus.get(host, 0) + vcpus

        def inverse() -> None:
            self.vms[host], self.vcpus[host], self.releases[host] = old

        self.undo.push(inverse)
        return deps

    def release(self, host: str, vcpus: int, action_id: str) -> None:
        old = self.releases.get(host, [])
        self.releases[host] = [*old, (action_id, 1, vcpus)]

        def inverse() -> None:
            self.releases[host] = old

        self.undo.push(inverse)
