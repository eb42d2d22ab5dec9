"""The sim platform's persistent state: a JSON file beside the estate, shared by processes.

Every command (plan, apply, audit, a killed apply and its resume) sees one estate because
each mutation is written atomically (temp file + rename) under an exclusive ``flock``; readers
reload only when the file changed.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ftbridge.estate import Estate

STATE_VERSION = 1


def seed_state(estate: Estate) -> dict[str, Any]:
    """The initial state of an estate: plain dicts, keyed by id."""
    return {
        "version": STATE_VERSION,
        "estate": estate.name,
        "flavor": estate.flavor,
        "password_sha256": estate.password_sha256,
        "hosts": {
            h.id: {"name": h.name, "cluster": h.cluster, "state": h.state.value, "memory": h.memory}
            for h in estate.hosts
        },
        "datastores": {
            d.id: {
                "name": d.name,
                "kind": d.kind,
                "shared": d.shared,
                "hosts": list(d.hosts),
                "capacity": d.capacity,
                "free": d.free,
                "accessible": d.accessible,
                "content": None if d.content is None else sorted(d.content),
                "thin": d.thin,
                "reserve": d.reserve,
            }
            for d in estate.datastores
        },
        "networks": {
            n.id: {"name": n.name, "kind": n.kind, "vlan": n.vlan, "hosts": list(n.hosts)} for n in estate.networks
        },
        "vms": {
            v.id: {
                "name": v.name,
                "host": v.host,
                "power": v.power.value,
                "vcpus": v.vcpus,
                "memory": v.memory,
                "tags": list(v.tags),
                "ha": v.ha,
                "config_datastore": v.config_datastore,
                "cluster": v.cluster,
                "uuid": v.uuid,
                "managed_by": v.managed_by,
                "depends_on": [{"kind": d.kind, "datastore": d.datastore, "path": d.path} for d in v.depends_on],
                "nics": [{"id": n.id, "network": n.network, "mac": n.mac, "model": n.model} for n in v.nics],
                "disks": [
                    {
                        "id": d.id,
                        "size": d.size,
                        "datastore": d.datastore,
                        "kind": d.kind,
                        "movable": d.movable,
                        "content": d.content,
                        "allocated": d.allocated,
                        "thin": d.thin,
                        "shared_by": list(d.shared_by),
                    }
                    for d in v.disks
                ],
                "secondaries": [
                    {
                        "id": s.id,
                        "mechanism": s.mechanism,
                        "host": s.host,
                        "state": s.state.value,
                        "lag": s.lag,
                        "config_datastore": s.config_datastore,
                        "metadata_datastore": s.metadata_datastore,
                        "disks": {x.disk: x.datastore for x in s.disks},
                        "missing": list(s.missing),
                    }
                    for s in v.secondaries
                ],
            }
            for v in estate.vms
        },
        "ops": {},
        "tests": {},
        "faults": {
            "hosts_down": [],
            "hosts_down_at": {},
            "hosts_unreachable": [],
            "datastores_down": [],
            "fail_sync": [],
            "hold_sync": [],
            "fail_rate": 0.0,
            "fail_permanent": [],
            "slow": 0.0,
            "seed": 0,
            "refuse_connections": False,
            "hold": False,  # operations stay running until released (tests that must not race)
        },
        "attempts": {},
        "violations": [],
        "seq": 0,
    }


class StateFile:
    """Load, lock and atomically save one sim state file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")

    def exists(self) -> bool:
        return self.path.exists()

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as lf:
            fcntl.flock(lf, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lf, fcntl.LOCK_UN)

    def read(self) -> dict[str, Any]:
        with open(self.path, encoding="utf-8") as f:
            return json.load(f)  # type: ignore[no-any-return]

    def write(self, state: dict[str, Any]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(state, f, separators=(",", ":"))
            f.flush()
            # no fsync: atomic rename is all a simulator needs (a crash test kills the process, not power)
        os.replace(tmp, self.path)

    def remove(self) -> bool:
        existed = self.path.exists()
        for p in (self.path, self.lock_path):
            p.unlink(missing_ok=True)
        return existed
