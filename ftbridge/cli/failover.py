"""``ftbridge health`` and ``ftbridge failover plan|run|test``: bring VMs up from their secondaries."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ftbridge.cli.common import EndpointOpt, Output, OutputOpt, emit_json, run, say, table

if TYPE_CHECKING:
    from ftbridge.failover.plan import FailoverPlan

app = typer.Typer(
    help="Fail over by VM or by failed domain; test failover without touching production.", no_args_is_help=True
)

VmOpt = Annotated[list[str] | None, typer.Option("--vm", help="VM as NAME or ENDPOINT/NAME (repeatable)")]
DomainOpt = Annotated[list[str] | None, typer.Option("--domain", help="failed domain, e.g. site=ams1 (repeatable)")]
RecoveryOpt = Annotated[Path | None, typer.Option("--recovery-plan", help="priority groups and start order (TOML)")]


def register(root: typer.Typer) -> None:
    @root.command()
    def health(ctx: typer.Context, endpoint: EndpointOpt = None, output: OutputOpt = Output.table) -> None:
        """What is up per endpoint and failure domain; each protected VM's secondary against its RPO.
        Exit 0 when all is well, 1 otherwise."""
        from ftbridge.errors import FtbridgeError
        from ftbridge.services.health import assess
        from ftbridge.services.inventory import collect
        from ftbridge.services.session import Session

        cfg = run(ctx).config()
        errors: dict[str, FtbridgeError] = {}
        inv = None
        with Session(cfg) as session:
            names = session.endpoints(endpoint)
            reachable = []
            for n in names:  # an endpoint that is down is news, not a reason to say nothing
                try:
                    session.driver(n)
                    reachable.append(n)
                except FtbridgeError as exc:
                    errors[n] = exc
            from ftbridge.inventory import Inventory

            inv = collect(session, reachable) if reachable else Inventory()
        report = assess(inv, cfg, errors)
        if output is Output.json:
            emit_json(report.to_dict())
        else:
            table(
                "endpoints",
                ["endpoint", "reachable", "hosts down", "datastores down"],
                [
                    [
                        n,
                        "yes" if e["reachable"] else f"NO: {e['error']}",
                        ", ".join(e["hosts_down"]) or "-",
                        ", ".join(e["datastores_down"]) or "-",
                    ]
                    for n, e in report.endpoints.items()
                ],
            )
            table(
                "failure domains",
                ["level", "label", "status", "hosts up/down", "datastores up/down"],
                [
                    [
                        d.level,
                        d.label,
                        d.status,
                        f"{d.hosts_up}/{d.hosts_down}",
                        f"{d.datastores_up}/{d.datastores_down}",
                    ]
                    for d in report.domains
                ],
            )
            bad = [v for v in report.vms if v.status not in ("ok", "not-required")]
            table(
                f"VMs needing attention ({len(bad)} of {len(report.vms)})",
                ["endpoint", "vm", "status", "secondary", "state", "lag", "rpo"],
                [
                    [
                        v.endpoint,
                        v.name,
                        v.status,
                        v.mechanism or "-",
                        v.state or "-",
                        "-" if v.lag is None else f"{v.lag:.0f}s",
                        "-" if v.rpo is None else f"{v.rpo:.0f}s",
                    ]
                    for v in bad
                ],
            )
        if not report.healthy:
            raise typer.Exit(1)

    root.add_typer(app, name="failover")


@app.command("plan")
def plan_cmd(
    ctx: typer.Context,
    vm: VmOpt = None,
    domain: DomainOpt = None,
    recovery_plan: RecoveryOpt = None,
    fence: Annotated[bool, typer.Option("--fence", help="plan to power off primaries that still run")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="promote even if the primary may still run (recorded)")
    ] = False,
    out: Annotated[Path | None, typer.Option("--out", help="write the plan here")] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Which VMs come up where, from which secondary, and the data each may lose. Without --vm or
    --domain: whatever health reports as down. Exit 1 when some affected VMs cannot be brought up."""
    plan = make_failover_plan(ctx, vm, domain, recovery_plan, fence, force)
    if out is not None:
        plan.save(out)
        say(f"failover plan written to {out}")
    if output is Output.json:
        emit_json(plan.to_dict())
    else:
        show_failover_plan(plan)
    if plan.blocked:
        raise typer.Exit(1)


def make_failover_plan(
    ctx: typer.Context,
    vms: list[str] | None,
    domains: list[str] | None,
    recovery_plan: Path | None,
    fence: bool,
    force: bool,
) -> FailoverPlan:
    from ftbridge.domains import DomainSelector, Failed
    from ftbridge.errors import ConfigError
    from ftbridge.failover.plan import affected_by, plan_failover
    from ftbridge.failover.recovery import load_recovery_plan
    from ftbridge.services.inventory import collect
    from ftbridge.services.session import Session

    cfg = run(ctx).config()
    recovery = load_recovery_plan(recovery_plan)
    with Session(cfg) as session:
        inv = collect(session)
    if vms:
        chosen = []
        for ref in vms:
            found = inv.find_vm(ref)
            if found is None:
                raise ConfigError(f"--vm {ref!r}: no such VM (or the name is not unique: use ENDPOINT/NAME)")
            chosen.append(found)
        failed = Failed(
            frozenset((v.endpoint, v.host) for v in chosen if v.host),
            frozenset((v.endpoint, d) for v in chosen for d in v.primary_datastores),
            "VMs " + ", ".join(vms),
        )
    else:
        failed = (
            Failed.from_selectors(inv, [DomainSelector.parse(d) for d in domains])
            if domains
            else Failed.from_inventory(inv)
        )
        chosen = affected_by(inv, failed)
    return plan_failover(inv, cfg, chosen, failed, recovery=recovery, fence=fence, force=force)


def show_failover_plan(plan: FailoverPlan) -> None:
    table(
        f"failover plan ({plan.scope}): {len(plan.steps)} VMs come up",
        ["group", "vm", "endpoint", "from secondary", "on host", "may lose", "primary"],
        [
            [
                s.group,
                s.vm_name,
                s.endpoint,
                f"{s.mechanism} {s.secondary}",
                s.host_name or s.host or "(driver's choice)",
                "-" if s.lag is None else f"{s.lag:.0f}s",
                "fenced first" if s.fence else "FORCED" if s.forced else "down",
            ]
            for s in plan.steps
        ],
    )
    if plan.blocked:
        table(
            f"cannot come up: {len(plan.blocked)}",
            ["vm", "endpoint", "why"],
            [[b.vm_name, b.endpoint, b.reason] for b in plan.blocked],
        )
