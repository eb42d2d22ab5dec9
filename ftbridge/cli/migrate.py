"""``ftbridge migrate plan|gaps|verify|export``: move VMs between hypervisors, keeping protection.

``plan`` places a source's VMs on a target endpoint and writes the migration plan file;
``gaps`` prints what protection each VM keeps, changes or loses; ``verify`` compares the
target after the move with the plan and writes the plan actions that restore what is missing;
``export`` writes the plan's mapping in a moving tool's format.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ftbridge.cli.checks import output_file
from ftbridge.cli.common import Output, OutputOpt, emit_json, gib, run, say, table

if TYPE_CHECKING:
    from ftbridge.config import Config
    from ftbridge.inventory import Inventory
    from ftbridge.migrate.mapping import Mapping
    from ftbridge.migrate.source import Side

app = typer.Typer(help="Plan moving VMs to another hypervisor with their protection; export the mappings.")

SourceOpt = Annotated[
    str, typer.Option("--source", "-s", help="endpoint, saved inventory (JSON) or RVTools export (.xlsx)")
]
TargetOpt = Annotated[str, typer.Option("--target", "-t", help="the target endpoint")]
TargetFromOpt = Annotated[
    str | None, typer.Option("--target-from", help="read the target from a saved inventory (offline)")
]
SourceEpOpt = Annotated[
    str | None, typer.Option("--source-endpoint", help="the source endpoint's name in a saved inventory / export")
]
MapOpt = Annotated[list[Path] | None, typer.Option("--map", "-m", help="mapping file (repeatable; later wins)")]
MapFormatOpt = Annotated[
    str | None,
    typer.Option("--map-format", help="ftbridge | forklift | coriolis | pve | ovirt-dr (default: detected)"),
]
VmOpt = Annotated[list[str] | None, typer.Option("--vm", help="only VMs whose name or id matches (glob, repeatable)")]
TagOpt = Annotated[list[str] | None, typer.Option("--tag", help="only VMs with this tag (repeatable)")]
WaveOpt = Annotated[int | None, typer.Option("--wave-size", min=1, help="at most this many VMs per wave")]
OutOpt = Annotated[
    Path | None, typer.Option("--out", help="write the file here", show_default=False, callback=output_file)
]
PlanOpt = Annotated[Path | None, typer.Option("--plan", help="a migration plan file (default: the latest)")]


def _sides(
    ctx: typer.Context, source: str, target: str, target_from: str | None, source_ep: str | None
) -> tuple[Side, Side]:
    from ftbridge.migrate.source import read_side
    from ftbridge.services.inventory import collect
    from ftbridge.services.session import Session

    cfg = run(ctx).config()
    with Session(cfg) as session:
        src = read_side(source, cfg, lambda ep: collect(session, [ep]), endpoint=source_ep)
        if target_from:
            tgt = read_side(target_from, cfg, lambda ep: collect(session, [ep]), endpoint=target)
        else:
            if target not in cfg.endpoints:
                from ftbridge.errors import ConfigError

                raise ConfigError(
                    f"{cfg.source}: no endpoint named {target!r} (configured: {', '.join(cfg.endpoints)})"
                )
            tgt = read_side(target, cfg, lambda ep: collect(session, [ep]))
    if src.endpoint == tgt.endpoint:
        from ftbridge.errors import ConfigError

        raise ConfigError(f"source and target are both {src.endpoint}: a migration goes somewhere else")
    return src, tgt


def _mapping(maps: list[Path] | None, fmt: str | None) -> Mapping:
    from ftbridge.migrate.formats import read_mapping
    from ftbridge.migrate.mapping import Mapping, merged

    out = Mapping()
    for p in maps or []:
        m = read_mapping(p, fmt)
        out = m if out.empty and not out.vms else merged(out, m)
    return out


def _make(
    ctx: typer.Context,
    source: str,
    target: str,
    target_from: str | None,
    source_ep: str | None,
    maps: list[Path] | None,
    map_format: str | None,
    vm: list[str] | None,
    tag: list[str] | None,
    wave_size: int | None,
) -> tuple[Config, dict[str, Any], Inventory, Inventory]:
    from ftbridge.migrate import make_migration
    from ftbridge.migrate.check import check_mapping
    from ftbridge.migrate.source import select

    cfg = run(ctx).config()
    mapping = _mapping(maps, map_format)
    src, tgt = _sides(ctx, source, target, target_from, source_ep)
    vms = select(src.inventory.vms, src.endpoint, vm or (), tag or ())
    check_mapping(mapping, src.inventory, src.endpoint, tgt.inventory, tgt.endpoint, vms)
    _, doc = make_migration(
        src.inventory, src.endpoint, tgt.inventory, tgt.endpoint, cfg, mapping, vms, wave_size=wave_size
    )
    return cfg, doc, src.inventory, tgt.inventory


@app.command("plan")
def plan_cmd(
    ctx: typer.Context,
    source: SourceOpt,
    target: TargetOpt,
    maps: MapOpt = None,
    map_format: MapFormatOpt = None,
    vm: VmOpt = None,
    tag: TagOpt = None,
    wave_size: WaveOpt = None,
    target_from: TargetFromOpt = None,
    source_endpoint: SourceEpOpt = None,
    out: OutOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Place the source's VMs on the target (shared primaries, separated secondaries); write the plan file."""
    from ftbridge.migrate.planfile import write_migration

    cfg, doc, _, _ = _make(ctx, source, target, target_from, source_endpoint, maps, map_format, vm, tag, wave_size)
    path = out or _default_path(cfg, doc)
    write_migration(doc, path)
    if output is Output.json:
        emit_json(doc)
    else:
        show_migration(doc)
    s = doc["summary"]
    say(
        f"{s['planned']} of {s['vms']} VMs placed on {doc['target']['endpoint']} ({gib(s['bytes'])}) in "
        f"{s['waves']} wave(s); {s['protected']} protected, {s['separated']} separated; {s['infeasible']} infeasible"
    )
    say(f"migration plan written to {path}")
    say(f"next: ftbridge migrate gaps --plan {path}    ftbridge migrate export --plan {path} --format forklift")


def _default_path(cfg: Config, doc: dict[str, Any]) -> Path:
    name = f"migration-{doc['source']['endpoint']}-{doc['target']['endpoint']}-{doc['plan_id']}.json"
    return Path(cfg.state_dir) / "migrations" / name


def _latest(cfg: Config, source: str | None, target: str | None) -> Path:
    from ftbridge.errors import ConfigError

    where = Path(cfg.state_dir) / "migrations"
    pattern = f"migration-{source or '*'}-{target or '*'}-*.json"
    found = sorted(where.glob(pattern), key=lambda p: (p.stat().st_mtime_ns, p.name)) if where.is_dir() else []
    if not found:
        raise ConfigError(f"no migration plan in {where} ({pattern}): run 'ftbridge migrate plan' or give --plan")
    return found[-1]


@app.command("gaps")
def gaps_cmd(
    ctx: typer.Context,
    source: Annotated[str | None, typer.Option("--source", "-s", help="as for 'migrate plan'")] = None,
    target: Annotated[str | None, typer.Option("--target", "-t", help="as for 'migrate plan'")] = None,
    plan: PlanOpt = None,
    maps: MapOpt = None,
    map_format: MapFormatOpt = None,
    vm: VmOpt = None,
    tag: TagOpt = None,
    target_from: TargetFromOpt = None,
    source_endpoint: SourceEpOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Per VM: its protection on the source, what it gets on the target, RPO/RTO before and after."""
    from ftbridge.migrate.planfile import load_migration

    if plan is None and source and target:
        _, doc, _, _ = _make(ctx, source, target, target_from, source_endpoint, maps, map_format, vm, tag, None)
    else:
        doc = load_migration(plan or _latest(run(ctx).config(), source, target))
    rows = [{"vm": v["vm"], "vm_name": v["vm_name"], "wave": v["wave"], **v["gap"]} for v in doc["vms"]]
    if output is Output.json:
        emit_json({"source": doc["source"]["endpoint"], "target": doc["target"]["endpoint"], "vms": rows})
        return
    from ftbridge.migrate.gaps import duration

    table(
        f"protection gaps: {doc['source']['endpoint']} -> {doc['target']['endpoint']}",
        ["VM", "source", "RPO/RTO", "target", "RPO/RTO after", "status", "to restore it"],
        [
            [
                r["vm_name"],
                " + ".join(r["source"]["mechanisms"] + (["HA"] if r["source"]["ha"] else [])) or "-",
                f"{duration(r['source']['rpo'])} / {duration(r['source']['rto'])}"
                if r["source"]["mechanisms"]
                else "-",
                " + ".join(r["target"]["mechanisms"]) or "-",
                f"{duration(r['target']['rpo'])} / {duration(r['target']['rto'])}"
                if r["target"]["mechanisms"]
                else "-",
                r["status"],
                r["restore"],
            ]
            for r in rows
        ],
    )
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    say(", ".join(f"{n} {k}" for k, n in sorted(counts.items())))


@app.command("verify")
def verify_cmd(
    ctx: typer.Context,
    source: Annotated[str | None, typer.Option("--source", "-s", help="as for 'migrate plan'")] = None,
    target: Annotated[str | None, typer.Option("--target", "-t", help="the target endpoint")] = None,
    plan: PlanOpt = None,
    target_from: TargetFromOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="write the restoring plan here", callback=output_file)
    ] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Match the migrated VMs on the target (name or uuid), report deviations from the plan, and write
    the plan actions that restore what is missing (run them with 'ftbridge apply'). Exit 1 on deviations."""
    from ftbridge.cli.inventory import load_inventory
    from ftbridge.migrate.planfile import load_migration
    from ftbridge.migrate.verify import verify
    from ftbridge.planning import write_plan

    cfg = run(ctx).config()
    doc = load_migration(plan or _latest(cfg, source, target))
    ep = target or doc["target"]["endpoint"]
    inv = load_inventory(ctx, target_from, None if target_from else [ep])
    report = verify(doc, inv, ep, cfg)
    path = None
    if report.plan is not None and report.plan["actions"]:
        path = out or Path(cfg.state_dir) / "plans" / f"plan-{report.plan['plan_id']}.json"
        write_plan(report.plan, path)
    if output is Output.json:
        emit_json({**report.to_dict(), "plan_file": str(path) if path else None})
    else:
        table(
            f"migration verify: {doc['source']['endpoint']} -> {ep}",
            ["VM", "found as", "deviation"],
            [[d.vm_name, d.found or "-", d.message] for d in report.deviations] or [["-", "-", "no deviation"]],
        )
    say(f"{report.matched} of {report.expected} planned VMs found on {ep}; {len(report.deviations)} deviation(s)")
    if path is not None:
        say(f"restoring plan written to {path}: ftbridge apply {path} --yes (or: ftbridge plan / reprotect)")
    if report.deviations:
        raise typer.Exit(1)


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", "-f", help="ftbridge | forklift | coriolis | pve | ovirt-dr")],
    plan: PlanOpt = None,
    maps: MapOpt = None,
    map_format: MapFormatOpt = None,
    namespace: Annotated[str, typer.Option("--namespace", help="Forklift: the objects' namespace")] = "openshift-mtv",
    out: OutOpt = None,
) -> None:
    """Write a migration plan's mapping (or a mapping file, converted) in a moving tool's format."""
    import sys

    from ftbridge.migrate.export import export_plan
    from ftbridge.migrate.formats import write_mapping
    from ftbridge.migrate.planfile import load_migration

    if maps:
        text = write_mapping(_mapping(maps, map_format), fmt)
    else:
        doc = load_migration(plan or _latest(run(ctx).config(), None, None))
        text = export_plan(doc, fmt, namespace=namespace)
    if out is None:
        sys.stdout.write(text)
    else:
        from ftbridge.statefiles import atomic_write

        atomic_write(out, text)  # whole or not at all; a full or read-only disk: exit 11
        say(f"{fmt} mapping written to {out}")


def show_migration(doc: dict[str, Any]) -> None:
    """The plan per VM: where its disks, NICs and secondary go."""
    rows = []
    for v in doc["vms"]:
        if v["status"] != "planned":
            rows.append([v["vm_name"], "-", "-", "-", "-", f"infeasible: {v['reason']}"])
            continue
        disks = ", ".join(f"{d['id']}:{d['from_name']}->{d['to_name']}" for d in v["disks"])
        nics = ", ".join(f"{n['from_name'] or '-'}->{n['to_name'] or 'unconnected'}" for n in v["nics"]) or "-"
        p = v["protection"]
        if p["mechanism"]:
            ds = sorted(set(dict(p["spec"]["disks"]).values()))
            sec = f"{p['mechanism']} on {', '.join(_ds_name(doc, x) for x in ds)}" + (
                "" if p["separated"] else f" (NOT separated: {p['evidence']})"
            )
        else:
            sec = f"none: {p['reason']}" if p["wanted"] else "-"
        rows.append([v["vm_name"], str(v["wave"]), v["host_name"], disks, nics, sec])
    table(
        f"migration {doc['source']['endpoint']} -> {doc['target']['endpoint']}",
        ["VM", "wave", "host", "disks", "networks", "secondary"],
        rows,
    )


def _ds_name(doc: dict[str, Any], ds_id: str) -> str:
    return next((d["name"] for d in doc["datastores"] if d["id"] == ds_id), ds_id)
