"""``ftbridge lab``: run a driver's lab peer on loopback, seeded from an estate file."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Annotated

import typer

from ftbridge.cli.common import Output, OutputOpt, emit_json, say, table
from ftbridge.cli.render import plural
from ftbridge.signalsafe import set_on_signals

app = typer.Typer(help="Lab peers: platform APIs on loopback for trying drivers.", no_args_is_help=True)


@app.command("list")
def list_(output: OutputOpt = Output.table) -> None:
    """Installed labs (one per driver that ships one)."""
    from ftbridge.labs import list_labs

    names = list(list_labs())
    if output is Output.json:
        emit_json([{"name": n} for n in names])
        return
    table(plural(len(names), "lab"), ["name"], [[n] for n in names])


@app.command("run")
def run_(
    name: Annotated[str, typer.Argument(metavar="NAME", help="lab name (= driver name)")],
    estate: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="estate file; default: the demo estate", show_default=False),
    ] = None,
    estate_name: Annotated[
        str | None, typer.Option("--name", metavar="ESTATE", help="estate in the file", show_default=False)
    ] = None,
    port: Annotated[int, typer.Option(metavar="PORT", help="port on 127.0.0.1; 0 picks a free one")] = 0,
) -> None:
    """Serve until interrupted. Prints the [endpoints] table to use; credentials go to a 0600 file,
    removed again when the lab stops."""
    from importlib import resources

    from ftbridge.errors import ConfigError
    from ftbridge.estate import load_estates
    from ftbridge.labs import load_lab

    cls = load_lab(name)
    if estate is None:
        estate = Path(str(resources.files("ftbridge") / "demo" / "estate.toml"))
    estates = load_estates(estate)
    pick = estate_name or next((k for k, e in estates.items() if e.flavor == getattr(cls, "flavor", name)), None)
    if pick is None or pick not in estates:
        raise ConfigError(f"{estate}: give --name, one of: {', '.join(estates)}")
    lab = cls(estates[pick], port=port)
    env_path: str | None = None
    stop = threading.Event()
    # before anything exists to clean up: SIGTERM, Ctrl-C (SIGINT) or a closed terminal (SIGHUP)
    # at any moment ends in the `finally` below; none of them can interrupt the cleanup itself
    set_on_signals((signal.SIGTERM, signal.SIGINT, signal.SIGHUP), stop)
    lab.start()
    try:
        fd, env_path = tempfile.mkstemp(prefix=f"ftbridge-lab-{name}-", suffix=".env")
        with os.fdopen(fd, "w") as f:
            for k, v in lab.secrets().items():
                f.write(f"export {k}={v}\n")
        typer.echo(f"[endpoints.lab-{name}]")
        for k, v in lab.endpoint_config().items():
            typer.echo(f"{k} = {_toml(v)}")
        say(f"lab {name} serving estate {pick}; credentials: source {env_path}; Ctrl-C stops it")
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    finally:
        try:
            if env_path is not None:  # the credentials go first: they die even if stopping fails
                Path(env_path).unlink(missing_ok=True)
        finally:
            lab.stop()
        if env_path is not None:
            say(f"lab {name} stopped; {env_path} removed")


def _toml(v: object) -> str:
    import json

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"
    return json.dumps(v)
