"""What this machine charges for a VM's objects read in order, out of order, and looked up in a
table that grows with the estate: the yardstick for ``plan_scale.py``'s growth figure.

``plan_scale.py`` reports how the cost of audit + plan grows from 100k to 1M VMs against
linear. The planner's operation counts grow linearly (the calls per VM are the same at both
sizes); what does not is what a memory access costs once the data no longer fits the
machine's caches. This script measures that with no ftbridge code in the loop, on ftbridge's
own model objects (a :class:`~ftbridge.model.VM` with two :class:`~ftbridge.model.Disk`), per
size, in CPU nanoseconds per VM (least of 3):

* **in order**: every VM and disk read in the order they were made (a sequential walk; the
  audit's loop over ``inventory.vms``);
* **shuffled**: the same reads in a random order (a sort, or a dict keyed by VM);
* **table lookups**: per VM, three lookups into per-endpoint tables of hosts and datastores
  that grow with the estate (``plan_scale.py`` makes 16 hosts and about 8 datastores per 400
  VMs), reading a field of what is found: what the audit does per VM for its host and its
  datastores (``Inventory.host``, ``store_place``, ``host_place``).

The growth column is each size's cost per VM over the first size's. A machine where table
lookups cost 1.3x more per VM at 1M than at 100k gives ``plan_scale.py`` about that much
growth over linear, whatever the planner does.

Run:  python contrib/bench/access_cost.py [--sizes 100000,1000000]
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import sys
from collections.abc import Callable

from ftbridge.model import VM, Disk, PowerState

GIB = 1024**3
ENDPOINTS = 3
Table = dict[str, tuple[str, int]]  # id -> (name, a field to read)


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def estate(n: int, rnd: random.Random) -> tuple[list[VM], list[Table], list[Table]]:
    """``n`` VMs over 3 endpoints; per endpoint a host table (16 per 400 VMs) and a datastore
    table (8 per 400 VMs), keyed by id, as :class:`~ftbridge.inventory.Inventory` keeps them."""
    per = n // ENDPOINTS
    hosts = [{f"h{k}": (f"ep{e}-h{k}", k) for k in range(max(16, per * 16 // 400))} for e in range(ENDPOINTS)]
    stores = [{f"ds{k}": (f"ep{e}-ds{k}", k) for k in range(max(8, per * 8 // 400))} for e in range(ENDPOINTS)]
    vms = []
    for v in range(per * ENDPOINTS):
        e = v % ENDPOINTS
        ds = f"ds{rnd.randrange(len(stores[e]))}"
        disks = tuple(Disk(id=f"d{k}", size=rnd.choice((20, 40, 80)) * GIB, datastore=ds) for k in range(2))
        vms.append(
            VM(
                id=f"vm{v}",
                name=f"ep{e}-vm{v}",
                endpoint=f"ep{e}",
                host=f"h{rnd.randrange(len(hosts[e]))}",
                power=PowerState.ON,
                disks=disks,
                config_datastore=ds,
            )
        )
    return vms, hosts, stores


def least(f: Callable[[], None], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = cpu()
        f()
        best = min(best, cpu() - t0)
    return best


def measure(n: int) -> tuple[float, float, float]:
    rnd = random.Random(1)
    vms, hosts, stores = estate(n, rnd)
    shuffled = vms[:]
    rnd.shuffle(shuffled)
    by_ep = {f"ep{e}": (hosts[e], stores[e]) for e in range(ENDPOINTS)}
    gc.collect()

    def walk(order: list[VM]) -> None:
        total = 0
        for vm in order:
            for d in vm.disks:
                total += d.size

    def lookups() -> None:
        total = 0
        for vm in vms:
            hs, ds = by_ep[vm.endpoint]
            total += hs[vm.host or ""][1]
            for d in vm.disks:
                total += ds[d.datastore][1]

    return (least(lambda: walk(vms)) / n, least(lambda: walk(shuffled)) / n, least(lookups) / n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--sizes", default="100000,1000000", help="VM counts, comma-separated")
    args = ap.parse_args(argv)
    print(f"{'VMs':>9} {'in order':>12} {'shuffled':>12} {'lookups':>12}   (CPU ns per VM; growth over the first size)")
    first: tuple[float, float, float] | None = None
    for n in (int(x) for x in args.sizes.split(",") if x):
        costs = measure(n)
        first = first or costs
        cells = [f"{c * 1e9:6.0f} {c / f:4.2f}x" for c, f in zip(costs, first, strict=True)]
        print(f"{n:>9,} " + " ".join(f"{c:>12}" for c in cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
