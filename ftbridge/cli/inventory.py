"""``ftbridge inventory``: where every VM's files are."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ftbridge.cli.common import EndpointOpt, Output, OutputOpt, emit_json, gib, run, table
from ftbridge.cli.render import STATE_STYLES, Col, busy, plural, text_col

if TYPE_CHECKING:
    from ftbridge.inventory import Inventory

FromOpt = Annotated[
    str | None,
    typer.Option(
        "--from", metavar="FILE", help="read a saved inventory (JSON) instead of the endpoints", show_default=False
    ),
]


def load_inventory(ctx: typer.Context, source: str | None, endpoints: list[str] | None) -> Inventory:
    """From a file (offline) or from the endpoints; labels from the config either way."""
    from ftbridge.inventory import Inventory
    from ftbridge.labels import apply_labels

    if source:
        inv = Inventory.load(source)
        cfg_path = run(ctx).config_path
        if cfg_path is not None or _have_config():
            inv = apply_labels(inv, run(ctx).config().domains)
        return inv
    from ftbridge.services.inventory import collect
    from ftbridge.services.session import Session

    cfg = run(ctx).config()
    with busy(f"reading {', '.join(endpoints or sorted(cfg.endpoints)) or 'the endpoints'}"), Session(cfg) as session:
        return collect(session, endpoints)


def _have_config() -> bool:
    from ftbridge.config import find_config
    from ftbridge.errors import ConfigError

    try:
        find_config(None)
        return True
    except ConfigError:
        return False


def register(app: typer.Typer) -> None:
    @app.command()
    def inventory(
        ctx: typer.Context, endpoint: EndpointOpt = None, source: FromOpt = None, output: OutputOpt = Output.table
    ) -> None:
        """Hosts, datastores and VMs with their disks and secondaries."""
        inv = load_inventory(ctx, source, endpoint)
        if output is Output.json:
            emit_json(inv.to_dict())
            return
        show_inventory(inv)


def _domain(labels: dict[str, str], skip: str) -> str:
    return " ".join(f"{k}={v}" for k, v in labels.items() if k != skip) or "-"


def show_inventory(inv: Inventory) -> None:
    table(
        plural(len(inv.hosts), "host"),
        [
            Col("endpoint", drop=2),
            "name",
            Col("cluster", drop=1),
            Col("state", styles=STATE_STYLES),
            Col("memory", "num", drop=3),
            text_col("domain"),
        ],
        [
            [
                h.endpoint,
                h.name,
                h.cluster or "-",
                h.state.value,
                gib(h.memory) if h.memory else "-",
                _domain(h.domain.as_dict(), "host"),
            ]
            for h in inv.hosts
        ],
    )
    table(
        plural(len(inv.datastores), "datastore"),
        [
            Col("endpoint", drop=2),
            "name",
            Col("kind", drop=3),
            "shared",
            Col("free", "num"),
            Col("capacity", "num", drop=1),
            text_col("domain"),
        ],
        [
            [
                d.endpoint,
                d.name,
                d.kind,
                "yes" if d.shared else "no",
                gib(d.free),
                gib(d.capacity),
                _domain(d.domain.as_dict(), "datastore") + ("" if d.accessible else " INACCESSIBLE"),
            ]
            for d in inv.datastores
        ],
    )
    rows = []
    for v in inv.vms:

        def ds(i: str, ep: str = v.endpoint) -> str:
            found = inv.datastore(ep, i)
            return found.name if found else i

        host = inv.host(v.endpoint, v.host)
        secs = "; ".join(
            f"{s.mechanism} -> {', '.join(sorted(ds(x, s.target_endpoint or v.endpoint) for x in s.datastores))} "
            f"({s.state.value})"
            for s in v.secondaries
        )
        rows.append(
            [
                v.endpoint,
                v.name,
                host.name if host else (v.host or "-"),
                v.power.value,
                ", ".join(sorted({ds(d.datastore) for d in v.disks})) or "-",
                gib(v.size),
                secs or "-",
            ]
        )
    table(
        plural(len(inv.vms), "VM"),
        [
            Col("endpoint", drop=2),
            "vm",
            Col("host", drop=1),
            Col("power", drop=3),
            text_col("primary"),
            Col("size", "num", drop=4),
            text_col("secondaries"),
        ],
        rows,
    )
