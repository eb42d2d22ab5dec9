"""State growth benchmark: how big does the state directory get after N operating cycles?

One cycle is what an operator's week looks like on the demo estate (three sim endpoints,
about 60 VMs): ``failover test`` (start each copy isolated, verify, clean up), ``plan``,
``apply --yes``, ``health``. Each runs through the CLI in this process (the same code the
``ftbridge`` command runs, without an interpreter start per command).

The cycles run twice, each in a fresh state directory: once with retention off
(``[state] retention = 0``) and once with ``--retention`` (default 1s: on a bench a cycle is
seconds, not a day, so a short retention stands for "30d" over months of cycles). Every
``--every`` cycles it prints the size of the journal (``journal.sqlite`` and its -wal/-shm),
of ftbridge's plan documents (``plans/``, ``failover-tests/`` ...), of the sim state
(``demo/*.simstate.json``), the whole state directory, and the journal's row counts.

Run:  python contrib/bench/state_growth.py [--cycles 1000] [--every 100] [--retention 1s]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

DOC_DIRS = ("plans", "failover", "failover-tests", "failback", "reprotect")


def cli(*args: str) -> int:
    """One ftbridge command in this process; its output is dropped, its exit code returned."""
    from ftbridge.cli.main import app

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            return int(app(list(args), prog_name="ftbridge", standalone_mode=False) or 0)
        except SystemExit as exc:
            return int(exc.code or 0)
        except Exception as exc:  # an exit code carried by click's Exit
            code = getattr(exc, "exit_code", None)
            if code is None:
                raise RuntimeError(f"ftbridge {' '.join(args)}: {exc}\n{err.getvalue()}") from exc
            return int(code)


def size(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


def measure(state: Path) -> dict[str, int]:
    journal = sorted(state.glob("journal.sqlite*"))
    docs = [p for d in DOC_DIRS for p in (state / d).glob("*") if (state / d).is_dir()]
    sim = sorted((state / "demo").glob("*.simstate*"))
    everything = [p for p in state.rglob("*") if p.is_file()]
    rows = {"runs": 0, "actions": 0, "events": 0}
    if (state / "journal.sqlite").exists():
        with contextlib.closing(sqlite3.connect(state / "journal.sqlite")) as db:
            for table in rows:
                rows[table] = int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    return {
        "journal": size(journal),
        "docs": size(docs),
        "ndocs": len(docs),
        "sim": size(sim),
        "total": size(everything),
        **rows,
    }


def kib(n: int) -> str:
    return f"{n / 1024:,.0f} KiB"


def run(cycles: int, every: int, retention: str, base: Path) -> None:
    home = base / ("retention-" + retention.replace(" ", ""))
    os.environ["XDG_STATE_HOME"] = str(home)
    state = home / "ftbridge"
    assert cli("demo", "-o", "json") == 0, "ftbridge demo failed"
    cfg = state / "demo" / "ftbridge.toml"
    with cfg.open("a", encoding="utf-8") as f:
        f.write(f"\n[state]\nretention = {retention if retention == '0' else repr(retention)}\n")
    c = ["-c", str(cfg)]
    what = "retention off" if retention in ("0", "0s") else f"retention {retention}"
    print(f"\n{what}: {state}")
    print(
        f"{'cycles':>7} {'journal':>12} {'plan docs':>12} {'(files)':>8} {'sim state':>12} {'state dir':>12}"
        f" {'runs':>7} {'actions':>8} {'events':>9} {'s/cycle':>8}"
    )
    started = time.monotonic()
    codes: dict[str, set[int]] = {}
    for n in range(1, cycles + 1):
        plan = state / "bench-plan.json"
        for name, args in (
            ("failover test", ["failover", "test", "-o", "json"]),
            ("plan", ["plan", "--out", str(plan), "-o", "json"]),
            ("apply", ["apply", str(plan), "--yes", "-o", "json"]),
            ("health", ["health", "-o", "json"]),
        ):
            code = cli(*c, *args)
            codes.setdefault(name, set()).add(code)
            if code not in (0, 1):
                raise SystemExit(f"cycle {n}: ftbridge {name} exited {code}")
        if n % every == 0 or n == cycles:
            m = measure(state)
            per = (time.monotonic() - started) / n
            print(
                f"{n:>7} {kib(m['journal']):>12} {kib(m['docs']):>12} {m['ndocs']:>8} {kib(m['sim']):>12}"
                f" {kib(m['total']):>12} {m['runs']:>7} {m['actions']:>8} {m['events']:>9} {per:>8.1f}",
                flush=True,
            )
    print("exit codes seen: " + ", ".join(f"{k} {sorted(v)}" for k, v in codes.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=1000, help="operating cycles per mode (default 1000)")
    ap.add_argument("--every", type=int, default=100, help="print the sizes every N cycles (default 100)")
    ap.add_argument("--retention", default="1s", help="[state] retention of the second pass (default 1s)")
    ap.add_argument("--only", choices=("off", "on"), help="run one pass only")
    a = ap.parse_args()
    if a.cycles < 1 or a.every < 1:
        ap.error("--cycles and --every must be at least 1")
    with tempfile.TemporaryDirectory(prefix="ftbridge-state-growth-") as tmp:
        if a.only != "on":
            run(a.cycles, a.every, "0", Path(tmp))
        if a.only != "off":
            run(a.cycles, a.every, a.retention, Path(tmp))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
