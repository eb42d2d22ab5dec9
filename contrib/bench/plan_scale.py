"""Planner benchmark: CPU cost and peak memory of audit + plan + plan file from 10k to 1M VMs.

Generates synthetic estates (deterministic per seed) shaped like real ones: stretched
clusters mounting datastores from arrays in two sites, host-local datastores, FT, replica
and copy mechanisms, and a realistic share of problems (local primaries, missing, unseparated
and broken secondaries, datastores over their headroom). Prints, per size, each in a fresh
process: audit, plan, and plan document + file in CPU seconds (and the system time among them),
the process's peak RSS, actions and the plan file's size; then the growth from 100k to 1M VMs
against linear, and on user time alone. With ``--repeat``, the sizes take turns (one run of
each per round) and each shows its least total.

What is measured, per size, in a fresh interpreter:

* **audit**: ``audit(inventory, config)``, the inventory's fingerprint included (asked once);
* **plan**: ``plan(inventory, config, findings)``, every run it makes (balanced placement; best
  fit again for the endpoints balance left short of room; a mixed run when the two split);
* **file**: ``plan_document`` and ``write_plan``, what ``ftbridge plan -o FILE`` adds;
* **RSS**: the process's peak resident memory: the interpreter, the estate, the audit, the plan,
  the document and the file's bytes. The estate is built here as model objects, the way a
  driver's ``inventory()`` returns them: no input dicts or JSON exist, so nothing but the
  estate itself is held besides what ftbridge holds (about 1 GiB of the 1M figure is the estate
  of a million VMs). Reading a saved inventory back (``--from``) is measured by
  ``inventory_load.py``.

Not measured either: collecting the inventory from the platforms, or printing tables. CPU
seconds (user + system) count only this process's work, whatever else the machine runs; they
still rise somewhat on a loaded machine (shared caches).

The optimality comparison with an exact optimum is in ``optimality.py``.

Run:  python contrib/bench/plan_scale.py [--sizes 10000,100000,300000,1000000] [--repeat 1] [--seeds 1]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import random
import resource
import sys
from pathlib import Path
from typing import Any

from ftbridge.audit import audit
from ftbridge.config import parse_config
from ftbridge.inventory import Inventory
from ftbridge.model import (
    VM,
    Datastore,
    Disk,
    EndpointInfo,
    FailureDomain,
    Host,
    PowerState,
    Secondary,
    SecondaryDisk,
    SecondaryState,
)
from ftbridge.planning import plan, plan_document

GIB = 1024**3

CONFIG = {
    "policies": {
        "gold": {
            "separation": "site",
            "headroom": 10,
            "mechanisms": ["vsphere-ft"],
            "match": [{"endpoint": "vc-*", "tag": "gold"}],
        },
        "zfs": {
            "separation": "array",
            "headroom": 10,
            "require_shared_primary": False,
            "mechanisms": ["pve-replication"],
            "match": [{"endpoint": "pve-*", "tag": "zfs"}],
        },
        "tier1": {"separation": "array", "headroom": 10, "match": [{"tag": "tier1"}]},
        "standard": {"separation": "array", "headroom": 15, "require_secondary": False, "match": [{}]},
    }
}

FLAVORS = {  # endpoint prefix -> (mechanisms offered, preferred first)
    "vc": ("sim-copy", "vsphere-ft"),
    "pve": ("pve-replication", "pve-standby"),
    "ovirt": ("ovirt-copy",),
}


def make_estate(
    n_vms: int,
    n_ds: int,
    n_domains: int,
    seed: int = 1,
    *,
    small: bool = False,
    over_rate: float = 0.03,
    fill_range: tuple[float, float] = (0.35, 0.7),
) -> Inventory:
    """An estate of ``n_vms`` VMs over about ``n_ds`` datastores in ``n_domains`` arrays.

    ``small``: one oVirt-like endpoint (the shape the exact optimum is computed for);
    ``over_rate``: the share of datastores filled beyond their headroom."""
    rnd = random.Random(seed)
    n_eps = 1 if small else 3
    sites = [f"s{k}" for k in range(max(2, n_domains // 8))]
    arrays = [(f"arr{k:02d}", sites[k % len(sites)]) for k in range(n_domains)]
    endpoints, hosts, dss, vms = [], [], [], []
    vms_per_ep = n_vms // n_eps
    ds_per_ep = n_ds // n_eps
    for e in range(n_eps):
        prefix = list(FLAVORS)[e % 3] if not small else "ovirt"
        ep = f"{prefix}-{e}"
        endpoints.append(EndpointInfo(name=ep, driver="sim", mechanisms=FLAVORS[prefix]))
        n_clusters = max(1, round(vms_per_ep / 400))
        hosts_per_cluster = 4 if small else 16
        local_per_cluster = 4 if prefix == "pve" else 2
        shared_per_cluster = max(3, ds_per_ep // n_clusters - local_per_cluster)
        cl_hosts: list[list[str]] = []
        cl_shared: list[list[Datastore]] = []
        cl_local: list[dict[str, Datastore]] = []
        for c in range(n_clusters):
            hs = []
            site_pair = (sites[c % len(sites)], sites[(c + 1) % len(sites)])
            for k in range(hosts_per_cluster):
                hid = f"h{c}-{k}"
                hosts.append(
                    Host(
                        id=hid,
                        name=f"{ep}-{hid}",
                        endpoint=ep,
                        cluster=f"c{c}",
                        domain=FailureDomain(site=site_pair[k % 2], host=f"{ep}-{hid}"),
                    )
                )
                hs.append(hid)
            cl_hosts.append(hs)
            # arrays this cluster uses: 3 or 4, from both sites of the pair
            local_arrays = [a for a in arrays if a[1] in site_pair]
            pick = rnd.sample(local_arrays, k=min(len(local_arrays), 4))
            pick.sort(key=lambda a: (a[1] != site_pair[0], a[0]))
            if len({a[1] for a in pick}) < 2:  # both sites of the stretched pair
                pick[-1] = next(a for a in local_arrays if a[1] != pick[0][1])
            shared = []
            for k in range(shared_per_cluster):
                arr, site = pick[k % len(pick)]
                kind = rnd.choice(["vmfs", "nfs", "rbd"])
                shared.append(
                    Datastore(
                        id=f"ds{c}-{k}",
                        name=f"{ep}-{arr}-ds{c}-{k}",
                        endpoint=ep,
                        kind=kind,
                        shared=True,
                        hosts=tuple(hs),
                        capacity=0,
                        free=0,
                        domain=FailureDomain(site=site, array=arr, datastore=f"{ep}-ds{c}-{k}"),
                    )
                )
            cl_shared.append(shared)
            locals_: dict[str, Datastore] = {}
            for hid in hs[:local_per_cluster]:
                kind = "zfspool" if prefix == "pve" else "vmfs"
                locals_[hid] = Datastore(
                    id=f"local-{hid}",
                    name=f"{ep}-local-{hid}",
                    endpoint=ep,
                    kind=kind,
                    shared=False,
                    hosts=(hid,),
                    capacity=0,
                    free=0,
                    domain=FailureDomain(array=f"{ep}-{hid}-disks", datastore=f"{ep}-local-{hid}"),
                )
            cl_local.append(locals_)
        used: dict[str, int] = {}
        ep_ds = {d.id: d for sh in cl_shared for d in sh} | {d.id: d for lo in cl_local for d in lo.values()}
        ft_load: dict[str, list[int]] = {}
        for v in range(vms_per_ep):
            c = v % n_clusters
            hs, shared, locals_ = cl_hosts[c], cl_shared[c], cl_local[c]
            roll = rnd.random()
            tier = (
                "gold"
                if prefix == "vc" and roll < 0.02
                else "zfs"
                if prefix == "pve" and roll < 0.2
                else "tier1"
                if roll < 0.55
                else "std"
            )
            pool = [h for h in hs if h in locals_] if tier == "zfs" else hs
            host = pool[rnd.randrange(len(pool))]
            n_disks = rnd.choice([1, 1, 1, 2, 2, 3])
            sizes = [rnd.choice([20, 40, 60, 80, 100, 150, 200]) * GIB for _ in range(n_disks)]
            prob = rnd.random()
            if tier == "zfs" and host in locals_:
                home = locals_[host]
            elif prob < 0.03 and host in locals_:
                home = locals_[host]  # primary on local storage
            else:
                home = shared[rnd.randrange(len(shared))]
            disks = tuple(Disk(id=f"d{k}", size=s, datastore=home.id) for k, s in enumerate(sizes))
            for s in sizes:
                used[home.id] = used.get(home.id, 0) + s
            secs: list[Secondary] = []
            vcpus = rnd.choice([1, 2, 2, 4])
            wants = tier in ("gold", "tier1", "zfs") or rnd.random() < 0.2
            if wants and rnd.random() > 0.12:  # 12% of those wanting one have none
                secs.append(
                    _secondary(
                        rnd,
                        prefix,
                        tier,
                        v,
                        host,
                        hs,
                        home,
                        shared,
                        locals_,
                        disks,
                        ft_load,
                        vcpus,
                        used,
                        bad=rnd.random() < 0.06,
                    )
                )
                if secs[-1] is None:
                    secs.pop()
            vid = f"vm{v}"
            vms.append(
                VM(
                    id=vid,
                    name=f"{ep}-vm{v}",
                    endpoint=ep,
                    host=host,
                    power=PowerState.ON,
                    disks=disks,
                    config_datastore=home.id,
                    secondaries=tuple(secs),
                    tags=(tier,),
                    vcpus=vcpus,
                )
            )
        # size datastores from what they hold: most 35-70% used, about 3% over their headroom
        for ds_id, d in ep_ds.items():
            u = used.get(ds_id, 0)
            fill = rnd.uniform(0.86, 0.95) if rnd.random() < over_rate else rnd.uniform(*fill_range)
            cap = max(1024 * GIB, -(-int(u / fill) // (256 * GIB)) * 256 * GIB)
            reserved = max(0, int(cap * fill) - u)
            dss.append(
                Datastore(
                    id=d.id,
                    name=d.name,
                    endpoint=ep,
                    kind=d.kind,
                    shared=d.shared,
                    hosts=d.hosts,
                    capacity=cap,
                    free=cap - u - reserved,
                    domain=d.domain,
                )
            )
    return Inventory(endpoints, hosts, dss, vms, collected_at=0.0)


def _secondary(
    rnd: random.Random,
    prefix: str,
    tier: str,
    v: int,
    host: str,
    hs: list[str],
    home: Datastore,
    shared: list[Datastore],
    locals_: dict[str, Datastore],
    disks: tuple[Disk, ...],
    ft_load: dict[str, list[int]],
    vcpus: int,
    used: dict[str, int],
    bad: bool,
) -> Secondary | None:
    mech = {
        "vc": "vsphere-ft" if tier == "gold" else "sim-copy",
        "pve": "pve-replication" if tier == "zfs" else "pve-standby",
        "ovirt": "ovirt-copy",
    }[prefix]
    other_host = rnd.choice([h for h in hs if h != host])
    if mech == "vsphere-ft":
        loads = [ft_load.setdefault(h, [0, 0]) for h in (host, other_host)]
        if vcpus > 4 or any(lo[0] >= 3 or lo[1] + vcpus > 6 for lo in loads):
            return None
        for lo in loads:
            lo[0] += 1
            lo[1] += vcpus
    if mech == "pve-replication":
        others = [h for h in locals_ if h != host]
        if not others or home.shared:
            return None
        other_host = others[rnd.randrange(len(others))]
        target = locals_[other_host]
    elif bad:
        target = home  # not separated
    else:
        cands = [
            d
            for d in shared
            if d.domain.array != home.domain.array and (tier != "gold" or d.domain.site != home.domain.site)
        ]
        if not cands:
            return None
        target = cands[rnd.randrange(len(cands))]
    for d in disks:
        used[target.id] = used.get(target.id, 0) + d.size
    state = SecondaryState.BROKEN if rnd.random() < 0.01 else SecondaryState.IN_SYNC
    return Secondary(
        id=f"vm{v}-s0",
        mechanism=mech,
        state=state,
        lag=0.0,
        host=other_host if mech in ("vsphere-ft", "pve-replication") else None,
        config_datastore=target.id if mech == "vsphere-ft" else None,
        metadata_datastore=shared[0].id if mech == "vsphere-ft" else None,
        disks=tuple(SecondaryDisk(disk=d.id, datastore=target.id, size=d.size) for d in disks),
    )


def config() -> Any:
    import copy

    return parse_config(copy.deepcopy(CONFIG), source=Path("bench.toml"))


#: VMs -> (datastores asked for, arrays): the estates of issue 18's table (10k/192, 100k/1,992,
#: 300k/6,000, 1M/19,992 datastores once rounded to whole clusters)
SHAPES = {1000: (20, 20), 10_000: (200, 20), 100_000: (2000, 20), 300_000: (6000, 20), 1_000_000: (20000, 20)}


def shape(n_vms: int) -> tuple[int, int]:
    return SHAPES.get(n_vms, (max(20, n_vms // 50), 20))


def cpu() -> float:
    """CPU seconds of this process (user + system): what the work costs, whatever the load on
    the machine (wall time would count the other processes sharing its cores)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def system_time() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def run_size(n_vms: int, seed: int = 1) -> dict[str, Any]:
    """Audit, plan, plan document + file (what ``ftbridge plan -o FILE`` does once it has the
    inventory), each in CPU seconds; peak RSS of the process (the estate included). Run it
    in a fresh process per size (``--one``) so the RSS is this size's own."""
    import tempfile

    from ftbridge.planning import write_plan

    n_ds, n_domains = shape(n_vms)
    t0 = cpu()
    inv = make_estate(n_vms, n_ds, n_domains, seed)
    t_gen = cpu() - t0
    cfg = config()
    gc.collect()
    sys0 = system_time()
    t0 = cpu()
    report = audit(inv, cfg)
    t_audit = cpu() - t0
    t0 = cpu()
    result = plan(inv, cfg, report.findings)
    t_plan = cpu() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = cpu()
        doc = plan_document(inv, cfg, result, created_at=0.0, generator="bench")
        write_plan(doc, Path(tmp) / "plan.json")
        t_doc = cpu() - t0
        t_sys = system_time() - sys0
        plan_bytes = (Path(tmp) / "plan.json").stat().st_size
    return {
        "vms": n_vms,
        "datastores": len(inv.datastores),
        "domains": n_domains,
        "gen_s": t_gen,
        "audit_s": t_audit,
        "plan_s": t_plan,
        "doc_s": t_doc,
        "sys_s": t_sys,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "findings": len(report.findings),
        "fixable": doc["summary"]["fixable"],
        "closed": doc["summary"]["closed"],
        "actions": len(result.actions),
        "bytes_gib": result.bytes_moved / GIB,
        "plan_mib": plan_bytes / 2**20,
    }


def run_fresh(n_vms: int, seed: int = 1) -> dict[str, Any]:
    """:func:`run_size` in a new interpreter: its peak RSS is this size's alone."""
    import json
    import subprocess

    out = subprocess.run(
        [sys.executable, __file__, "--one", str(n_vms), "--seed", str(seed)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000,300000,1000000", help="VM counts, comma-separated")
    ap.add_argument("--repeat", type=int, default=1, help="fresh runs per size; the least total is shown")
    ap.add_argument(
        "--seeds",
        default="1",
        help="estates per size (generator seeds, comma-separated); the growth compares their sums: "
        "one seed's 100k estate is a small sample of the problem mix (seed 1 draws 38 datastores over "
        "their headroom where its share of the 1M estate's is 51)",
    )
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # one size, JSON out (run_fresh)
    ap.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)  # with --one
    args = ap.parse_args(argv)
    if args.one:
        import json

        print(json.dumps(run_size(args.one, args.seed)))
        return 0
    print(
        f"{'VMs':>9} {'datastores':>10} {'findings':>8} {'closed':>7} {'actions':>7} "
        f"{'audit s':>8} {'plan s':>8} {'file s':>7} {'total s':>8} {'sys s':>6} {'RSS MiB':>8} {'plan MiB':>8}"
    )
    sizes = [int(x) for x in args.sizes.split(",") if x]
    seeds = [int(x) for x in args.seeds.split(",") if x]
    # each round runs every size once: a machine whose speed drifts over the minutes (other
    # tenants of its host) then weighs on every size alike, not on the sizes run last
    cases = list(itertools.product(sizes, seeds))
    runs: dict[tuple[int, int], list[dict[str, Any]]] = {c: [] for c in cases}
    for _ in range(max(1, args.repeat)):
        for n, seed in cases:
            r = run_fresh(n, seed)
            runs[(n, seed)].append(r)
            done = r["audit_s"] + r["plan_s"] + r["doc_s"]
            print(f"  ({n:,} VMs, seed {seed}: {done:.1f} s)", file=sys.stderr, flush=True)
    totals: dict[int, float] = {}
    system: dict[int, float] = {}
    for n, seed in cases:
        all_totals = [r["audit_s"] + r["plan_s"] + r["doc_s"] for r in runs[(n, seed)]]
        total = min(all_totals)
        r = runs[(n, seed)][all_totals.index(total)]
        totals[n] = totals.get(n, 0.0) + total
        system[n] = system.get(n, 0.0) + r["sys_s"]
        spread = f"  (runs: {', '.join(f'{t:.1f}' for t in all_totals)})" if len(all_totals) > 1 else ""
        if len(seeds) > 1:
            spread = f"  seed {seed}" + spread
        print(
            f"{r['vms']:>9,} {r['datastores']:>10,} {r['findings']:>8} {r['closed']:>7} {r['actions']:>7} "
            f"{r['audit_s']:>8.1f} {r['plan_s']:>8.1f} {r['doc_s']:>7.1f} {total:>8.1f} {r['sys_s']:>6.2f} "
            f"{r['rss_mib']:>8.0f} {r['plan_mib']:>8.1f}{spread}",
            flush=True,
        )
    print(
        "CPU seconds (user + system) of audit, plan, plan document + file; sys s: the system time among them; "
        "RSS: each size's own process"
    )
    if args.repeat > 1:
        print(
            f"each size: the least total of {args.repeat} fresh runs (as timeit takes the least of its repeats), "
            "the sizes taking turns"
        )
    if len(seeds) > 1:
        print(f"each size: the sum over the estates of seeds {', '.join(map(str, seeds))}")
    if 100_000 in totals and 1_000_000 in totals:
        growth = totals[1_000_000] / totals[100_000]
        print(f"growth 100k -> 1M: {growth:.1f}x for 10x the VMs ({growth / 10:.2f}x linear; goal <= 1.2x)")
        user = (totals[1_000_000] - system[1_000_000]) / (totals[100_000] - system[100_000])
        print(
            f"  user time alone: {user / 10:.2f}x linear (system time {system[100_000]:.2f} s at 100k, "
            f"{system[1_000_000]:.2f} s at 1M: see the README on page faults)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
