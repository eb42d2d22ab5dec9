"""Failover planning: for a failed domain, named VMs, or what is down, which VMs come up where.

Each affected VM takes the first of three paths that works, and the plan says which and why:

1. **restart** from its intact primary: its host is lost but every datastore it needs
   survives and a surviving host of its cluster mounts them all, with room for its memory:
   it restarts there and loses nothing. With HA on, the platform's HA goes first; ftbridge
   checks after ``[failover] ha_grace`` and restarts the VM itself if HA did not.
2. **promote** a copy: its primary storage is lost; the secondary wholly outside the failed
   set (accessible, whole, in sync first, then least lag) runs on a surviving host (its own
   where the mechanism pins one). It may lose the copy's lag.
3. **blocked**, with the reason.

Neither a restart nor a promotion goes ahead while the primary may still run (a host the
platform does not report down may still run it, reachable or not): the plan fences it first
(``--fence``) or is forced (``--force``), both recorded; the run checks again, live.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ftbridge.config import Config
from ftbridge.domains import Failed
from ftbridge.errors import PlanError
from ftbridge.failover.recovery import RecoveryPlan
from ftbridge.inventory import Inventory
from ftbridge.model import VM, Host, HostState, PowerState, Secondary, SecondaryState
from ftbridge.planning.capabilities import Offered, capabilities_for, offers
from ftbridge.planning.explain import cannot
from ftbridge.timefmt import parse_rfc3339, rfc3339

FAILOVER_SCHEMA_VERSION = 2  # 2: restart steps; left_to_ha folded into them


@dataclass(frozen=True)
class Step:
    """One VM brought up: restarted from its primary, or promoted from a secondary."""

    endpoint: str
    vm: str
    vm_name: str
    kind: str  # "restart" | "promote"
    why: str  # which path, and why, in words
    secondary: str | None
    mechanism: str | None
    host: str | None  # target host id; None lets the driver pick (another endpoint's copy)
    host_name: str | None
    lag: float | None  # the data this VM may lose, in seconds (0 for a restart)
    group: str
    group_index: int
    order: int
    fence: bool = False  # power off the primary first
    forced: bool = False  # the operator forced it while the primary may still run
    ha_grace: float = 0.0  # restart: give the platform's HA this long first
    target_endpoint: str | None = None  # promote a copy kept by another endpoint (DR)
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
    estate_id: str = ""
    #: VMs an extension or agent runs (a hosted engine, vCLS): left to it, never restarted here
    managed: list[Blocked] = field(
        default_factory=list
    )  # hosts and datastores it was made for (ftbridge.planning.planfile.estate_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": FAILOVER_SCHEMA_VERSION,
            "kind": "failover",
            "scope": self.scope,
            "created_at": rfc3339(self.created_at),
            "inventory_fingerprint": self.fingerprint,
            "estate_id": self.estate_id,
            "steps": [asdict(s) for s in self.steps],
            "blocked": [asdict(b) for b in self.blocked],
            "managed": [asdict(b) for b in self.managed],
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
        from ftbridge.failover.planshape import check_failover_plan

        check_failover_plan(data, source=source)
        try:
            return cls(
                scope=str(data["scope"]),
                fingerprint=str(data["inventory_fingerprint"]),
                steps=[Step(**s) for s in data["steps"]],
                blocked=[Blocked(**b) for b in data["blocked"]],
                managed=[Blocked(**b) for b in data.get("managed", [])],
                created_at=_when(data["created_at"]),
                estate_id=str(data.get("estate_id", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:  # the shape check lets none through
            raise PlanError(f"{source}: malformed failover plan: {type(exc).__name__}") from exc

    def save(self, path: Path) -> None:
        from ftbridge.statefiles import atomic_write

        atomic_write(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> FailoverPlan:
        from ftbridge.gcpause import gc_paused
        from ftbridge.loading import load_json

        with gc_paused():
            return cls.from_dict(load_json(path, what="failover plan", error=PlanError), str(path))


def _when(value: Any) -> float:
    """``created_at``: RFC 3339 (what ftbridge writes), or epoch seconds (plans written before)."""
    return parse_rfc3339(value) if isinstance(value, str) else float(value)


def affected_by(inv: Inventory, failed: Failed) -> list[VM]:
    """VMs whose host, or any datastore they need (their files, base disks, ISOs, leases), is in
    the failed set."""
    out = []
    for vm in inv.vms:
        if (vm.endpoint, vm.host) in failed.hosts or any(
            (vm.endpoint, d) in failed.datastores for d in vm.needed_datastores
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
    last_seen: Mapping[tuple[str, str], float] | None = None,
) -> FailoverPlan:
    """``last_seen``: VMs the inventory shows where they were last seen running (the platform
    no longer places them; :mod:`ftbridge.services.lastseen`), and when: their steps say so."""
    recovery = recovery or RecoveryPlan()
    caps = capabilities_for(inv)  # what each site said it can do: no step asks more of it
    room = _Room(inv, failed)
    load = room.load
    for v in inv.vms:
        if v.host and v.power is PowerState.ON and (v.endpoint, v.host) not in failed.hosts:
            load[(v.endpoint, v.host)] = load.get((v.endpoint, v.host), 0) + v.memory
    steps: list[Step] = []
    blocked: list[Blocked] = []
    managed = [Blocked(v.endpoint, v.id, v.name, f"run by {v.managed_by}: left to it") for v in vms if v.managed_by]
    vms = [v for v in vms if not v.managed_by]
    # recovery groups first; within a place: VMs that were up, HA ones first (as the DR role
    # starts them), then by name
    ordered = sorted(
        vms, key=lambda v: (*recovery.place(v), v.power is not PowerState.ON, not v.ha, v.endpoint, v.name)
    )
    for vm in ordered:
        host = inv.host(vm.endpoint, vm.host)
        kind, reason, choice = _path(config, vm, room)
        if last_seen and (vm.endpoint, vm.id) in last_seen:
            at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last_seen[(vm.endpoint, vm.id)]))
            reason += f" (its platform no longer places it: where it was last seen running, {at})"
        if choice is None:
            blocked.append(Blocked(vm.endpoint, vm.id, vm.name, reason))
            continue
        sec, target = choice
        running = vm.may_run(host)
        if running and not (fence or force):
            blocked.append(Blocked(vm.endpoint, vm.id, vm.name, _may_run_words(host)))
            continue
        refused = _not_offered(caps, vm.endpoint, kind, fence=running and fence)
        if refused is not None:
            blocked.append(Blocked(vm.endpoint, vm.id, vm.name, refused))
            continue
        if target is not None:
            load[(vm.endpoint, target)] = load.get((vm.endpoint, target), 0) + vm.memory
        gi, gname, pos = recovery.place(vm)
        steps.append(
            Step(
                endpoint=vm.endpoint,
                vm=vm.id,
                vm_name=vm.name,
                kind=kind,
                why=reason,
                secondary=sec.id if sec else None,
                mechanism=sec.mechanism if sec else None,
                host=target,
                host_name=(
                    h.name
                    if (h := inv.host(sec.target_endpoint or vm.endpoint if sec else vm.endpoint, target))
                    else None
                ),
                lag=sec.lag if sec else 0.0,
                group=gname,
                group_index=gi,
                order=pos,
                fence=running and fence,
                forced=running and force and not fence,
                ha_grace=config.failover.ha_grace if kind == "restart" and vm.ha else 0.0,
                target_endpoint=sec.target_endpoint if sec else None,
                original={
                    "host": vm.host,
                    "config_datastore": vm.config_datastore,
                    "disks": {d.id: d.datastore for d in vm.disks},
                },
                secondary_disks={d.disk: d.datastore for d in sec.disks} if sec else {},
                secondary_config=sec.config_datastore if sec else None,
            )
        )
    return FailoverPlan(
        scope=failed.why,
        fingerprint=inv.fingerprint(),
        steps=steps,
        blocked=blocked,
        managed=managed,
        estate_id=estate_of(inv, {s.endpoint for s in steps} | {s.target_endpoint for s in steps if s.target_endpoint}),
    )


def _not_offered(caps: Offered, endpoint: str, kind: str, *, fence: bool) -> str | None:
    """Why the endpoint cannot carry out the step (``kind``: restart or promote; after fencing
    the primary's host when ``fence``), or None. What its site said it can do (``probe()``, in
    the inventory) decides: a bare ESXi host offers no promote, a read-only oVirt account nothing
    that changes."""
    needs = [("fence", "fence a VM's host")] if fence else []
    needs.append(("restart", "restart a VM") if kind == "restart" else ("promote", "promote a copy"))
    missing = [(cap, what) for cap, what in needs if not offers(caps, endpoint, cap)]
    return cannot(endpoint, missing[0][0], missing[0][1]) if missing else None


def _may_run_words(host: Host | None) -> str:
    if host is not None and host.state in (HostState.UNREACHABLE, HostState.UNKNOWN):
        return (
            f"its host {host.name} cannot be reached ({host.state.value}), so the VM may still run there: "
            "fence it (--fence; needs power management the platform accepts) or force (--force) to "
            "go ahead without split brain"
        )
    return (
        "its primary still runs on a reachable host: fence it (--fence) or force (--force) to bring it "
        "up elsewhere without split brain"
    )


def _path(config: Config, vm: VM, room: _Room) -> tuple[str, str, tuple[Secondary | None, str | None] | None]:
    """(kind, why, (secondary or None, target host)) for one VM; choice None: blocked, why says why."""
    inv, failed = room.inv, room.failed
    lost = _lost_storage(inv, vm, failed)
    if not vm.needed_datastores:
        # nothing known of its storage (a config its lost host alone could serve): unknown is
        # not intact, so it is not restarted from it
        reason, choice = _choose(vm, room)
        if choice is None:
            return "promote", f"its storage is unknown (its config could not be read) and {reason}", None
        return (
            "promote",
            f"its storage is unknown (its config could not be read): promote {_copy_words(choice[0])}",
            choice,
        )
    if not lost:
        target, why_not = _restart_host(vm, room)
        if target is not None:
            name = h.name if (h := inv.host(vm.endpoint, target)) else target
            if vm.ha:
                why = (
                    f"its host failed but its storage did not: the platform's HA restarts it, losing nothing; "
                    f"if HA has not within {config.failover.ha_grace:.0f}s, ftbridge restarts it on {name}"
                )
            else:
                why = f"its host failed but its storage did not: restart it on {name} from that storage, losing nothing"
            return "restart", why, (None, target)
        reason, choice = _choose(vm, room)
        if choice is None:
            return "promote", f"its storage survived but {why_not}; and no copy can take over: {reason}", None
        return "promote", f"its storage survived but {why_not}: promote {_copy_words(choice[0])}", choice
    reason, choice = _choose(vm, room)
    if choice is None:
        return "promote", f"its primary storage is lost ({', '.join(lost)}) and {reason}", None
    return "promote", f"its primary storage is lost ({', '.join(lost)}): promote {_copy_words(choice[0])}", choice


def _copy_words(s: Secondary | None) -> str:
    if s is None:
        return "its copy"
    if s.state is SecondaryState.UNKNOWN:
        return (
            f"its {s.mechanism} copy {s.id} on {s.target_endpoint} (replicated outside the platform: "
            "it may lose what the replication had not sent)"
        )
    lag = "in sync" if s.lag in (None, 0.0) and s.state is SecondaryState.IN_SYNC else f"may lose {s.lag or 0:.0f}s"
    return f"its {s.mechanism} copy {s.id} ({lag})"


def _lost_storage(inv: Inventory, vm: VM, failed: Failed) -> list[str]:
    """Names of the datastores the VM needs that are failed, inaccessible or unknown."""
    out = []
    for ds_id in sorted(vm.needed_datastores):
        d = inv.datastore(vm.endpoint, ds_id)
        if d is None or not d.accessible or (vm.endpoint, ds_id) in failed.datastores:
            out.append(d.name if d else ds_id)
    return out


def _survivor(inv: Inventory, endpoint: str, h: Host, failed: Failed) -> bool:
    return h.endpoint == endpoint and h.state is HostState.UP and (endpoint, h.id) not in failed.hosts


class _Room:
    """Where a failover may bring VMs up: the memory this plan promised per host so far
    (``load``), and the surviving hosts that mount a set of datastores, worked out once per set
    (and cluster) rather than once per VM: a site's thousands of VMs share a few such sets, and
    a scan of every host for every VM grew with both."""

    def __init__(self, inv: Inventory, failed: Failed) -> None:
        self.inv, self.failed = inv, failed
        self.load: dict[tuple[str, str], int] = {}
        self._mounting: dict[tuple[str, tuple[str, ...], str | None], list[Host]] = {}

    def mounting(self, endpoint: str, stores: Iterable[str], cluster: str | None = None) -> list[Host]:
        """The surviving hosts of ``endpoint`` (of ``cluster``, unless None) that mount every
        datastore of ``stores``, by id; none when one of them is unknown (unknown mounts
        nothing). Every host of the endpoint when ``stores`` is empty."""
        key = (endpoint, tuple(sorted(stores)), cluster)
        found = self._mounting.get(key)
        if found is None:
            inv = self.inv
            known = [inv.datastore(endpoint, i) for i in key[1]]
            if any(d is None for d in known):
                found = []
            else:
                # from the datastores' own mount lists, not from every host
                ids = set.intersection(*(set(d.hosts) for d in known if d)) if known else None
                pool = (
                    [h for i in sorted(ids) if (h := inv.host(endpoint, i))]
                    if ids is not None
                    else sorted((h for h in inv.hosts if h.endpoint == endpoint), key=lambda h: h.id)
                )
                found = [
                    h
                    for h in pool
                    if _survivor(inv, endpoint, h, self.failed) and (cluster is None or h.cluster == cluster)
                ]
            self._mounting[key] = found
        return found

    def fits(self, vm: VM, hosts: Iterable[Host], here: str | None = None) -> list[Host]:
        """``hosts`` with memory for ``vm`` beside what this plan promised them (``here``: the
        host where its running secondary holds its memory already)."""
        load = self.load
        return [
            h for h in hosts if not h.memory or h.id == here or load.get((vm.endpoint, h.id), 0) + vm.memory <= h.memory
        ]

    def least_loaded(self, vm: VM, fits: list[Host]) -> Host:
        """The host of ``fits`` with the most memory left (then by id)."""
        load = self.load
        return min(fits, key=lambda h: (load.get((vm.endpoint, h.id), 0) - h.memory if h.memory else 0, h.id))


def _restart_host(vm: VM, room: _Room) -> tuple[str | None, str]:
    """A surviving host of the VM's cluster that mounts all its storage and has room; or why not."""
    cluster = room.inv.cluster_of(vm)
    mounting = [h for h in room.mounting(vm.endpoint, vm.needed_datastores, cluster) if h.id != vm.host]
    if not mounting:
        return None, "no surviving host of its cluster mounts it"
    fits = room.fits(vm, mounting)
    if not fits:
        return None, f"no surviving host that mounts it has room for its {vm.memory / 1024**3:.0f} GiB"
    return room.least_loaded(vm, fits).id, ""


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


def _choose(vm: VM, room: _Room) -> tuple[str, tuple[Secondary | None, str | None] | None]:
    inv, failed = room.inv, room.failed
    if not vm.secondaries:
        return "it has no secondary", None
    reasons = []
    usable: list[tuple[Secondary | None, str | None]] = []
    for s in vm.secondaries:
        # a copy another endpoint keeps through replication the platform cannot see (a DR site's
        # array-replicated domains) is unknown by nature: usable, after every copy known in sync
        dr_unknown = s.state is SecondaryState.UNKNOWN and s.target_endpoint is not None
        if s.state in (SecondaryState.BROKEN, SecondaryState.UNKNOWN, SecondaryState.SYNCING) and not dr_unknown:
            reasons.append(f"secondary {s.id} is {s.state.value}")
            continue
        if s.missing:
            reasons.append(f"secondary {s.id} lacks disk {', '.join(s.missing)}: it cannot bring the VM up whole")
            continue
        if s.target_endpoint is not None:
            usable.append((s, None))
            continue
        inside = [i for i in sorted(s.needed_datastores) if (vm.endpoint, i) in failed.datastores]
        if inside:
            names = [(d.name if (d := inv.datastore(vm.endpoint, i)) else i) for i in inside]
            reasons.append(f"secondary {s.id} lies in the failed domain ({', '.join(names)})")
            continue
        gone = [
            i for i in sorted(s.needed_datastores) if (d := inv.datastore(vm.endpoint, i)) is None or not d.accessible
        ]
        if gone:
            reasons.append(f"secondary {s.id} is on inaccessible storage")
            continue
        host, why = _host_for(vm, s, room)
        if host is None:
            reasons.append(why)
            continue
        usable.append((s, host))
    if not usable:
        return "; ".join(reasons) or "no usable secondary", None
    usable.sort(key=lambda c: (c[0] is None or c[0].state is not SecondaryState.IN_SYNC, _lag(c[0]), _sid(c[0])))
    return "", usable[0]


def _lag(s: Secondary | None) -> float:
    return 0.0 if s is None or s.lag is None else s.lag


def _sid(s: Secondary | None) -> str:
    return "" if s is None else s.id


def _host_for(vm: VM, s: Secondary, room: _Room) -> tuple[str | None, str]:
    inv, failed = room.inv, room.failed
    # a running secondary holds its memory on its host already
    here = s.host if _hot_standby(inv, vm.endpoint, s.mechanism) else None
    if s.host:  # the mechanism pins it to its host (an FT secondary, a standby on its node)
        h = inv.host(vm.endpoint, s.host)
        if h is None or not _survivor(inv, vm.endpoint, h, failed):
            return None, f"secondary {s.id}'s host {h.name if h else s.host} is lost with it"
        unmounted = [
            d.name if d else i
            for i in sorted(s.needed_datastores)
            if (d := inv.datastore(vm.endpoint, i)) is None or s.host not in d.hosts
        ]
        if unmounted:
            return None, f"secondary {s.id}'s host {h.name} does not mount {', '.join(unmounted)}"
        if room.fits(vm, [h], here):
            return s.host, ""
        need = vm.memory / 1024**3
        return None, f"not enough memory on {h.name} for {need:.0f} GiB (secondary {s.id})"
    mounting = room.mounting(vm.endpoint, s.needed_datastores)
    if not mounting:
        return None, f"no surviving host mounts the datastores of secondary {s.id}"
    fits = room.fits(vm, mounting, here)
    if not fits:
        need = vm.memory / 1024**3
        return None, f"not enough memory on the surviving hosts for {need:.0f} GiB (secondary {s.id})"
    return room.least_loaded(vm, fits).id, ""


def _hot_standby(inv: Inventory, endpoint: str, mechanism: str) -> bool:
    """Does the endpoint's driver declare this mechanism's secondary a running VM?"""
    from ftbridge.drivers.registry import load_driver
    from ftbridge.errors import FtbridgeError

    ep = inv.endpoint(endpoint)
    if ep is None:
        return False
    try:
        rules = load_driver(ep.driver).mechanisms.get(mechanism)
    except FtbridgeError:
        return False
    return rules is not None and rules.hot_standby
