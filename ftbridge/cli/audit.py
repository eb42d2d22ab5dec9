"""``ftbridge audit``: what is not protected as the policy says, and why."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from ftbridge.cli.common import AllOpt, EndpointOpt, Output, OutputOpt, emit_json, run, say, table
from ftbridge.cli.inventory import FromOpt, load_inventory
from ftbridge.cli.render import SEVERITY_STYLES, SUMMARY_ROWS, Col, plural, summarise, text_col

if TYPE_CHECKING:
    from ftbridge.audit import Finding


class FailOn(str, enum.Enum):
    info = "info"
    warning = "warning"
    error = "error"
    critical = "critical"


def register(app: typer.Typer) -> None:
    @app.command()
    def audit(
        ctx: typer.Context,
        endpoint: EndpointOpt = None,
        source: FromOpt = None,
        fail_on: Annotated[
            FailOn,
            typer.Option(
                "--fail-on",
                metavar="SEVERITY",
                help="exit 1 when a finding is at least this severe: info, warning, error, critical",
            ),
        ] = FailOn.warning,
        output: OutputOpt = Output.table,
        all_rows: AllOpt = False,
    ) -> None:
        """Check every VM against its policy. Exit 0: compliant; 1: findings at or above --fail-on."""
        from ftbridge.audit import Severity
        from ftbridge.services.compliance import audit_estate as run_audit

        inv = load_inventory(ctx, source, endpoint)
        report = run_audit(inv, run(ctx).config())
        if output is Output.json:
            emit_json(report.to_dict())
        else:
            show_report(report, all_rows)
        if report.at_or_above(Severity(fail_on.value)):
            raise typer.Exit(1)


_COLUMNS: list[str | Col] = [
    Col("severity", styles=SEVERITY_STYLES),
    "rule",
    Col("endpoint", drop=1),
    "vm / datastore",
    text_col("finding"),
    text_col("fix", drop=2),
]


def _row(f: Finding) -> list[str]:
    return [
        f.severity.value,
        f.rule,
        f.endpoint,
        # a datastore finding names its datastore where a VM finding names its VM
        f.vm_name or str(f.evidence.get("name") or f.datastore or "-"),
        f.message.split(": ", 1)[-1],
        ("" if f.fixable else "manual: ") + f.fix,
    ]


def show_report(report: object, all_rows: bool = False) -> None:
    """Every finding; on a terminal, when they do not fit the screen (and not ``all_rows``):
    counts per rule and per endpoint, then the most severe findings (see ``--all``)."""
    from ftbridge.audit import AuditReport

    assert isinstance(report, AuditReport)
    findings = report.findings
    title = f"audit: {plural(len(findings), 'finding')} on {plural(report.vms, 'VM')}"
    if summarise(len(findings), all_rows):
        _summary(findings)
    else:
        table(title, _COLUMNS, [_row(f) for f in findings])
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.rule] = counts.get(f.rule, 0) + 1
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
    fixable = sum(f.fixable for f in findings)
    say(f"{plural(len(findings), 'finding')} ({fixable} fixable by 'ftbridge plan'): {summary}")
    if report.unmanaged:
        say(f"{plural(report.unmanaged, 'VM')} match no policy and were not audited")


def _summary(findings: Sequence[Finding]) -> None:
    """Per rule, per endpoint, then the :data:`SUMMARY_ROWS` most severe findings (in the
    audit's order within a severity)."""
    import heapq

    from ftbridge.audit import Severity

    levels = list(reversed(Severity))  # critical first
    per_rule: dict[str, list[int]] = {}  # rule -> [findings, fixable, rank]
    per_ep: dict[str, dict[Severity, int]] = {}
    for f in findings:
        r = per_rule.setdefault(f.rule, [0, 0, f.severity.rank])
        r[0] += 1
        r[1] += f.fixable
        by_sev = per_ep.setdefault(f.endpoint, dict.fromkeys(levels, 0))
        by_sev[f.severity] += 1
    table(
        "findings per rule",
        [Col("rule"), Col("severity", styles=SEVERITY_STYLES), Col("findings", "num"), Col("fixable", "num")],
        [
            [rule, list(Severity)[rank].value, f"{n:,}", f"{fix:,}"]
            for rule, (n, fix, rank) in sorted(per_rule.items(), key=lambda kv: (-kv[1][2], -kv[1][0], kv[0]))
        ],
    )
    table(
        "findings per endpoint",
        ["endpoint", *(Col(s.value, "num") for s in levels), Col("findings", "num")],
        [[ep, *(f"{by[s]:,}" for s in levels), f"{sum(by.values()):,}"] for ep, by in sorted(per_ep.items())],
    )
    worst = heapq.nsmallest(SUMMARY_ROWS, range(len(findings)), key=lambda i: (-findings[i].severity.rank, i))
    table(
        f"the {plural(len(worst), 'most severe finding')} of {len(findings):,}",
        _COLUMNS,
        [_row(findings[i]) for i in worst],
    )
    say(f"showing {len(worst)} of {plural(len(findings), 'finding')}: every row with --all, or piped, or -o json")
