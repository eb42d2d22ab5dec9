"""Optimality benchmark: ftbridge's planner against an exact optimum where greedy placement loses.

Each family is a set of small, capacity-tight instances (one oVirt-like endpoint, the
``ovirt-copy`` mechanism, every VM under the ``tier1`` policy of ``plan_scale.py``: separation
at array level, 10% headroom) built around a *planted* solution: every VM that needs a new
secondary (or every disk that must leave a datastore over its headroom) is given a target
first, and the targets' free space is then sized to what was planted plus the headroom and a
little slack. A plan that fixes everything therefore exists; finding it is bin packing:

* ``packing``: VMs on one array, their secondaries' only place the datastores of a second
  array, sized to a random partition of the VMs (mixed sizes 20-400 GiB);
* ``cross``: three arrays, VMs on each, every array both home and target (a copy placed in
  the wrong array takes space another array's VMs needed);
* ``few-outside``: two home arrays and a third array with one datastore, planted with big
  copies: spending it on small ones strands them;
* ``mixed``: like ``cross`` with many small VMs (10-30 GiB) and a few huge ones (300-800 GiB);
* ``headroom``: datastores over their headroom with mixed disks, tight targets in the same
  array: which disks leave decides the bytes (a subset sum) and whether they fit;
* ``roomy`` / ``tight``: the estates of ``plan_scale.make_estate(small=True)`` (the old
  comparison, where every strategy tends to be optimal).

The exact optimum is a MILP (PuLP + CBC; a benchmark dependency only: ``pip install pulp``)
with the planner's choices (a target per disk that must move, a target per new secondary,
separated from the primary's final place, and a target for any other VM's disk, as the
planner's pass 5 moves disks no finding needs moved to make room for a copy) and capacity and
headroom checked at the end of the plan: a relaxation of what a step-by-step safe plan
guarantees, so it is an upper bound on the findings any plan fixes and, for those, a lower
bound on the bytes it copies. The objective
is ftbridge's: the most findings fixed, then the fewest bytes copied.

For ftbridge (``planning.plan``: balanced placement, then best-fit when that leaves findings
for lack of room, the better plan kept; each run with the planner's repair step, which makes
room by putting the plan's own copies and disk moves elsewhere) and for the single runs it is
built from (``balance``: largest VM first, roomiest target; ``best-fit``: largest first,
fullest target that fits; both with the repair step) and ``smallest-first`` (smallest VM
first, roomiest target), per instance: findings fixed against the optimum's, and bytes copied
over the optimum's when it fixes as many. Per family: the findings ratio (the optimum's over
the strategy's, summed), and the bytes ratio on the instances where it fixes as many. Aim:
ratios <= 1.05.

What the optimum does that ftbridge does not: capacity is checked at the end of the optimum's
plan, not at every step, so it may count a plan that has no safe order; it may split a
primary across domains to relieve a datastore; and it chooses every move at once, where
ftbridge's passes choose in turn (copies, then headroom, then room for the copies left by
moving disks no finding needs moved, the planner's pass 5).

Run:  python contrib/bench/optimality.py [--instances 6] [--families packing,cross,...]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from plan_scale import GIB, config, make_estate  # noqa: E402  (beside this script)

from ftbridge.audit import audit  # noqa: E402
from ftbridge.inventory import Inventory  # noqa: E402
from ftbridge.model import (  # noqa: E402
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
from ftbridge.planning import capabilities_for, plan, rules_for  # noqa: E402
from ftbridge.planning.planner import Planner  # noqa: E402

EP = "ovirt-0"
HOSTS = tuple(f"h{k}" for k in range(4))
SLACK = 2 * GIB  # spare left on a target above its headroom once the planted copies are in


# -- the exact optimum (benchmark only: needs PuLP) ----------------------------------------------
SECONDARY_RULES = {
    "secondary-unhealthy",
    "secondary-not-separated",
    "secondary-on-primary-host",
    "ft-metadata-not-shared",
}


def exact_optimum(
    inv: Inventory,
    cfg: Any,
    findings: list[Any],
    must_fix: set[str] | None = None,
    time_limit: int = 120,
    any_moves: bool = True,
) -> tuple[int, float] | None:
    """(findings fixed, GiB copied) of an optimal plan for a one-endpoint, host-less mechanism estate.

    Without ``must_fix``: the most findings fixed, then the fewest bytes. With it: the fewest
    bytes that fix at least those findings (None when the model cannot). The same choices as
    the planner: a target per disk that must move (local primary, a datastore over its headroom,
    or the cheaper side of an unseparated pair), a target per new secondary separated from the
    primary's *final* place; the same headroom (raised by a stricter policy placed there).
    ``any_moves``: any movable disk of a VM under a policy may move too (apart from the VM's
    good copies), as the planner's pass 5 may move one to make room for another VM's copy;
    without it, only the disks a finding needs moved (the model before pass 5 existed).
    Capacity is checked at the end of the plan, not at every step: a relaxation of what the
    planner guarantees, so the optimum is a lower bound on what any safe plan must copy.
    """
    import pulp

    from ftbridge.model import SecondaryState

    ds = {d.id: d for d in inv.datastores}
    pol = {v.id: cfg.policy_for(v) for v in inv.vms}
    pct = {d: 0.0 for d in ds}
    for v in inv.vms:
        p = pol[v.id]
        if p is None:
            continue
        for x in set(v.primary_datastores) | {x for sc in v.secondaries for x in sc.datastores}:
            pct[x] = max(pct[x], p.headroom)
    keep = {d: int(ds[d].capacity * pct[d] / 100) for d in ds}
    over = {d for d in ds if ds[d].free < keep[d]}
    head = {f.datastore: f for f in findings if f.rule == "datastore-over-headroom" and f.fixable}
    by_vm: dict[str, list[Any]] = {}
    for f in findings:
        if f.vm is not None:
            by_vm.setdefault(f.vm, []).append(f)

    def sep(a: str, b: str, level: Any) -> bool:
        return ds[a].domain.separated_at(ds[b].domain, level)

    prob = pulp.LpProblem("ftbridge_plan", pulp.LpMaximize)
    n = [0]

    def var(cat: str = "Binary") -> Any:
        n[0] += 1
        return pulp.LpVariable(f"v{n[0]}", 0, 1, cat=cat)

    into: dict[str, list[tuple[float, Any, float]]] = {d: [] for d in ds}  # (GiB, var, policy pct)
    out: dict[str, list[tuple[float, Any]]] = {d: [] for d in ds}
    const_out: dict[str, float] = {d: 0.0 for d in ds}
    cost: list[tuple[float, Any]] = []
    fix: dict[str, Any] = {}
    fixed_const: set[str] = set()
    for v in inv.vms:
        p = pol[v.id]
        if p is None:
            continue
        fs = [f for f in by_vm.get(v.id, []) if f.fixable]
        on_head = [d for d in v.disks if d.datastore in head]
        if not fs and not on_head and not any_moves:
            continue
        level = p.level
        counted = [sc for sc in v.secondaries if p.counts(sc.mechanism)]
        bad = {f.secondary for f in fs if f.rule in SECONDARY_RULES and f.secondary}
        good = [sc for sc in counted if sc.id not in bad and sc.state is SecondaryState.IN_SYNC]
        bad_secs = [sc for sc in counted if sc.id in bad]
        need_new = (any(f.rule == "no-secondary" for f in fs) and not counted) or (bad_secs and not good)
        sep_only = [
            sc
            for sc in bad_secs
            if {f.rule for f in fs if f.secondary == sc.id} == {"secondary-not-separated"}
            and len(bad_secs) == 1
            and sc.state is SecondaryState.IN_SYNC
        ]
        local = {d.id for d in v.disks if not ds[d.datastore].shared}
        config_local = v.config_datastore is not None and not ds[v.config_datastore].shared
        offending: set[str] = set()
        if sep_only:
            sdss = sep_only[0].datastores
            offending = {d.id for d in v.disks if any(not sep(d.datastore, x, level) for x in sdss)}
            if (
                v.config_datastore
                and any(not sep(v.config_datastore, x, level) for x in sdss)
                and len(offending) != len(v.disks)
            ):
                offending = set()
        movable = {d.id for d in v.disks if d.movable}
        if not any_moves:
            movable &= local | offending | {d.id for d in on_head}
        rep = var() if need_new else None
        # primary moves
        xs: dict[str, dict[str, Any]] = {}
        good_ds = {x for sc in good for x in sc.datastores}
        bad_ds = {x for sc in bad_secs for x in sc.datastores}
        for d in v.disks:
            if d.id not in movable:
                continue
            xs[d.id] = {}
            for t, td in ds.items():
                if t == d.datastore or not td.shared or not td.accessible or (v.host and v.host not in td.hosts):
                    continue
                if any(not sep(t, x, level) for x in good_ds):
                    continue
                xv = var()
                if any(not sep(t, x, level) for x in bad_ds):
                    prob += xv <= (rep if rep is not None else 0)
                xs[d.id][t] = xv
                into[t].append((d.size / GIB, xv, p.headroom))
                out[d.datastore].append((d.size / GIB, xv))
                cost.append((d.size / GIB, xv))
            prob += pulp.lpSum(xs[d.id].values()) <= 1
        moved = {k: pulp.lpSum(m.values()) for k, m in xs.items()}
        tie = (config_local and local) or (
            offending
            and v.config_datastore
            and any(not sep(v.config_datastore, x, level) for x in sep_only[0].datastores)
        )
        if tie and len(xs) > 1:  # the config moves with every disk, to one target
            first, *rest = sorted(xs)
            for k in rest:
                for t in set(xs[first]) | set(xs[k]):
                    prob += xs[k].get(t, 0) == xs[first].get(t, 0)
        # a new secondary
        if rep is not None:
            fixed_primary = {d.datastore for d in v.disks if d.id not in xs}
            if v.config_datastore and not tie:
                fixed_primary.add(v.config_datastore)
            ys = []
            for t, td in ds.items():
                if not td.accessible or any(not sep(t, x, level) for x in fixed_primary):
                    continue
                yv = var()
                ys.append(yv)
                for d in v.disks:
                    if d.id in xs:
                        stay_ok = 1 if sep(d.datastore, t, level) else 0
                        prob += yv <= (1 - moved[d.id]) * stay_ok + pulp.lpSum(
                            xv for t2, xv in xs[d.id].items() if sep(t2, t, level)
                        )
                into[t].append((v.size / GIB, yv, p.headroom))
                cost.append((v.size / GIB, yv))
            prob += rep == pulp.lpSum(ys)
            for sc in bad_secs:
                for sd in sc.disks:
                    out[sd.datastore].append(((sd.size or 0) / GIB, rep))
        elif bad_secs and good:  # duplicates: removed, nothing copied
            for sc in bad_secs:
                for sd in sc.disks:
                    const_out[sd.datastore] += (sd.size or 0) / GIB
        ob = None
        if sep_only and offending and all(k in xs for k in offending):
            ob = var()
            for k in offending:
                prob += ob <= moved[k]
        for f in fs:
            if f.rule == "primary-not-shared":
                if not local or not all(k in xs for k in local):
                    continue
                fv = var()
                for k in local:
                    prob += fv <= moved[k]
            elif f.rule == "no-secondary":
                if rep is None:
                    continue
                fv = var()
                prob += fv <= rep
            elif f.rule in SECONDARY_RULES:
                if rep is None and good:
                    fixed_const.add(f.id)
                    continue
                fv = var()
                prob += fv <= (rep if rep is not None else 0) + (
                    ob if ob is not None and f.rule == "secondary-not-separated" else 0
                )
            else:
                continue
            fix[f.id] = fv
    # capacity at the end, with the headroom each placement brings
    for t, td in ds.items():
        end = (
            td.free / GIB
            + const_out[t]
            + pulp.lpSum(c * xv for c, xv in out[t])
            - pulp.lpSum(c * xv for c, xv, _ in into[t])
        )
        if t in over:
            # below its headroom now: whatever comes in must leave it above its headroom
            f = head.get(t)
            fv = var()
            prob += end >= keep[t] / GIB * fv + td.free / GIB * (1 - fv)
            for _, xv, _ in into[t]:
                prob += fv >= xv
            if f is not None:
                fix[f.id] = fv
            continue
        prob += end >= keep[t] / GIB
        for p_pct in sorted({q for _, _, q in into[t] if q > pct[t]}):
            z = var()
            for _, xv, q in into[t]:
                if q == p_pct:
                    prob += z >= xv
            prob += end >= int(td.capacity * p_pct / 100) / GIB * z
    copied = pulp.lpSum(c * xv for c, xv in cost)
    if must_fix is None:
        big = 1 + sum(c for c, _ in cost)
        prob += big * pulp.lpSum(fix.values()) - copied
    else:
        missing = must_fix - set(fix) - fixed_const
        if missing:
            return None
        for fid in must_fix & set(fix):
            prob += fix[fid] == 1
        prob.sense = pulp.LpMinimize
        prob += copied
    status = prob.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit))
    if pulp.LpStatus[status] != "Optimal":
        return None
    n_fixed = len(fixed_const) + sum(round(fv.value() or 0) for fv in fix.values())
    return n_fixed, float(sum(c * (xv.value() or 0) for c, xv in cost))


# -- instances built around a planted solution ---------------------------------------------------
class _Builder:
    """Datastores by array, VMs placed on them; capacities sized once everything is planted."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.arrays: dict[str, list[str]] = {}
        self.used: dict[str, int] = {}
        self.incoming: dict[str, int] = {}  # planted bytes that land on it
        self.leaving: dict[str, int] = {}  # planted bytes that leave it
        self.roomy: set[str] = set()
        self.over: set[str] = set()
        self.vms: list[VM] = []

    def array(self, name: str, n: int, *, roomy: bool = False) -> list[str]:
        ids = [f"{name}-ds{k}" for k in range(n)]
        self.arrays[name] = ids
        for i in ids:
            self.used[i] = 0
            if roomy:
                self.roomy.add(i)
        return ids

    def array_of(self, ds: str) -> str:
        return ds.split("-ds", 1)[0]

    def vm(self, home: str, sizes: list[int], secondary_on: str | None = None) -> VM:
        k = len(self.vms)
        disks = tuple(Disk(id=f"d{j}", size=s * GIB, datastore=home) for j, s in enumerate(sizes))
        self.used[home] += sum(d.size for d in disks)
        secs: tuple[Secondary, ...] = ()
        if secondary_on is not None:
            self.used[secondary_on] += sum(d.size for d in disks)
            secs = (
                Secondary(
                    id=f"vm{k}-s0",
                    mechanism="ovirt-copy",
                    state=SecondaryState.IN_SYNC,
                    lag=0.0,
                    disks=tuple(SecondaryDisk(disk=d.id, datastore=secondary_on, size=d.size) for d in disks),
                ),
            )
        v = VM(
            id=f"vm{k}",
            name=f"vm{k}",
            endpoint=EP,
            host=HOSTS[k % len(HOSTS)],
            power=PowerState.ON,
            disks=disks,
            config_datastore=home,
            secondaries=secs,
            tags=("tier1",),
        )
        self.vms.append(v)
        return v

    def plant(self, target: str, size: int) -> None:
        self.incoming[target] = self.incoming.get(target, 0) + size

    def inventory(self) -> Inventory:
        dss = []
        for arr, ids in self.arrays.items():
            for i in ids:
                used = self.used[i]
                if i in self.roomy:
                    cap = max(2048 * GIB, 2 * (used + self.incoming.get(i, 0)))
                elif i in self.over:
                    # below its 10% headroom by what the planted disks free, less the slack
                    after = used - self.leaving[i]
                    cap = int((after + SLACK) / 0.9)
                else:
                    # the planted copies fit, with the headroom and SLACK to spare
                    cap = int((used + self.incoming.get(i, 0) + SLACK) / 0.9) + 1
                dss.append(
                    Datastore(
                        id=i,
                        name=i,
                        endpoint=EP,
                        kind="nfs",
                        shared=True,
                        hosts=HOSTS,
                        capacity=cap,
                        free=cap - used,
                        domain=FailureDomain(site="s0", array=arr, datastore=i),
                    )
                )
        hosts = [Host(id=h, name=h, endpoint=EP, cluster="c0", domain=FailureDomain(site="s0", host=h)) for h in HOSTS]
        eps = [EndpointInfo(name=EP, driver="sim", mechanisms=("ovirt-copy",))]
        return Inventory(eps, hosts, dss, list(self.vms), collected_at=0.0)


def _sizes(rnd: random.Random, kind: str) -> int:
    if kind == "mixed":
        return rnd.randint(300, 800) if rnd.random() < 0.25 else rnd.randint(10, 30)
    return rnd.choice([20, 40, 60, 80, 100, 150, 200, 250, 300, 400])


def _needing_copies(
    b: _Builder, homes: dict[str, list[str]], targets: Callable[[str], list[str]], n: int, kind: str
) -> None:
    """``n`` VMs without a secondary on the ``homes`` arrays, each planted on a target."""
    rnd = b.rnd
    arrays = sorted(homes)
    for k in range(n):
        arr = arrays[k % len(arrays)]
        home = rnd.choice(homes[arr])
        sizes = [_sizes(rnd, kind)] if rnd.random() < 0.7 else [_sizes(rnd, kind), _sizes(rnd, kind)]
        v = b.vm(home, sizes)
        b.plant(rnd.choice(targets(arr)), v.size)


def family_packing(seed: int) -> Inventory:
    b = _Builder(random.Random(seed))
    homes = {"A": b.array("A", 3, roomy=True)}
    tb = b.array("B", 4)
    _needing_copies(b, homes, lambda _: tb, 18, "plain")
    return b.inventory()


def family_cross(seed: int, kind: str = "plain", n: int = 24) -> Inventory:
    b = _Builder(random.Random(seed))
    homes = {a: b.array(a, 2) for a in ("A", "B", "C")}
    _needing_copies(b, homes, lambda arr: [d for a, ids in homes.items() if a != arr for d in ids], n, kind)
    return b.inventory()


def family_few_outside(seed: int) -> Inventory:
    b = _Builder(random.Random(seed))
    rnd = b.rnd
    homes = {a: b.array(a, 3) for a in ("A", "B")}
    (c,) = b.array("C", 1)
    for k in range(20):
        arr = "AB"[k % 2]
        big = rnd.random() < 0.3
        v = b.vm(rnd.choice(homes[arr]), [rnd.randint(250, 450) if big else rnd.randint(20, 120)])
        other = "AB"[(k + 1) % 2]
        b.plant(c if big else rnd.choice(homes[other]), v.size)
    return b.inventory()


def family_mixed(seed: int) -> Inventory:
    return family_cross(seed, "mixed", 30)


def family_headroom(seed: int) -> Inventory:
    b = _Builder(random.Random(seed))
    rnd = b.rnd
    over = b.array("A", 4)
    sec = b.array("B", 2, roomy=True)
    for o in over[:2]:
        b.over.add(o)
        b.leaving[o] = 0
        for _ in range(8):
            v = b.vm(o, [_sizes(rnd, "mixed")], secondary_on=rnd.choice(sec))
            if rnd.random() < 0.35:  # planted: this disk leaves, to a tight datastore of the same array
                b.leaving[o] += v.size
                b.plant(rnd.choice(over[2:]), v.size)
        if b.leaving[o] == 0:  # something must leave
            v = b.vms[-1]
            b.leaving[o] += v.size
            b.plant(over[2], v.size)
    for t in over[2:]:
        for _ in range(3):
            b.vm(t, [_sizes(rnd, "plain")], secondary_on=rnd.choice(sec))
    return b.inventory()


def family_roomy(seed: int) -> Inventory:
    return make_estate(100, 20, 4, seed=seed, small=True, over_rate=0.15, fill_range=(0.35, 0.7))


def family_tight(seed: int) -> Inventory:
    return make_estate(100, 20, 4, seed=seed, small=True, over_rate=0.2, fill_range=(0.7, 0.86))


FAMILIES: dict[str, Callable[[int], Inventory]] = {
    "packing": family_packing,
    "cross": family_cross,
    "few-outside": family_few_outside,
    "mixed": family_mixed,
    "headroom": family_headroom,
    "roomy": family_roomy,
    "tight": family_tight,
}


# -- the strategies -------------------------------------------------------------------------------
def _planner(**how: bool) -> Callable[[Inventory, Any, list[Any]], Any]:
    def run(inv: Inventory, cfg: Any, findings: list[Any]) -> Any:
        rules, known = rules_for(inv)
        return Planner(inv, cfg, findings, rules, known, capabilities=capabilities_for(inv), **how).run()

    return run


STRATEGIES: dict[str, Callable[[Inventory, Any, list[Any]], Any]] = {
    "ftbridge": lambda inv, cfg, findings: plan(inv, cfg, findings),
    "balance": _planner(),
    "best-fit": _planner(tight=True),
    "smallest-first": _planner(smallest_first=True),
}


def instance(family: str, seed: int) -> dict[str, Any]:
    inv = FAMILIES[family](seed)
    cfg = config()
    findings = list(audit(inv, cfg).findings)
    fixable = {f.id for f in findings if f.fixable}
    t0 = time.process_time()
    best = exact_optimum(inv, cfg, findings)
    t_opt = time.process_time() - t0
    row: dict[str, Any] = {"family": family, "seed": seed, "fixable": len(fixable), "opt": best, "opt_s": t_opt}
    for name, strategy in STRATEGIES.items():
        result = strategy(inv, cfg, findings)
        row[name] = None if result is None else (len(result.closed & fixable), result.bytes_moved / GIB)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--instances", type=int, default=6, help="instances (seeds) per family")
    ap.add_argument("--families", default=",".join(FAMILIES))
    args = ap.parse_args(argv)
    try:
        import pulp  # noqa: F401
    except ImportError:
        print("optimality: needs the MILP solver: pip install pulp")
        return 2
    names = list(STRATEGIES)
    print("per instance: findings fixed / bytes copied (GiB); optimum = most findings fixed, then fewest bytes")
    print(f"{'family':<12} {'seed':>4} {'fixable':>7} {'optimum':>13}" + "".join(f" {n:>16}" for n in names))
    # per family and strategy: (findings the optimum fixes, findings the strategy fixes, bytes ratio or None)
    summary: dict[str, dict[str, list[tuple[int, int, float | None]]]] = {}
    for family in args.families.split(","):
        per = summary.setdefault(family, {n: [] for n in names})
        for k in range(args.instances):
            r = instance(family, 100 + k)
            opt = r["opt"]
            cells = []
            for n in names:
                if r[n] is None:
                    cells.append("n/a")
                    continue
                fixed, gib_ = r[n]
                cells.append(f"{fixed:>4} / {gib_:>7.0f}")
                if opt is None:
                    continue
                # lexicographic: a plan fixing fewer than the optimum has no bytes ratio
                ratio = None if fixed < opt[0] else (gib_ / opt[1] if opt[1] > 0 else 1.0)
                per[n].append((opt[0], fixed, ratio))
            o = f"{opt[0]:>4} / {opt[1]:>6.0f}" if opt else "     n/a     "
            print(
                f"{family:<12} {r['seed']:>4} {r['fixable']:>7} {o:>13}" + "".join(f" {c:>16}" for c in cells),
                flush=True,
            )
    print(
        "\nper family and strategy: findings ratio = findings the optimum fixes / findings the strategy fixes "
        "(summed over the instances; 1.000 = as many);\nbytes ratio = bytes copied / the optimum's, mean on the "
        "instances where it fixes as many as the optimum (how many in brackets)"
    )
    print(f"{'family':<12}" + "".join(f" {n + ' findings':>24} {'bytes':>13}" for n in names))
    for family, per in summary.items():
        cells = []
        for n in names:
            xs = per[n]
            want, got = sum(x[0] for x in xs), sum(x[1] for x in xs)
            ok = [x[2] for x in xs if x[2] is not None]
            fx = "n/a" if not xs else f"{want / got:.3f}" if got else "inf"
            by = f"{sum(ok) / len(ok):.3f}" if ok else "-"
            cells.append(f" {fx:>24} {by + f' ({len(ok)}/{len(xs)})':>13}")
        print(f"{family:<12}" + "".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
