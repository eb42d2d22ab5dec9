"""Test kit for the planner and the apply: small estates in a few lines, and plan checkers.

Imported by tests/test_plan_*.py and tests/test_apply_*.py (which put this folder on sys.path).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ftbridge.config import Config, parse_config
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
from ftbridge.planning.planfile import content_digest
from ftbridge.sim.state import dump as dump_sim_state

GIB = 1024**3
ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "ftbridge" / "demo"
EP = "ep"


# -- in-memory inventories for the planner ----------------------------------------------------
def host(hid: str, *, cluster: str = "c1", site: str | None = None, ep: str = EP) -> Host:
    return Host(id=hid, name=f"host-{hid}", endpoint=ep, cluster=cluster, domain=FailureDomain(site=site, host=hid))


def ds(
    did: str,
    cap: int,
    free: int,
    *,
    array: str | None = None,
    site: str | None = None,
    hosts: tuple[str, ...] = ("h1", "h2", "h3"),
    kind: str = "nfs",
    shared: bool | None = None,
    ep: str = EP,
) -> Datastore:
    """Sizes in GiB."""
    return Datastore(
        id=did,
        name=f"ds-{did}",
        endpoint=ep,
        kind=kind,
        shared=len(hosts) > 1 if shared is None else shared,
        hosts=hosts,
        capacity=cap * GIB,
        free=free * GIB,
        domain=FailureDomain(site=site, array=array, datastore=f"ds-{did}"),
    )


def sec(
    sid: str,
    mechanism: str,
    disks: dict[str, str],
    *,
    sizes: dict[str, int] | None = None,
    host: str | None = None,
    state: SecondaryState = SecondaryState.IN_SYNC,
    config: str | None = None,
    meta: str | None = None,
) -> Secondary:
    return Secondary(
        id=sid,
        mechanism=mechanism,
        host=host,
        state=state,
        lag=0.0,
        config_datastore=config,
        metadata_datastore=meta,
        disks=tuple(SecondaryDisk(disk=k, datastore=v, size=(sizes or {}).get(k, 0) * GIB) for k, v in disks.items()),
    )


def vm(
    vid: str,
    host_id: str | None,
    disks: list[tuple[str, int, str]],
    *,
    secs: tuple[Secondary, ...] = (),
    tags: tuple[str, ...] = (),
    vcpus: int = 1,
    config: str | None = None,
    ep: str = EP,
) -> VM:
    dk = tuple(Disk(id=d, size=s * GIB, datastore=x) for d, s, x in disks)
    return VM(
        id=vid,
        name=f"vm-{vid}",
        endpoint=ep,
        host=host_id,
        power=PowerState.ON,
        disks=dk,
        config_datastore=config or (dk[0].datastore if dk else None),
        secondaries=secs,
        tags=tags,
        vcpus=vcpus,
    )


def inventory(
    hosts: list[Host], dss: list[Datastore], vms: list[VM], *, mechanisms: tuple[str, ...] = ("sim-copy",)
) -> Inventory:
    eps = sorted({h.endpoint for h in hosts} | {d.endpoint for d in dss})
    return Inventory([EndpointInfo(name=e, driver="sim", mechanisms=mechanisms) for e in eps], hosts, dss, vms)


def config(policies: dict[str, dict[str, Any]], **extra: Any) -> Config:
    return parse_config({"policies": json.loads(json.dumps(policies)), **extra}, source=Path("test.toml"))


# -- checking a plan ----------------------------------------------------------------------------
def _effects(
    doc: dict[str, Any], inv: Inventory
) -> tuple[dict[str, dict[tuple[str, str], int]], dict[str, dict[tuple[str, str], int]]]:
    """Per action: bytes it takes per datastore (at start) and frees (at its end)."""
    where = {(v.endpoint, v.id): {d.id: d.datastore for d in v.disks} for v in inv.vms}
    sizes = {(v.endpoint, v.id): {d.id: d.size for d in v.disks} for v in inv.vms}
    secs = {(v.endpoint, v.id, s.id): s for v in inv.vms for s in v.secondaries}
    takes: dict[str, dict[tuple[str, str], int]] = {}
    frees: dict[str, dict[tuple[str, str], int]] = {}
    for a in doc["actions"]:
        key = (a["endpoint"], a["vm"])
        t: dict[tuple[str, str], int] = {}
        f: dict[tuple[str, str], int] = {}
        if a["kind"] == "move_disk":
            t[(a["endpoint"], a["to"])] = sizes[key][a["disk"]]
            f[(a["endpoint"], where[key][a["disk"]])] = sizes[key][a["disk"]]
            where[key][a["disk"]] = a["to"]
        elif a["kind"] == "move_vm":
            for d in a["disks"]:
                t[(a["endpoint"], a["to"])] = t.get((a["endpoint"], a["to"]), 0) + sizes[key][d]
                src = (a["endpoint"], where[key][d])
                f[src] = f.get(src, 0) + sizes[key][d]
                where[key][d] = a["to"]
        elif a["kind"] == "protect":
            for d, x in a["spec"]["disks"].items():
                t[(a["endpoint"], x)] = t.get((a["endpoint"], x), 0) + sizes[key][d]
        else:
            s = secs.get((a["endpoint"], a["vm"], a["secondary"]))
            if s is not None:
                for sd in s.disks:
                    k = (a["endpoint"], sd.datastore)
                    f[k] = f.get(k, 0) + (sd.size or sizes[key][sd.disk])
        takes[a["id"]] = t
        frees[a["id"]] = f
    return takes, frees


def capacity_violations(doc: dict[str, Any], inv: Inventory, keep_pct: float = 0.0) -> list[str]:
    """Worst case over every order the apply may choose, exactly. When action ``b`` starts, any
    set ``S`` of other actions that take space on the same datastore may be running (taken, not
    yet freed), except ``b``'s descendants; everything ``S`` and ``b`` depend on has completed:
    taken *and* freed. The worst ``S`` is searched exhaustively (takers per datastore are few
    in the tests' estates). Returns each place a target would drop below ``keep_pct`` of its
    capacity (0: below zero)."""
    from itertools import combinations

    ids = [a["id"] for a in doc["actions"]]
    deps = {a["id"]: set(a["depends_on"]) for a in doc["actions"]}
    anc: dict[str, set[str]] = {}
    for i in ids:  # dependencies are earlier actions
        s: set[str] = set()
        for d in deps[i]:
            s |= {d} | anc[d]
        anc[i] = s
    takes, frees = _effects(doc, inv)
    cap = {(d.endpoint, d.id): d.capacity for d in inv.datastores}
    free0 = {(d.endpoint, d.id): d.free for d in inv.datastores}
    out = []
    for b in ids:
        for dsk, nbytes in takes[b].items():
            others = [a for a in ids if a != b and b not in anc[a] and takes[a].get(dsk)]
            assert len(others) <= 16, "too many takers to search exhaustively"
            worst = None
            for n in range(len(others) + 1):
                for running in combinations(others, n):
                    done = set(anc[b]).union(*(anc[a] for a in running)) - set(running)
                    taken = sum(takes[a].get(dsk, 0) for a in done | set(running)) + nbytes
                    freed = sum(frees[a].get(dsk, 0) for a in done)
                    level = free0[dsk] - taken + freed
                    worst = level if worst is None else min(worst, level)
            keep = int(cap[dsk] * keep_pct / 100)
            if worst is not None and worst < keep:
                out.append(f"{b} on {dsk[1]}: worst case {worst / GIB:.1f} GiB free, keep {keep / GIB:.1f}")
    return out


def end_free(doc: dict[str, Any], inv: Inventory) -> dict[tuple[str, str], int]:
    takes, frees = _effects(doc, inv)
    out = {(d.endpoint, d.id): d.free for d in inv.datastores}
    for a in doc["actions"]:
        for k, n in takes[a["id"]].items():
            out[k] -= n
        for k, n in frees[a["id"]].items():
            out[k] += n
    return out


def resign(doc: dict[str, Any]) -> dict[str, Any]:
    """A hand-edited plan with its plan_id made to match again (tests only)."""
    doc = json.loads(json.dumps(doc))
    doc["plan_id"] = content_digest(doc)
    return doc


# -- sim estates on disk, for the apply ---------------------------------------------------------
def copy_demo(dst: Path, *, op_seconds: float = 0.02, extra: str = "") -> Path:
    """The demo config and estate in ``dst``, fast operations, private state and journal."""
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEMO / "estate.toml", dst / "estate.toml")
    text = (DEMO / "ftbridge.toml").read_text()
    text = text.replace('estate = "estate.toml"', f'estate = "estate.toml"\nop_seconds = {op_seconds}')
    text += f'\n[state]\ndir = "state"\n\n[apply]\nbackoff = "0.01s"\n{extra}\n'
    (dst / "ftbridge.toml").write_text(text)
    return dst / "ftbridge.toml"


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def write_estate(
    dst: Path,
    name: str,
    flavor: str,
    body: dict[str, list[dict[str, Any]]],
    *,
    policies: str,
    domains: str = "",
    op_seconds: float = 0.02,
    extra: str = "",
) -> Path:
    """An estate file and a config for one sim endpoint ``name``; returns the config path."""
    dst.mkdir(parents=True, exist_ok=True)
    lines = [f"[estates.{name}]", f'flavor = "{flavor}"', ""]
    for section in ("hosts", "datastores", "vms"):
        for item in body.get(section, []):
            lines.append(f"[[estates.{name}.{section}]]")
            lines += [f"{k} = {toml_value(v)}" for k, v in item.items()]
            lines.append("")
    (dst / "estate.toml").write_text("\n".join(lines))
    cfg = (
        f'[endpoints.{name}]\ndriver = "sim"\nestate = "estate.toml"\nop_seconds = {op_seconds}\n\n'
        f'{domains}\n{policies}\n[state]\ndir = "state"\n\n[apply]\nbackoff = "0.01s"\n{extra}\n'
    )
    (dst / "ftbridge.toml").write_text(cfg)
    return dst / "ftbridge.toml"


def sim_states(where: Path) -> dict[str, Any]:
    """Every sim state beside an estate, as plain data (to prove nothing changed)."""
    return {p.name: dump_sim_state(p) for p in sorted(where.glob("*.simstate.db"))}


def normalized_state(where: Path) -> dict[str, Any]:
    """The sim estates' end state without what differs between equivalent runs (ids, times)."""
    out: dict[str, Any] = {}
    for p in sorted(where.glob("*.simstate.db")):
        s = dump_sim_state(p)
        vms = {}
        for vid, v in s["vms"].items():
            vms[vid] = {
                "host": v["host"],
                "config": v["config_datastore"],
                "disks": sorted((d["id"], d["datastore"]) for d in v["disks"]),
                "secondaries": sorted(
                    json.dumps(
                        {
                            "mechanism": x["mechanism"],
                            "host": x["host"],
                            "state": x["state"],
                            "config": x["config_datastore"],
                            "meta": x["metadata_datastore"],
                            "disks": x["disks"],
                        },
                        sort_keys=True,
                    )
                    for x in v["secondaries"]
                ),
            }
        out[p.name] = {
            "vms": vms,
            "free": {k: d["free"] for k, d in s["datastores"].items()},
            "running": [k for k, o in s["ops"].items() if o["state"] == "running"],
            "violations": s["violations"],
        }
    return out


def sim_ops(where: Path) -> list[dict[str, Any]]:
    """Every operation the sim platforms ran (kind, VM, params, state)."""
    out = []
    for p in sorted(where.glob("*.simstate.db")):
        s = dump_sim_state(p)
        for op_id, o in s["ops"].items():
            out.append(
                {
                    "estate": s["estate"],
                    "id": op_id,
                    "kind": o["kind"],
                    "vm": o["vm"],
                    "params": o["params"],
                    "state": o["state"],
                }
            )
    return out


def ftb(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The real command in a subprocess (isolated from the user's FTBRIDGE_* settings)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FTBRIDGE_")}
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "ftbridge", *args], capture_output=True, text=True, env=base, cwd=cwd, timeout=timeout
    )


def apply_virtually(doc: dict[str, Any], inv: Inventory) -> Inventory:
    """The inventory after every action of the plan ran (what a perfect apply leaves)."""
    from dataclasses import replace

    frees = end_free(doc, inv)
    vms = {(v.endpoint, v.id): v for v in inv.vms}
    for a in doc["actions"]:
        key = (a["endpoint"], a["vm"])
        v = vms[key]
        if a["kind"] == "move_disk":
            v = replace(v, disks=tuple(replace(d, datastore=a["to"]) if d.id == a["disk"] else d for d in v.disks))
        elif a["kind"] == "move_vm":
            v = replace(
                v,
                disks=tuple(replace(d, datastore=a["to"]) if d.id in a["disks"] else d for d in v.disks),
                config_datastore=a["to"] if a["config_from"] is not None else v.config_datastore,
            )
        elif a["kind"] == "protect":
            sp = a["spec"]
            sizes = {d.id: d.size for d in v.disks}
            new = Secondary(
                id="new-" + a["id"],
                mechanism=sp["mechanism"],
                host=sp["host"],
                state=SecondaryState.IN_SYNC,
                lag=0.0,
                config_datastore=sp["config_datastore"],
                metadata_datastore=sp["metadata_datastore"],
                disks=tuple(SecondaryDisk(disk=k, datastore=x, size=sizes[k]) for k, x in sp["disks"].items()),
            )
            v = replace(v, secondaries=(*v.secondaries, new))
        else:
            v = replace(v, secondaries=tuple(s for s in v.secondaries if s.id != a["secondary"]))
        vms[key] = v
    dss = [replace(d, free=frees[(d.endpoint, d.id)]) for d in inv.datastores]
    return Inventory(inv.endpoints, inv.hosts, dss, list(vms.values()), inv.collected_at)
