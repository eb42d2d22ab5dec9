"""The migration planner: source VMs placed on a target endpoint, with their protection.

Two steps, both the core's own machinery:

1. :mod:`ftbridge.migrate.placement` puts each VM's primary on the target's shared storage
   (mapping first, then capacity and headroom across the whole migration) and picks its host.
2. The VMs are *projected* onto the target: an inventory of the target as it will be, with
   each migrated VM where step 1 put it and no secondary (the moving tools drop them all). The
   audit of that inventory, under the target's policies, finds what protection is missing, and
   :class:`ftbridge.planning.Planner` plans it with the target driver's ``MechanismRules``,
   within what the target's site offers (``probe()``: no secondary on a read-only account):
   secondaries separated at each VM's policy level, within the mechanisms' limits and the room
   step 1 left. A VM protected on the source keeps a secondary on the target even where the
   target's policy does not ask for one. Every planned secondary is then checked with the
   model's one separation function (``Inventory.primary_location`` / ``secondary_location``).

The result is deterministic for the same inputs; what cannot be placed or protected is said
in a sentence, as ``ftbridge plan`` does.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingT, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ftbridge.audit import Finding, Severity, audit
from ftbridge.config import Config, Policy
from ftbridge.drivers.base import MechanismRules
from ftbridge.inventory import Inventory
from ftbridge.migrate.mapping import Mapping
from ftbridge.migrate.placement import Placed, Placer
from ftbridge.model import VM, Secondary, SecondaryDisk, SecondaryState
from ftbridge.planning.actions import Action, PlanResult

Rules = MappingT[str, MappingT[str, MechanismRules]]


@dataclass
class Protection:
    """The secondary planned for one migrated VM (or why there is none)."""

    mechanism: str | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    separated: bool | None = None
    evidence: str = ""
    level: str = ""
    reason: str = ""  # no secondary: why
    category: str = ""
    wanted: bool = False  # the policy (or the source's protection) asks for one


@dataclass
class Outcome:
    """One VM of the migration: its placement and its protection on the target."""

    placed: Placed
    projected_id: str
    protection: Protection
    wave: int = 0


@dataclass
class Migration:
    """Everything ``migrate plan`` decided, before it becomes a document."""

    source: Inventory
    source_endpoint: str
    target: Inventory  # the target endpoint as it was
    target_endpoint: str
    projected: Inventory  # the target with the migrated VMs where the plan puts them
    outcomes: list[Outcome]
    skipped: list[tuple[VM, str]]
    protect_result: PlanResult
    placer: Placer
    waves: int


def protected_on_source(vm: VM, policy: Policy | None) -> bool:
    """Had protection to keep: a secondary of any mechanism, or a policy that wants one."""
    return bool(vm.secondaries) or (policy is not None and policy.require_secondary)


def projected_id(source_endpoint: str, vm: VM) -> str:
    return f"{source_endpoint}/{vm.id}"


def plan_migration(
    source: Inventory,
    source_endpoint: str,
    target: Inventory,
    target_endpoint: str,
    config: Config,
    mapping: Mapping | None = None,
    vms: Sequence[VM] | None = None,
    *,
    wave_size: int | None = None,
    rules: Rules | None = None,
    known_rules: Rules | None = None,
) -> Migration:
    """Place ``vms`` (default: every VM of the source endpoint) on the target and protect them."""
    from ftbridge.planning import Planner, capabilities_for, rules_for

    mapping = mapping or Mapping()
    chosen = [v for v in (vms if vms is not None else source.vms) if v.endpoint == source_endpoint]
    skipped = [(v, f"run by {v.managed_by}: left to it") for v in chosen if v.managed_by]
    chosen = sorted((v for v in chosen if not v.managed_by), key=lambda v: (-v.size, v.name, v.id))
    placer = Placer(target, target_endpoint, config, mapping)
    outcomes: list[Outcome] = []
    for vm in chosen:
        pid = projected_id(source_endpoint, vm)
        policy = config.policy_for(replace(vm, endpoint=target_endpoint))
        placed = placer.place(vm, source, policy)
        outcomes.append(Outcome(placed, pid, Protection(wanted=_wanted(vm, policy, source, config))))
    projected = _project(target, target_endpoint, placer, outcomes)
    if rules is None:
        rules, known_rules = rules_for(projected)
    findings = _findings(projected, config, outcomes)
    # what the target's site offers (probe(), in its inventory): no protection it cannot carry out
    caps = capabilities_for(projected)
    result = Planner(projected, config, findings, rules, known_rules, capabilities=caps).run()
    _protection(projected, result, outcomes)
    waves = _waves(outcomes, wave_size)
    return Migration(
        source, source_endpoint, target, target_endpoint, projected, outcomes, skipped, result, placer, waves
    )


def _wanted(vm: VM, target_policy: Policy | None, source: Inventory, config: Config) -> bool:
    return (target_policy is not None and target_policy.require_secondary) or protected_on_source(
        vm, config.policy_for(vm)
    )


def _project(target: Inventory, ep: str, placer: Placer, outcomes: list[Outcome]) -> Inventory:
    vms = [v for v in target.vms if v.endpoint == ep]
    for o in outcomes:
        p = o.placed
        if p.reason is not None:
            continue
        where = {dp.disk.id: dp for dp in p.disks}
        nics = {np.nic.id: np for np in p.nics}
        vms.append(
            replace(
                p.vm,
                id=o.projected_id,
                endpoint=ep,
                host=p.host.id if p.host else None,
                cluster=p.host.cluster if p.host else None,
                disks=tuple(replace(d, datastore=where[d.id].target, path="", shared_by=()) for d in p.vm.disks),
                config_datastore=p.config,
                config_path="",
                secondaries=(),
                depends_on=(),
                mechanisms=None,
                warnings=(),
                nics=tuple(replace(n, network=nics[n.id].target) for n in p.vm.nics),
            )
        )
    return Inventory(
        [e for e in target.endpoints if e.name == ep],
        [h for h in target.hosts if h.endpoint == ep],
        placer.projected_datastores(),
        vms,
        target.collected_at,
        networks=[n for n in target.networks if n.endpoint == ep],
    )


def _findings(projected: Inventory, config: Config, outcomes: list[Outcome]) -> list[Finding]:
    """The audit's findings for the migrated VMs, plus "keep the protection it had"."""
    ours = {o.projected_id: o for o in outcomes if o.placed.reason is None}
    out = [f for f in audit(projected, config).findings if f.vm in ours]
    has = {f.vm for f in out if f.rule == "no-secondary"}
    for pid, o in sorted(ours.items()):
        vm = projected.vm(projected.endpoints[0].name, pid)
        policy = o.placed.policy
        if vm is None or policy is None or pid in has or not o.protection.wanted or policy.require_secondary:
            continue
        out.append(
            Finding(
                rule="no-secondary",
                severity=Severity.ERROR,
                endpoint=vm.endpoint,
                message=f"{vm.name}: protected on the source; keeps a secondary on the target",
                fix=f"create a secondary separated at {policy.separation} level",
                fixable=True,
                vm=vm.id,
                vm_name=vm.name,
                policy=policy.name,
                evidence={"migration": True},
            )
        )
    return out


def _protection(projected: Inventory, result: PlanResult, outcomes: list[Outcome]) -> None:
    by_vm: dict[str, Action] = {}
    for a in result.actions:
        if a.kind == "protect":
            by_vm.setdefault(a.vm, a)
    why = {u.vm: u for u in result.unfixable if u.rule == "no-secondary" and u.vm}
    for o in outcomes:
        if o.placed.reason is not None:
            continue
        prot = o.protection
        policy = o.placed.policy
        prot.level = policy.separation if policy else ""
        act = by_vm.get(o.projected_id)
        if act is None:
            u = why.get(o.projected_id)
            if u is not None:
                prot.reason, prot.category = u.reason, u.category
            elif prot.wanted and policy is None:
                prot.reason, prot.category = "no policy of the config applies to it on the target", "placement"
            continue
        spec = act.detail["spec"]
        prot.mechanism = str(act.detail["mechanism"])
        prot.spec = dict(spec)
        vm = projected.vm(act.endpoint, act.vm)
        assert vm is not None and policy is not None
        sec = Secondary(
            id="planned",
            mechanism=prot.mechanism,
            disks=tuple(SecondaryDisk(disk=k, datastore=x) for k, x in sorted(spec["disks"].items())),
            config_datastore=spec.get("config_datastore"),
            host=spec.get("host"),
            metadata_datastore=spec.get("metadata_datastore"),
            state=SecondaryState.SYNCING,
        )
        # the model's one answer to "separated?": never a second copy of that rule here
        shared = projected.primary_location(vm).shared_failure(projected.secondary_location(vm, sec), policy.level)
        prot.separated = shared is None
        prot.evidence = shared or ""


def _waves(outcomes: list[Outcome], wave_size: int | None) -> int:
    """Waves of at most ``wave_size`` VMs, by name; VMs sharing a disk go together."""
    feasible = sorted(
        (o for o in outcomes if o.placed.reason is None), key=lambda o: (o.placed.vm.name, o.projected_id)
    )
    if not wave_size:
        for o in feasible:
            o.wave = 1
        return 1 if feasible else 0
    by_id = {o.placed.vm.id: o for o in feasible}
    wave, used, done = 1, 0, set()
    for o in feasible:
        if o.placed.vm.id in done:
            continue
        group = [o] + [
            by_id[x]
            for d in o.placed.vm.disks
            for x in d.shared_by
            if x in by_id and x not in done and by_id[x] is not o
        ]
        group = list({id(g): g for g in group}.values())
        if used and used + len(group) > wave_size:
            wave, used = wave + 1, 0
        for g in group:
            g.wave = wave
            done.add(g.placed.vm.id)
        used += len(group)
    return wave
