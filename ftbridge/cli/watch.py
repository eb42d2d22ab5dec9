"""``ftbridge watch``: the continuous-protection controller (foreground), and ``--status``.

Runs until SIGTERM or Ctrl-C (then it resigns its leadership at once, so another controller
takes over without waiting for the lease). Events are JSON lines on stdout with ``-o json``,
one line each on stderr otherwise, and appended to ``--log-file`` as JSON lines when given.
Exit codes: 0 stopped cleanly (``--status``: a leader is known), 1 ``--status``: nobody leads,
3 bad config (including ``auto_failover`` the coordination cannot back), 5 etcd unreachable.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from ftbridge.cli.common import Output, OutputOpt, emit_json, run, say, table
from ftbridge.cli.progress import VmIds
from ftbridge.cli.render import Col, seconds
from ftbridge.signalsafe import set_on_signals
from ftbridge.timefmt import human, rfc3339


class _Events:
    """Where events go: JSON lines (stdout or a file), or a line for people on stderr."""

    def __init__(self, output: Output, log_file: Path | None) -> None:
        self.json = output is Output.json
        self.file = open(log_file, "a", encoding="utf-8") if log_file is not None else None  # noqa: SIM115
        self.lock = threading.Lock()
        self.ids = VmIds()  # the JSON vocabulary: vm (id) + vm_name, "at" in RFC 3339

    def __call__(self, event: dict[str, Any]) -> None:
        from ftbridge.secrets import redact

        line = redact(json.dumps(self.ids.line(event), default=str))
        with self.lock:
            if self.file is not None:
                self.file.write(line + "\n")
                self.file.flush()
            if self.json:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            elif event["event"] not in ("observed", "cycle_finished", "op_started", "action_started"):
                detail = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("event", "controller"))
                say(f"{event['event']}: {detail}")

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def register(app: typer.Typer) -> None:
    @app.command()
    def watch(
        ctx: typer.Context,
        metrics_address: Annotated[
            str | None, typer.Option("--metrics-address", help="serve /metrics on HOST:PORT (port 0: any free one)")
        ] = None,
        status: Annotated[
            bool, typer.Option("--status", help="who leads, since when, and the epoch; then exit")
        ] = False,
        cycles: Annotated[int | None, typer.Option("--cycles", min=1, help="stop after this many cycles")] = None,
        name: Annotated[
            str | None, typer.Option("--name", help="this controller's name (default: config, host)")
        ] = None,
        log_file: Annotated[
            Path | None, typer.Option("--log-file", help="also append events here (JSON lines)")
        ] = None,
        output: OutputOpt = Output.table,
    ) -> None:
        """Keep protection true, continuously: refresh copies within their RPO, re-create broken
        secondaries (auto_reprotect), detect failed domains and plan (auto_failover: run) their
        failover. Only the leader acts ([coordination]); Prometheus metrics on --metrics-address."""
        from ftbridge.coordination import coordinator_for
        from ftbridge.errors import ConfigError

        cfg = run(ctx).config()
        events = _Events(output, log_file)
        coord = coordinator_for(cfg, name=name, notify=lambda e, d: events({"event": e, **d}))
        try:
            if status:
                _status(coord, output)
                return
            from ftbridge.watch.controller import Controller, refusal
            from ftbridge.watch.metrics import Metrics

            why = refusal(cfg, coord)
            if why is not None:
                raise ConfigError(f"{cfg.source}: {why}")
            metrics = Metrics()
            if metrics_address is not None:
                host, port = metrics.serve(metrics_address)
                events({"event": "metrics_listening", "controller": coord.name, "address": f"{host}:{port}"})
            controller = Controller(cfg, coord, emit=events, metrics=metrics)

            set_on_signals((signal.SIGTERM, signal.SIGINT), controller.stop)
            events({"event": "watch_started", "controller": coord.name, "backend": coord.backend, "pid": _pid()})
            try:
                controller.run(cycles)
            finally:
                metrics.close()
                events({"event": "watch_stopped", "controller": coord.name})
        finally:
            coord.close()
            events.close()


def _pid() -> int:
    import os

    return os.getpid()


def _status(coord: Any, output: Output) -> None:
    import time

    lead = coord.leader()
    if output is Output.json:
        leader = {**lead.to_dict(), "since": rfc3339(lead.since)} if lead else None
        emit_json({"backend": coord.backend, "leader": leader})
    elif lead is None:
        say(f"nobody leads ({coord.backend} coordination)")
    else:
        table(
            f"leader ({coord.backend} coordination)",
            ["controller", "since (UTC)", Col("for", "num"), Col("epoch", "num")],
            [[lead.holder, human(lead.since), seconds(time.time() - lead.since), lead.epoch]],
        )
    if lead is None:
        raise typer.Exit(1)
