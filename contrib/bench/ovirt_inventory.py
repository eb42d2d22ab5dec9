"""Inventory cost of the oVirt driver against its lab: API calls and wall time by VM count.

    python contrib/bench/ovirt_inventory.py [--vms 100,1000,3000] [--scheme https] [--repeat 3]

Generates an estate per size (hosts and storage domains scale with it; a third of the VMs
carry an ftbridge copy, half have two disks), serves it from the lab on loopback, and times
``OvirtDriver.inventory()`` over the real SDK. The call count comes from the lab's request
counter; the aim is a count that does not grow with the number of VMs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

from ftbridge_ovirt.config import OvirtConfig
from ftbridge_ovirt.driver import OvirtDriver
from ftbridge_ovirt.lab import OvirtLab

from ftbridge.estate import parse_estates


def estate(n_vms: int) -> Any:
    n_hosts = max(4, n_vms // 25)
    n_sd = max(4, min(32, n_vms // 100))
    hosts = [{"id": f"h{i}", "name": f"host{i:03d}", "cluster": f"cl{i % 4}"} for i in range(n_hosts)]
    all_hosts = [h["id"] for h in hosts]
    sds = [
        {
            "id": f"sd{i}",
            "name": f"{'ams' if i % 2 else 'rtm'}-sd{i:02d}",
            "kind": "nfs" if i % 3 else "iscsi",
            "hosts": all_hosts,
            "capacity_gib": 100_000,
        }
        for i in range(n_sd)
    ]
    vms = []
    for i in range(n_vms):
        sd = f"sd{i % n_sd}"
        disks = [{"id": "d0", "size_gib": 20, "datastore": sd}]
        if i % 2:
            disks.append({"id": "d1", "size_gib": 50, "datastore": sd})
        vm: dict[str, Any] = {
            "id": f"vm{i}",
            "name": f"vm{i:05d}",
            "host": f"h{i % n_hosts}",
            "disks": disks,
            "vcpus": 2,
            "memory_gib": 4,
            "tags": ["bench"],
            "ha": i % 5 == 0,
        }
        if i % 3 == 0:
            other = f"sd{(i + 1) % n_sd}"
            vm["secondaries"] = [{"mechanism": "ovirt-copy", "disks": {d["id"]: other for d in disks}, "lag_s": 300}]
        vms.append(vm)
    data = {"estates": {"bench": {"flavor": "ovirt", "hosts": hosts, "datastores": sds, "vms": vms}}}
    return parse_estates(data, source="bench")["bench"]


def bench(n_vms: int, scheme: str, repeat: int) -> dict[str, Any]:
    est = estate(n_vms)
    lab = OvirtLab(est)
    lab.start()
    os.environ.update(lab.secrets())
    try:
        cfg = OvirtConfig.model_validate({**lab.endpoint_config(scheme), "timeout": 300})
        drv = OvirtDriver(cfg, endpoint="bench")
        t0 = time.perf_counter()
        drv.open()
        open_s = time.perf_counter() - t0
        times, calls = [], []
        try:
            for _ in range(repeat):
                lab.stats.reset()
                t0 = time.perf_counter()
                part = drv.inventory()
                times.append(time.perf_counter() - t0)
                calls.append(lab.stats.total)
                assert len(part.vms) == n_vms, (len(part.vms), n_vms)
            secs = sum(len(v.secondaries) for v in part.vms)
            disks = sum(len(v.disks) for v in part.vms)
        finally:
            drv.close()
        return {
            "vms": n_vms,
            "disks": disks,
            "secondaries": secs,
            "hosts": len(part.hosts),
            "domains": len(part.datastores),
            "calls": calls[-1],
            "open_s": open_s,
            "median_s": statistics.median(times),
            "best_s": min(times),
        }
    finally:
        lab.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vms", default="100,1000,3000", help="comma-separated VM counts")
    p.add_argument("--scheme", default="https", choices=("http", "https"))
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    print(f"oVirt driver inventory over the lab ({args.scheme}, {args.repeat} runs each, median and best)")
    print(
        f"{'VMs':>6} {'disks':>6} {'copies':>6} {'hosts':>5} {'SDs':>4} {'API calls':>9} "
        f"{'login':>7} {'median':>8} {'best':>8}"
    )
    for n in (int(x) for x in args.vms.split(",")):
        r = bench(n, args.scheme, args.repeat)
        print(
            f"{r['vms']:>6} {r['disks']:>6} {r['secondaries']:>6} {r['hosts']:>5} {r['domains']:>4} "
            f"{r['calls']:>9} {r['open_s']:>6.2f}s {r['median_s']:>7.2f}s {r['best_s']:>7.2f}s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
