"""Sim benchmark: what one sim operation costs (CPU and wall ms) at 1k and 10k VMs.

The sim is the platform the demo, the tests and a ``watch`` controller run on, so the cost of
its calls is the product's speed there. For each estate size this seeds a generic estate (two
sites; every VM runs in site a with one copy in site b) and times, per call:

* ``protect`` + ``poll`` to completion (two writes), ``move_disk`` + ``poll``,
  ``test_failover`` + ``cleanup_test``, ``promote`` + ``poll`` (after site a fails);
* a ``poll`` of a running operation (a read), ``health`` and ``inventory`` (reads).

With ``--cycles N`` it runs N cycles on a 20-VM estate (a test failover of every VM with a copy
and its cleanup, a protect and an unprotect, a health check: the platform side of test failover +
plan + apply + health) and prints the state's size as it goes: retention keeps it bounded.

With ``--failover`` it also runs a failover of ``--failover-vms`` VMs (site a fails) through
the service ``ftbridge failover run`` uses, and prints its wall time against the ideal: the sum
of the operations' times divided by the concurrency.

Run:  python contrib/bench/sim_ops.py [--sizes 1000,10000] [--calls 100] [--cycles 1000] [--failover]
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from failover_scale import (  # noqa: E402 (the estate is that benchmark's)
    DATASTORES,
    HOSTS,
    estate as failover_estate,  # noqa: E402
)

from ftbridge.drivers.base import Operation, OpState, SecondarySpec
from ftbridge.sim.driver import SimConfig, SimDriver

_SPENT_LOCK = threading.Lock()


def estate(n: int) -> dict[str, Any]:
    """The failover benchmark's estate (one recovery group), with a third site's datastores."""
    return failover_estate(n, 1, sites="abc", memory_gib=4)


def finish(drv: SimDriver, op: Operation) -> None:
    st = drv.poll(op)
    assert st.state is OpState.SUCCEEDED, (op, st)


class Timer:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float]] = []

    def run(self, label: str, calls: int, fn: Callable[[int], object]) -> None:
        w, c = time.perf_counter(), time.process_time()
        for i in range(calls):
            fn(i)
        wall, cpu = time.perf_counter() - w, time.process_time() - c
        self.rows.append((label, wall / calls * 1000, cpu / calls * 1000))


def bench_size(n: int, calls: int) -> list[tuple[str, float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        (where / "estate.json").write_text(json.dumps(estate(n)))
        cfg = SimConfig(driver="sim", estate=where / "estate.json")
        t = time.perf_counter()
        drv = SimDriver(cfg, endpoint="sim")
        drv.open()
        seed = time.perf_counter() - t
        t = time.perf_counter()
        SimDriver(cfg, endpoint="sim").open()  # a second process's first look: loads what the first wrote
        attach = time.perf_counter() - t
        tm = Timer()
        tm.rows.append(("seed (first open)", seed * 1000, float("nan")))
        tm.rows.append(("open of a seeded estate", attach * 1000, float("nan")))
        calls = min(calls, n // 4)
        held: list[Operation] = []

        def protect(i: int) -> None:
            op = drv.protect(f"v{i}", SecondarySpec("sim-copy", {"d0": f"c-ds{i % DATASTORES}"}))
            held.append(op)

        tm.run("protect (start)", calls, protect)
        tm.run("poll (completes it)", calls, lambda i: finish(drv, held[i]))
        ops: list[Operation] = []
        tm.run("move_disk (start)", calls, lambda i: ops.append(drv.move_disk(f"v{calls + i}", "d0", "c-ds0")))
        drv.ex_inject(hold=True)
        tm.run("poll (running: a read)", calls, lambda i: drv.poll(ops[i]))
        drv.ex_inject(hold=False)
        tm.run("poll (completes a move)", calls, lambda i: finish(drv, ops[i]))
        tests: list[tuple[str, str]] = []

        def test(i: int) -> None:
            vm = f"v{2 * calls + i}"
            sec = drv.replication_status(vm)[0].id
            op = drv.test_failover(vm, sec)
            finish(drv, op)
            tests.append((vm, drv.poll(op).result["test_id"]))

        tm.run("replication_status + test_failover + poll", calls, test)
        tm.run("cleanup_test + poll", calls, lambda i: finish(drv, drv.cleanup_test(*tests[i])))
        drv.ex_inject(
            hosts_down=[f"a{i}" for i in range(HOSTS)], datastores_down=[f"a-ds{i}" for i in range(DATASTORES)]
        )

        def promote(i: int) -> None:
            vm = f"v{3 * calls + i}"
            finish(drv, drv.promote(vm, drv.replication_status(vm)[0].id))

        tm.run("replication_status + promote + poll", calls, promote)
        tm.run("health", min(calls, 20), lambda i: drv.health())
        tm.run("inventory", min(calls, 5), lambda i: drv.inventory())
        size = sum(p.stat().st_size for p in where.iterdir() if ".simstate" in p.name)
        tm.rows.append((f"state on disk after these: {size / 1024:.0f} KiB", float("nan"), float("nan")))
        return tm.rows


def state_size(path: Path) -> tuple[int, int]:
    """(bytes of the database once its WAL is checkpointed, operations it holds)."""
    with sqlite3.connect(path) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        ops = c.execute("SELECT count(*) FROM obj WHERE kind = 'ops'").fetchone()[0]
    return path.stat().st_size, int(ops)


def cycles(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        (where / "estate.json").write_text(json.dumps(estate(20)))
        drv = SimDriver(SimConfig(driver="sim", estate=where / "estate.json"), endpoint="sim")
        drv.open()
        path = SimDriver.state_path(drv.cfg, "sim")
        copied = [v.id for v in drv.inventory().vms if v.secondaries]
        print(f"\n{n} cycles on {len(copied)} VMs with a copy: state size (checkpointed) and operations kept")
        w, c = time.perf_counter(), time.process_time()
        for i in range(1, n + 1):
            for vm in copied:
                sec = drv.replication_status(vm)[0].id
                op = drv.test_failover(vm, sec)
                finish(drv, op)
                finish(drv, drv.cleanup_test(vm, drv.poll(op).result["test_id"]))
            vm = copied[i % len(copied)]
            op = drv.protect(vm, SecondarySpec("sim-copy", {"d0": f"c-ds{i % DATASTORES}"}))
            finish(drv, op)
            finish(drv, drv.unprotect(vm, op.id and drv.poll(op).result["secondary_id"]))
            drv.health()
            if i in (1, 10, 100) or i == n or i % 1000 == 0:
                size, ops = state_size(path)
                print(f"  after {i:>6} cycles: {size / 1024:8.0f} KiB, {ops} operations")
        wall, cpu = time.perf_counter() - w, time.process_time() - c
        per = f"{wall / n * 1000:.1f} ms wall, {cpu / n * 1000:.1f} ms CPU"
        print(f"  {per} per cycle ({2 * len(copied) + 2} operations)")


def failover(n: int, op_seconds: float, concurrency: int) -> None:
    from ftbridge.config import load_config
    from ftbridge.domains import Failed
    from ftbridge.failover.plan import affected_by, plan_failover
    from ftbridge.failover.run import run_failover
    from ftbridge.services.inventory import collect
    from ftbridge.services.session import Session

    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        (where / "estate.json").write_text(json.dumps(estate(n)))
        (where / "ftbridge.toml").write_text(
            f'[endpoints.sim]\ndriver = "sim"\nestate = "estate.json"\nop_seconds = {op_seconds}\n\n'
            f'[state]\ndir = "state"\n\n[apply]\nconcurrency_per_endpoint = {concurrency}\n'
            f"concurrency_per_datastore = {concurrency}\n"
        )
        cfg = load_config(where / "ftbridge.toml")
        SimDriver(cfg.endpoints["sim"], endpoint="sim").ex_inject(
            hosts_down=[f"a{i}" for i in range(HOSTS)], datastores_down=[f"a-ds{i}" for i in range(DATASTORES)]
        )
        with Session(cfg) as s:
            inv = collect(s)
        failed = Failed.from_inventory(inv)
        plan = plan_failover(inv, cfg, affected_by(inv, failed), failed)
        spent = [0.0, 0]  # wall seconds inside sim driver calls (all threads), calls
        for name in ("poll", "promote", "replication_status", "pending_operations", "health", "inventory"):
            _time_calls(name, spent)
        w, c = time.perf_counter(), time.process_time()
        result = run_failover(cfg, plan, yes=True)
        wall, cpu = time.perf_counter() - w, time.process_time() - c
        promoted = sum(v.state == "promoted" for v in result.vms)
        assert promoted == n, f"only {promoted} of {n} promoted"
    ideal = math.ceil(n / concurrency) * op_seconds
    print(f"\nfailover of {n} VMs, op_seconds={op_seconds}, concurrency={concurrency}")
    print(f"  run wall time {wall:.2f} s (CPU {cpu:.2f} s); ideal {ideal:.2f} s; ratio {wall / ideal:.2f}x")
    print(
        f"  inside sim driver calls: {spent[0]:.2f} s summed over threads, {int(spent[1])} calls, "
        f"{spent[0] / max(spent[1], 1) * 1000:.2f} ms per call"
    )


def _time_calls(name: str, spent: list[float]) -> None:
    """Add the wall time of every ``SimDriver.name`` call (from any thread) to ``spent``."""
    fn = getattr(SimDriver, name)

    def timed(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            with _SPENT_LOCK:
                spent[0] += time.perf_counter() - t
                spent[1] += 1

    setattr(SimDriver, name, timed)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000", help="estate sizes (VMs), comma-separated")
    ap.add_argument("--calls", type=int, default=100, help="calls timed per operation")
    ap.add_argument("--cycles", type=int, default=0, help="also run this many cycles and print the state's size")
    ap.add_argument("--failover", action="store_true", help="also time a failover run")
    ap.add_argument("--failover-vms", type=int, default=1000)
    ap.add_argument("--op-seconds", type=float, default=0.05)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    for n in (int(x) for x in args.sizes.split(",") if x):
        print(f"\n{n} VMs: ms per call (wall / CPU)")
        for label, wall, cpu in bench_size(n, args.calls):
            if math.isnan(wall):
                print(f"  {label}")
            else:
                print(f"  {label:<45} {wall:9.2f} {'' if math.isnan(cpu) else f'{cpu:9.2f}'}")
    if args.cycles:
        cycles(args.cycles)
    if args.failover:
        failover(args.failover_vms, args.op_seconds, args.concurrency)


if __name__ == "__main__":
    main()
