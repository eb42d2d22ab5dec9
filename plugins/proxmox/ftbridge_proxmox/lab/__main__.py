"""``python -m ftbridge_proxmox.lab --estate FILE --name ESTATE``: run the lab until interrupted.

Prints one JSON line on stdout once it listens: ``{"endpoint": {...}, "url": ...}``, the
``[endpoints.NAME]`` table that reaches it. The API token is written to ``--token-file``
(mode 0600) and referenced from that table; no secret is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from ftbridge.errors import FtbridgeError
from ftbridge.estate import load_estates
from ftbridge.signalsafe import set_on_signals
from ftbridge_proxmox.lab.peer import ProxmoxLab


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ftbridge_proxmox.lab", description=__doc__.splitlines()[0])
    ap.add_argument("--estate", required=True, type=Path, help="estate file (TOML or JSON)")
    ap.add_argument("--name", help="estate in the file (default: the only one)")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    ap.add_argument("--version", default="9.1.3", help="PVE version to impersonate (8.x or 9.x)")
    ap.add_argument("--task-seconds", type=float, default=0.5, help="how long each task runs")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds added to every API call")
    ap.add_argument("--fence-delay", type=float, default=5.0, help="seconds before HA recovers a dead node's guests")
    ap.add_argument("--token-file", type=Path, help="where the API token is kept (created if missing)")
    ap.add_argument("--record", action="store_true", help="keep every request in memory (for tests)")
    args = ap.parse_args(argv)
    try:
        estates = load_estates(args.estate)
    except FtbridgeError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return 3
    name = args.name or (next(iter(estates)) if len(estates) == 1 else None)
    if name not in estates:
        print(f"error: {args.estate}: give --name, one of: {', '.join(estates)}", file=sys.stderr)
        return 2
    token = None
    token_file = args.token_file
    if token_file is not None and token_file.exists():
        token = token_file.read_text().strip() or None
    lab = ProxmoxLab(
        estates[name],
        port=args.port,
        version=args.version,
        task_seconds=args.task_seconds,
        latency=args.latency,
        fence_delay=args.fence_delay,
        token=token,
        record=args.record,
    )
    if token_file is not None and token is None:
        token_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(lab.token + "\n")
    lab.start()
    endpoint = lab.endpoint_config()
    if token_file is not None:
        endpoint["token"] = {"file": str(token_file.resolve())}
    print(json.dumps({"endpoint": endpoint, "url": lab.url, "estate": name}), flush=True)
    if token_file is None:
        print(
            f"lab: the API token is in no file; pass --token-file to use it from a config "
            f"(environment variable {lab.TOKEN_ENV} for in-process use)",
            file=sys.stderr,
        )
    stop = threading.Event()
    set_on_signals((signal.SIGINT, signal.SIGTERM), stop)
    stop.wait()
    lab.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
