"""``ftbridge sim``: reset the sim driver's estates and inject faults into them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ftbridge.cli.checks import seconds, share
from ftbridge.cli.common import EndpointOpt, Output, OutputOpt, emit_json, run, say

if TYPE_CHECKING:
    from ftbridge.sim.driver import SimDriver

app = typer.Typer(help="The sim driver's estates: reset them, inject faults.", no_args_is_help=True)


def _sim_drivers(ctx: typer.Context, endpoints: list[str] | None) -> list[SimDriver]:
    from ftbridge.errors import ConfigError
    from ftbridge.sim.driver import SimDriver

    cfg = run(ctx).config()
    names = endpoints or [n for n, c in cfg.endpoints.items() if c.driver == "sim"]
    out = []
    for n in names:
        c = cfg.endpoints.get(n)
        if c is None or c.driver != "sim":
            raise ConfigError(f"{cfg.source}: endpoints.{n}: not a sim endpoint")
        out.append(SimDriver(c, endpoint=n))
    return out


@app.command()
def reset(ctx: typer.Context, endpoint: EndpointOpt = None) -> None:
    """Forget the sim state: the next command sees the estate file as written. Exit 9 while a run
    holds the estate (its actions would lose the state under them)."""
    from ftbridge.apply.locks import EstateKey, EstateLock

    for drv in _sim_drivers(ctx, endpoint):
        with EstateLock([EstateKey.of(drv)], holder="ftbridge sim reset"):
            removed = drv.ex_reset()
        say(f"{drv.endpoint}: {'state reset' if removed else 'no state yet'}")


@app.command()
def fault(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(metavar="ENDPOINT", help="a sim endpoint")],
    host_down: Annotated[
        list[str] | None,
        typer.Option("--host-down", metavar="HOST", help="it fails, the platform reports it down (repeatable)"),
    ] = None,
    host_unreachable: Annotated[
        list[str] | None,
        typer.Option(
            "--host-unreachable", metavar="HOST", help="management loses it, its VMs keep running (repeatable)"
        ),
    ] = None,
    datastore_down: Annotated[
        list[str] | None,
        typer.Option("--datastore-down", metavar="DATASTORE", help="this datastore is down (repeatable)"),
    ] = None,
    fail_rate: Annotated[
        float | None,
        typer.Option(metavar="SHARE", help="share of operations failing, retryably (0..1)", callback=share),
    ] = None,
    fail_vm: Annotated[
        list[str] | None, typer.Option("--fail-vm", metavar="VM", help="VM whose operations fail for good (repeatable)")
    ] = None,
    fail_sync: Annotated[
        list[str] | None,
        typer.Option("--fail-sync", metavar="VM", help="VM whose new secondaries break while syncing (repeatable)"),
    ] = None,
    slow: Annotated[
        float | None, typer.Option(metavar="SECONDS", help="seconds added to every operation", callback=seconds)
    ] = None,
    seed: Annotated[int | None, typer.Option(metavar="N", help="seed for --fail-rate")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="remove every fault first")] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Inject faults by name: hosts or datastores down, failing or slow operations."""
    from ftbridge.errors import ConfigError

    (drv,) = _sim_drivers(ctx, [endpoint])
    state = drv._attach()

    def ids(kind: str, names: list[str] | None) -> set[str]:
        """Estate names (or ids) to ids; an unknown name is a clear error."""
        out = set()
        for name in names or []:
            found = [k for k, v in state[kind].items() if v.get("name") == name or k == name]
            if not found:
                raise ConfigError(f"{endpoint}: no {kind[:-1]} named {name!r}")
            out.add(found[0])
        return out

    faults: dict[str, Any] = {}
    if clear:
        faults.update(
            hosts_down=[],
            hosts_unreachable=[],
            datastores_down=[],
            fail_rate=0.0,
            fail_permanent=[],
            fail_sync=[],
            slow=0.0,
        )
    kept = {} if clear else state["faults"]
    if host_down:
        faults["hosts_down"] = sorted(ids("hosts", host_down) | set(kept.get("hosts_down", [])))
    if host_unreachable:
        faults["hosts_unreachable"] = sorted(ids("hosts", host_unreachable) | set(kept.get("hosts_unreachable", [])))
    if fail_sync:
        faults["fail_sync"] = sorted(ids("vms", fail_sync))
    if datastore_down:
        faults["datastores_down"] = sorted(ids("datastores", datastore_down) | set(kept.get("datastores_down", [])))
    if fail_vm:
        faults["fail_permanent"] = sorted(ids("vms", fail_vm))
    for key, value in (("fail_rate", fail_rate), ("slow", slow), ("seed", seed)):
        if value is not None:
            faults[key] = value
    now = drv.ex_inject(**faults)
    if output is Output.json:
        emit_json(now)
    else:
        shown = {k: v for k, v in now.items() if v and k != "hosts_down_at"}  # what is in force
        say(f"{endpoint}: faults now {shown or 'none'}")
