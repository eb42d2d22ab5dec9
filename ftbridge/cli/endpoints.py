"""``ftbridge endpoints check``: can every configured endpoint be reached and logged into?"""

from __future__ import annotations

from typing import Any

import typer

from ftbridge.cli.common import EndpointOpt, Output, OutputOpt, emit_json, run, say, table
from ftbridge.cli.render import Col, busy, plural, text_col

app = typer.Typer(help="Configured endpoints.", no_args_is_help=True)


@app.command()
def check(ctx: typer.Context, endpoint: EndpointOpt = None, output: OutputOpt = Output.table) -> None:
    """Connect, log in and probe each endpoint. Exit code: that of the first failure."""
    from ftbridge.errors import FtbridgeError
    from ftbridge.services.session import Session

    cfg = run(ctx).config()
    rows: list[dict[str, Any]] = []
    first_error = None
    with busy("probing the endpoints"), Session(cfg) as session:
        for name in session.endpoints(endpoint):
            try:
                info = session.driver(name).probe()
                rows.append(
                    {
                        "endpoint": name,
                        "driver": cfg.endpoints[name].driver,
                        "ok": True,
                        "product": info.product,
                        "version": info.version,
                        "capabilities": sorted(c.value for c in info.capabilities),
                        "error": None,
                    }
                )
            except FtbridgeError as exc:
                first_error = first_error or exc
                rows.append(
                    {
                        "endpoint": name,
                        "driver": cfg.endpoints[name].driver,
                        "ok": False,
                        "product": None,
                        "version": None,
                        "capabilities": [],
                        "error": exc.one_line(),
                    }
                )
    if output is Output.json:
        emit_json(rows)
    else:
        table(
            plural(len(rows), "endpoint"),
            [
                "endpoint",
                "driver",
                Col("status", styles={"ok": "green", "FAILED": "red"}),
                Col("version", drop=1),
                text_col("detail"),
            ],
            [
                [
                    r["endpoint"],
                    r["driver"],
                    "ok" if r["ok"] else "FAILED",
                    r["version"],
                    r["error"] or ", ".join(r["capabilities"]),
                ]
                for r in rows
            ],
        )
    if first_error is not None:
        say(f"error: {first_error.one_line()}", "red")
        raise typer.Exit(first_error.exit_code)
