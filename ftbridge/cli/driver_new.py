"""``ftbridge driver new NAME``: scaffold a driver distribution that passes the kit as it is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ftbridge.cli.common import Output, OutputOpt, emit_json, say

app = typer.Typer(help="Write a new driver: ftbridge driver new NAME.", no_args_is_help=True)


@app.command()
def new(
    name: Annotated[str, typer.Argument(help="the driver's name: its entry point and 'driver = ...' value")],
    out_dir: Annotated[
        Path | None,
        typer.Option("--dir", "-d", help="where to write it (default: ./ftbridge-NAME); must be new or empty"),
    ] = None,
    output: OutputOpt = Output.table,
) -> None:
    """A driver distribution with every name filled in, an in-memory fake platform and a
    conformance test that passes with no edit."""
    from ftbridge.drivers.registry import list_drivers
    from ftbridge.scaffold import Names, check_name, render_driver

    problem = check_name(name, frozenset(e.name for e in list_drivers()))
    if problem:
        raise typer.BadParameter(problem, param_hint="NAME")
    dest = out_dir if out_dir is not None else Path(Names.of(name).dist)
    try:
        files = render_driver(name, dest)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--dir") from None
    except OSError as exc:
        raise typer.BadParameter(f"{dest}: cannot write: {exc.strerror}", param_hint="--dir") from None
    if output is Output.json:
        emit_json({"name": name, "dir": str(dest), "files": [str(f.relative_to(dest)) for f in files]})
        return
    say(f"wrote driver {name!r} in {dest}/ ({len(files)} files); next:")
    say(f"  cd {dest} && pip install -e '.[testing]' && pytest && ftbridge drivers show {name}")
