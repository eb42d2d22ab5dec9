"""Where each VM last ran: the one thing a platform forgets exactly when a failover needs it.

When a host dies, platforms stop saying what ran there: oVirt sets the VMs of a fenced host
Down with no host, Proxmox VE cannot serve the config of a guest whose node is offline (it is
read through that node). Restarting those VMs from their intact storage needs where they ran
and which datastores they use, so every live inventory records, per VM seen *running* with its
disks known, that placement and when it was seen (``last-running.json`` in the state
directory). Nothing else reads this memory: audit, plan and apply decide from the live estate;
only failover fills a VM the platform no longer places with where it was last seen running,
and says so in its plan.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ftbridge.inventory import Inventory
from ftbridge.model import VM, Disk, PowerState
from ftbridge.statefiles import atomic_write

FILE = "last-running.json"


@dataclass(frozen=True, slots=True)
class Seen:
    host: str
    config_datastore: str | None
    disks: tuple[tuple[str, str, int], ...]  # (disk id, datastore id, size)
    at: float


def record(state_dir: Path, inv: Inventory) -> None:
    """Remember every VM this inventory shows running with its disks (merged into the file)."""
    fresh = {
        f"{v.endpoint}/{v.id}": {
            "host": v.host,
            "config_datastore": v.config_datastore,
            "disks": [[d.id, d.datastore, d.size] for d in v.disks],
            "at": inv.collected_at,
        }
        for v in inv.vms
        if v.power is PowerState.ON and v.host is not None and v.disks
    }
    if not fresh:
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / FILE
    with open(state_dir / (FILE + ".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        known = _read(path)
        known.update(fresh)
        atomic_write(path, json.dumps(known, sort_keys=True, separators=(",", ":")))


def load(state_dir: Path) -> dict[tuple[str, str], Seen]:
    out: dict[tuple[str, str], Seen] = {}
    for key, v in _read(state_dir / FILE).items():
        ep, _, vm = key.partition("/")
        try:
            out[(ep, vm)] = Seen(
                str(v["host"]),
                v.get("config_datastore"),
                tuple((str(d[0]), str(d[1]), int(d[2])) for d in v["disks"]),
                float(v["at"]),
            )
        except (KeyError, TypeError, ValueError, IndexError):
            continue  # a record this version cannot read proves nothing
    return out


def fill(inv: Inventory, seen: Mapping[tuple[str, str], Seen]) -> tuple[Inventory, dict[tuple[str, str], float]]:
    """The inventory with each VM the platform no longer places (no host, or no disks known)
    put where it was last seen running, if its host there is still in the inventory; and, per
    VM filled in, when it was seen. Running VMs are never touched."""
    filled: dict[tuple[str, str], float] = {}
    vms: list[VM] = []
    for v in inv.vms:
        s = seen.get((v.endpoint, v.id))
        if s is None or v.power is PowerState.ON or (v.host is not None and v.disks):
            vms.append(v)
            continue
        if v.host is not None and v.host != s.host:
            vms.append(v)  # the platform placed it elsewhere since: its word is newer
            continue
        if inv.host(v.endpoint, s.host) is None:
            vms.append(v)
            continue
        disks = v.disks or tuple(Disk(i, size, ds) for i, ds, size in s.disks)
        cfg = v.config_datastore if v.disks else (v.config_datastore or s.config_datastore)
        vms.append(replace(v, host=s.host, disks=disks, config_datastore=cfg))
        filled[(v.endpoint, v.id)] = s.at
    if not filled:
        return inv, filled
    return Inventory(inv.endpoints, inv.hosts, inv.datastores, vms, inv.collected_at, inv.networks), filled


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
