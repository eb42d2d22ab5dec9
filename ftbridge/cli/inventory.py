"""``ftbridge inventory``: where every VM's files are."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ftbridge.cli.common import EndpointOpt, Output, OutputOpt, emit_json, gib, run, table

if TYPE_CHECKING:
    from ftbridge.inventory import Inventory

FromOpt = Annotated[str | None, typer.Option("--from", help="read a saved inventory (JSON) instead of the endpoints")]


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

    with Session(run(ctx).config()) as session:
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
        table(
            "datastores",
            ["endpoint", "name", "kind", "shared", "free", "capacity", "domain"],
            [
                [
                    d.endpoint,
                    d.name,
                    d.kind,
                    "yes" if d.shared else "no",
                    gib(d.free),
                    gib(d.capacity),
                    " ".join(f"{k}={v}" for k, v in d.domain.as_dict().items() if k != "datastore")
                    + ("" if d.accessible else " INACCESSIBLE"),
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
                f"{s.mechanism}->{','.join(sorted(ds(x) for x in s.datastores))} ({s.state.value})"
                for s in v.secondaries
            )
            rows.append(
                [
                    v.endpoint,
                    v.name,
                    host.name if host else v.host,
                    v.power.value,
                    ", ".join(sorted({ds(d.datastore) for d in v.disks})),
                    gib(v.size),
                    secs or "-",
                ]
            )
        table("VMs", ["endpoint", "vm", "host", "power", "primary", "size", "secondaries"], rows)
