"""``ftbridge sim``: reset the sim driver's estates and inject faults into them."""

from __future__ import annotations

from typing import Annotated

import typer

from ftbridge.cli.common import EndpointOpt, Output, OutputOpt, emit_json, run, say

app = typer.Typer(help="The sim driver's estates: reset them, inject faults.", no_args_is_help=True)


def _sim_drivers(ctx: typer.Context, endpoints: list[str] | None) -> list[object]:
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
    """Forget the sim state: the next command sees the estate file as written."""
    for drv in _sim_drivers(ctx, endpoint):
        removed = drv.ex_reset()  # type: ignore[attr-defined]
        say(f"{drv.endpoint}: {'state reset' if removed else 'no state yet'}")  # type: ignore[attr-defined]


@app.command()
def fault(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="a sim endpoint")],
    host_down: Annotated[list[str] | None, typer.Option("--host-down", help="host name")] = None,
    datastore_down: Annotated[list[str] | None, typer.Option("--datastore-down", help="datastore name")] = None,
    fail_rate: Annotated[float | None, typer.Option(help="share of operations failing, retryably (0..1)")] = None,
    fail_vm: Annotated[
        list[str] | None, typer.Option("--fail-vm", help="VM name whose operations fail for good")
    ] = None,
    slow: Annotated[float | None, typer.Option(help="seconds added to every operation")] = None,
    seed: Annotated[int | None, typer.Option(help="seed for --fail-rate")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="remove every fault first")] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Inject faults by name: hosts or datastores down, failing or slow operations."""
    from ftbridge.errors import ConfigError

    (drv,) = _sim_drivers(ctx, [endpoint])
    part = drv._attach()  # type: ignore[attr-defined]
    by_name = lambda kind, names: [_id(part[kind], n, kind) for n in names or []]  # noqa: E731

    def _id(objs: dict[str, dict[str, object]], name: str, kind: str) -> str:
        for k, v in objs.items():
            if v.get("name") == name or k == name:
                return k
        raise ConfigError(f"{endpoint}: no {kind[:-1]} named {name!r}")

    faults: dict[str, object] = {}
    if clear:
        faults.update(hosts_down=[], datastores_down=[], fail_rate=0.0, fail_permanent=[], slow=0.0)
    if host_down:
        faults["hosts_down"] = sorted(
            set(by_name("hosts", host_down)) | (set() if clear else set(part["faults"]["hosts_down"]))
        )
    if datastore_down:
        faults["datastores_down"] = sorted(
            set(by_name("datastores", datastore_down)) | (set() if clear else set(part["faults"]["datastores_down"]))
        )
    if fail_vm:
        faults["fail_permanent"] = by_name("vms", fail_vm)
    for key, value in (("fail_rate", fail_rate), ("slow", slow), ("seed", seed)):
        if value is not None:
            faults[key] = value
    now = drv.ex_inject(**faults)  # type: ignore[attr-defined]
    if output is Output.json:
        emit_json(now)
    else:
        say(f"{endpoint}: faults now {now}")
