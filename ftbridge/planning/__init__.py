"""Planning: from an inventory, the policies and the audit's findings to a plan file.

The planner is pure: no I/O, no driver calls, no clock unless given one. ``make_plan`` is the
whole of it for callers (the CLI, the demo, the benchmark)::

    doc = make_plan(inventory, config)          # audits, plans, returns the plan document
    write_plan(doc, Path("plan.json"))

Mechanism rules (what vSphere FT or pvesr allow) come from the driver classes of the
inventory's endpoints, loaded without opening anything, so planning works offline from a
saved inventory (``ftbridge plan --from inventory.json``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ftbridge.audit import Finding, audit
from ftbridge.config import Config
from ftbridge.drivers.base import MechanismRules
from ftbridge.errors import FtbridgeError
from ftbridge.gcpause import gc_paused
from ftbridge.inventory import Inventory
from ftbridge.planning.actions import ACTION_KINDS, Action, PlanResult, Unfixable
from ftbridge.planning.capabilities import capabilities_for, offers
from ftbridge.planning.cover import min_cover
from ftbridge.planning.planfile import (
    PLAN_SCHEMA_VERSION,
    PlanDoc,
    default_created_at,
    dumps,
    estate_id,
    load_plan,
    parse_plan,
    plan_document,
    write_plan,
)
from ftbridge.planning.planner import Planner, limited_mechanisms, prepare

__all__ = [
    "ACTION_KINDS",
    "PLAN_SCHEMA_VERSION",
    "Action",
    "PlanDoc",
    "PlanResult",
    "Planner",
    "Unfixable",
    "capabilities_for",
    "default_created_at",
    "dumps",
    "estate_id",
    "load_plan",
    "make_plan",
    "min_cover",
    "offers",
    "parse_plan",
    "plan",
    "plan_document",
    "rules_for",
    "write_plan",
]

RulesByEndpoint = dict[str, dict[str, MechanismRules]]


def rules_for(inv: Inventory) -> tuple[RulesByEndpoint, RulesByEndpoint]:
    """Per endpoint: (mechanisms it offers, preferred first; every mechanism its driver declares).

    A driver that is not installed here gives no rules: the planner then says, for each VM
    that needs a secondary there, that it does not know how to place one.
    """
    from ftbridge.drivers.registry import load_driver

    offered: RulesByEndpoint = {}
    known: RulesByEndpoint = {}
    for ep in sorted(inv.endpoints, key=lambda e: e.name):
        try:
            declared = dict(load_driver(ep.driver).mechanisms)
        except FtbridgeError:
            declared = {}
        known[ep.name] = declared
        names = [m for m in ep.mechanisms if m in declared] if ep.mechanisms else list(declared)
        offered[ep.name] = {m: declared[m] for m in names}
    return offered, known


def plan(
    inv: Inventory,
    config: Config,
    findings: Sequence[Finding] | None = None,
    *,
    rules: Mapping[str, Mapping[str, MechanismRules]] | None = None,
    known_rules: Mapping[str, Mapping[str, MechanismRules]] | None = None,
) -> PlanResult:
    """The actions and unfixable findings, as values (see :func:`make_plan` for the document).

    Targets are first chosen for balance (the roomiest that fits), each run repairing what it
    can where its own placements took the room a finding needed (the planner's repair step
    puts them elsewhere). Where that still leaves a finding
    unfixed because the plan's own placements took the room a target had, planning that
    endpoint again with best-fit placement (keeping big holes for big copies) often fixes more;
    per endpoint, the better plan wins: more findings fixed, then fewer bytes, then the balanced
    one. (Best fit cannot make a hole where none was: room short before the plan began is not
    a reason to try it.) Endpoints share no datastore or host, so each one's part of a plan is
    what a run over it alone gives: the best-fit run covers only the endpoints short of room,
    and a mix is planned again in one run, so the plan reads (action ids, order) as one run
    made it.
    """
    if findings is None:
        findings = audit(inv, config).findings
    if rules is None:
        rules, known_rules = rules_for(inv)
    caps = capabilities_for(inv)
    with gc_paused():
        prepared = prepare(inv, config, findings, limited_mechanisms(known_rules if known_rules is not None else rules))

        def run(tight: bool | frozenset[str], these: Sequence[Finding]) -> tuple[PlanResult, set[str]]:
            planner = Planner(inv, config, these, rules, known_rules, tight=tight, capabilities=caps, prepared=prepared)
            return planner.run(), planner.short_of_room

        balanced, short = run(False, findings)
        if not short:
            return balanced
        tight, _ = run(True, [f for f in findings if f.endpoint in short])
        fixable: dict[str, set[str]] = {}  # per endpoint
        for f in findings:
            if f.fixable:
                fixable.setdefault(f.endpoint, set()).add(f.id)

        def score(r: PlanResult, endpoint: str) -> tuple[int, int]:
            mine = fixable.get(endpoint, set())
            return (-len(r.closed & mine), sum(a.bytes for a in r.actions if a.endpoint == endpoint))

        better = frozenset(ep for ep in short if score(tight, ep) < score(balanced, ep))
        if not better:
            return balanced
        if better.issuperset(f.endpoint for f in findings):
            return tight  # every endpoint with findings, re-planned by best fit: that run is the plan
        del balanced, tight
        return run(better, findings)[0]


def make_plan(
    inv: Inventory,
    config: Config,
    findings: Sequence[Finding] | None = None,
    *,
    created_at: float | None = None,
    rules: Mapping[str, Mapping[str, MechanismRules]] | None = None,
    known_rules: Mapping[str, Mapping[str, MechanismRules]] | None = None,
) -> dict[str, Any]:
    """The plan document for ``inv`` under ``config``: deterministic except ``created_at``."""
    from ftbridge import __version__

    result = plan(inv, config, findings, rules=rules, known_rules=known_rules)
    return plan_document(
        inv,
        config,
        result,
        created_at=default_created_at() if created_at is None else created_at,
        generator=f"ftbridge {__version__}",
    )
