"""Failover planning: for a failed domain, named VMs, or what is down, which VMs come up where.

For each affected VM the planner picks the secondary that lies wholly outside the failed set
(accessible, in sync first, then least lag) and a surviving host that mounts its datastores
(its own host when it has one; otherwise the least loaded, with room for the VM's memory when
hosts report memory). It refuses to plan a promotion while the primary still runs and can be
reached (split brain) unless the plan fences it first or the operator forces it; both are
recorded in the plan. VMs it cannot bring up are listed with the reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ftbridge.config import Config
from ftbridge.domains import Failed
from ftbridge.errors import PlanError
from ftbridge.failover.recovery import RecoveryPlan
from ftbridge.inventory import Inventory
from ftbridge.model import VM, HostState, PowerState, Secondary, SecondaryState

FAILOVER_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Step:
    endpoint: str
    vm: str
    vm_name: str
    secondary: str
    mechanism: str
    host: str | None  # target host id; None lets the driver pick (another endpoint's copy)
    host_name: str | None
    lag: float | None  # the data this VM may lose, in seconds
    group: str
    group_index: int
    order: int
    fence: bool = False  # power off the primary first
    forced: bool = False  # the operator forced a promotion while the primary may still run
    original: dict[str, Any] = field(default_factory=dict)  # where the VM ran, for failback
    #: where the secondary's files are (primary disk id -> datastore): the promote's postcondition
    secondary_disks: dict[str, str] = field(default_factory=dict)
    secondary_config: str | None = None

    @property
    def key(self) -> str:
        return f"{self.endpoint}/{self.vm}"


@dataclass(frozen=True)
class Blocked:
    endpoint: str
    vm: str
    vm_name: str
    reason: str


@dataclass
class FailoverPlan:
    scope: str
    fingerprint: str
    steps: list[Step]
    blocked: list[Blocked]
    created_at: float = field(default_factory=time.time)
    #: HA VMs whose host failed but whose shared primary storage survived: the platform's HA
    #: restarts them from that storage, losing nothing; promoting a copy would lose its lag
    left_to_ha: list[Blocked] = field(default_factory=list)
    estate_id: str = ""  # hosts and datastores it was made for (ftbridge.planning.planfile.estate_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": FAILOVER_SCHEMA_VERSION,
            "kind": "failover",
            "scope": self.scope,
            "created_at": self.created_at,
            "inventory_fingerprint": self.fingerprint,
            "estate_id": self.estate_id,
            "steps": [asdict(s) for s in self.steps],
            "blocked": [asdict(b) for b in self.blocked],
            "left_to_ha": [asdict(b) for b in self.left_to_ha],
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "failover plan") -> FailoverPlan:
        if not isinstance(data, dict) or data.get("kind") != "failover":
            raise PlanError(f"{source}: not an ftbridge failover plan")
        if data.get("schema_version") != FAILOVER_SCHEMA_VERSION:
            raise PlanError(
                f"{source}: schema_version {data.get('schema_version')!r}, "
                f"this ftbridge reads {FAILOVER_SCHEMA_VERSION}"
            )
        try:
            return cls(
                scope=str(data["scope"]),
                fingerprint=str(data["inventory_fingerprint"]),
                steps=[Step(**s) for s in data["steps"]],
                blocked=[Blocked(**b) for b in data["blocked"]],
                left_to_ha=[Blocked(**b) for b in data.get("left_to_ha", [])],
                created_at=float(data["created_at"]),
                estate_id=str(data.get("estate_id", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanError(f"{source}: malformed failover plan: {exc}") from exc

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> FailoverPlan:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise PlanError(f"{path}: cannot read: {exc.strerror}") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PlanError(f"{path}: corrupt failover plan (not JSON): {exc}") from exc
        return cls.from_dict(data, str(path))


def affected_by(inv: Inventory, failed: Failed) -> list[VM]:
    """VMs whose host or any primary datastore is in the failed set."""
    out = []
    for vm in inv.vms:
        if (vm.endpoint, vm.host) in failed.hosts or any(
            (vm.endpoint, d) in failed.datastores for d in vm.primary_datastores
        ):
            out.append(vm)
    return out


def plan_failover(
    inv: Inventory,
    config: Config,
    vms: Iterable[VM],
    failed: Failed,
    *,
    recovery: RecoveryPlan | None = None,
    fence: bool = False,
    force: bool = False,
) -> FailoverPlan:
    recovery = recovery or RecoveryPlan()
    load: dict[tuple[str, str], int] = {}  # memory promised per host in this plan
    for v in inv.vms:
        if v.host and v.power is PowerState.ON and (v.endpoint, v.host) not in failed.hosts:
            load[(v.endpoint, v.host)] = load.get((v.endpoint, v.host), 0) + v.memory
    steps: list[Step] = []
    blocked: list[Blocked] = []
    left_to_ha: list[Blocked] = []
    ordered = sorted(vms, key=lambda v: (*recovery.place(v), v.endpoint, v.name))
    for vm in ordered:
        if (why := _ha_restarts(inv, vm, failed)) is not None:
            left_to_ha.append(Blocked(vm.endpoint, vm.id, vm.name, why))
            continue
        reason, choice = _choose(inv, config, vm, failed, load)
        if choice is None:
            blocked.append(Blocked(vm.endpoint, vm.id, vm.name, reason))
            continue
        sec, host = choice
        running = _primary_runs(inv, vm, failed)
        if running and not (fence or force):
            blocked.append(
                Blocked(
                    vm.endpoint,
                    vm.id,
                    vm.name,
                    "its primary still runs on a reachable host: fence it (--fence) or force "
                    "(--force) to promote without split brain",
                )
            )
            continue
        if host is not None:
            load[(vm.endpoint, host)] = load.get((vm.endpoint, host), 0) + vm.memory
        gi, gname, pos = recovery.place(vm)
        steps.append(
            Step(
                endpoint=vm.endpoint,
                vm=vm.id,
                vm_name=vm.name,
                secondary=sec.id,
                mechanism=sec.mechanism,
                host=host,
                host_name=(h.name if (h := inv.host(vm.endpoint, host)) else None),
                lag=sec.lag,
                group=gname,
                group_index=gi,
                order=pos,
                fence=running and fence,
                forced=running and force and not fence,
                original={
                    "host": vm.host,
                    "config_datastore": vm.config_datastore,
                    "disks": {d.id: d.datastore for d in vm.disks},
                },
                secondary_disks={d.disk: d.datastore for d in sec.disks},
                secondary_config=sec.config_datastore,
            )
        )
    return FailoverPlan(
        scope=failed.why,
        fingerprint=inv.fingerprint(),
        steps=steps,
        blocked=blocked,
        left_to_ha=left_to_ha,
        estate_id=estate_of(inv, {s.endpoint for s in steps}),
    )


def estate_of(inv: Inventory, endpoints: set[str]) -> str:
    """The estate id of just these endpoints: the apply checks only the endpoints a document names."""
    from ftbridge.planning.planfile import estate_id

    return estate_id(
        Inventory(
            [e for e in inv.endpoints if e.name in endpoints],
            [h for h in inv.hosts if h.endpoint in endpoints],
            [d for d in inv.datastores if d.endpoint in endpoints],
            [],
        )
    )


def _ha_restarts(inv: Inventory, vm: VM, failed: Failed) -> str | None:
    """Why the platform's HA will bring this VM back by itself, or None."""
    if not vm.ha or (vm.endpoint, vm.host) not in failed.hosts:
        return None
    stores = [inv.datastore(vm.endpoint, i) for i in sorted(vm.primary_datastores)]
    if not stores or any(
        d is None or not d.shared or not d.accessible or (vm.endpoint, d.id) in failed.datastores for d in stores
    ):
        return None
    survivors = [
        h
        for h in inv.hosts
        if h.endpoint == vm.endpoint
        and h.state is HostState.UP
        and (vm.endpoint, h.id) not in failed.hosts
        and all(h.id in d.hosts for d in stores if d)
    ]
    if not survivors:
        return None
    return (
        f"its host failed but its shared storage did not: the platform's HA restarts it on one of "
        f"{len(survivors)} surviving hosts without losing data"
    )


def _primary_runs(inv: Inventory, vm: VM, failed: Failed) -> bool:
    host = inv.host(vm.endpoint, vm.host)
    if vm.power is not PowerState.ON or host is None or host.state is not HostState.UP:
        return False
    for ds_id in vm.primary_datastores:
        d = inv.datastore(vm.endpoint, ds_id)
        if d is None or not d.accessible:
            return False
    return True


def _choose(
    inv: Inventory, config: Config, vm: VM, failed: Failed, load: dict[tuple[str, str], int]
) -> tuple[str, tuple[Secondary, str | None] | None]:
    if not vm.secondaries:
        return "no secondary", None
    reasons = []
    usable: list[tuple[Secondary, str | None]] = []
    for s in vm.secondaries:
        if s.state in (SecondaryState.BROKEN, SecondaryState.UNKNOWN, SecondaryState.SYNCING):
            reasons.append(f"secondary {s.id} is {s.state.value}")
            continue
        if s.target_endpoint is not None:
            usable.append((s, None))
            continue
        inside = [i for i in sorted(s.datastores) if (vm.endpoint, i) in failed.datastores]
        if inside:
            names = [(d.name if (d := inv.datastore(vm.endpoint, i)) else i) for i in inside]
            reasons.append(f"secondary {s.id} lies in the failed domain ({', '.join(names)})")
            continue
        gone = [i for i in sorted(s.datastores) if (d := inv.datastore(vm.endpoint, i)) is None or not d.accessible]
        if gone:
            reasons.append(f"secondary {s.id} is on inaccessible storage")
            continue
        host, why = _host_for(inv, vm, s, failed, load)
        if host is None:
            reasons.append(why)
            continue
        usable.append((s, host))
    if not usable:
        return "; ".join(reasons) or "no usable secondary", None
    usable.sort(key=lambda c: (c[0].state is not SecondaryState.IN_SYNC, c[0].lag or 0.0, c[0].id))
    return "", usable[0]


def _host_for(
    inv: Inventory, vm: VM, s: Secondary, failed: Failed, load: dict[tuple[str, str], int]
) -> tuple[str | None, str]:
    def ok(host_id: str) -> bool:
        h = inv.host(vm.endpoint, host_id)
        if h is None or h.state is not HostState.UP or (vm.endpoint, host_id) in failed.hosts:
            return False
        if h.memory and load.get((vm.endpoint, host_id), 0) + vm.memory > h.memory:
            return False
        return all(host_id in d.hosts for i in s.datastores if (d := inv.datastore(vm.endpoint, i)))

    if s.host and ok(s.host):
        return s.host, ""
    mounting = [
        h
        for h in inv.hosts
        if h.endpoint == vm.endpoint
        and h.state is HostState.UP
        and (vm.endpoint, h.id) not in failed.hosts
        and all(h.id in d.hosts for i in s.datastores if (d := inv.datastore(vm.endpoint, i)))
    ]
    if not mounting:
        return None, f"no surviving host mounts the datastores of secondary {s.id}"
    fits = [h for h in mounting if ok(h.id)]
    if not fits:
        need = vm.memory / 1024**3
        return None, f"not enough memory on the surviving hosts for {need:.0f} GiB (secondary {s.id})"
    fits.sort(key=lambda h: (load.get((vm.endpoint, h.id), 0) - h.memory if h.memory else 0, h.id))
    return fits[0].id, ""
