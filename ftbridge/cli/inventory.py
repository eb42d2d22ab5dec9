"""``ftbridge inventory``: where every VM's files are."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ftbridge.cli.common import AllOpt, EndpointOpt, Output, OutputOpt, emit_json, gib, run, say, table
from ftbridge.cli.render import STATE_STYLES, SUMMARY_ROWS, TOP_ROWS, Col, busy, plural, summarise, text_col

if TYPE_CHECKING:
    from ftbridge.inventory import Inventory
    from ftbridge.model import VM, Datastore, Host

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
        ctx: typer.Context,
        endpoint: EndpointOpt = None,
        source: FromOpt = None,
        output: OutputOpt = Output.table,
        all_rows: AllOpt = False,
    ) -> None:
        """Hosts, datastores and VMs with their disks and secondaries."""
        inv = load_inventory(ctx, source, endpoint)
        if output is Output.json:
            emit_json(inv.lazy_dict())  # each VM converted as it is written
            return
        show_inventory(inv, all_rows)


def _domain(labels: dict[str, str], skip: str) -> str:
    return " ".join(f"{k}={v}" for k, v in labels.items() if k != skip) or "-"


_HOST_COLS: list[str | Col] = [
    Col("endpoint", drop=2),
    "name",
    Col("cluster", drop=1),
    Col("state", styles=STATE_STYLES),
    Col("memory", "num", drop=3),
    text_col("domain"),
]
_DS_COLS: list[str | Col] = [
    Col("endpoint", drop=2),
    "name",
    Col("kind", drop=3),
    "shared",
    Col("free", "num"),
    Col("capacity", "num", drop=1),
    text_col("domain"),
]
_VM_COLS: list[str | Col] = [
    Col("endpoint", drop=2),
    "vm",
    Col("host", drop=1),
    Col("power", drop=3),
    text_col("primary"),
    Col("size", "num", drop=4),
    text_col("secondaries"),
]


def show_inventory(inv: Inventory, all_rows: bool = False) -> None:
    """Hosts, datastores and VMs, a table each; on a terminal, a table longer than the
    screen becomes counts per endpoint (and per datastore) unless ``all_rows``."""
    cut = False
    if summarise(len(inv.hosts), all_rows):
        _hosts_summary(inv)
        cut = True
    else:
        table(plural(len(inv.hosts), "host"), _HOST_COLS, [_host_row(h) for h in inv.hosts])
    if summarise(len(inv.datastores), all_rows):
        _datastores_summary(inv)
        cut = True
    else:
        table(plural(len(inv.datastores), "datastore"), _DS_COLS, [_ds_row(d) for d in inv.datastores])
    if summarise(len(inv.vms), all_rows):
        _vms_summary(inv)
        cut = True
    else:
        table(plural(len(inv.vms), "VM"), _VM_COLS, [_vm_row(inv, v) for v in inv.vms])
    if cut:
        say("summarised to fit the screen: every row with --all, or piped, or -o json")


def _host_row(h: Host) -> list[str]:
    return [
        h.endpoint,
        h.name,
        h.cluster or "-",
        h.state.value,
        gib(h.memory) if h.memory else "-",
        _domain(h.domain.as_dict(), "host"),
    ]


def _ds_row(d: Datastore) -> list[str]:
    return [
        d.endpoint,
        d.name,
        d.kind,
        "yes" if d.shared else "no",
        gib(d.free),
        gib(d.capacity),
        _domain(d.domain.as_dict(), "datastore") + ("" if d.accessible else " INACCESSIBLE"),
    ]


def _vm_row(inv: Inventory, v: VM) -> list[str]:
    def ds(i: str, ep: str = v.endpoint) -> str:
        found = inv.datastore(ep, i)
        return found.name if found else i

    host = inv.host(v.endpoint, v.host)
    secs = "; ".join(
        f"{s.mechanism} -> {', '.join(sorted(ds(x, s.target_endpoint or v.endpoint) for x in s.datastores))} "
        f"({s.state.value})"
        for s in v.secondaries
    )
    return [
        v.endpoint,
        v.name,
        host.name if host else (v.host or "-"),
        v.power.value,
        ", ".join(sorted({ds(d.datastore) for d in v.disks})) or "-",
        gib(v.size),
        secs or "-",
    ]


def _hosts_summary(inv: Inventory) -> None:
    from ftbridge.model import HostState

    per: dict[str, dict[HostState, int]] = {}
    for h in inv.hosts:
        by = per.setdefault(h.endpoint, dict.fromkeys(HostState, 0))
        by[h.state] += 1
    table(
        "hosts per endpoint",
        ["endpoint", Col("hosts", "num"), *(Col(s.value, "num") for s in HostState)],
        [[ep, f"{sum(by.values()):,}", *(f"{by[s]:,}" for s in HostState)] for ep, by in sorted(per.items())],
    )


def _datastores_summary(inv: Inventory) -> None:
    import heapq

    per: dict[str, list[int]] = {}  # endpoint -> [datastores, shared, capacity, free]
    for d in inv.datastores:
        e = per.setdefault(d.endpoint, [0, 0, 0, 0])
        e[0] += 1
        e[1] += d.shared
        e[2] += d.capacity
        e[3] += d.free
    table(
        "datastores per endpoint",
        ["endpoint", Col("datastores", "num"), Col("shared", "num"), Col("free", "num"), Col("capacity", "num")],
        [[ep, f"{n:,}", f"{sh:,}", gib(free), gib(cap)] for ep, (n, sh, cap, free) in sorted(per.items())],
    )
    fullest = heapq.nsmallest(TOP_ROWS, inv.datastores, key=lambda d: d.free / d.capacity if d.capacity else 1.0)
    table(f"the {len(fullest)} fullest datastores", _DS_COLS, [_ds_row(d) for d in fullest])


def _vms_summary(inv: Inventory) -> None:
    from ftbridge.model import PowerState

    per_ep: dict[str, list[int]] = {}  # endpoint -> [VMs, powered on, with a secondary, bytes]
    per_ds: dict[tuple[str, str], list[int]] = {}  # (endpoint, datastore) -> [VMs, bytes]
    for v in inv.vms:
        e = per_ep.setdefault(v.endpoint, [0, 0, 0, 0])
        e[0] += 1
        e[1] += v.power is PowerState.ON
        e[2] += bool(v.secondaries)
        e[3] += v.size
        for ds_id in {d.datastore for d in v.disks}:
            c = per_ds.setdefault((v.endpoint, ds_id), [0, 0])
            c[0] += 1
            c[1] += sum(d.size for d in v.disks if d.datastore == ds_id)
    table(
        "VMs per endpoint",
        ["endpoint", Col("VMs", "num"), Col("on", "num"), Col("with secondary", "num"), Col("size", "num")],
        [[ep, f"{n:,}", f"{on:,}", f"{sec:,}", gib(b)] for ep, (n, on, sec, b) in sorted(per_ep.items())],
    )
    busiest = sorted(per_ds.items(), key=lambda kv: (-kv[1][0], kv[0]))[:TOP_ROWS]

    def name(ep: str, ds_id: str) -> str:
        found = inv.datastore(ep, ds_id)
        return found.name if found else ds_id

    table(
        f"busiest primary datastores ({len(busiest)} of {len(per_ds):,})",
        [Col("endpoint", drop=1), "datastore", Col("VMs", "num"), Col("size", "num")],
        [[ep, name(ep, ds), f"{n:,}", gib(b)] for (ep, ds), (n, b) in busiest],
    )
    first = inv.vms[:SUMMARY_ROWS]
    table(f"the first {len(first)} of {plural(len(inv.vms), 'VM')}", _VM_COLS, [_vm_row(inv, v) for v in first])
