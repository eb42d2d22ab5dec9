"""Migration benchmark: plan moving 10,000 VMs (default) from a vSphere-shaped source to a
Proxmox-shaped target, with protection. Prints the time of each step and peak memory.

The source: 10,000 VMs on 40 hosts and 80 datastores in two sites, a tenth of them FT, one in
four with a NIC on one of 20 port groups. The target: 3 clusters of 16 nodes, 60 shared
datastores over three arrays, 20 bridges with the same VLANs. Rules come from the sim driver
(its mechanisms imitate vSphere FT and PVE's), so no other driver is needed.

Run:  python contrib/bench/migrate_scale.py [--vms 10000]
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from pathlib import Path

from ftbridge.config import parse_config
from ftbridge.inventory import Inventory
from ftbridge.migrate import make_migration
from ftbridge.model import (
    VM,
    Datastore,
    Disk,
    EndpointInfo,
    FailureDomain,
    Host,
    Network,
    Nic,
    PowerState,
    Secondary,
    SecondaryDisk,
)

GIB = 1024**3
CONFIG = {
    "endpoints": {
        "src": {"driver": "sim", "estate": "/nonexistent.toml"},
        "dst": {"driver": "sim", "estate": "/nonexistent.toml"},
    },
    "policies": {
        "tier1": {"separation": "array", "rpo": "1h", "headroom": 10, "match": [{"tag": "tier1"}]},
        "standard": {"separation": "array", "headroom": 15, "require_secondary": False, "match": [{}]},
    },
}


def source(n: int) -> Inventory:
    hosts = [
        Host(f"h{i}", f"esx{i:02d}", "src", "c1", domain=FailureDomain(site=f"s{i % 2}", host=f"esx{i:02d}"))
        for i in range(40)
    ]
    ds = [
        Datastore(
            f"ds{i}",
            f"src-ds{i:02d}",
            "src",
            "vmfs",
            True,
            tuple(h.id for h in hosts),
            40_000 * GIB,
            20_000 * GIB,
            domain=FailureDomain(site=f"s{i % 2}", array=f"a{i % 4}", datastore=f"src-ds{i:02d}"),
        )
        for i in range(80)
    ]
    nets = [Network(f"pg{i}", f"pg-{i}", "src", "portgroup", vlan=100 + i) for i in range(20)]
    vms = []
    for i in range(n):
        d = ds[i % 80].id
        disks = (Disk("2000", (40 + i % 7 * 10) * GIB, d), Disk("2001", (10 + i % 3 * 20) * GIB, d))
        ft = i % 10 == 0
        secs = (
            (
                Secondary(
                    f"s{i}",
                    "vsphere-ft",
                    tuple(SecondaryDisk(x.id, ds[(i + 1) % 80].id) for x in disks),
                    host=hosts[(i + 1) % 40].id,
                ),
            )
            if ft
            else ()
        )
        vms.append(
            VM(
                f"vm-{i}",
                f"vm{i:05d}",
                "src",
                hosts[i % 40].id,
                PowerState.ON,
                disks,
                d,
                secondaries=secs,
                tags=("tier1",) if ft or i % 7 == 0 else (),
                vcpus=2,
                memory=8 * GIB,
                nics=(Nic("4000", nets[i % 20].id),) if i % 4 == 0 else (),
            )
        )
    return Inventory([EndpointInfo("src", "sim", mechanisms=("vsphere-ft",))], hosts, ds, vms, networks=nets)


def target() -> Inventory:
    hosts = [
        Host(
            f"n{c}-{i}",
            f"pve{c}-{i:02d}",
            "dst",
            f"cl{c}",
            memory=1024 * GIB,
            domain=FailureDomain(site="t1", room=f"r{i % 2}", host=f"pve{c}-{i:02d}"),
        )
        for c in range(3)
        for i in range(16)
    ]
    ds = []
    for c in range(3):
        mounts = tuple(h.id for h in hosts if h.cluster == f"cl{c}")
        for k in range(20):
            ds.append(
                Datastore(
                    f"t{c}-{k}",
                    f"ceph{c}-{k:02d}",
                    "dst",
                    "rbd",
                    True,
                    mounts,
                    80_000 * GIB,
                    80_000 * GIB,
                    domain=FailureDomain(site="t1", array=f"arr{k % 3}", datastore=f"ceph{c}-{k:02d}"),
                )
            )
    nets = [Network(f"vmbr{i}", f"vmbr{i}", "dst", "bridge", vlan=100 + i) for i in range(20)]
    return Inventory([EndpointInfo("dst", "sim", mechanisms=("pve-standby",))], hosts, ds, [], networks=nets)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vms", type=int, default=10_000)
    args = ap.parse_args()
    cfg = parse_config(CONFIG, source=Path("/tmp/bench-ftbridge.toml"))
    t0 = time.perf_counter()
    src, dst = source(args.vms), target()
    t1 = time.perf_counter()
    tracemalloc.start()
    _, doc = make_migration(src, "src", dst, "dst", cfg, created_at=0, wave_size=500)
    t2 = time.perf_counter()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    s = doc["summary"]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"VMs {args.vms:,}: build {t1 - t0:.2f} s, migration plan {t2 - t1:.2f} s, "
        f"peak {peak / 2**20:.0f} MiB (tracemalloc), max RSS {rss:.0f} MiB"
    )
    print(
        f"  planned {s['planned']:,}, infeasible {s['infeasible']:,}, waves {s['waves']}, "
        f"protected {s['protected']:,}, separated {s['separated']:,}, gaps {s['gaps']}"
    )


if __name__ == "__main__":
    main()
