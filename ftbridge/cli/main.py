"""``ftbridge``: the entry point, global options, and the one place errors become exit codes."""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ftbridge.cli.common import Run, run, say


class _Group(TyperGroup):
    """Maps every :class:`FtbridgeError` to one line on stderr and its exit code."""

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
            say(f"internal error: {type(exc).__name__}: {exc} (run with --debug for a traceback)", "red")
            raise typer.Exit(70) from None


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
            help="config file (else $FTBRIDGE_CONFIG, then ~/.config/ftbridge/ftbridge.toml)",
            show_default=False,
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="log everything and show tracebacks")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")
    ] = False,
) -> None:
    ctx.obj = Run(config_path=config, debug=debug)
    _setup_logging(debug)


class _Redacting(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from ftbridge.secrets import redact

        record.msg = redact(record.getMessage())
        record.args = None
        return True


def _setup_logging(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_Redacting())
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


def _register() -> None:
    from ftbridge.cli import audit, demo, drivers, endpoints, failover, inventory, lab, migrate, sim

    app.add_typer(drivers.app, name="drivers")
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


def main() -> None:
    app(prog_name="ftbridge")


__all__ = ["app", "main", "run"]
