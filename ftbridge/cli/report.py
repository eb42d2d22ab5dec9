"""``ftbridge report``: the DR-readiness report, as one self-contained HTML page or as JSON.

``--out FILE.html`` writes the page (no network at view time; it prints well); ``-o json``
prints the data the page is made from. The estate comes from the endpoints, or from a saved
inventory with ``--from`` (labels from the config either way); tests and runs come from the
journal in the state directory. Exit 0 when the report was made, whatever it says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ftbridge.cli.checks import output_file
from ftbridge.cli.common import EndpointOpt, Output, OutputOpt, emit_json, run, say
from ftbridge.cli.inventory import FromOpt, load_inventory
from ftbridge.cli.render import plural


def register(app: typer.Typer) -> None:
    @app.command()
    def report(
        ctx: typer.Context,
        out: Annotated[
            Path | None,
            typer.Option(
                "--out",
                metavar="FILE",
                help="write the HTML page here (FILE.html)",
                show_default=False,
                callback=output_file,
            ),
        ] = None,
        endpoint: EndpointOpt = None,
        source: FromOpt = None,
        output: OutputOpt = Output.table,
    ) -> None:
        """DR readiness as one HTML page: placement across failure domains, protection per policy,
        RPO compliance, RTO readiness from the last test failovers, findings and fixes, last runs."""
        import os

        from ftbridge.apply.history import History
        from ftbridge.cli.render import busy
        from ftbridge.errors import ConfigError
        from ftbridge.report import Source, render_html, report_data

        if out is None and output is not Output.json:
            raise typer.BadParameter("give --out FILE.html for the page, or -o json for the data", param_hint="--out")
        inv = load_inventory(ctx, source, endpoint)
        cfg = run(ctx).config()
        where = Source("file", str(source)) if source else Source("live", ", ".join(e.name for e in inv.endpoints))
        with busy("auditing and drawing the estate"):
            data = report_data(inv, cfg, where, history=History(cfg.state_dir))
            page = render_html(data) if out is not None else ""
        if out is not None:
            tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
            try:
                tmp.write_text(page, encoding="utf-8")
                os.replace(tmp, out)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise ConfigError(f"--out {out}: cannot write: {exc.strerror}") from exc
            vms = data["vms"]
            bad = sum(s["separated"] is False for v in vms for s in v["secondaries"])
            say(
                f"report written to {out} ({len(page) / 1024:,.0f} KiB): {plural(len(vms), 'VM')}, "
                f"{sum(v['status'] == 'protected' for v in vms):,} protected, "
                f"{sum(v['status'] == 'unprotected' for v in vms):,} unprotected, {bad:,} copies not separated"
            )
        if output is Output.json:
            emit_json(data)
