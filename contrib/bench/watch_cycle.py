"""Benchmark: one ``ftbridge watch`` cycle on a 10,000-VM sim estate, and the journal's cost per
action in etcd (a real three-member cluster on loopback, fenced writes) against SQLite's.

    python contrib/bench/watch_cycle.py [--vms 10000] [--actions 200]

Needs Debian's etcd-server for the second part (skipped, with a note, without it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from ftbridge.apply.journal import Journal, SqliteJournalStore
from ftbridge.audit import audit
from ftbridge.config import load_config
from ftbridge.coordination import coordinator_for
from ftbridge.services.inventory import collect
from ftbridge.services.session import Session
from ftbridge.watch.controller import Controller
from ftbridge.watch.metrics import Metrics

HOSTS, DATASTORES = 32, 16  # per site


def estate(n: int, due: float) -> dict[str, Any]:
    """Two sites; every VM has a pve-standby copy in the other site; ``due`` of them are old."""
    hosts = [{"id": f"{s}{i}", "name": f"{s}-esx{i:02d}", "cluster": s} for s in "ab" for i in range(HOSTS)]
    dss = [
        {"id": f"{s}-ds{i}", "name": f"{s}-ds{i}", "kind": "nfs", "hosts": [f"{s}{j}" for j in range(HOSTS)],
         "capacity_gib": 1_000_000}
        for s in "ab"
        for i in range(DATASTORES)
    ]  # fmt: skip
    old = int(n * due)
    vms = [
        {
            "id": f"v{i}",
            "name": f"vm{i:05d}",
            "host": f"a{i % HOSTS}",
            "disks": [{"id": "d0", "size_gib": 20, "datastore": f"a-ds{i % DATASTORES}"}],
            "secondaries": [
                {
                    "mechanism": "pve-standby",
                    "disks": {"d0": f"b-ds{(i * 3) % DATASTORES}"},
                    "state": "in_sync",
                    "lag_s": 3000 if i < old else 10,
                }
            ],
        }  # fmt: skip
        for i in range(n)
    ]
    return {"estates": {"sim": {"flavor": "generic", "hosts": hosts, "datastores": dss, "vms": vms}}}


CONFIG = """
[endpoints.sim]
driver = "sim"
estate = "estate.json"

[[domains]]
cluster = "a"
site = "ams"

[[domains]]
cluster = "b"
site = "fra"

[[domains]]
datastore = "a-*"
site = "ams"

[[domains]]
datastore = "b-*"
site = "fra"

[policies.gold]
separation = "site"
rpo = "1h"
mechanisms = ["pve-standby"]
match = [{{}}]

[state]
dir = "state"

[watch]
max_actions = {max_actions}
"""


def cycle_cost(n: int, due: float, max_actions: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        (where / "estate.json").write_text(json.dumps(estate(n, due)))
        (where / "ftbridge.toml").write_text(CONFIG.format(max_actions=max_actions))
        cfg = load_config(where / "ftbridge.toml")
        t = time.perf_counter()
        with Session(cfg) as s:
            inv = collect(s)
        t_inv = time.perf_counter() - t
        t = time.perf_counter()
        audit(inv, cfg)
        t_audit = time.perf_counter() - t
        events: list[dict[str, Any]] = []
        coord = coordinator_for(cfg, name="bench")
        ctl = Controller(cfg, coord, emit=events.append, metrics=Metrics())
        times = []
        for _ in range(4):
            t = time.perf_counter()
            ctl.cycle()
            times.append(time.perf_counter() - t)
        coord.close()
        acted = sum(1 for e in events if e["event"] in ("action_succeeded", "action_skipped"))
        print(f"watch cycle, {n:,} VMs (sim, {2 * HOSTS} hosts, {2 * DATASTORES} datastores), {due:.0%} copies due:")
        print(f"  inventory alone (collect):           {t_inv:7.2f} s")
        print(f"  audit alone:                         {t_audit:7.2f} s")
        print(f"  first cycle (refresh plan + apply):  {times[0]:7.2f} s  ({acted} actions over all cycles)")
        print(f"  steady cycle, median of 3:           {statistics.median(times[1:]):7.2f} s")


def _free() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def journal_cost(actions: int) -> None:
    def run(journal: Journal) -> float:
        rows = [(f"a{i:05d}", "protect", "ep", f"vm{i}") for i in range(actions)]
        t = time.perf_counter()
        run_id = journal.start_run("bench", "bench.json", "fp", rows)
        for aid, *_ in rows:  # the three writes an action makes when it runs
            journal.record(run_id, aid, "running", "action_started", attempts=1, operation=None)
            journal.record(run_id, aid, "running", "op_started", operation={"id": f"op-{aid}", "endpoint": "ep"})
            journal.record(run_id, aid, "succeeded", "action_succeeded", result={"secondary_id": f"s-{aid}"})
        journal.finish_run(run_id, "done", {})
        return (time.perf_counter() - t) / actions

    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        sqlite = run(Journal(store=SqliteJournalStore(where / "journal.sqlite")))
        print(f"journal cost per action (3 writes), {actions} actions:")
        print(f"  SQLite (WAL, synchronous=FULL):      {sqlite * 1000:7.2f} ms")
        etcd_bin = shutil.which("etcd")
        if etcd_bin is None:
            print("  etcd: not measured (etcd is not installed: apt-get install etcd-server)")
            return
        clients, peers = [_free() for _ in range(3)], [_free() for _ in range(3)]
        initial = ",".join(f"m{i}=http://127.0.0.1:{p}" for i, p in enumerate(peers))
        procs = [
            subprocess.Popen(
                [
                    etcd_bin,
                    "--name",
                    f"m{i}",
                    "--data-dir",
                    str(where / f"m{i}"),
                    "--listen-client-urls",
                    f"http://127.0.0.1:{clients[i]}",
                    "--advertise-client-urls",
                    f"http://127.0.0.1:{clients[i]}",
                    "--listen-peer-urls",
                    f"http://127.0.0.1:{peers[i]}",
                    "--initial-advertise-peer-urls",
                    f"http://127.0.0.1:{peers[i]}",
                    "--initial-cluster",
                    initial,
                    "--initial-cluster-token",
                    f"bench-{clients[0]}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            for i in range(3)
        ]
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    req = urllib.request.Request(f"http://127.0.0.1:{clients[0]}/v3/kv/put", method="POST",
                                                 data=b'{"key": "YQ==", "value": "YQ=="}')  # fmt: skip
                    urllib.request.urlopen(req, timeout=2).read()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            members = ", ".join(f'{{ url = "http://127.0.0.1:{p}", site = "s{i}" }}' for i, p in enumerate(clients))
            (where / "etcd.toml").write_text(
                f'[state]\ndir = "state"\n\n[coordination]\nbackend = "etcd"\nmembers = [{members}]\n'
            )
            coord = coordinator_for(load_config(where / "etcd.toml"), name="bench")
            assert coord.campaign() is not None
            store = coord.store()
            store.fence = coord.fence()
            etcd = run(Journal(store=store))
            coord.close()
            print(f"  etcd (3 members, fenced txns):       {etcd * 1000:7.2f} ms  ({etcd / sqlite:.1f}x SQLite)")
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vms", type=int, default=10_000)
    ap.add_argument("--due", type=float, default=0.01, help="share of copies old enough to refresh")
    ap.add_argument("--actions", type=int, default=200)
    args = ap.parse_args()
    cycle_cost(args.vms, args.due, max_actions=2 * int(args.vms * args.due) + 2)
    journal_cost(args.actions)


if __name__ == "__main__":
    main()
