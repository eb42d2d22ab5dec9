"""``ftbridge runs`` and ``ftbridge runs show N``: the run history, from the journal.

Every apply, failover, test failover, failback and reprotect run: when, who, which plan,
the result, its actions, the bytes it copied, how long it ran, and per VM the recovery
time (failover) or the evidence of the test (which copy, started, verified, cleaned up).
Read only: the journal is not created, changed or locked. Exit 0; 2 for a run that is not
in the journal. ``ftbridge runs prune --older-than 30d`` is the exception: it removes finished
runs and ftbridge's own plan documents (see :mod:`ftbridge.apply.retention`), as every apply and
failover run does by itself after ``[state] retention``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ftbridge.cli.common import Output, OutputOpt, emit_json, run, say
from ftbridge.cli.render import STATE_STYLES, Col, facts, human_bytes, plural, seconds, table, text_col

if TYPE_CHECKING:
    from ftbridge.apply.history import History, RunDetail, RunInfo
    from ftbridge.apply.retention import Pruned

app = typer.Typer(
    help="The run history: apply, failover, test failover, failback and reprotect runs, from the journal.",
    invoke_without_command=True,
    no_args_is_help=False,
)

KindOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--kind",
        "-k",
        metavar="KIND",
        help="only runs of this kind: apply, failover, test-failover, test-cleanup, failback, reprotect (repeatable)",
        show_default=False,
    ),
]
LastOpt = Annotated[
    int | None, typer.Option("--last", "-n", metavar="N", help="only the N newest runs", show_default=False)
]


def _history(ctx: typer.Context) -> History:
    from ftbridge.apply.history import History

    return History(run(ctx).config().state_dir)


@app.callback(invoke_without_command=True)
def runs(ctx: typer.Context, kind: KindOpt = None, last: LastOpt = None, output: OutputOpt = Output.table) -> None:
    """List the runs, oldest first: when, who, kind, result, actions, bytes, duration, recovery time."""
    if ctx.invoked_subcommand is not None:
        return
    from ftbridge.apply.history import RUN_KINDS

    bad = [k for k in kind or [] if k not in RUN_KINDS]
    if bad:
        raise typer.BadParameter(f"{bad[0]!r} is not one of {', '.join(RUN_KINDS)}", param_hint="--kind")
    history = _history(ctx)
    infos = history.runs(kind)
    if last is not None:
        infos = infos[-last:] if last > 0 else []
    if output is Output.json:
        emit_json({"schema_version": 1, "journal": str(history.journal_path), "runs": [i.to_dict() for i in infos]})
        return
    if not infos:
        say(f"no runs in the journal ({history.journal_path})" + (" of that kind" if kind else ""))
        return
    show_runs(infos)


def show_runs(infos: list[RunInfo]) -> None:
    from ftbridge.timefmt import human

    table(
        plural(len(infos), "run"),
        [
            Col("run", "num"),
            "when (UTC)",
            "kind",
            Col("result", styles=STATE_STYLES),
            Col("actions", "num"),
            Col("bytes", "num", drop=2),
            Col("took", "num", drop=3),
            Col("recovery", "num", drop=1),
            Col("who", drop=4),
            Col("plan", drop=5),
        ],
        [
            [
                i.run,
                human(i.started_at),
                i.kind,
                i.result,
                _actions(i),
                human_bytes(i.bytes) if i.bytes else "-",
                seconds(i.duration),
                seconds(i.recovery),
                i.user or "-",
                i.plan_id,
            ]
            for i in infos
        ],
    )


def _actions(i: RunInfo) -> str:
    ok = i.states.get("succeeded", 0) + i.states.get("skipped", 0)
    return f"{ok}/{i.actions}"


@app.command("show")
def show(
    ctx: typer.Context,
    number: Annotated[int, typer.Argument(metavar="N", help="the run number, as 'ftbridge runs' lists it")],
    output: OutputOpt = Output.table,
) -> None:
    """One run: its figures, each action, and per VM the recovery time or the test evidence."""
    history = _history(ctx)
    detail = history.get(number)
    if detail is None:
        have = history.numbers()
        span = f"runs {have[0]}-{have[-1]}" if have else "no runs yet"
        raise typer.BadParameter(f"no run {number} in the journal {history.journal_path} ({span})", param_hint="N")
    if output is Output.json:
        emit_json({"schema_version": 1, **detail.to_dict()})
        return
    show_detail(detail, history.state_dir)


@app.command("prune")
def prune_cmd(
    ctx: typer.Context,
    older_than: Annotated[
        str, typer.Option("--older-than", metavar="DURATION", help="what finished longer ago than this: 30d, 12h")
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would go; remove nothing")] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Remove finished runs and ftbridge's own plan documents older than DURATION; never a run that
    is not done, the newest run, kept test copies' runs or each VM's newest verified test. Exit 0."""
    from ftbridge.apply.retention import prune
    from ftbridge.configtypes import parse_duration

    try:
        seconds_ = parse_duration(older_than)
    except ValueError:
        raise typer.BadParameter(
            f"{older_than!r} is not a duration such as 30d, 12h or 90m", param_hint="--older-than"
        ) from None
    cfg = run(ctx).config()
    done = prune(cfg.state_dir, seconds_, dry_run=dry_run)
    if output is Output.json:
        emit_json({"schema_version": 1, "older_than": seconds_, **done.to_dict()})
        return
    say(_pruned_line(done, older_than))
    for number, why in sorted(done.kept.items()):
        say(f"  kept run {number}: {why}")


def _pruned_line(done: Pruned, older_than: str) -> str:
    verb = "would remove" if done.dry_run else "removed"
    runs = done.runs
    which = f" ({runs[0]}-{runs[-1]})" if runs else ""
    return (
        f"{verb} {plural(len(runs), 'run')}{which} older than {older_than}: "
        f"{plural(done.actions, 'action')}, {plural(done.events, 'event')}, {plural(len(done.files), 'plan document')}"
    )


def retain(ctx: typer.Context) -> None:
    """After an apply or failover run: prune what ``[state] retention`` no longer keeps. A
    failure here never fails the run: one warning line."""
    import sqlite3

    from ftbridge.apply.retention import prune

    cfg = run(ctx).config()
    if cfg.state.retention <= 0:
        return
    try:
        done = prune(cfg.state_dir, cfg.state.retention)
    except (OSError, sqlite3.Error) as exc:
        say(f"warning: retention: could not prune {cfg.state_dir}: {exc}", "yellow")
        return
    if done.runs or done.files:
        r = cfg.state.retention
        say("retention: " + _pruned_line(done, f"{r / 86400:g}d" if r % 86400 == 0 else seconds(r)))


def _short(path: str | None, state_dir: Path) -> str:
    """A plan file the commands wrote into the state directory, named from there."""
    if not path:
        return "-"
    try:
        return f"{Path(path).relative_to(state_dir)} (in the state directory)"
    except ValueError:
        return path


def show_detail(d: RunDetail, state_dir: Path) -> None:
    from ftbridge.timefmt import human

    i = d.info
    pairs: list[tuple[str, object]] = [
        ("kind", i.kind),
        ("result", i.result),
        ("plan", i.plan_id),
        ("plan file", _short(i.plan_path, state_dir)),
        ("who", i.user or "-"),
        ("started", human(i.started_at) + " UTC"),
        ("finished", human(i.finished_at) + (" UTC" if i.finished_at else "")),
        ("ran for", seconds(i.duration) + (f" (resumed {plural(i.resumed, 'time')})" if i.resumed else "")),
        ("actions", ", ".join(f"{n} {s}" for s, n in i.states.items()) or "none"),
        ("bytes copied", human_bytes(i.bytes) if i.bytes is not None else "unknown (the plan file is gone)"),
    ]
    if i.recovery is not None:
        pairs.append(("recovery time", f"{seconds(i.recovery)} (start to last VM up)"))
    facts(f"run {i.run}", pairs)
    if d.recovery:
        table(
            f"recovery per VM: {sum(r.state in ('promoted', 'restarted') for r in d.recovery)} of "
            f"{plural(len(d.recovery), 'VM')} up",
            [
                "vm",
                Col("endpoint", drop=2),
                Col("state", styles=STATE_STYLES),
                Col("recovery", "num"),
                Col("from", drop=1),
                Col("host", drop=1),
            ],
            [
                [
                    r.vm_name,
                    r.endpoint,
                    r.state + (" FORCED" if r.forced else ""),
                    seconds(r.seconds),
                    r.secondary or ("its own disks" if r.how == "restart" else "-"),
                    r.host or "-",
                ]
                for r in d.recovery
            ],
        )
    if d.tests:
        table(
            f"test evidence: {sum(t.verified_at is not None for t in d.tests)} of "
            f"{plural(len(d.tests), 'copy', 'copies')} verified (times UTC)",
            [
                "vm",
                Col("endpoint", drop=3),
                text_col("copy", drop=2),
                Col("state", styles=STATE_STYLES),
                "started",
                Col("verified", "num"),
                text_col("cleaned up"),
                text_col("note", drop=4),
            ],
            [
                [
                    t.vm_name,
                    t.endpoint,
                    f"{t.mechanism or '?'} {t.secondary or '?'}",
                    t.state,
                    human(t.started_at, since=i.started_at),
                    "+" + seconds(t.seconds) if t.seconds is not None else "-",
                    human(t.cleaned_up_at, since=i.started_at) + (f" (run {t.cleanup_run})" if t.cleanup_run else ""),
                    t.error or (f"test instance {t.test_id}" if t.test_id else ""),
                ]
                for t in d.tests
            ],
        )
    table(
        plural(len(d.actions), "action"),
        [
            Col("action"),
            "kind",
            "vm",
            Col("state", styles=STATE_STYLES),
            Col("bytes", "num", drop=2),
            Col("took", "num", drop=1),
            text_col("error", drop=3),
        ],
        [
            [
                a.action,
                a.kind,
                a.vm_name,
                a.state,
                human_bytes(a.bytes) if a.bytes else "-",
                seconds(a.finished_at - a.started_at)
                if a.finished_at is not None and a.started_at is not None
                else "-",
                a.error or "",
            ]
            for a in d.actions
        ],
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="runs")
