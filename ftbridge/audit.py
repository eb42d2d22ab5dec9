"""Audit: check an inventory against the policies and say what is wrong, with evidence.

Each rule is a small function over one VM (or one datastore) and its policy. A finding says
which rule, how bad, where, the evidence, the fix it suggests, and whether ``ftbridge plan``
can make that fix. Rule ids are stable: plans, JSON consumers and docs refer to them.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ftbridge.config import Config, Policy
from ftbridge.inventory import Inventory
from ftbridge.model import VM, Datastore, HostState, Level, Location, Secondary, SecondaryState
from ftbridge.timefmt import rfc3339

AUDIT_SCHEMA_VERSION = 2  # 2: generated_at is RFC 3339 UTC (was epoch seconds)


class Severity(str, enum.Enum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    severity: Severity
    endpoint: str
    message: str
    fix: str
    fixable: bool
    vm: str | None = None
    vm_name: str | None = None
    datastore: str | None = None
    secondary: str | None = None
    policy: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """Stable across runs: what a plan action says it closes."""
        subject = self.vm if self.vm is not None else f"ds:{self.datastore}"
        tail = f":{self.secondary}" if self.secondary else ""
        return f"{self.rule}:{self.endpoint}/{subject}{tail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "severity": self.severity.value,
            "endpoint": self.endpoint,
            "vm": self.vm,
            "vm_name": self.vm_name,
            "datastore": self.datastore,
            "secondary": self.secondary,
            "policy": self.policy,
            "message": self.message,
            "evidence": self.evidence,
            "fix": self.fix,
            "fixable": self.fixable,
        }


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    summary: str


RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule("primary-unavailable", Severity.CRITICAL, "the VM's host or primary storage is down: fail over"),
        Rule("primary-unreachable", Severity.WARNING, "the VM's host cannot be reached: it may still run"),
        Rule("managed-elsewhere", Severity.INFO, "an extension or agent manages the VM: left to it"),
        Rule("primary-not-shared", Severity.ERROR, "primary files on storage only one host mounts"),
        Rule("primary-split", Severity.ERROR, "the VM's compute and storage sit in different domains"),
        Rule("no-secondary", Severity.ERROR, "no secondary of a mechanism the policy counts"),
        Rule("secondary-unhealthy", Severity.ERROR, "secondary broken or in an unknown state"),
        Rule("secondary-not-separated", Severity.ERROR, "one failure at the policy's level takes both copies"),
        Rule("secondary-partial", Severity.ERROR, "the secondary lacks some of the VM's disks"),
        Rule("secondary-on-primary-host", Severity.ERROR, "secondary runs on the primary's host"),
        Rule("ft-metadata-not-shared", Severity.ERROR, "FT tie-breaker metadata on non-shared storage"),
        Rule("secondary-lag", Severity.WARNING, "secondary lags its primary by more than the RPO"),
        Rule("datastore-over-headroom", Severity.WARNING, "datastore has less free space than the headroom"),
        Rule("inventory-warning", Severity.WARNING, "the driver could not read part of the VM's config"),
    )
}


@dataclass(frozen=True)
class AuditReport:
    findings: tuple[Finding, ...]
    fingerprint: str
    vms: int
    unmanaged: int
    generated_at: float

    def at_or_above(self, severity: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity.rank >= severity.rank]

    def to_dict(self) -> dict[str, Any]:
        by_sev = {s.value: 0 for s in Severity}
        by_rule: dict[str, int] = {}
        for f in self.findings:
            by_sev[f.severity.value] += 1
            by_rule[f.rule] = by_rule.get(f.rule, 0) + 1
        return {
            "schema_version": AUDIT_SCHEMA_VERSION,
            "generated_at": rfc3339(round(self.generated_at, 3)),
            "inventory_fingerprint": self.fingerprint,
            "summary": {
                "vms": self.vms,
                "unmanaged_vms": self.unmanaged,
                "findings": len(self.findings),
                "fixable": sum(f.fixable for f in self.findings),
                "by_severity": by_sev,
                "by_rule": dict(sorted(by_rule.items())),
            },
            "findings": [f.to_dict() for f in self.findings],
        }


def gib(n: int) -> str:
    return f"{n / 1024**3:,.0f} GiB"


class _Ctx:
    """One VM's facts, resolved once, for the rules."""

    __slots__ = ("inv", "vm", "policy", "level", "own", "needed", "_ds", "_primary", "_where", "_counted")

    def __init__(
        self, inv: Inventory, vm: VM, policy: Policy, level: Level, datastores: Mapping[str, Datastore]
    ) -> None:
        self.inv, self.vm, self.policy, self.level = inv, vm, policy, level
        self._ds = datastores  # the VM's endpoint's, by id
        self.own = vm.primary_datastores
        needed = self.own | {d.datastore for d in vm.depends_on} if vm.depends_on else self.own
        self.needed = [d for i in sorted(needed) if (d := datastores.get(i))]
        # with nothing it depends on, its own files are all it needs: the same list, looked up once
        self._primary = None if vm.depends_on else self.needed
        self._where: Location | None = None
        self._counted = [s for s in vm.secondaries if policy.counts(s.mechanism)] if vm.secondaries else []

    @property
    def primary(self) -> list[Datastore]:
        """The datastores holding its own files (config and disks)."""
        if self._primary is None:
            self._primary = [d for i in sorted(self.own) if (d := self._ds.get(i))]
        return self._primary

    @property
    def where(self) -> Location:
        """The primary's location, asked once per VM."""
        if self._where is None:
            self._where = self.inv.primary_location(self.vm)
        return self._where

    def ds(self, ds_id: str | None) -> Datastore | None:
        return self._ds.get(ds_id) if ds_id else None

    def finding(
        self,
        rule: str,
        message: str,
        fix: str,
        *,
        fixable: bool = True,
        secondary: Secondary | None = None,
        **evidence: Any,
    ) -> Finding:
        return Finding(
            rule=rule,
            severity=RULES[rule].severity,
            endpoint=self.vm.endpoint,
            vm=self.vm.id,
            vm_name=self.vm.name,
            secondary=secondary.id if secondary else None,
            policy=self.policy.name,
            message=message,
            fix=fix,
            fixable=fixable,
            evidence=evidence,
        )

    def counted(self) -> list[Secondary]:
        return self._counted

    def whole(self) -> list[Secondary]:
        """Counted secondaries that hold every disk: the ones that can bring the VM up."""
        return [s for s in self.counted() if not s.missing]


# Each rule returns its findings for one VM (most VMs have none: an empty tuple, no generator)
Found = list[Finding] | tuple[()]


def _primary_unavailable(c: _Ctx) -> Found:
    host = c.inv.host(c.vm.endpoint, c.vm.host)
    down = [d.name for d in c.needed if not d.accessible]
    out: list[Finding] = []
    if host is not None and host.state is HostState.UNREACHABLE and not down:
        out.append(
            c.finding(
                "primary-unreachable",
                f"{c.vm.name}: its host {host.name} cannot be reached; the VM may still run there",
                "check the host's management network; fence it before any failover",
                fixable=False,
                host=host.name,
            )
        )
    if down or (host is not None and host.state.proven_down):
        out.append(
            c.finding(
                "primary-unavailable",
                f"{c.vm.name}: "
                + (
                    f"primary storage {', '.join(down)} is not accessible"
                    if down
                    else f"host {host.name if host else '?'} is down"
                ),
                "fail over: ftbridge failover plan --vm " + f"{c.vm.endpoint}/{c.vm.name}",
                fixable=False,
                datastores_down=down,
                host=host.name if host else None,
            )
        )
    return out


def _primary_not_shared(c: _Ctx) -> Found:
    if not c.policy.require_shared_primary:
        return ()
    primary = c.primary
    local = [d for d in primary if not d.shared]
    if not local:
        return ()
    names = sorted({d.name for d in local})
    return [
        c.finding(
            "primary-not-shared",
            f"{c.vm.name}: primary files on non-shared {', '.join(names)}",
            "move them to shared storage the VM's hosts mount",
            datastores=names,
            bytes=sum(d.size for d in c.vm.disks if c.ds(d.datastore) in local),
        )
    ]


def _primary_split(c: _Ctx) -> Found:
    if not Location.may_split(c.level):
        return ()  # no location is split at this level: its location need not be built
    why = c.where.split(c.level)
    if why is None:
        return ()
    return [
        c.finding(
            "primary-split",
            f"{c.vm.name}: {why}",
            f"keep its storage in the {c.policy.separation} its hosts run in (or run it where its storage is)",
            level=c.policy.separation,
            why=why,
        )
    ]


def _no_secondary(c: _Ctx) -> Found:
    if not c.policy.require_secondary or c.counted():
        return ()
    ignored = sorted({s.mechanism for s in c.vm.secondaries})
    extra = f" (ignored: {', '.join(ignored)}, not counted by policy {c.policy.name})" if ignored else ""
    return [
        c.finding(
            "no-secondary",
            f"{c.vm.name}: no secondary{extra}",
            f"create a secondary separated at {c.policy.separation} level",
            ignored_mechanisms=ignored,
        )
    ]


def _secondary_health(c: _Ctx) -> Found:
    out: list[Finding] = []
    for s in c.counted():
        if s.state in (SecondaryState.BROKEN, SecondaryState.UNKNOWN):
            out.append(
                c.finding(
                    "secondary-unhealthy",
                    f"{c.vm.name}: secondary {s.id} is {s.state.value}",
                    "re-create the secondary",
                    secondary=s,
                    state=s.state.value,
                )
            )
        lag = s.lag
        if s.state is SecondaryState.STALE or (lag is not None and lag > c.policy.rpo):
            out.append(
                c.finding(
                    "secondary-lag",
                    f"{c.vm.name}: secondary {s.id} lags "
                    + (f"{lag:.0f}s" if lag is not None else "(stale)")
                    + f", RPO {c.policy.rpo:.0f}s",
                    "make a fresh copy, or check the replication schedule and link",
                    fixable=False,
                    secondary=s,
                    lag=lag,
                    rpo=c.policy.rpo,
                )
            )
    return out


def _partial(c: _Ctx) -> Found:
    out: list[Finding] = []
    for s in c.counted():
        if s.missing:
            by_id = {d.id: d for d in c.vm.disks}
            what = ", ".join(f"{d} ({by_id[d].kind})" if d in by_id else d for d in s.missing)
            out.append(
                c.finding(
                    "secondary-partial",
                    f"{c.vm.name}: secondary {s.id} lacks {what}: it cannot bring the VM up whole",
                    "protect those disks another way (array replication of the LUN), or detach them",
                    fixable=False,
                    secondary=s,
                    missing=list(s.missing),
                )
            )
    return out


def _separation(c: _Ctx) -> Found:
    counted = c.counted()
    if not counted:
        return ()
    level = c.level
    primary = c.where
    out: list[Finding] = []
    for s in counted:
        why = None if s.missing else primary.shared_failure(c.inv.secondary_location(c.vm, s), level)
        if why is not None:
            out.append(
                c.finding(
                    "secondary-not-separated",
                    f"{c.vm.name}: secondary {s.id} not separated from the primary at {level.value} level: {why}",
                    f"place the secondary (its storage and the host that runs it) in another {level.value}",
                    secondary=s,
                    level=level.value,
                    why=why,
                )
            )
        if s.host is not None and s.host == c.vm.host:
            host = c.inv.host(c.vm.endpoint, s.host)
            out.append(
                c.finding(
                    "secondary-on-primary-host",
                    f"{c.vm.name}: secondary {s.id} on the primary's host {host.name if host else s.host}",
                    "move the secondary to another host",
                    secondary=s,
                    host=s.host,
                )
            )
        if s.metadata_datastore is not None:
            md = c.ds(s.metadata_datastore)
            if md is not None and not md.shared:
                out.append(
                    c.finding(
                        "ft-metadata-not-shared",
                        f"{c.vm.name}: FT metadata on non-shared {md.name}",
                        "re-create the secondary with its metadata on shared storage",
                        secondary=s,
                        datastore=md.name,
                    )
                )
    return out


def _inventory_warnings(c: _Ctx) -> Found:
    if not c.vm.warnings:
        return ()
    return [
        c.finding(
            "inventory-warning",
            f"{c.vm.name}: " + "; ".join(c.vm.warnings),
            "check the VM's config; report the line to the driver's authors",
            fixable=False,
            warnings=list(c.vm.warnings),
        )
    ]


VM_RULES: tuple[Callable[[_Ctx], Found], ...] = (
    _primary_unavailable,
    _primary_not_shared,
    _primary_split,
    _no_secondary,
    _secondary_health,
    _partial,
    _separation,
    _inventory_warnings,
)


def _managed(vm: VM, policy: Policy) -> Finding:
    return Finding(
        rule="managed-elsewhere",
        severity=RULES["managed-elsewhere"].severity,
        endpoint=vm.endpoint,
        vm=vm.id,
        vm_name=vm.name,
        policy=policy.name,
        message=f"{vm.name}: managed by {vm.managed_by}; ftbridge leaves its placement and protection to it",
        fix=f"nothing to do: {vm.managed_by} places and restarts it",
        fixable=False,
        evidence={"managed_by": vm.managed_by},
    )


def policy_lookup(config: Config) -> Callable[[VM], Policy | None]:
    """:meth:`Config.policy_for`, asked once per (endpoint, tags) when no selector names VMs:
    the answer depends on nothing else, and a million VMs share a few dozen answers."""
    names_free = all(sel.name == "*" for p in config.policies for sel in p.match)
    cache: dict[tuple[str, str, tuple[str, ...]], Policy | None] = {}

    def lookup(vm: VM) -> Policy | None:
        key = (vm.endpoint, "" if names_free else vm.name, vm.tags)
        try:
            return cache[key]
        except KeyError:
            found = cache[key] = config.policy_for(vm)
            return found

    return lookup


def raise_headroom(seen: dict[str, float], vm: VM, policy: Policy) -> None:
    """The headroom rule, the one place it is written: a datastore's headroom is the highest
    headroom of the policies of the VMs touching it (their own files and every secondary's).
    A VM its manager places (``managed_by``) is not judged, so it does not count.

    ``seen``: one endpoint's datastore id -> headroom % so far; raised here for ``vm`` under
    ``policy``. The audit and the planner feed it from the pass they already make over the VMs."""
    if vm.managed_by is not None:
        return
    pct = policy.headroom
    holders: tuple[VM | Secondary, ...] = (vm, *vm.secondaries)  # each: disks, maybe a config file
    # a VM's files are mostly on one datastore, named by one string: the one just raised is not
    # looked up again (at a million VMs, each lookup in an estate-sized table costs a cache miss)
    last: str | None = None
    for files in holders:
        for d in files.disks:
            x = d.datastore
            if x is not last:
                if seen.get(x, -1.0) < pct:
                    seen[x] = pct
                last = x
        cfg = files.config_datastore
        if cfg and cfg is not last:
            if seen.get(cfg, -1.0) < pct:
                seen[cfg] = pct
            last = cfg


def audit(inv: Inventory, config: Config) -> AuditReport:
    """Every finding, sorted by severity (worst first), endpoint, VM, rule."""
    findings: list[Finding] = []
    # per endpoint and datastore: the highest headroom of the policies of the VMs touching it
    touched: dict[str, dict[str, float]] = {}
    unmanaged = 0
    policy_for = policy_lookup(config)
    levels = {p.name: p.level for p in config.policies}  # Policy.level builds the enum: once each
    rules = VM_RULES
    for vm in inv.vms_by_host():  # the order is the sort's below; this one keeps caches warm
        policy = policy_for(vm)
        if policy is None:
            unmanaged += 1
            continue
        if vm.managed_by is not None:
            findings.append(_managed(vm, policy))
            continue
        ctx = _Ctx(inv, vm, policy, levels[policy.name], inv.datastores_of(vm.endpoint))
        for rule in rules:
            found = rule(ctx)
            if found:
                findings.extend(found)
        seen = touched.get(vm.endpoint)
        if seen is None:
            seen = touched[vm.endpoint] = {}
        raise_headroom(seen, vm, policy)
    headroom = {(ep, ds_id): pct for ep, seen in touched.items() for ds_id, pct in seen.items()}
    for (ep, ds_id), pct in sorted(headroom.items()):
        ds = inv.datastore(ep, ds_id)
        if ds is None or ds.capacity <= 0:
            continue
        keep = int(ds.capacity * pct / 100)
        if ds.free < keep:
            findings.append(
                Finding(
                    rule="datastore-over-headroom",
                    severity=RULES["datastore-over-headroom"].severity,
                    endpoint=ep,
                    datastore=ds.id,
                    message=f"datastore {ds.name}: {gib(ds.free)} free of {gib(ds.capacity)}, "
                    f"headroom {pct:g}% wants {gib(keep)}",
                    fix="move disks off it, or grow it",
                    fixable=True,
                    evidence={"free": ds.free, "capacity": ds.capacity, "headroom_pct": pct, "name": ds.name},
                )
            )
    findings.sort(
        key=lambda f: (
            -f.severity.rank,
            f.endpoint,
            f.vm_name or "",
            f.vm or "",  # two VMs of one name: the order is still the estate's, not the pass's
            f.datastore or "",
            f.rule,
            f.secondary or "",
        )
    )
    return AuditReport(tuple(findings), inv.fingerprint(), len(inv.vms), unmanaged, time.time())
