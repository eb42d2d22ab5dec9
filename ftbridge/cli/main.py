"""``ftbridge``: the entry point, global options, and the one place errors become exit codes."""

from __future__ import annotations

import logging
import sys
import typing
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperGroup

from ftbridge.cli.common import Run, run, say


class _Group(TyperGroup):
    """Maps every :class:`FtbridgeError` to one line on stderr and its exit code; lists commands
    in workflow order; gives every parameter a metavar people read (see :func:`_metavars`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # typer builds the sub-apps first: all are here now
        _metavars(self)

    def invoke(self, ctx: Any) -> Any:
        from ftbridge.errors import FtbridgeError

        try:
            return super().invoke(ctx)
        except FtbridgeError as exc:
            if _debug(ctx):
                import traceback

                traceback.print_exc()
            say(f"error: {exc.one_line()}", "red")
            raise typer.Exit(exc.exit_code) from None
        except (typer.Exit, typer.Abort, typer.TyperException, KeyboardInterrupt):
            raise  # usage errors (exit 2), explicit exits, Ctrl-C: click's own handling
        except Exception as exc:  # a bug: one line unless --debug
            if _debug(ctx):
                raise
            from ftbridge.statefiles import is_storage_error, storage_error

            if isinstance(exc, OSError) and is_storage_error(exc):  # the disk's, not a bug: exit 11
                say(f"error: {storage_error(exc.filename or '?', exc, '').one_line()}", "red")
                raise typer.Exit(11) from None
            say(f"internal error: {type(exc).__name__}: {exc} (run with --debug for a traceback)", "red")
            raise typer.Exit(70) from None

    def list_commands(self, ctx: Any) -> list[str]:
        """In the order of the work: look, check, plan, change, fail over, review; then the tools.
        A command not named here (a sub-app added later) comes after the workflow, before the tools."""
        names = super().list_commands(ctx)
        known = [n for n in (*WORKFLOW, *TOOLS) if n in names]
        rest = [n for n in names if n not in known]
        return [n for n in known if n in WORKFLOW] + rest + [n for n in known if n in TOOLS]

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows: dict[str, list[tuple[str, str]]] = {"Commands (in workflow order)": [], "Tools": []}
        names = [(n, c) for n in self.list_commands(ctx) if (c := self.get_command(ctx, n)) and not c.hidden]
        limit = formatter.width - 6 - max((len(n) for n, _ in names), default=0)
        for n, c in names:
            rows["Tools" if n in TOOLS else "Commands (in workflow order)"].append((n, c.get_short_help_str(limit)))
        for title, dl in rows.items():
            if dl:
                with formatter.section(title):
                    formatter.write_dl(dl)


#: the commands in the order an operator meets them; TOOLS are listed apart
WORKFLOW = (
    "inventory",
    "audit",
    "plan",
    "apply",
    "health",
    "failover",
    "failback",
    "reprotect",
    "watch",
    "migrate",
    "runs",
    "report",
)
TOOLS = ("demo", "endpoints", "drivers", "lab", "sim")


def _debug(ctx: Any) -> bool:
    obj = ctx.find_root().obj
    return bool(getattr(obj, "debug", False))


app = typer.Typer(
    cls=_Group,
    help="Keep fault-tolerant VMs' files where they survive failures.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from ftbridge import __version__

        typer.echo(f"ftbridge {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            "-c",
            metavar="FILE",
            help="config file (else $FTBRIDGE_CONFIG, then ~/.config/ftbridge/ftbridge.toml)",
            show_default=False,
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="log everything and show tracebacks")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")
    ] = False,
) -> None:
    from ftbridge.secrets import install

    install()  # already done by main(); here too for callers that invoke ``app`` themselves
    ctx.obj = Run(config_path=config, debug=debug)
    _setup_logging(debug)


def _setup_logging(debug: bool) -> None:
    from ftbridge.secrets import RedactingFilter

    handler = logging.StreamHandler(sys.stderr)  # the redacting stream (see main())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root_logger = logging.getLogger()
    for h in list(root_logger.handlers):
        if getattr(h, "_ftbridge", False):
            root_logger.removeHandler(h)
    handler._ftbridge = True  # type: ignore[attr-defined]
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    # stevedore logs its own "could not load" before we raise a clearer error: once is enough
    logging.getLogger("stevedore").setLevel(logging.DEBUG if debug else logging.ERROR)
    if not debug:
        logging.captureWarnings(True)
        _one_line_contract_warnings()


def _one_line_contract_warnings() -> None:
    """A driver or lab speaking a deprecated contract version: one line on stderr, no source."""
    import warnings

    from ftbridge.drivers.registry import FtbridgeDeprecationWarning

    shown = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, FtbridgeDeprecationWarning):
            say(f"warning: {message}", "yellow")
        else:
            shown(message, category, *args, **kwargs)

    warnings.showwarning = show


def _register() -> None:
    from ftbridge.cli import audit, demo, driver_new, drivers, endpoints, failover, inventory, lab, migrate, sim

    app.add_typer(drivers.app, name="drivers")
    app.add_typer(driver_new.app, name="driver")
    app.add_typer(endpoints.app, name="endpoints")
    app.add_typer(lab.app, name="lab")
    app.add_typer(sim.app, name="sim")
    app.add_typer(migrate.app, name="migrate")
    inventory.register(app)
    audit.register(app)
    demo.register(app)
    failover.register(app)
    from ftbridge.cli import apply, plan, report, runs, watch

    plan.register(app)
    apply.register(app)
    watch.register(app)
    runs.register(app)
    report.register(app)


_register()


def command() -> Any:
    """The click command behind ``app`` (every parameter with a metavar, see :func:`_metavars`)."""
    return typer.main.get_command(app)


def _metavars(cmd: Any) -> None:
    """A metavar on every parameter that lacks one: help shows ``FILE``, ``N`` or ``NAME``, never
    a Python type (sub-apps added later are covered too)."""
    for p in getattr(cmd, "params", []):
        if isinstance(p, TyperArgument):
            p.__class__ = _Argument
        if p.metavar is not None or getattr(p, "is_flag", False) or getattr(p, "count", False):
            continue
        desc = getattr(p, "type_descriptor", None)
        ann = getattr(desc, "annotation", None)
        base = typing.get_args(ann)[0] if desc is not None and desc.is_list and typing.get_args(ann) else ann
        if desc is not None and desc.is_choice:
            p.metavar = "|".join(str(getattr(c, "value", c)) for c in desc.choices or ())
        elif desc is not None and (desc.is_path or desc.is_file):
            p.metavar = "FILE"
        elif base is int:
            p.metavar = "N"
        elif base is float:
            p.metavar = "NUMBER"
        else:
            p.metavar = (p.name or "value").upper()
    for sub in getattr(cmd, "commands", {}).values():
        _metavars(sub)


class _Argument(TyperArgument):
    """An argument shown as ``PLAN`` (``[PLAN]`` when optional) in usage and as ``PLAN`` alone in
    the list of arguments, where typer would write ``{plan}`` and ``PLAN <Path>``."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw + ("..." if self.nargs != 1 else "")
        return name if self.required else f"[{name}]"

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


def main() -> None:
    import os

    from ftbridge.secrets import install

    # every file ftbridge writes (journal and SQLite's -wal/-shm, locks, plans, history,
    # lastseen, sim state, the demo's config copy, temp files of atomic writers) is created 0600
    # and every folder 0700: one umask here instead of a mode in each writer, which would miss
    # the files SQLite and the SDKs create themselves
    os.umask(0o077)
    # the one redaction point: everything written to stdout or stderr from here on (tables,
    # JSON, messages, --debug tracebacks, log lines) passes through ftbridge.secrets.redact
    install()
    app(prog_name="ftbridge")


__all__ = ["app", "command", "main", "run"]
