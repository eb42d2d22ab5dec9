"""``ftbridge plan``: the actions that fix what the audit found, as a file to review and apply.

``ftbridge plan [--from INVENTORY] [--out FILE] [-o table|json]`` audits, plans and writes
the plan (by default to ``<state dir>/plans/plan-<id>.json``); ``ftbridge plan show FILE``
prints it per VM: from where to where, how many bytes, which findings each step closes, and
why the rest cannot be fixed. Exit 0 when a plan was written, whatever it contains.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ftbridge.cli.checks import output_file
from ftbridge.cli.common import AllOpt, EndpointOpt, Output, OutputOpt, again, emit_json, gib, run, say, table
from ftbridge.cli.inventory import FromOpt, load_inventory
from ftbridge.cli.render import SUMMARY_ROWS, TOP_ROWS, Col, plural, summarise, text_col

if TYPE_CHECKING:
    from ftbridge.planning.planfile import PlanAction, PlanDoc

OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        metavar="FILE",
        help="write the plan here (default: <state dir>/plans/plan-<id>.json)",
        show_default=False,
        callback=output_file,
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
    all_rows: AllOpt = False,
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
        show_plan(_parse(doc, str(path)), all_rows)
    say(_summary_line(doc) + f"\nplan written to {path}")
    say(f"review: {again(ctx, 'plan', 'show', str(path))}    apply: {again(ctx, 'apply', str(path), '--yes')}")


@app.command("show")
def show(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(metavar="PLAN", help="a plan file written by 'ftbridge plan'", show_default=False)
    ],
    output: OutputOpt = Output.table,
    all_rows: AllOpt = False,
) -> None:
    """Print a plan per VM: from where to where, bytes, findings closed; then what stays unfixed and why."""
    import json

    from ftbridge.planning import load_plan

    doc = load_plan(file)
    if output is Output.json:
        emit_json(json.loads(file.read_text(encoding="utf-8")))
        return
    show_plan(doc, all_rows)
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
        targets = _targets(a)
        host = f" @ {doc.host_name(a.endpoint, a.spec.host)}" if a.spec.host else ""
        what = f"new {a.mechanism} secondary" + (f" (replaces {', '.join(a.replaces)})" if a.replaces else "")
        return what, "", ", ".join(ds(x) for x in targets) + host
    if a.kind == "unprotect":
        src = ", ".join(ds(x) for x in a.datastores)
        what = f"remove {a.mechanism} secondary {a.secondary}" + (" (FT off to move)" if a.window else "")
        return what, src, ""
    return a.kind.replace("_", " "), "", ""  # failover kinds: shown by `ftbridge failover`


_COLUMNS: list[str | Col] = [
    "vm",
    text_col("action"),
    text_col("from"),
    text_col("to"),
    Col("bytes", "num", drop=1),
    text_col("closes", drop=2),
]


def _order(a: PlanAction) -> tuple[str, str, int]:
    return (a.endpoint, a.vm_name, _num(a.id))


def _rows(doc: PlanDoc, actions: Iterable[PlanAction]) -> list[list[Any]]:
    """Table rows for ``actions`` (already in order): a VM's name on its first row only."""
    rows: list[list[Any]] = []
    last = None
    for a in actions:
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
    return rows


def show_plan(doc: PlanDoc, all_rows: bool = False) -> None:
    """The plan as a diff per VM, then the unfixable findings with their reasons; on a
    terminal, a table longer than the screen is summarised (unless ``all_rows``)."""
    import heapq

    title = f"plan {doc.plan_id}: {plural(len(doc.actions), 'action')}"
    if summarise(len(doc.actions), all_rows):
        _plan_summary(doc)
        first = heapq.nsmallest(SUMMARY_ROWS, doc.actions, key=_order)
        table(f"the first {len(first)} of {plural(len(doc.actions), 'action')}", _COLUMNS, _rows(doc, first))
        say(f"showing {len(first)} of {plural(len(doc.actions), 'action')}: every row with --all, or piped, or -o json")
    else:
        table(title, _COLUMNS, _rows(doc, sorted(doc.actions, key=_order)))
    if not doc.unfixable:
        return
    left = doc.unfixable
    title = f"{plural(len(left), 'finding')} the plan leaves open"
    if summarise(len(left), all_rows):
        per: dict[tuple[str, str], int] = {}
        for u in left:
            per[(u.rule, u.category)] = per.get((u.rule, u.category), 0) + 1
        table(
            "left open, per rule",
            ["rule", "category", Col("findings", "num")],
            [[r, c, f"{n:,}"] for (r, c), n in sorted(per.items(), key=lambda kv: (-kv[1], kv[0]))],
        )
        left = left[:SUMMARY_ROWS]
        title = f"the first {len(left)} findings left open"
    table(
        title,
        [Col("endpoint", drop=1), "vm / datastore", "rule", text_col("why")],
        [
            [u.endpoint, u.vm_name or doc.ds_name(u.endpoint, u.datastore), u.rule, f"{u.reason} ({u.category})"]
            for u in left
        ],
    )


def _targets(a: PlanAction) -> list[str]:
    """The datastores an action writes to (what the table's "to" column names)."""
    if a.kind in ("move_disk", "move_vm"):
        return [a.to]
    if a.kind == "protect":
        return sorted(set(a.spec.disks.values()))
    return []


def _plan_summary(doc: PlanDoc) -> None:
    """Actions and bytes per kind and per endpoint; the target datastores that receive most."""
    per_kind: dict[str, list[int]] = {}
    per_ep: dict[str, list[Any]] = {}
    per_ds: dict[tuple[str, str], int] = {}
    for a in doc.actions:
        k = per_kind.setdefault(a.kind, [0, 0])
        k[0] += 1
        k[1] += a.bytes
        e = per_ep.setdefault(a.endpoint, [set(), 0, 0])
        e[0].add(a.vm)
        e[1] += 1
        e[2] += a.bytes
        for t in _targets(a):
            per_ds[(a.endpoint, t)] = per_ds.get((a.endpoint, t), 0) + 1
    table(
        "actions per kind",
        ["kind", Col("actions", "num"), Col("bytes", "num")],
        [[kind, f"{n:,}", gib(b)] for kind, (n, b) in sorted(per_kind.items())],
    )
    table(
        "actions per endpoint",
        ["endpoint", Col("VMs", "num"), Col("actions", "num"), Col("bytes", "num")],
        [[ep, f"{len(vms):,}", f"{n:,}", gib(b)] for ep, (vms, n, b) in sorted(per_ep.items())],
    )
    busiest = sorted(per_ds.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_ROWS]
    table(
        f"busiest targets ({len(busiest)} of {len(per_ds):,})",
        [Col("endpoint", drop=1), "datastore", Col("actions", "num")],
        [[ep, doc.ds_name(ep, ds), f"{n:,}"] for (ep, ds), n in busiest],
    )


def _num(action_id: str) -> int:
    return int(action_id[1:]) if action_id[1:].isdigit() else 0


def show_plan_data(doc: dict[str, Any], source: str, all_rows: bool = False) -> None:
    """A plan given as data (as ``make_plan`` returns it), shown like ``plan show``."""
    show_plan(_parse(doc, source), all_rows)


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
