"""After the move: find the migrated VMs on the target and compare them with the plan.

A VM is matched by its uuid when the plan and the target both know it (the moving tools keep
the BIOS uuid), else by its name, which must be unique on the target. Disk ids change between
platforms (``2000`` becomes ``scsi0``), so disks are matched by id where the id survived, else
by size, largest first. A deviation is a planned VM that is missing, a disk on another
datastore than planned, a NIC on another network, a VM in another cluster.

Protection is not a deviation: the moving tools drop every secondary (Proxmox refuses to
remote-migrate a replicated or HA guest), so a freshly moved VM has none. What is missing
becomes ordinary plan actions: the audit of the target (its policies) plus "keep the
protection it had" for the VMs the migration planned a secondary for, planned by the core's
planner into a normal plan file that ``ftbridge apply`` runs; ``ftbridge plan`` and
``ftbridge reprotect`` find the policy's part by themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ftbridge.audit import Finding, Severity, audit
from ftbridge.config import Config
from ftbridge.inventory import Inventory
from ftbridge.model import VM


@dataclass(frozen=True)
class Deviation:
    vm: str  # the source VM's id, as the plan names it
    vm_name: str
    found: str | None  # the target VM's id, None when missing
    kind: str  # missing | disk | nic | cluster
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"vm": self.vm, "vm_name": self.vm_name, "found": self.found, "kind": self.kind, "message": self.message}


@dataclass
class VerifyReport:
    expected: int
    matched: int
    deviations: list[Deviation] = field(default_factory=list)
    matches: dict[str, str] = field(default_factory=dict)  # plan VM name -> target VM id
    plan: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "expected": self.expected,
            "matched": self.matched,
            "matches": dict(sorted(self.matches.items())),
            "deviations": [d.to_dict() for d in self.deviations],
            "plan": self.plan,
        }


def match(planned: dict[str, Any], vms: list[VM]) -> tuple[VM | None, str]:
    """The target VM for one planned VM, and how it was found (or why not)."""
    uuid = planned.get("uuid") or ""
    if uuid:
        hits = [v for v in vms if v.uuid and v.uuid.lower() == uuid.lower()]
        if len(hits) == 1:
            return hits[0], "uuid"
    hits = [v for v in vms if v.name == planned["vm_name"]]
    if len(hits) == 1:
        return hits[0], "name"
    if len(hits) > 1:
        return None, f"{len(hits)} VMs named {planned['vm_name']} on the target and no uuid to tell them apart"
    return None, "not on the target (by uuid or name)"


def _names(inv: Inventory, ep: str, ds_id: str | None) -> str:
    d = inv.datastore(ep, ds_id)
    return d.name if d else str(ds_id)


def verify(doc: dict[str, Any], inv: Inventory, endpoint: str, config: Config) -> VerifyReport:
    vms = [v for v in inv.vms if v.endpoint == endpoint]
    planned = [v for v in doc["vms"] if v["status"] == "planned"]
    report = VerifyReport(len(planned), 0)
    protect_wanted: dict[str, str] = {}
    for p in planned:
        vm, how = match(p, vms)
        if vm is None:
            report.deviations.append(Deviation(p["vm"], p["vm_name"], None, "missing", how))
            continue
        report.matched += 1
        report.matches[p["vm_name"]] = vm.id
        report.deviations += _compare(p, vm, inv, endpoint)
        if p["protection"]["mechanism"] or p["protection"]["wanted"]:
            protect_wanted[vm.id] = p["protection"]["mechanism"] or ""
    report.plan = _restoring_plan(inv, endpoint, config, set(report.matches.values()), protect_wanted)
    return report


def _compare(p: dict[str, Any], vm: VM, inv: Inventory, ep: str) -> list[Deviation]:
    out: list[Deviation] = []
    actual = {d.id: d for d in vm.disks}
    rest = sorted((d for d in vm.disks), key=lambda d: (-d.size, d.id))
    pairs = []
    for want in sorted(p["disks"], key=lambda d: (-d["size"], d["id"])):
        got = actual.get(want["id"]) if want["id"] in actual and actual[want["id"]] in rest else None
        if got is None:
            got = next((d for d in rest if d.size >= want["size"]), None)
        if got is None:
            out.append(
                Deviation(p["vm"], p["vm_name"], vm.id, "disk", f"disk {want['id']} ({want['size']} bytes) not found")
            )
            continue
        rest.remove(got)
        pairs.append((want, got))
    for want, got in pairs:
        if got.datastore != want["to"]:
            out.append(
                Deviation(
                    p["vm"],
                    p["vm_name"],
                    vm.id,
                    "disk",
                    f"disk {want['id']} (found as {got.id}) is on {_names(inv, ep, got.datastore)}, "
                    f"planned on {want['to_name']}",
                )
            )
    want_nets = sorted(n["to"] or "" for n in p["nics"])
    got_nets = sorted(n.network or "" for n in vm.nics)
    if want_nets != got_nets:
        name = {n.id: n.name for n in inv.networks if n.endpoint == ep}
        out.append(
            Deviation(
                p["vm"],
                p["vm_name"],
                vm.id,
                "nic",
                f"NICs on {', '.join(name.get(x, x) or 'unconnected' for x in got_nets) or 'nothing'}, "
                f"planned on {', '.join(n['to_name'] or 'unconnected' for n in p['nics']) or 'nothing'}",
            )
        )
    cluster = inv.cluster_of(vm)
    if p.get("cluster") and cluster is not None and cluster != p["cluster"]:
        out.append(
            Deviation(p["vm"], p["vm_name"], vm.id, "cluster", f"runs in cluster {cluster}, planned in {p['cluster']}")
        )
    return out


def _restoring_plan(
    inv: Inventory, ep: str, config: Config, matched: set[str], wanted: dict[str, str]
) -> dict[str, Any] | None:
    """The planner's plan for the matched VMs' findings, plus the protection they must keep."""
    from ftbridge.planning import make_plan

    found = [f for f in audit(inv, config).findings if f.vm in matched and f.endpoint == ep]
    has = {f.vm for f in found if f.rule == "no-secondary"}
    for vm_id in sorted(wanted):
        vm = inv.vm(ep, vm_id)
        policy = config.policy_for(vm) if vm is not None else None
        if vm is None or policy is None or vm_id in has or vm.secondaries:
            continue
        found.append(
            Finding(
                rule="no-secondary",
                severity=Severity.ERROR,
                endpoint=ep,
                message=f"{vm.name}: migrated without its secondary; the migration plan keeps one",
                fix=f"create a secondary separated at {policy.separation} level",
                fixable=True,
                vm=vm.id,
                vm_name=vm.name,
                policy=policy.name,
                evidence={"migration": True},
            )
        )
    if not found:
        return None
    scoped = Inventory(
        [e for e in inv.endpoints if e.name == ep],
        [h for h in inv.hosts if h.endpoint == ep],
        [d for d in inv.datastores if d.endpoint == ep],
        [v for v in inv.vms if v.endpoint == ep],
        inv.collected_at,
        networks=[n for n in inv.networks if n.endpoint == ep],
    )
    return make_plan(scoped, config, found)
