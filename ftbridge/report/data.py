"""The DR-readiness report as data: what ``ftbridge report -o json`` prints and the page shows.

Everything the page draws comes from this one dictionary, so the HTML and the JSON never
disagree. It is built from an inventory (live or saved), the config's policies, the audit
(findings, with "fixable" settled by the planner) and the run history:

* ``domains``: the failure domains as a tree, site > room > array > datastore, with the
  hosts of each site and room. An unknown label is its own box ("site unknown"): it proves
  nothing, so nothing is assumed to be in a known one;
* ``vms``: per VM its policy, where its primary lives and where each secondary lives (the
  model's locations: compute plus storage), and whether the pair is separated at the
  policy's level, as the model answers it;
* ``protection``: per policy, how many VMs are protected, degraded and unprotected, in the
  audit's terms (protected: no finding; unprotected: no usable copy the policy counts);
* ``rpo``: each counted secondary's lag against its policy's RPO;
* ``rto``: per protected VM, its last verified test failover (from the journal);
* ``findings`` with their fixes, and the last ``runs``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ftbridge.apply.history import History, TestEvidence
from ftbridge.audit import AuditReport, Finding
from ftbridge.config import Config, Policy
from ftbridge.inventory import Inventory
from ftbridge.model import VM, Datastore, Host, HostState, Level, Secondary, SecondaryState
from ftbridge.timefmt import rfc3339

REPORT_SCHEMA_VERSION = 1
REPORT_KIND = "ftbridge-report"
UNKNOWN = None  # a label the estate does not know: drawn as its own "unknown" box

#: what a VM's protection is, from its findings (the audit's rules decide; nothing here does)
PROTECTED, DEGRADED, UNPROTECTED, NOT_REQUIRED, MANAGED, UNMANAGED = (
    "protected",
    "degraded",
    "unprotected",
    "not-required",
    "managed",  # an extension or agent places and restarts it (vCLS, the oVirt engine VM)
    "unmanaged",  # no policy matches it
)
STATUSES = (PROTECTED, DEGRADED, UNPROTECTED, NOT_REQUIRED, MANAGED, UNMANAGED)
_UNPROTECTING = {"no-secondary", "primary-unavailable"}


@dataclass(frozen=True)
class Source:
    """Where the inventory came from, for the page's header."""

    kind: str  # live | file
    detail: str  # endpoints, or the file's path


def build(
    inv: Inventory,
    config: Config,
    audit: AuditReport,
    history: History | None,
    source: Source,
    *,
    generated_at: float | None = None,
    last_runs: int = 10,
) -> dict[str, Any]:
    """The report's data (see the module docstring); JSON-ready, deterministic for one input."""
    now = time.time() if generated_at is None else generated_at
    by_vm: dict[tuple[str, str], list[Finding]] = {}
    for f in audit.findings:
        if f.vm is not None:
            by_vm.setdefault((f.endpoint, f.vm), []).append(f)
    tests = history.last_tests() if history is not None else {}
    vms = [_vm(inv, config, v, by_vm.get((v.endpoint, v.id), []), tests.get((v.endpoint, v.id))) for v in inv.vms]
    runs = history.runs() if history is not None else []
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "kind": REPORT_KIND,
        "generated_at": rfc3339(round(now)),
        "source": {"kind": source.kind, "detail": source.detail},
        "inventory": {
            "collected_at": rfc3339(inv.collected_at) if inv.collected_at else None,
            "fingerprint": inv.fingerprint(),
            "endpoints": [{"name": e.name, "driver": e.driver, "version": e.version} for e in inv.endpoints],
            "hosts": len(inv.hosts),
            "datastores": len(inv.datastores),
            "vms": len(inv.vms),
        },
        "domains": _domains(inv),
        "hosts": [_host(h) for h in inv.hosts],
        "datastores": [_datastore(d) for d in inv.datastores],
        "vms": vms,
        "protection": _protection(config, vms),
        "rpo": _rpo(vms),
        "rto": _rto(vms),
        "findings": {
            "summary": audit.to_dict()["summary"],
            "items": [f.to_dict() for f in audit.findings],
        },
        "runs": [r.to_dict() for r in runs[-last_runs:]] if last_runs else [],
        "journal": str(history.journal_path) if history is not None else None,
    }


# -- the failure domains -----------------------------------------------------------------------
def _labels(domain: Any) -> tuple[str | None, str | None, str | None]:
    return domain.label(Level.SITE), domain.label(Level.ROOM), domain.label(Level.ARRAY)


def _domains(inv: Inventory) -> list[dict[str, Any]]:
    """site > room > array > datastore ids, plus the hosts of each site and room; sorted, with
    unknown labels last."""
    tree: dict[str | None, dict[str | None, dict[str, Any]]] = {}

    def room(site: str | None, name: str | None) -> dict[str, Any]:
        return tree.setdefault(site, {}).setdefault(name, {"arrays": {}, "hosts": []})

    for d in inv.datastores:
        site, rm, arr = _labels(d.domain)
        room(site, rm)["arrays"].setdefault(arr, []).append(_ref(d.endpoint, d.id))
    for h in inv.hosts:
        site, rm, _ = _labels(h.domain)
        room(site, rm)["hosts"].append(_ref(h.endpoint, h.id))

    def order(keys: Iterable[str | None]) -> list[str | None]:
        return sorted(keys, key=lambda k: (k is None, k or ""))

    return [
        {
            "site": site,
            "rooms": [
                {
                    "room": rm,
                    "arrays": [
                        {"array": arr, "datastores": tree[site][rm]["arrays"][arr]}
                        for arr in order(tree[site][rm]["arrays"])
                    ],
                    "hosts": tree[site][rm]["hosts"],
                }
                for rm in order(tree[site])
            ],
        }
        for site in order(tree)
    ]


def _ref(endpoint: str, obj_id: str) -> str:
    return f"{endpoint}/{obj_id}"


def _host(h: Host) -> dict[str, Any]:
    site, rm, _ = _labels(h.domain)
    return {
        "ref": _ref(h.endpoint, h.id),
        "endpoint": h.endpoint,
        "id": h.id,
        "name": h.name,
        "state": h.state.value,
        "site": site,
        "room": rm,
    }


def _datastore(d: Datastore) -> dict[str, Any]:
    site, rm, arr = _labels(d.domain)
    return {
        "ref": _ref(d.endpoint, d.id),
        "endpoint": d.endpoint,
        "id": d.id,
        "name": d.name,
        "kind": d.kind,
        "shared": d.shared,
        "accessible": d.accessible,
        "capacity": d.capacity,
        "free": d.free,
        "site": site,
        "room": rm,
        "array": arr,
    }


# -- the VMs -----------------------------------------------------------------------------------
def _vm(inv: Inventory, config: Config, vm: VM, findings: list[Finding], test: TestEvidence | None) -> dict[str, Any]:
    policy = config.policy_for(vm)
    status = _status(vm, policy, findings)
    primary = inv.primary_location(vm)
    secs = []
    for s in vm.secondaries:
        where = s.target_endpoint or vm.endpoint
        at = _anchor_secondary(s)
        loc = inv.secondary_location(vm, s)
        # the model's one answer: None when one failure at the policy's level leaves a whole copy
        counted = policy is not None and policy.counts(s.mechanism)
        why = primary.shared_failure(loc, policy.level) if policy is not None and counted else None
        secs.append(
            {
                "id": s.id,
                "mechanism": s.mechanism,
                "endpoint": where,
                "state": s.state.value,
                "lag_s": s.lag,
                "last_sync": rfc3339(s.last_sync) if s.last_sync is not None else None,
                "counted": counted,
                "missing": list(s.missing),
                "hosts": [_ref(where, s.host)] if s.host else [],
                "datastores": [_ref(where, x) for x in sorted(s.datastores)],
                "runs_on": [p.name for p in loc.hosts],
                "needs": [p.name for p in loc.stores],
                "drawn_on": _ref(where, at) if at else None,
                "separated": (why is None) if counted else None,
                "shared_failure": why,
            }
        )
    host = inv.host(vm.endpoint, vm.host)
    anchor = _anchor_primary(vm)
    return {
        "endpoint": vm.endpoint,
        "vm": vm.id,
        "vm_name": vm.name,
        "power": vm.power.value,
        "policy": policy.name if policy else None,
        "level": policy.separation if policy else None,
        "rpo_s": policy.rpo if policy else None,
        "status": status,
        "managed_by": vm.managed_by,
        "primary": {
            "hosts": [_ref(vm.endpoint, vm.host)] if vm.host else [],
            "host_name": host.name if host else vm.host,
            "host_state": host.state.value if host else HostState.UNKNOWN.value,
            "datastores": [_ref(vm.endpoint, x) for x in sorted(vm.needed_datastores)],
            "runs_on": [p.name for p in primary.hosts],
            "needs": [p.name for p in primary.stores],
            "drawn_on": _ref(vm.endpoint, anchor) if anchor else None,
        },
        "secondaries": secs,
        "findings": [f.id for f in findings],
        "last_test": None
        if test is None
        else {
            "run": test.run,
            "started_at": rfc3339(test.started_at),
            "verified_at": rfc3339(test.verified_at),
            "recovery_s": None if test.seconds is None else round(test.seconds, 3),
            "secondary": test.secondary,
            "mechanism": test.mechanism,
        },
    }


def _anchor_primary(vm: VM) -> str | None:
    """The datastore a VM is drawn on: its config's, else its first disk's."""
    return vm.config_datastore or (vm.disks[0].datastore if vm.disks else None)


def _anchor_secondary(s: Secondary) -> str | None:
    return s.config_datastore or (s.disks[0].datastore if s.disks else None)


def _status(vm: VM, policy: Policy | None, findings: list[Finding]) -> str:
    """The VM's protection in the audit's terms: its findings decide."""
    if policy is None:
        return UNMANAGED
    if vm.managed_by:
        return MANAGED
    rules = {f.rule for f in findings}
    counted = [s for s in vm.secondaries if policy.counts(s.mechanism)]
    usable = [s for s in counted if s.state not in (SecondaryState.BROKEN, SecondaryState.UNKNOWN) and not s.missing]
    if rules & _UNPROTECTING or (counted and not usable):
        return UNPROTECTED
    if not counted and not policy.require_secondary:
        return NOT_REQUIRED if not findings else DEGRADED
    return DEGRADED if findings else PROTECTED


def _protection(config: Config, vms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    names = [p.name for p in config.policies] + [None]
    for name in names:
        mine = [v for v in vms if v["policy"] == name]
        if not mine:
            continue
        counts = {s: 0 for s in STATUSES}
        for v in mine:
            counts[v["status"]] += 1
        policy = next((p for p in config.policies if p.name == name), None)
        out.append(
            {
                "policy": name,
                "separation": policy.separation if policy else None,
                "rpo_s": policy.rpo if policy else None,
                "vms": len(mine),
                **{k: n for k, n in counts.items() if name is not None or k == UNMANAGED},
            }
        )
    return out


def _rpo(vms: list[dict[str, Any]]) -> dict[str, Any]:
    rows = []
    for v in vms:
        for s in v["secondaries"]:
            if not s["counted"] or v["rpo_s"] is None:
                continue
            lag = s["lag_s"]
            if s["state"] == SecondaryState.STALE.value:
                within: bool | None = False
            elif lag is None:
                within = True if s["state"] == SecondaryState.IN_SYNC.value else None
            else:
                within = lag <= v["rpo_s"]
            rows.append(
                {
                    "endpoint": v["endpoint"],
                    "vm": v["vm"],
                    "vm_name": v["vm_name"],
                    "secondary": s["id"],
                    "mechanism": s["mechanism"],
                    "state": s["state"],
                    "lag_s": lag,
                    "rpo_s": v["rpo_s"],
                    "within": within,
                }
            )
    return {
        "secondaries": len(rows),
        "within": sum(r["within"] is True for r in rows),
        "over": sum(r["within"] is False for r in rows),
        "unknown": sum(r["within"] is None for r in rows),
        "items": sorted(rows, key=lambda r: (r["within"] is not False, r["within"] is not None, r["vm_name"])),
    }


def _rto(vms: list[dict[str, Any]]) -> dict[str, Any]:
    wanted = [v for v in vms if v["status"] not in (UNMANAGED, MANAGED) and any(s["counted"] for s in v["secondaries"])]
    tested = [v for v in wanted if v["last_test"] is not None]
    times = sorted(v["last_test"]["recovery_s"] for v in tested if v["last_test"]["recovery_s"] is not None)
    return {
        "protected_vms": len(wanted),
        "tested": len(tested),
        "untested": len(wanted) - len(tested),
        "median_recovery_s": times[len(times) // 2] if times else None,
        "max_recovery_s": times[-1] if times else None,
        "oldest_test_at": min((v["last_test"]["verified_at"] for v in tested), default=None),
        "items": [
            {
                "endpoint": v["endpoint"],
                "vm": v["vm"],
                "vm_name": v["vm_name"],
                "policy": v["policy"],
                "last_test": v["last_test"],
            }
            for v in sorted(wanted, key=lambda v: (v["last_test"] is not None, v["endpoint"], v["vm_name"]))
        ],
    }


__all__ = ["REPORT_KIND", "REPORT_SCHEMA_VERSION", "STATUSES", "Source", "build"]
