"""Rendering benchmark: CPU seconds to print audit, plan and inventory at 10k and 100k VMs.

Uses the estate generator of ``plan_scale.py`` (imported, not copied), audits and plans once,
then times only the printing, each way a person or a script gets it:

* ``terminal, every row``: the boxed table on a terminal (``FTBRIDGE_TERMINAL=1``,
  ``COLUMNS=200``): what a terminal got before tables summarised, and what ``--all`` gives now;
* ``terminal, summary``: what a terminal gets now (``LINES=50``);
* ``piped``: plain rows, what a script reads (unchanged);
* ``json before``: the whole document as one ``json.dumps(indent=2)`` string, masked and
  written (what ``-o json`` did before), from ``to_dict()``;
* ``json stdlib`` / ``json``: the document written a piece at a time (``-o json`` now),
  with the standard library's encoder and with orjson (when installed).

The plan's rows are shown from the parsed plan document (``parse_plan``), as ``ftbridge plan``
does; the parse is timed on its own line. Output goes to ``/dev/null``. CPU seconds
(``time.process_time``), so other load on the machine does not count.

With ``--memory``, also the peak Python memory of writing the JSON before and now.

Run:  python contrib/bench/render_scale.py [--sizes 10000,100000] [--memory]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import plan_scale  # noqa: E402  (the generator lives beside this script)

from ftbridge.audit import audit  # noqa: E402
from ftbridge.cli import common, jsonout  # noqa: E402
from ftbridge.cli.audit import show_report  # noqa: E402
from ftbridge.cli.inventory import show_inventory  # noqa: E402
from ftbridge.cli.plan import show_plan  # noqa: E402
from ftbridge.planning import parse_plan, plan, plan_document  # noqa: E402
from ftbridge.secrets import redact  # noqa: E402

SHAPES = {1000: (200, 20), 10000: (1000, 35), 100000: (2000, 50)}


@contextlib.contextmanager
def sink(env: dict[str, str]) -> Iterator[None]:
    """stdout and stderr to /dev/null with ``env`` set (and the cached console rebuilt for it)."""
    saved_env = {k: os.environ.get(k) for k in ("FTBRIDGE_TERMINAL", "COLUMNS", "LINES")}
    for k in saved_env:
        os.environ.pop(k, None)
    os.environ.update(env)
    common._out = None
    real = sys.stdout, sys.stderr
    with open(os.devnull, "w", encoding="utf-8") as devnull:
        sys.stdout = sys.stderr = devnull
        try:
            yield
        finally:
            sys.stdout, sys.stderr = real
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            common._out = None


TERMINAL = {"FTBRIDGE_TERMINAL": "1", "COLUMNS": "200", "LINES": "50"}
PIPED = {"FTBRIDGE_TERMINAL": "0"}


def cpu(fn: Callable[[], Any], env: dict[str, str]) -> float:
    with sink(env):
        t0 = time.process_time()
        fn()
        return time.process_time() - t0


def json_before(data: Any) -> None:
    """``-o json`` before: one string the size of the document."""
    sys.stdout.write(redact(json.dumps(data, indent=2, sort_keys=False, default=str)) + "\n")
    sys.stdout.flush()


def json_stdlib(data: Any) -> None:
    fast = jsonout._orjson_dumps
    jsonout._orjson_dumps = None
    try:
        common.emit_json(data)
    finally:
        jsonout._orjson_dumps = fast


def convert_write(write: Callable[[Any], None], make: Callable[[], Any]) -> None:
    """Convert (timed too: ``-o json`` converts the inventory, then writes it) and write."""
    write(make())


def peak_mib(fn: Callable[[], Any]) -> float:
    """The Python heap's peak above where it started while ``fn`` runs (tracemalloc)."""
    import gc
    import tracemalloc

    gc.collect()
    with sink(PIPED):
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return (peak - base) / 2**20


def run(n_vms: int, memory: bool = False) -> list[tuple[str, str, float]]:
    n_ds, n_dom = SHAPES.get(n_vms, (max(20, n_vms // 50), 20))
    inv = plan_scale.make_estate(n_vms, n_ds, n_dom)
    cfg = plan_scale.config()
    report = audit(inv, cfg)
    doc = plan_document(inv, cfg, plan(inv, cfg, report.findings), created_at=0.0, generator="bench")
    t0 = time.process_time()
    parsed = parse_plan(doc, source="bench")
    t_parse = time.process_time() - t0
    sizes = {
        "audit": f"{len(report.findings):,} findings",
        "plan": f"{len(doc['actions']):,} actions",
        "inventory": f"{len(inv.vms):,} VMs",
    }
    out: list[tuple[str, str, float]] = [("plan", "parse plan document (both)", t_parse)]
    views: dict[str, tuple[Callable[[bool], None], Callable[[], Any], Callable[[], Any]]] = {
        "audit": (lambda a: show_report(report, a), report.to_dict, report.to_dict),
        "plan": (lambda a: show_plan(parsed, a), lambda: doc, lambda: doc),
        "inventory": (lambda a: show_inventory(inv, a), inv.to_dict, inv.lazy_dict),
    }
    for what, (show, before_doc, lazy_doc) in views.items():
        out.append((what, f"terminal, every row ({sizes[what]})", cpu(partial(show, True), TERMINAL)))
        out.append((what, "terminal, summary", cpu(partial(show, False), TERMINAL)))
        out.append((what, "piped", cpu(partial(show, False), PIPED)))
        out.append((what, "json before (one string)", cpu(partial(convert_write, json_before, before_doc), PIPED)))
        out.append((what, "json streamed, stdlib", cpu(partial(convert_write, json_stdlib, lazy_doc), PIPED)))
        if jsonout._orjson_dumps is not None:
            out.append((what, "json streamed, orjson", cpu(partial(convert_write, common.emit_json, lazy_doc), PIPED)))
        if memory:
            before = peak_mib(partial(convert_write, json_before, before_doc))
            after = peak_mib(partial(convert_write, common.emit_json, lazy_doc))
            out.append((what, "json before: peak MiB (not s)", before))
            out.append((what, "json streamed: peak MiB (not s)", after))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--memory", action="store_true", help="also the JSON output's peak Python memory (tracemalloc)")
    args = ap.parse_args(argv)
    print(f"{'VMs':>7}  {'command':<9}  {'output':<40} {'CPU s':>7}")
    for n in (int(x) for x in args.sizes.split(",") if x):
        for what, how, s in run(n, args.memory):
            print(f"{n:>7}  {what:<9}  {how:<40} {s:>7.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
