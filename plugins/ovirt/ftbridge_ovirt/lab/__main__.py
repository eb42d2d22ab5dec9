"""``python -m ftbridge_ovirt.lab --estate FILE --name ESTATE``: serve an estate until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from ftbridge.errors import FtbridgeError
from ftbridge.estate import load_estates
from ftbridge.signalsafe import set_on_signals
from ftbridge_ovirt.lab import OvirtLab


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ftbridge_ovirt.lab", description=__doc__)
    p.add_argument("--estate", required=True, help="estate file (TOML or JSON)")
    p.add_argument("--name", help="estate in the file (default: the only one)")
    p.add_argument("--port", type=int, default=0, help="HTTPS port (0: a free one)")
    p.add_argument("--http-port", type=int, default=0, help="plain HTTP port (0: a free one)")
    p.add_argument("--op-seconds", type=float, default=1.0, help="how long each job takes")
    args = p.parse_args(argv)
    try:
        estates = load_estates(args.estate)
    except FtbridgeError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return 3
    name = args.name or (next(iter(estates)) if len(estates) == 1 else None)
    if name not in estates:
        print(f"error: give --name, one of: {', '.join(estates)}", file=sys.stderr)
        return 2
    stop = threading.Event()
    set_on_signals((signal.SIGINT, signal.SIGTERM), stop)
    lab = OvirtLab(estates[name], port=args.port, http_port=args.http_port, op_seconds=args.op_seconds)
    lab.start()
    # the password goes to a private file, never to the terminal
    assert lab.ca_file is not None
    pw_file = lab.ca_file.with_name("password")
    pw_file.touch(mode=0o600)
    pw_file.write_text(lab.password + "\n", encoding="utf-8")
    print(f"oVirt lab for estate {name!r}:", file=sys.stderr)
    print(f"  https: {lab.url('https')}  (CA: {lab.ca_file})", file=sys.stderr)
    print(f"  http:  {lab.url('http')}", file=sys.stderr)
    print(f"  user {lab.user}, password in {pw_file}", file=sys.stderr)
    print("[endpoints.ovirt]")
    for k, v in lab.endpoint_config().items():
        if k == "password":
            print(f"password = {{ file = {json.dumps(str(pw_file))} }}")
        else:
            print(f"{k} = {json.dumps(v)}")
    sys.stdout.flush()
    try:
        stop.wait()
    finally:
        lab.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
