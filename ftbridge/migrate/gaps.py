"""The protection-gap report: what each VM had on the source, what it gets on the target.

Equivalences come from the drivers' declarations, never from a table here: each mechanism's
``MechanismRules`` says what a failover to it may lose (``rpo``) and how long it takes
(``rto``), and whether it is a point-in-time copy (``refreshable``: as old as its last
refresh, which the VM's policy RPO bounds). From those alone a lockstep copy (RPO 0, RTO 0:
vSphere FT), a scheduled replication and a refreshed copy are told apart, and the target's
planned secondary is compared with the source's best one:

- ``equivalent``: RPO and RTO no worse; ``degraded``: protected, but RPO or RTO worse;
- ``lost``: protected on the source, and the target offers no mechanism that can protect it;
- ``manual``: the target has a mechanism, but the plan cannot place it (the sentence says
  why: room, limits, placement), or what is needed is not a plan action (HA on the target);
- ``gained``: unprotected on the source, protected on the target; ``none``: neither;
  ``infeasible``: the VM itself cannot be placed on the target.

Unknown stays unknown: an undeclared RPO is reported as such and never counts as equivalent
to a declared one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ftbridge.config import Config, Policy
from ftbridge.drivers.base import MechanismRules
from ftbridge.migrate.planner import Migration, Outcome, protected_on_source
from ftbridge.model import SecondaryState

Rules = Mapping[str, Mapping[str, MechanismRules]]
STATUSES = ("equivalent", "degraded", "lost", "manual", "gained", "none", "infeasible")


def kind_of(r: MechanismRules | None) -> str:
    """What a mechanism is, from its declaration alone."""
    if r is None:
        return "unknown"
    if r.rpo == 0 and r.rto == 0:
        return "lockstep"
    if r.refreshable:
        return "copy"
    return "replication"


def rpo_of(r: MechanismRules | None, policy: Policy | None) -> float | None:
    if r is None:
        return None
    if r.rpo is not None:
        return r.rpo
    return policy.rpo if r.refreshable and policy is not None else None


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds == 0:
        return "0"
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= n and seconds % n == 0:
            return f"{seconds / n:g} {unit}"
    return f"{seconds:g} s"


@dataclass(frozen=True)
class Side:
    mechanisms: tuple[str, ...]
    kinds: tuple[str, ...]
    ha: bool
    rpo: float | None
    rto: float | None
    policy: str | None
    separation: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mechanisms": list(self.mechanisms),
            "kinds": list(self.kinds),
            "ha": self.ha,
            "rpo": self.rpo,
            "rto": self.rto,
            "policy": self.policy,
            "separation": self.separation,
        }


def _best(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return min(known) if known and len(known) == len(values) else (min(known) if known else None)


def gap_report(m: Migration, config: Config, source_rules: Rules, target_rules: Rules) -> list[dict[str, Any]]:
    """One entry per VM of the migration, in plan order."""
    out = []
    src_rules = source_rules.get(m.source_endpoint, {})
    tgt_rules = target_rules.get(m.target_endpoint, {})
    for o in sorted(m.outcomes, key=lambda o: (o.placed.vm.name, o.projected_id)):
        out.append(_one(o, config, src_rules, tgt_rules, m))
    return out


def _source_side(o: Outcome, config: Config, rules: Mapping[str, MechanismRules]) -> Side:
    vm = o.placed.vm
    policy = config.policy_for(vm)
    good = [s for s in vm.secondaries if s.state in (SecondaryState.IN_SYNC, SecondaryState.SYNCING)]
    mechs = tuple(sorted({s.mechanism for s in vm.secondaries}))
    rpos = [rpo_of(rules.get(s.mechanism), policy) for s in good]
    rtos = [rules[s.mechanism].rto if s.mechanism in rules else None for s in good]
    return Side(
        mechs,
        tuple(kind_of(rules.get(x)) for x in mechs),
        vm.ha,
        _best(rpos) if good else None,
        _best(rtos) if good else None,
        policy.name if policy else None,
        policy.separation if policy else None,
    )


def _one(
    o: Outcome,
    config: Config,
    src_rules: Mapping[str, MechanismRules],
    tgt_rules: Mapping[str, MechanismRules],
    m: Migration,
) -> dict[str, Any]:
    vm = o.placed.vm
    src = _source_side(o, config, src_rules)
    had = protected_on_source(vm, config.policy_for(vm)) and bool(src.mechanisms)
    prot = o.protection
    policy = o.placed.policy
    r = tgt_rules.get(prot.mechanism) if prot.mechanism else None
    tgt = Side(
        (prot.mechanism,) if prot.mechanism else (),
        (kind_of(r),) if prot.mechanism else (),
        vm.ha,
        rpo_of(r, policy) if prot.mechanism else None,
        r.rto if r is not None else None,
        policy.name if policy else None,
        policy.separation if policy else None,
    )
    entry: dict[str, Any] = {
        "vm": vm.id,
        "vm_name": vm.name,
        "wave": o.wave,
        "source": src.to_dict(),
        "target": {**tgt.to_dict(), "separated": prot.separated},
    }
    if o.placed.reason is not None:
        entry.update(status="infeasible", restore=f"cannot be placed on {m.target_endpoint}: {o.placed.reason}")
        return entry
    ha_note = f"; turn HA on for {vm.name} on {m.target_endpoint} (the moving tools drop it)" if vm.ha else ""
    if prot.mechanism is None:
        if not had:
            status = "none" if not prot.wanted else "manual"
            action = "nothing to restore" if status == "none" else f"no secondary can be planned: {prot.reason}"
        elif not tgt_rules or prot.category == "placement" and "offers no" in prot.reason:
            status, action = "lost", f"{m.target_endpoint} offers no mechanism that can protect it: {prot.reason}"
        else:
            status, action = "manual", f"no secondary can be planned on {m.target_endpoint}: {prot.reason}"
        entry.update(status=status, restore=action + ha_note)
        return entry
    where = _where(prot.spec, m)
    then = f"{prot.mechanism} ({kind_of(r)}) on {where}"
    if r is not None and kind_of(r) == "replication" and r.rpo:
        then += f" at its shortest interval, {duration(r.rpo)}"
    if not had:
        entry.update(status="gained", restore=f"protect with {then} after the move ({_how()})")
        return entry
    worse_rpo = _worse(tgt.rpo, src.rpo)
    worse_rto = _worse(tgt.rto, src.rto)
    status = "degraded" if worse_rpo or worse_rto else "equivalent"
    was = " + ".join(src.mechanisms) + (" with HA" if src.ha else "")
    becomes = ("HA plus " if vm.ha else "") + then
    change = f"RPO {duration(src.rpo)} becomes {'up to ' if tgt.rpo else ''}{duration(tgt.rpo)}"
    change += f", RTO {duration(src.rto)} becomes {duration(tgt.rto)}"
    entry.update(status=status, restore=f"{was} becomes {becomes}: {change} ({_how()}){ha_note}")
    return entry


def _worse(after: float | None, before: float | None) -> bool:
    if before is None:
        return False
    return after is None or after > before


def _where(spec: Mapping[str, Any], m: Migration) -> str:
    names = sorted(
        {
            (d.name if (d := m.projected.datastore(m.target_endpoint, x)) is not None else x)
            for x in dict(spec.get("disks", {})).values()
        }
    )
    host = spec.get("host")
    h = m.projected.host(m.target_endpoint, host) if host else None
    return ", ".join(names) + (f", host {h.name if h else host}" if host else "")


def _how() -> str:
    return "ftbridge plan after the move, or the protect actions of migrate verify"
