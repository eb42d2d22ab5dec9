"""Failure detection with care: independent signals, N cycles of agreement, and a storm guard.

A host or datastore is *suspect* in a cycle only when every signal agrees:

1. the platform's own state in the inventory (a host ``DOWN``, which the model reserves for the
   platform reporting it down, powered off or fenced; a datastore not accessible);
2. the endpoint's health call (``Failover.health()``), a second read through another API: the
   host's state, and whether the datastore is still accessible from the hosts that mount it;
3. the endpoint answering at all: a component of an endpoint that did not answer is unknown, and
   unknown proves nothing (``UNREACHABLE`` hosts are never suspect either).

It is *failed* once suspect for ``confirm_cycles`` cycles in a row; one cycle without agreement
starts it over. A site is failed when every host and datastore labelled with it is. The **storm
guard** holds when more than ``storm_fraction`` of everything watched looks dead at once
(suspects plus the components of endpoints that stopped answering): then the likelier fault is
this controller's own view (its network, a management outage), so no failover runs. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from ftbridge.domains import Failed
from ftbridge.drivers.base import HealthReport
from ftbridge.inventory import Inventory
from ftbridge.model import HostState, Level

Key = tuple[str, str]  # (endpoint, id)


@dataclass(frozen=True)
class Observation:
    """One cycle's agreeing signals."""

    answered: frozenset[str]
    unreachable: frozenset[str]
    hosts: frozenset[Key]  # suspect hosts
    datastores: frozenset[Key]  # suspect datastores
    watched: int  # hosts + datastores of the endpoints that answered


def observe(inv: Inventory, health: Mapping[str, HealthReport | None], unreachable: frozenset[str]) -> Observation:
    """The components every signal calls down this cycle (see the module docstring)."""
    answered = frozenset(e.name for e in inv.endpoints)
    hosts: set[Key] = set()
    stores: set[Key] = set()
    for h in inv.hosts:
        rep = health.get(h.endpoint)
        if h.state is HostState.DOWN and rep is not None and rep.hosts.get(h.id) is HostState.DOWN:
            hosts.add((h.endpoint, h.id))
    for d in inv.datastores:
        rep = health.get(d.endpoint)
        if not d.accessible and rep is not None and rep.datastores.get(d.id) is False:
            stores.add((d.endpoint, d.id))
    return Observation(answered, unreachable, frozenset(hosts), frozenset(stores), len(inv.hosts) + len(inv.datastores))


@dataclass
class Verdict:
    suspects: int  # components suspect this cycle
    failed: Failed | None  # confirmed (None: nothing confirmed)
    sites: list[str] = field(default_factory=list)  # sites wholly failed
    storm: bool = False
    storm_reason: str = ""

    @property
    def incident(self) -> str:
        """A stable id of what failed: the same failure gives the same id in every controller."""
        if self.failed is None:
            return ""
        text = "\n".join(
            [f"h {e}/{i}" for e, i in sorted(self.failed.hosts)]
            + [f"d {e}/{i}" for e, i in sorted(self.failed.datastores)]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class Detector:
    """Counts agreement across cycles. One per controller; feed it every cycle."""

    def __init__(self, confirm_cycles: int, storm_fraction: float) -> None:
        self.confirm = confirm_cycles
        self.storm_fraction = storm_fraction
        self.streak: dict[tuple[str, Key], int] = {}
        self.size: dict[str, int] = {}  # components per endpoint, as last seen (for the storm guard)

    def update(self, inv: Inventory, obs: Observation) -> Verdict:
        for ep in obs.answered:
            self.size[ep] = sum(h.endpoint == ep for h in inv.hosts) + sum(d.endpoint == ep for d in inv.datastores)
        now = {("h", k) for k in obs.hosts} | {("d", k) for k in obs.datastores}
        self.streak = {k: self.streak.get(k, 0) + 1 for k in now}
        confirmed = {k for k, n in self.streak.items() if n >= self.confirm}
        dark = sum(self.size.get(ep, 0) for ep in obs.unreachable)
        total = obs.watched + dark
        looks_dead = len(now) + dark
        storm = total > 0 and looks_dead / total > self.storm_fraction
        reason = (
            f"{looks_dead} of {total} watched hosts and datastores look dead at once "
            f"(more than {self.storm_fraction:.0%}): suspecting this controller's own view"
            if storm
            else ""
        )
        verdict = Verdict(len(now), None, storm=storm, storm_reason=reason)
        if not confirmed:
            return verdict
        hosts = frozenset(k for kind, k in confirmed if kind == "h")
        dss = frozenset(k for kind, k in confirmed if kind == "d")
        sites = _whole_sites(inv, hosts, dss)
        why = ", ".join(f"site={s}" for s in sites) or _describe(inv, hosts, dss)
        verdict.failed = Failed(hosts, dss, why)
        verdict.sites = sites
        return verdict


def _whole_sites(inv: Inventory, hosts: frozenset[Key], dss: frozenset[Key]) -> list[str]:
    members: dict[str, list[bool]] = {}
    for h in inv.hosts:
        if (site := h.domain.label(Level.SITE)) is not None:
            members.setdefault(site, []).append((h.endpoint, h.id) in hosts)
    for d in inv.datastores:
        if (site := d.domain.label(Level.SITE)) is not None:
            members.setdefault(site, []).append((d.endpoint, d.id) in dss)
    return sorted(s for s, flags in members.items() if flags and all(flags))


def _describe(inv: Inventory, hosts: frozenset[Key], dss: frozenset[Key]) -> str:
    names = [f"host {h.name}" for e, i in sorted(hosts) if (h := inv.host(e, i))]
    names += [f"datastore {d.name}" for e, i in sorted(dss) if (d := inv.datastore(e, i))]
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return ", ".join(names[:5]) + more
