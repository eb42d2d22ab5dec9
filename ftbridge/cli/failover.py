"""``ftbridge health``, ``failover plan|run|test``, ``failback`` and ``reprotect``.

``failover run``, ``failover test``, ``failback`` and ``reprotect`` all run through the apply
(journal, lock, resume, limits): they show progress and summaries the way ``apply`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ftbridge.cli.checks import output_file
from ftbridge.cli.common import EndpointOpt, Output, OutputOpt, YesOpt, again, emit_json, run, say, table
from ftbridge.cli.progress import JsonLines, failure_json, running, show_failures, show_preview
from ftbridge.cli.render import STATE_STYLES, Col, busy, plural, seconds, text_col
from ftbridge.cli.runs import retain

if TYPE_CHECKING:
    from ftbridge.failover.failback import AfterResult
    from ftbridge.failover.plan import FailoverPlan
    from ftbridge.failover.run import FailoverResult

app = typer.Typer(
    help="Fail over by VM or by failed domain; test failover without touching production.", no_args_is_help=True
)

VmOpt = Annotated[list[str] | None, typer.Option("--vm", metavar="VM", help="VM as NAME or ENDPOINT/NAME (repeatable)")]
DomainOpt = Annotated[
    list[str] | None,
    typer.Option("--domain", metavar="LEVEL=NAME", help="failed domain, e.g. site=ams1 (repeatable)"),
]
RecoveryOpt = Annotated[
    Path | None,
    typer.Option("--recovery-plan", metavar="FILE", help="priority groups and start order (TOML)", show_default=False),
]
PlanArg = Annotated[
    Path, typer.Argument(metavar="PLAN", help="a failover plan written by 'failover plan --out'", show_default=False)
]


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
        with busy("reading the endpoints"), Session(cfg) as session:
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
                ["endpoint", text_col("reachable"), text_col("hosts down"), text_col("datastores down")],
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
                [
                    "level",
                    "label",
                    Col("status", styles=STATE_STYLES),
                    Col("hosts up/down", "num"),
                    Col("datastores up/down", "num"),
                ],
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
                f"VMs needing attention: {len(bad)} of {plural(len(report.vms), 'VM')}",
                [
                    Col("endpoint", drop=2),
                    "vm",
                    Col("status", styles=STATE_STYLES),
                    Col("secondary", drop=1),
                    Col("state", drop=1),
                    Col("lag", "num"),
                    Col("rpo", "num"),
                ],
                [
                    [
                        v.endpoint,
                        v.name,
                        v.status,
                        v.mechanism or "-",
                        v.state or "-",
                        seconds(v.lag),
                        seconds(v.rpo),
                    ]
                    for v in bad
                ],
            )
        if not report.healthy:
            raise typer.Exit(1)

    root.add_typer(app, name="failover")

    @root.command()
    def failback(
        ctx: typer.Context,
        plan: Annotated[
            Path, typer.Argument(metavar="PLAN", help="the failover plan that was run", show_default=False)
        ],
        yes: YesOpt = False,
        resume: ResumeOpt = False,
        output: OutputOpt = Output.table,
    ) -> None:
        """Move each VM a failover promoted back to its original datastores and host, once they are
        healthy (a planned migration). Exit 0 done, 1 some failed or still waiting, 2 without --yes."""
        from ftbridge.failover.failback import run_failback
        from ftbridge.failover.plan import FailoverPlan

        cfg = run(ctx).config()
        fplan = FailoverPlan.load(plan)
        inv = None if resume else _inventory(cfg)
        hint = again(ctx, "failback", str(plan), "--yes", "--resume")
        res = running(
            "failback",
            output,
            yes,
            hint,
            lambda sink: run_failback(cfg, fplan, inv, yes=yes, resume=resume, on_event=sink),
        )
        if yes:
            retain(ctx)
        _after(res, output, "failback", hint)

    @root.command()
    def reprotect(
        ctx: typer.Context,
        yes: YesOpt = False,
        resume: ResumeOpt = False,
        output: OutputOpt = Output.table,
    ) -> None:
        """Give VMs their secondaries again so the policy holds (the planner's protect actions,
        applied). Exit 0 done, 1 some failed, 2 without --yes."""
        from ftbridge.failover.failback import run_reprotect

        cfg = run(ctx).config()
        inv = None if resume else _inventory(cfg)
        hint = again(ctx, "reprotect", "--yes", "--resume")
        res = running(
            "reprotect", output, yes, hint, lambda sink: run_reprotect(cfg, inv, yes=yes, resume=resume, on_event=sink)
        )
        if yes:
            retain(ctx)
        _after(res, output, "reprotect", hint)


#: a VM's state after a failover or a test that means it came up
UP = ("promoted", "restarted", "ok")

ResumeOpt = Annotated[bool, typer.Option("--resume", help="continue the unfinished run (after a crash or failures)")]


def _inventory(cfg: Any, endpoints: list[str] | None = None) -> Any:
    from ftbridge.services.inventory import collect
    from ftbridge.services.session import Session

    with busy("reading the estate"), Session(cfg) as session:
        return collect(session, endpoints)


def _json_line(data: dict[str, Any]) -> None:
    JsonLines().write(data)


def _refuse_dry_run(result: Any, output: Output, what: str) -> None:
    """Without --yes: show what would run, then stop with exit 2 (nothing changed)."""
    from ftbridge.apply import ConfirmationRequired

    lines = JsonLines() if output is Output.json else None
    todo = show_preview(f"{what}: what --yes would do", result.preview, lines)
    raise ConfirmationRequired(
        f"dry run: {todo} of {plural(len(result.preview), 'action')} would run; nothing was changed", hint="add --yes"
    )


def _after(res: AfterResult, output: Output, what: str, hint: str) -> None:
    from ftbridge.errors import PartialFailure

    result = res.apply
    assert result is not None
    if result.dry_run:
        _refuse_dry_run(result, output, what)
    failures = result.failures()
    if output is Output.json:
        _json_line({"event": "summary", **result.summary(), "waiting": res.waiting, "failures": failure_json(failures)})
    else:
        if res.waiting:
            table(
                f"{what}: {plural(len(res.waiting), 'VM')} left for later",
                ["vm", Col("endpoint", drop=1), text_col("why")],
                [[w["vm_name"], w["endpoint"], w["reason"]] for w in res.waiting],
            )
        show_failures(failures)
        done = ", ".join(f"{v} {k}" for k, v in result.counts().items()) or "nothing to do"
        say(f"{what}: run {result.run_id}: {done} in {result.elapsed:.1f}s (journal {result.journal})")
    if failures:
        raise PartialFailure(f"{what}: {len(failures)} of {plural(len(result.actions), 'action')} not done", hint=hint)
    if res.waiting:
        raise PartialFailure(
            f"{what}: {plural(len(res.waiting), 'VM')} cannot go back yet (listed)", hint="run it again later"
        )


@app.command("plan")
def plan_cmd(
    ctx: typer.Context,
    vm: VmOpt = None,
    domain: DomainOpt = None,
    endpoint: EndpointOpt = None,
    recovery_plan: RecoveryOpt = None,
    fence: Annotated[bool, typer.Option("--fence", help="plan to power off primaries that still run")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="promote even if the primary may still run (recorded)")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="FILE", help="write the plan here", show_default=False, callback=output_file),
    ] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Which VMs come up where, from which secondary, and the data each may lose. Without --vm or
    --domain: whatever health reports as down. Exit 1 when some affected VMs cannot be brought up."""
    plan = make_failover_plan(ctx, vm, domain, recovery_plan, fence, force, endpoint)
    if out is not None:
        plan.save(out)
        say(f"failover plan written to {out}")
    if output is Output.json:
        emit_json(plan.to_dict())
    else:
        show_failover_plan(plan)
    if not (plan.steps or plan.blocked):
        say(_nothing_to_do(ctx, plan, vm, domain))
    elif plan.steps and out is not None:
        say(f"next: {again(ctx, 'failover', 'run', str(out), '--yes')}")
    if plan.blocked:
        raise typer.Exit(1)


def _nothing_to_do(ctx: typer.Context, plan: FailoverPlan, vms: list[str] | None, domains: list[str] | None) -> str:
    """Why a failover plan is empty, and what to run instead."""
    if domains:
        why = f"no VM has its primary in {', '.join(domains)}"
        if vms:
            why = f"none of {', '.join(vms)} has its primary in {', '.join(domains)}"
        nxt = f"see where VMs run: {again(ctx, 'inventory')}"
    elif vms:
        why = f"{', '.join(vms)}: no copy to fail over to"
        nxt = f"see the VM's secondaries: {again(ctx, 'inventory')}"
    else:
        why = "nothing is reported down: no host down and no datastore inaccessible"
        nxt = (
            f"rehearse instead: {again(ctx, 'failover', 'test')}; or plan for a failed domain: "
            f"{again(ctx, 'failover', 'plan', '--domain', 'site=NAME')}"
        )
    return f"nothing to fail over ({plan.scope}): {why}. Next, {nxt}"


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    plan: PlanArg,
    yes: YesOpt = False,
    resume: ResumeOpt = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="run the steps the plan forced (promote while the primary may still run)"),
    ] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Carry a failover plan out (needs --yes): fences, then promotes in recovery-plan order, each
    re-checked live (no split brain). Reports each VM's recovery time. Exit 0 every VM up, 1 some
    failed, 2 without --yes (or a forced step without --force), 8 bad plan, 9 locked."""
    from ftbridge.failover.plan import FailoverPlan
    from ftbridge.failover.run import run_failover

    cfg = run(ctx).config()
    fplan = FailoverPlan.load(plan)
    hint = again(ctx, "failover", "run", str(plan), "--yes", "--resume", *(["--force"] if force else []))
    res = running(
        "failover",
        output,
        yes,
        hint,
        lambda sink: run_failover(cfg, fplan, yes=yes, resume=resume, force=force, on_event=sink),
    )
    if yes:
        retain(ctx)
    _report(res, output, "failover", hint=f"fix the cause, then: {hint}")


@app.command("test")
def test_cmd(
    ctx: typer.Context,
    vm: VmOpt = None,
    domain: DomainOpt = None,
    recovery_plan: RecoveryOpt = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="leave the test copies running for inspection; remove them with --cleanup")
    ] = False,
    cleanup: Annotated[
        bool, typer.Option("--cleanup", help="remove the test copies an earlier --keep left running")
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="finish (clean up) the test failover a crash interrupted")
    ] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Start each secondary isolated (no production network), verify it, clean it up; production is
    not touched. Without --vm or --domain: every protected VM. 'ftbridge runs' keeps the evidence.
    Exit 0 all worked, 1 some failed."""
    from ftbridge.failover.recovery import load_recovery_plan
    from ftbridge.failover.run import run_test, test_plan

    if sum((keep, cleanup, resume)) > 1:
        raise typer.BadParameter("give one of --keep, --cleanup and --resume", param_hint="--keep/--cleanup/--resume")
    if cleanup and (vm or domain or recovery_plan):
        raise typer.BadParameter(
            "--cleanup removes every kept test copy; it takes no --vm, --domain or --recovery-plan"
        )
    cfg = run(ctx).config()
    if cleanup:
        from ftbridge.failover.cleanup import run_cleanup

        hint = again(ctx, "failover", "test", "--cleanup")
        done = running("test cleanup", output, True, hint, lambda sink: run_cleanup(cfg, on_event=sink))
        if done is None:
            if output is Output.json:
                _json_line({"event": "summary", "run": None, "vms": []})
            say("nothing to clean up: no test failover was kept running (see: ftbridge runs -k test-failover)")
            return
        _report(done, output, "test cleanup", hint=hint)
        return
    fplan = None
    if not resume:
        fplan = test_plan(_inventory(cfg), cfg, vm, domain, load_recovery_plan(recovery_plan))
    hint = again(ctx, "failover", "test", "--resume")
    res = running(
        "test failover", output, True, hint, lambda sink: run_test(cfg, fplan, resume=resume, keep=keep, on_event=sink)
    )
    retain(ctx)
    _report(res, output, "test failover", hint=f"{hint} cleans up what is left")
    if keep and res.ok:
        say(f"the test copies stay up; remove them with: {again(ctx, 'failover', 'test', '--cleanup')}")


def _report(res: FailoverResult, output: Output, what: str, hint: str) -> None:
    from ftbridge.errors import PartialFailure

    result = res.apply
    if result.dry_run:
        _refuse_dry_run(result, output, what)
    if result.already_applied and not res.vms:
        if output is Output.json:
            _json_line({"event": "already_applied", "plan_id": result.plan_id, "run": result.run_id})
        say(f"{what} {result.plan_id} ran completely before (run {result.run_id}); nothing to do")
        return
    if output is Output.json:
        _json_line({"event": "summary", **res.summary()})
    else:
        table(
            f"{what}: {sum(v.state in UP for v in res.vms)} of {plural(len(res.vms), 'VM')} up",
            ["vm", Col("endpoint", drop=1), Col("state", styles=STATE_STYLES), Col("took", "num"), text_col("detail")],
            [
                [
                    v.vm_name,
                    v.endpoint,
                    v.state,
                    seconds(v.seconds),
                    v.message
                    if v.state == "failed"
                    else ("FORCED" if v.detail.get("forced") else "kept up" if v.detail.get("kept") else ""),
                ]
                for v in res.vms
            ],
        )
        if res.blocked and what == "failover":
            table(
                f"not in this failover: {plural(len(res.blocked), 'VM')}",
                ["vm", Col("endpoint", drop=1), text_col("why")],
                [[b.vm_name, b.endpoint, b.reason] for b in res.blocked],
            )
        total = "" if res.total_seconds is None else f"; recovery time {res.total_seconds:.1f}s"
        say(f"{what}: run {result.run_id}{total} (journal {result.journal})")
    if not res.ok:
        bad = sum(v.state not in UP for v in res.vms)
        raise PartialFailure(
            f"{what}: {bad} of {plural(len(res.vms), 'VM')} failed (journal run {result.run_id})", hint=hint
        )


def make_failover_plan(
    ctx: typer.Context,
    vms: list[str] | None,
    domains: list[str] | None,
    recovery_plan: Path | None,
    fence: bool,
    force: bool,
    endpoints: list[str] | None = None,
) -> FailoverPlan:
    from ftbridge.failover.plan import plan_failover
    from ftbridge.failover.recovery import load_recovery_plan
    from ftbridge.failover.run import select
    from ftbridge.services import lastseen
    from ftbridge.services.inventory import collect
    from ftbridge.services.session import Session

    cfg = run(ctx).config()
    recovery = load_recovery_plan(recovery_plan)
    with busy("reading the estate"), Session(cfg) as session:
        inv = collect(session, endpoints)
    inv, seen = lastseen.fill(inv, lastseen.load(Path(cfg.state_dir)))
    chosen, failed = select(inv, vms, domains)
    return plan_failover(inv, cfg, chosen, failed, recovery=recovery, fence=fence, force=force, last_seen=seen)


def show_failover_plan(plan: FailoverPlan) -> None:
    table(
        f"failover plan ({plan.scope}): {plural(len(plan.steps), 'VM')} come up",
        [
            Col("group", drop=2),
            "vm",
            Col("endpoint", drop=3),
            text_col("how"),
            "on host",
            Col("may lose", "num"),
            Col("primary", drop=1),
            text_col("why", drop=4),
        ],
        [
            [
                s.group,
                s.vm_name,
                s.endpoint,
                ("HA, then restart" if s.ha_grace else "restart")
                if s.kind == "restart"
                else f"promote {s.mechanism} {s.secondary}",
                s.host_name or s.host or "(driver's choice)",
                seconds(s.lag),
                "fenced first" if s.fence else "FORCED" if s.forced else "down",
                s.why,
            ]
            for s in plan.steps
        ],
    )
    if plan.managed:
        table(
            f"left to the agent that runs them: {plural(len(plan.managed), 'VM')}",
            ["vm", Col("endpoint", drop=1), text_col("why")],
            [[b.vm_name, b.endpoint, b.reason] for b in plan.managed],
        )
    if plan.blocked:
        table(
            f"cannot come up: {plural(len(plan.blocked), 'VM')}",
            ["vm", Col("endpoint", drop=1), text_col("why")],
            [[b.vm_name, b.endpoint, b.reason] for b in plan.blocked],
        )
