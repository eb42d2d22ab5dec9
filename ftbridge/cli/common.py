"""What every command shares: option aliases, the run context, output helpers.

Data goes to stdout (JSON, or a rich table); messages and progress go to stderr.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ftbridge.cli.render import Col, gib, table as render_table

if TYPE_CHECKING:
    from rich.console import Console

    from ftbridge.config import Config


class Output(str, enum.Enum):
    table = "table"
    json = "json"


OutputOpt = Annotated[
    Output, typer.Option("--output", "-o", metavar="table|json", help="table for people, json for programs")
]
AllOpt = Annotated[
    bool,
    typer.Option(
        "--all",
        help="on a terminal, print every row even when the table is longer than the screen "
        "(piped output always has every row)",
    ),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="change the estate without asking")]
EndpointOpt = Annotated[
    list[str] | None,
    typer.Option("--endpoint", "-e", metavar="ENDPOINT", help="only this endpoint (repeatable)", show_default=False),
]


@dataclass
class Run:
    """Per-invocation state, kept in ``ctx.obj``."""

    config_path: str | None = None
    debug: bool = False
    _config: Config | None = field(default=None, repr=False)

    def config(self) -> Config:
        if self._config is None:
            from ftbridge.config import find_config, load_config
            from ftbridge.secrets import tighten_dir

            self._config = load_config(find_config(self.config_path))
            from ftbridge import statefiles

            statefiles.configure(busy_timeout=self._config.state.busy_timeout, notice=lambda m: say(m, "yellow"))
            tighten_dir(self._config.state_dir)  # new files are 0600 and folders 0700: see main()
        return self._config


def run(ctx: typer.Context) -> Run:
    obj = ctx.find_root().obj
    if not isinstance(obj, Run):
        obj = Run()
        ctx.find_root().obj = obj
    return obj


def again(ctx: typer.Context, *args: str) -> str:
    """The command line that repeats this invocation's config choice with ``args`` (for hints)."""
    import shlex

    path = run(ctx).config_path
    return shlex.join(["ftbridge", *(["-c", path] if path else []), *args])


_out: Console | None = None
_err: Console | None = None


def out() -> Console:
    global _out
    if _out is None:
        from rich.console import Console

        # tables lay themselves out (ftbridge.cli.render): the terminal's width, else $COLUMNS
        _out = Console(soft_wrap=False)
    return _out


def err() -> Console:
    global _err
    if _err is None:
        from rich.console import Console

        _err = Console(stderr=True, highlight=False, soft_wrap=True)  # one message, one line
    return _err


def emit_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (secrets masked there, see main()), a piece at a time (a
    top-level list may be an iterator, converted as it is written: see
    :mod:`ftbridge.cli.jsonout`); never one string the size of the document."""
    from ftbridge.cli.jsonout import chunks

    pending: list[str] = []
    size = 0
    for piece in chunks(data):
        pending.append(piece)
        size += len(piece)
        if size >= _JSON_BATCH:
            sys.stdout.write("".join(pending))
            pending, size = [], 0
    sys.stdout.write("".join(pending) + "\n")
    sys.stdout.flush()


_JSON_BATCH = 1 << 16


def say(message: str, style: str | None = None) -> None:
    """A message for the person at the terminal: stderr (secrets masked there, see main())."""
    from rich.markup import escape

    text = escape(message)
    err().print(f"[{style}]{text}[/{style}]" if style else text)


def table(title: str | None, columns: Sequence[str | Col], rows: Sequence[Sequence[Any]]) -> None:
    """A table on stdout that fits (see :mod:`ftbridge.cli.render`)."""
    render_table(title, columns, rows)


__all__ = [
    "AllOpt",
    "Col",
    "EndpointOpt",
    "Output",
    "OutputOpt",
    "Run",
    "YesOpt",
    "again",
    "emit_json",
    "err",
    "gib",
    "out",
    "run",
    "say",
    "table",
]
