"""The audit a person reads: findings, with "fixable" settled by the planner itself.

A rule knows whether its *kind* of problem can be planned away; only the planner knows whether
*this* one can (a 12-vCPU VM and FT's 8-vCPU limit, 5 TiB and no room outside the array). So
the findings the planner leaves open are marked not fixable, with its reason, and "no fixable
finding left" means what it says.
"""

from __future__ import annotations

from dataclasses import replace

from ftbridge.audit import AuditReport, Finding, audit
from ftbridge.config import Config
from ftbridge.inventory import Inventory


def audit_estate(inv: Inventory, config: Config) -> AuditReport:
    from ftbridge.planning import plan

    report = audit(inv, config)
    if not report.findings:
        return report
    result = plan(inv, config, report.findings)
    left = {u.finding: u for u in result.unfixable}

    def settled(f: Finding) -> Finding:
        if f.id in result.closed:
            return f if f.fixable else replace(f, fixable=True, fix="ftbridge plan fixes it: " + f.fix)
        if f.fixable and f.id in left:
            u = left[f.id]
            return replace(
                f,
                fixable=False,
                fix=f"{f.fix}; the planner cannot: {u.reason}",
                evidence={**f.evidence, "unfixable": u.category},
            )
        return f

    return replace(report, findings=tuple(settled(f) for f in report.findings))
