"""The audit a person reads: findings, with "fixable" settled by the planner itself.

A rule knows whether its *kind* of problem can be planned away; only the planner knows whether
*this* one can (a 12-vCPU VM and FT's 8-vCPU limit, 5 TiB and no room outside the array). So
the findings the planner leaves open are marked not fixable, with its reason, and "no fixable
finding left" means what it says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ftbridge.audit import AuditReport, Finding, audit
from ftbridge.config import Config
from ftbridge.inventory import Inventory


def audit_estate(inv: Inventory, config: Config, plan_doc: Mapping[str, Any] | None = None) -> AuditReport:
    """The audit, with ``fixable`` settled by a plan: ``plan_doc`` when the caller has made one
    already (the demo shows it), else one made here."""
    report = audit(inv, config)
    if not report.findings:
        return report
    if plan_doc is not None:
        closed = {c for a in plan_doc["actions"] for c in a["closes"]}
        left = {u["finding"]: (u["category"], u["reason"]) for u in plan_doc["unfixable"]}
    else:
        from ftbridge.planning import plan

        result = plan(inv, config, report.findings)
        closed = result.closed
        left = {u.finding: (u.category, u.reason) for u in result.unfixable}

    def settled(f: Finding) -> Finding:
        if f.id in closed:
            return f if f.fixable else replace(f, fixable=True, fix="ftbridge plan fixes it: " + f.fix)
        if f.fixable and f.id in left:
            category, reason = left[f.id]
            return replace(
                f,
                fixable=False,
                fix=f"{f.fix}; the planner cannot: {reason}",
                evidence={**f.evidence, "unfixable": category},
            )
        return f

    return replace(report, findings=tuple(settled(f) for f in report.findings))
