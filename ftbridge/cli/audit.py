"""``ftbridge audit``: what is not protected as the policy says, and why."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from ftbridge.cli.common import EndpointOpt, Output, OutputOpt, emit_json, run, say, table
from ftbridge.cli.inventory import FromOpt, load_inventory
from ftbridge.cli.render import SEVERITY_STYLES, Col, plural, text_col


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
    ) -> None:
        """Check every VM against its policy. Exit 0: compliant; 1: findings at or above --fail-on."""
        from ftbridge.audit import Severity
        from ftbridge.services.compliance import audit_estate as run_audit

        inv = load_inventory(ctx, source, endpoint)
        report = run_audit(inv, run(ctx).config())
        if output is Output.json:
            emit_json(report.to_dict())
        else:
            show_report(report)
        if report.at_or_above(Severity(fail_on.value)):
            raise typer.Exit(1)


def show_report(report: object) -> None:
    from ftbridge.audit import AuditReport

    assert isinstance(report, AuditReport)
    rows = [
        [
            f.severity.value,
            f.rule,
            f.endpoint,
            # a datastore finding names its datastore where a VM finding names its VM
            f.vm_name or str(f.evidence.get("name") or f.datastore or "-"),
            f.message.split(": ", 1)[-1],
            ("" if f.fixable else "manual: ") + f.fix,
        ]
        for f in report.findings
    ]
    table(
        f"audit: {plural(len(report.findings), 'finding')} on {plural(report.vms, 'VM')}",
        [
            Col("severity", styles=SEVERITY_STYLES),
            "rule",
            Col("endpoint", drop=1),
            "vm / datastore",
            text_col("finding"),
            text_col("fix", drop=2),
        ],
        rows,
    )
    counts: dict[str, int] = {}
    for f in report.findings:
        counts[f.rule] = counts.get(f.rule, 0) + 1
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
    fixable = sum(f.fixable for f in report.findings)
    say(f"{plural(len(report.findings), 'finding')} ({fixable} fixable by 'ftbridge plan'): {summary}")
    if report.unmanaged:
        say(f"{plural(report.unmanaged, 'VM')} match no policy and were not audited")
