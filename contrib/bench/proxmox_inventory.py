"""Inventory cost of the Proxmox VE driver against its lab: API calls and wall time by concurrency.

    python contrib/bench/proxmox_inventory.py [--vms 1000] [--concurrency 1,4,8,16]
                                              [--latency 0.005] [--repeat 3]

Generates a 1,000-VM estate (four nodes; Ceph and NFS shared, ZFS on every node; a fifth of
the ZFS VMs replicated by pvesr, a twentieth of the Ceph VMs with a standby clone), serves it
from the lab in its own process (so client and server each get a core) with a fixed latency
injected into every API call, and times ``ProxmoxDriver.inventory()`` at each concurrency over
the real proxmoxer/requests stack. Prints API calls (counted by the driver), wall time, and the
ratio of wall time to the ideal (calls / concurrency) x latency. The aims: calls <= VMs + 10,
and a ratio within 1.5.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ftbridge_proxmox.config import ProxmoxConfig
from ftbridge_proxmox.driver import ProxmoxDriver


def estate(n_vms: int) -> dict[str, Any]:
    nodes = [f"pve{i}" for i in range(1, 5)]
    datastores: list[dict[str, Any]] = [
        {"id": "ceph-a", "kind": "rbd", "shared": True, "hosts": nodes, "capacity_gib": 500_000},
        {"id": "nfs-b", "kind": "nfs", "shared": True, "hosts": nodes, "capacity_gib": 200_000},
    ] + [{"id": f"local-zfs@{n}", "kind": "zfspool", "hosts": [n], "capacity_gib": 100_000} for n in nodes]
    vms = []
    for i in range(n_vms):
        node = nodes[i % len(nodes)]
        vm: dict[str, Any] = {"id": str(100 + i), "name": f"vm{i:05d}", "host": node, "vcpus": 2, "memory_gib": 4}
        if i % 5 < 3:  # on Ceph
            vm["disks"] = [{"id": "scsi0", "size_gib": 32, "datastore": "ceph-a"}]
            if i % 20 == 0:
                vm["secondaries"] = [{"mechanism": "pve-standby", "lag_s": 1800, "disks": {"scsi0": "nfs-b"}}]
        else:  # on the node's ZFS
            vm["disks"] = [
                {"id": "scsi0", "size_gib": 32, "datastore": f"local-zfs@{node}"},
                {"id": "scsi1", "size_gib": 64, "datastore": f"local-zfs@{node}"},
            ]
            if i % 25 in (3, 8, 13, 18, 23) and i % 2:
                peer = nodes[(i + 1) % len(nodes)]
                vm["secondaries"] = [
                    {
                        "mechanism": "pve-replication",
                        "host": peer,
                        "lag_s": 300,
                        "disks": {"scsi0": f"local-zfs@{peer}", "scsi1": f"local-zfs@{peer}"},
                    }
                ]
        vms.append(vm)
    hosts = [{"id": n} for n in nodes]
    return {"estates": {"bench": {"flavor": "proxmox", "hosts": hosts, "datastores": datastores, "vms": vms}}}


def start_lab(estate_file: Path, latency: float, token_file: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ftbridge_proxmox.lab",
            "--estate",
            str(estate_file),
            "--name",
            "bench",
            "--latency",
            str(latency),
            "--token-file",
            str(token_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        raise SystemExit("the lab did not start")
    return proc, json.loads(line)["endpoint"]


def run(endpoint: dict[str, Any], concurrency: int, repeat: int, n_vms: int) -> dict[str, Any]:
    cfg = ProxmoxConfig.model_validate({**endpoint, "concurrency": concurrency, "timeout": 120})
    drv = ProxmoxDriver(cfg, endpoint="bench")
    drv.open()
    try:
        drv.inventory()  # warm: TLS connections of the pool, imports
        times, calls = [], []
        for _ in range(repeat):
            before = drv.ex_api_calls
            t0 = time.perf_counter()
            part = drv.inventory()
            times.append(time.perf_counter() - t0)
            calls.append(drv.ex_api_calls - before)
        assert len(part.vms) == n_vms, (len(part.vms), n_vms)
        secondaries = sum(len(v.secondaries) for v in part.vms)
    finally:
        drv.close()
    return {"calls": calls[-1], "median": statistics.median(times), "best": min(times), "secondaries": secondaries}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vms", type=int, default=1000)
    p.add_argument("--concurrency", default="1,4,8,16")
    p.add_argument("--latency", default="0.005", help="seconds injected per API call (comma-separated list)")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ftbridge-bench-pve-") as tmp:
        estate_file = Path(tmp) / "estate.json"
        estate_file.write_text(json.dumps(estate(args.vms)))
        for latency in (float(x) for x in args.latency.split(",")):
            proc, endpoint = start_lab(estate_file, latency, Path(tmp) / "token")
            try:
                print(
                    f"\nProxmox driver inventory, {args.vms} VMs, lab in its own process, "
                    f"{latency * 1000:g} ms injected per call ({args.repeat} runs; median, best)"
                )
                print(
                    f"{'conc':>4} {'calls':>6} {'VMs+10':>6} {'median':>8} {'best':>8} "
                    f"{'ideal':>8} {'ratio':>6} {'per call':>9}"
                )
                for c in (int(x) for x in args.concurrency.split(",")):
                    r = run(endpoint, c, args.repeat, args.vms)
                    ideal = r["calls"] / c * latency
                    print(
                        f"{c:>4} {r['calls']:>6} {args.vms + 10:>6} {r['median']:>7.2f}s {r['best']:>7.2f}s "
                        f"{ideal:>7.2f}s {r['median'] / ideal if ideal else float('nan'):>6.2f} "
                        f"{r['median'] / r['calls'] * c * 1000:>7.2f}ms",
                        flush=True,
                    )
            finally:
                proc.terminate()
                proc.wait(timeout=10)
    print(
        "\ncalls: API requests of one inventory, counted by the driver; ideal: calls / conc x latency; "
        "ratio: median / ideal; per call: median x conc / calls"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
