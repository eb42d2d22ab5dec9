"""``ftbridge plan``: the actions that fix what the audit found, as a file to review and apply.

``ftbridge plan [--from INVENTORY] [--out FILE] [-o table|json]`` audits, plans and writes
the plan (by default to ``<state dir>/plans/plan-<id>.json``); ``ftbridge plan show FILE``
prints it per VM: from where to where, how many bytes, which findings each step closes, and
why the rest cannot be fixed. Exit 0 when a plan was written, whatever it contains.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ftbridge.cli.common import EndpointOpt, Output, OutputOpt, again, emit_json, gib, run, say, table
from ftbridge.cli.inventory import FromOpt, load_inventory
from ftbridge.cli.render import Col, plural, text_col

if TYPE_CHECKING:
    from ftbridge.planning.planfile import PlanAction, PlanDoc

OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        metavar="FILE",
        help="write the plan here (default: <state dir>/plans/plan-<id>.json)",
        show_default=False,
    ),
]

app = typer.Typer(
    help="Audit, then plan the moves and secondaries that fix the findings and write the plan file "
    "(exit 0). 'plan show FILE' prints a plan per VM.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@app.callback(invoke_without_command=True)
def plan(
    ctx: typer.Context,
    endpoint: EndpointOpt = None,
    source: FromOpt = None,
    out: OutOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Audit, plan and write the plan file (exit 0); review it with 'plan show', run it with 'apply'."""
    if ctx.invoked_subcommand is not None:
        return
    from ftbridge.planning import make_plan, write_plan

    inv = load_inventory(ctx, source, endpoint)
    cfg = run(ctx).config()
    doc = make_plan(inv, cfg)
    path = out or Path(cfg.state_dir) / "plans" / f"plan-{doc['plan_id']}.json"
    write_plan(doc, path)
    if output is Output.json:
        emit_json(doc)
    else:
        show_plan(_parse(doc, str(path)))
    say(_summary_line(doc) + f"\nplan written to {path}")
    say(f"review: {again(ctx, 'plan', 'show', str(path))}    apply: {again(ctx, 'apply', str(path), '--yes')}")


@app.command("show")
def show(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(metavar="PLAN", help="a plan file written by 'ftbridge plan'", show_default=False)
    ],
    output: OutputOpt = Output.table,
) -> None:
    """Print a plan per VM: from where to where, bytes, findings closed; then what stays unfixed and why."""
    import json

    from ftbridge.planning import load_plan

    doc = load_plan(file)
    if output is Output.json:
        emit_json(json.loads(file.read_text(encoding="utf-8")))
        return
    show_plan(doc)
    say(_summary_line(doc.model_dump(by_alias=True)))


def _parse(doc: dict[str, Any], source: str) -> PlanDoc:
    from ftbridge.planning import parse_plan

    return parse_plan(doc, source=source)


def _summary_line(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    kinds = ", ".join(f"{v} {k}" for k, v in s["by_kind"].items() if v) or "nothing to do"
    return (
        f"plan {doc['plan_id']}: {plural(s['actions'], 'action')} ({kinds}), {gib(s['bytes_moved'])} to copy; "
        f"closes {s['closed']} of {plural(s['findings'], 'finding')}, {s['unfixable']} left (reasons listed)"
    )


def _where(doc: PlanDoc, a: PlanAction) -> tuple[str, str, str]:
    """(action words, from, to) for one action."""

    def ds(x: str) -> str:
        return doc.ds_name(a.endpoint, x)

    if a.kind == "move_disk":
        return f"move disk {a.disk}", ds(a.source), ds(a.to)
    if a.kind == "move_vm":
        return f"move config + {plural(len(a.disks), 'disk')}", ", ".join(ds(x) for x in a.source), ds(a.to)
    if a.kind == "protect":
        targets = sorted(set(a.spec.disks.values()))
        host = f" @ {doc.host_name(a.endpoint, a.spec.host)}" if a.spec.host else ""
        what = f"new {a.mechanism} secondary" + (f" (replaces {', '.join(a.replaces)})" if a.replaces else "")
        return what, "", ", ".join(ds(x) for x in targets) + host
    if a.kind == "unprotect":
        src = ", ".join(ds(x) for x in a.datastores)
        what = f"remove {a.mechanism} secondary {a.secondary}" + (" (FT off to move)" if a.window else "")
        return what, src, ""
    return a.kind.replace("_", " "), "", ""  # failover kinds: shown by `ftbridge failover`


def show_plan(doc: PlanDoc) -> None:
    """The plan as a diff per VM, then the unfixable findings with their reasons."""
    rows: list[list[Any]] = []
    last = None
    for a in sorted(doc.actions, key=lambda a: (a.endpoint, a.vm_name, _num(a.id))):
        key = (a.endpoint, a.vm)
        what, src, dst = _where(doc, a)
        closes = ", ".join(c.split(":", 1)[0] for c in a.closes)
        after = f" after {', '.join(a.depends_on)}" if a.depends_on else ""
        rows.append(
            [
                f"{a.endpoint}/{a.vm_name}" if key != last else "",
                f"{a.id} {what}{after}",
                src or "-",
                dst or "-",
                gib(a.bytes) if a.bytes else "-",
                closes or "-",
            ]
        )
        last = key
    table(
        f"plan {doc.plan_id}: {plural(len(doc.actions), 'action')}",
        [
            "vm",
            text_col("action"),
            text_col("from"),
            text_col("to"),
            Col("bytes", "num", drop=1),
            text_col("closes", drop=2),
        ],
        rows,
    )
    if doc.unfixable:
        table(
            f"{plural(len(doc.unfixable), 'finding')} the plan leaves open",
            [Col("endpoint", drop=1), "vm / datastore", "rule", text_col("why")],
            [
                [u.endpoint, u.vm_name or doc.ds_name(u.endpoint, u.datastore), u.rule, f"{u.reason} ({u.category})"]
                for u in doc.unfixable
            ],
        )


def _num(action_id: str) -> int:
    return int(action_id[1:]) if action_id[1:].isdigit() else 0


def show_plan_data(doc: dict[str, Any], source: str) -> None:
    """A plan given as data (as ``make_plan`` returns it), shown like ``plan show``."""
    show_plan(_parse(doc, source))


def demo_plan(ctx: typer.Context, inv: Any, cfg: Any, where: Path) -> dict[str, Any]:
    """The demo's plan: written to ``where/plan.json``, summarised on stderr, returned as data."""
    from ftbridge.planning import make_plan, write_plan

    doc = make_plan(inv, cfg)
    path = where / "plan.json"
    write_plan(doc, path)
    cfg_path = where / "ftbridge.toml"
    say(_summary_line(doc))
    say(f"see it: ftbridge -c {cfg_path} plan show {path}    apply it: ftbridge -c {cfg_path} apply {path} --yes")
    return doc


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="plan")
