"""The sim platform's rules: what a real hypervisor would refuse, and what it would do.

Pure functions over the state dict of :mod:`ftbridge.sim.state`, so the rules read in one
place: capacity (a copy holds space on both sides until it completes), a host uses only the
datastores it mounts, one operation per VM at a time, each mechanism's own limits, and the
invariant that no step leaves a VM without a verified copy.

One rule for changing the state: look an object up by id (``state["vms"][vm_id]``) before
changing it, never through ``.values()`` / ``.items()``: the store writes back only the objects
a step looked up (:class:`ftbridge.sim.state.Tracked`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ftbridge.drivers.base import MechanismRules, SecondarySpec
from ftbridge.errors import Conflict, InvariantViolation, NotFound
from ftbridge.model import HostState

State = dict[str, Any]


def vm_of(state: State, vm_id: str) -> dict[str, Any]:
    try:
        return state["vms"][vm_id]  # type: ignore[no-any-return]
    except KeyError:
        raise NotFound(f"VM {vm_id!r} does not exist") from None


def ds_of(state: State, ds_id: str) -> dict[str, Any]:
    try:
        return state["datastores"][ds_id]  # type: ignore[no-any-return]
    except KeyError:
        raise NotFound(f"datastore {ds_id!r} does not exist") from None


def host_up(state: State, host_id: str | None) -> bool:
    return (
        host_id in state["hosts"]
        and host_id not in state["faults"]["hosts_down"]
        and host_id not in state["faults"].get("hosts_unreachable", ())
        and state["hosts"][host_id]["state"] == "up"
    )


def host_state(state: State, host_id: str) -> HostState:
    """What the platform reports: down (failed: proven), unreachable (partitioned: its VMs may
    still run), or the host's own state."""
    if host_id in state["faults"]["hosts_down"]:
        return HostState.DOWN
    if host_id in state["faults"].get("hosts_unreachable", ()):
        return HostState.UNREACHABLE
    return HostState(state["hosts"][host_id]["state"])


def host_name(state: State, host_id: str | None) -> str:
    return str(state["hosts"][host_id]["name"]) if host_id in state["hosts"] else str(host_id)


def may_run(state: State, vm: Mapping[str, Any]) -> bool:
    """Could the VM's primary still run? Its host failed (down) or a power-off it reported proves
    it does not; a partitioned host keeps running what it ran."""
    host = vm.get("host")
    if host is None:
        return bool(vm["power"] != "off")
    if host_state(state, host) is HostState.DOWN:
        return False
    return not (vm["power"] == "off" and host_up(state, host))


def sec_state(state: State, vm_id: str, s: Mapping[str, Any], now: float) -> str:
    """A secondary's state now: a syncing copy turns in_sync when its sync ends, or broken when
    the VM is set to fail while syncing (fault ``fail_sync``)."""
    if s["state"] != "syncing" or "sync_until" not in s:
        return str(s["state"])
    if vm_id in state["faults"].get("fail_sync", ()):
        return "broken"
    if vm_id in state["faults"].get("hold_sync", ()):
        return "syncing"  # held by a test until it lets go: no clock involved
    return "in_sync" if now >= s["sync_until"] else "syncing"


def ha_restarts(state: State, now: float, after: float) -> bool:
    """The platform's HA: VMs with HA on whose host failed at least ``after`` seconds ago start
    on a host that is up and mounts all their storage. True when it moved any."""
    moves = ha_moves(state, now, after)
    for vm_id, host in moves:
        vm = state["vms"][vm_id]  # by id: the store writes back what was looked up
        vm["host"], vm["power"] = host, "on"
    return bool(moves)


def ha_moves(state: State, now: float, after: float) -> list[tuple[str, str]]:
    """(VM id, host) for each restart the platform's HA is due to make now (changes nothing)."""
    moves: list[tuple[str, str]] = []
    failed_at = state["faults"].get("hosts_down_at", {})
    if not state["faults"]["hosts_down"]:
        return moves
    for vm_id, vm in state["vms"].items():
        host = vm.get("host")
        if not vm.get("ha") or host not in state["faults"]["hosts_down"]:
            continue
        if now - float(failed_at.get(host, now)) < after:
            continue
        stores = needed_datastores(vm)
        if not all(ds_up(state, d) for d in stores):
            continue
        cluster = state["hosts"][host].get("cluster")
        for cand in sorted(state["hosts"]):
            if (
                cand != host
                and host_up(state, cand)
                and state["hosts"][cand].get("cluster") == cluster
                and all(cand in state["datastores"][d]["hosts"] for d in stores)
            ):
                moves.append((vm_id, cand))
                break
    return moves


def ds_up(state: State, ds_id: str) -> bool:
    return (
        ds_id in state["datastores"]
        and ds_id not in state["faults"]["datastores_down"]
        and state["datastores"][ds_id]["accessible"]
    )


def needed_datastores(vm: Mapping[str, Any]) -> list[str]:
    """Every datastore a VM needs to run: config, disks and what it depends on."""
    ids = {d["datastore"] for d in vm["disks"]} | {d["datastore"] for d in vm.get("depends_on", ())}
    if vm.get("config_datastore"):
        ids.add(vm["config_datastore"])
    return sorted(ids)


def restart_host(state: State, stores: list[str], wanted: str | None) -> str | None:
    """The host to start a VM on from its own storage: ``wanted`` if it can, else the first
    host that is up and mounts all of ``stores``."""
    for cand in (wanted, *sorted(state["hosts"])):
        if cand and host_up(state, cand) and all(cand in state["datastores"][d]["hosts"] for d in stores):
            return str(cand)
    return None


def busy(state: State, vm_id: str) -> str | None:
    for op_id, op in state["ops"].items():
        if op["vm"] == vm_id and op["state"] == "running":
            return str(op_id)
    return None


def decide_fault(state: State, vm_id: str, kind: str) -> str | None:
    """'retryable', 'permanent' or None for this attempt; deterministic for a seed."""
    faults = state["faults"]
    if vm_id in faults["fail_permanent"] or f"{vm_id}:{kind}" in faults["fail_permanent"]:
        return "permanent"
    rate = float(faults["fail_rate"])
    if rate <= 0:
        return None
    key = f"{vm_id}:{kind}"
    n = state["attempts"].get(key, 0)
    state["attempts"][key] = n + 1
    h = hashlib.sha256(f"{faults['seed']}:{key}:{n}".encode()).digest()
    return "retryable" if int.from_bytes(h[:4], "big") / 2**32 < rate else None


def require_room(state: State, ds_id: str, size: int) -> None:
    ds = ds_of(state, ds_id)
    if not ds_up(state, ds_id):
        raise Conflict(f"datastore {ds['name']} is not accessible")
    if ds["free"] < size:
        raise Conflict(f"datastore {ds['name']} has {ds['free'] >> 30} GiB free, {size >> 30} GiB needed")


def check_move(
    state: State, vm_id: str, disk_ids: list[str], target: str, host: str | None, rules: Mapping[str, MechanismRules]
) -> int:
    """Refuse a primary move the platform would refuse; returns the bytes to copy."""
    vm = vm_of(state, vm_id)
    if op := busy(state, vm_id):
        raise Conflict(f"VM {vm['name']} is locked by operation {op}")
    for sec in vm["secondaries"]:
        r = rules.get(sec["mechanism"])
        if r and r.blocks_primary_move:
            raise Conflict(
                f"VM {vm['name']} has a {sec['mechanism']} secondary: its storage cannot move while it exists"
            )
    run_host = host or vm["host"]
    ds = ds_of(state, target)
    if run_host and run_host not in ds["hosts"]:
        raise Conflict(f"host {state['hosts'][run_host]['name']} does not mount datastore {ds['name']}")
    disks = {d["id"]: d for d in vm["disks"]}
    size = 0
    for did in disk_ids:
        if did not in disks:
            raise NotFound(f"VM {vm['name']} has no disk {did!r}")
        if not disks[did]["movable"]:
            raise Conflict(f"disk {did} of VM {vm['name']} cannot be moved (pass-through)")
        if disks[did]["datastore"] != target:
            size += disks[did]["size"]
    require_room(state, target, size)
    return size


def check_protect(
    state: State,
    vm_id: str,
    spec: SecondarySpec,
    rules: Mapping[str, MechanismRules],
    *,
    replacing_primary: bool = False,
) -> dict[str, int]:
    """Refuse a secondary the platform would refuse; returns bytes needed per datastore."""
    vm = vm_of(state, vm_id)
    if op := busy(state, vm_id):
        raise Conflict(f"VM {vm['name']} is locked by operation {op}")
    rule = rules.get(spec.mechanism)
    if rule is None:
        raise Conflict(f"mechanism {spec.mechanism!r} is not offered here (offered: {', '.join(rules)})")
    sizes = {d["id"]: d["size"] for d in vm["disks"]}
    if set(spec.disks) != set(sizes):
        raise Conflict(f"spec must place every disk of {vm['name']}: {sorted(sizes)}")
    if rule.needs_other_host:
        if not spec.host:
            raise Conflict(f"{spec.mechanism} needs a host for the secondary")
        if spec.host == vm["host"]:
            raise Conflict(f"{spec.mechanism}: the secondary must run on another host than the primary")
    if spec.host:
        if spec.host not in state["hosts"]:
            raise NotFound(f"host {spec.host!r} does not exist")
        if not host_up(state, spec.host):
            raise Conflict(f"host {state['hosts'][spec.host]['name']} is not up")
    if rule.primary_kinds is not None:
        for d in vm["disks"]:
            kind = state["datastores"][d["datastore"]]["kind"]
            if kind not in rule.primary_kinds:
                kinds = "/".join(sorted(rule.primary_kinds))
                raise Conflict(f"{spec.mechanism} needs the primary on {kinds}, disk {d['id']} is on {kind}")
    if rule.max_secondaries_per_vm is not None:
        have = sum(s["mechanism"] == spec.mechanism for s in vm["secondaries"])
        if have >= rule.max_secondaries_per_vm:
            raise Conflict(
                f"{spec.mechanism}: {vm['name']} already has {have} such secondary (limit "
                f"{rule.max_secondaries_per_vm}): remove it first"
            )
    if rule.max_disks is not None and len(sizes) > rule.max_disks:
        raise Conflict(f"{spec.mechanism}: {len(sizes)} disks, at most {rule.max_disks}")
    if rule.max_vcpus_per_vm is not None and vm["vcpus"] > rule.max_vcpus_per_vm:
        raise Conflict(f"{spec.mechanism}: {vm['vcpus']} vCPUs, at most {rule.max_vcpus_per_vm}")
    if rule.max_vms_per_host or rule.max_vcpus_per_host:
        # FT-style limits count primaries and secondaries alike, on both hosts involved
        for host in {h for h in (spec.host, vm["host"]) if h}:
            n, cpus = host_load(state, spec.mechanism, host)
            name = state["hosts"][host]["name"]
            if rule.max_vms_per_host is not None and n + 1 > rule.max_vms_per_host:
                limit = rule.max_vms_per_host
                raise Conflict(f"{spec.mechanism}: host {name} already has {n} such VMs (limit {limit})")
            if rule.max_vcpus_per_host is not None and cpus + vm["vcpus"] > rule.max_vcpus_per_host:
                raise Conflict(
                    f"{spec.mechanism}: host {name} would carry {cpus + vm['vcpus']} vCPUs "
                    f"(limit {rule.max_vcpus_per_host})"
                )
    if rule.needs_metadata_datastore:
        if not spec.metadata_datastore:
            raise Conflict(f"{spec.mechanism} needs a metadata datastore")
        if not ds_of(state, spec.metadata_datastore)["shared"]:
            raise Conflict(f"{spec.mechanism}: metadata datastore must be shared")
    need: dict[str, int] = {}
    targets = dict(spec.disks)
    if rule.has_config:
        if not spec.config_datastore:
            raise Conflict(f"{spec.mechanism} needs a datastore for the secondary's config")
    for did, ds_id in targets.items():
        ds = ds_of(state, ds_id)
        if rule.secondary_kinds is not None and ds["kind"] not in rule.secondary_kinds:
            raise Conflict(f"{spec.mechanism} cannot place a secondary on {ds['kind']} datastore {ds['name']}")
        if rule.host_must_mount and spec.host and spec.host not in ds["hosts"]:
            raise Conflict(f"host {state['hosts'][spec.host]['name']} does not mount datastore {ds['name']}")
        need[ds_id] = need.get(ds_id, 0) + sizes[did]
    for ds_id, size in need.items():
        require_room(state, ds_id, size)
    return need


def host_load(state: State, mechanism: str, host: str) -> tuple[int, int]:
    """(VMs, vCPUs) of ``mechanism`` pairs with a primary or a secondary on ``host``."""
    n = cpus = 0
    for vm in state["vms"].values():
        for s in vm["secondaries"]:
            if s["mechanism"] == mechanism and host in (s["host"], vm["host"]):
                n += 1
                cpus += vm["vcpus"]
    return n, cpus


def copies(state: State, vm_id: str) -> tuple[bool, int, int]:
    """(primary readable, in-sync secondaries readable, secondaries syncing)."""
    vm = vm_of(state, vm_id)
    primary = all(ds_up(state, d["datastore"]) for d in vm["disks"])
    good = syncing = 0
    now = time.time()
    for s in vm["secondaries"]:
        readable = all(ds_up(state, x) for x in s["disks"].values())
        st = sec_state(state, vm_id, s, now)
        if st == "in_sync" and readable:
            good += 1
        elif st == "syncing":
            syncing += 1
    return primary, good, syncing


def check_unprotect(state: State, vm_id: str, sec_id: str) -> None:
    """The invariant at its sharpest point: never drop the last verified copy early."""
    vm = vm_of(state, vm_id)
    sec = next((s for s in vm["secondaries"] if s["id"] == sec_id), None)
    if sec is None:
        raise NotFound(f"VM {vm['name']} has no secondary {sec_id!r}")
    primary, good, syncing = copies(state, vm_id)
    verified = sec_state(state, vm_id, sec, time.time()) == "in_sync" and all(
        ds_up(state, x) for x in sec["disks"].values()
    )
    if verified and good == 1 and syncing:
        violate(state, f"{vm['name']}: removing its only verified secondary while its replacement is still syncing")
    if verified and good == 1 and not primary:
        violate(state, f"{vm['name']}: removing its only readable copy (the primary is not accessible)")


def violate(state: State, message: str) -> None:
    state["violations"].append(message)
    raise InvariantViolation(message)


def check_invariant(state: State, vm_ids: Iterable[str] | None = None) -> None:
    """Every disk of every VM (of ``vm_ids``: those a step touched) exists on a datastore that
    exists, and every VM has a copy. Called after every step."""
    vms = state["vms"]
    chosen = vms.values() if vm_ids is None else [vms[v] for v in vm_ids if v in vms]
    for vm in chosen:
        for d in vm["disks"]:
            if d["datastore"] not in state["datastores"]:
                violate(state, f"{vm['name']}: disk {d['id']} is on no datastore")
        if not vm["disks"] and not vm["secondaries"]:
            violate(state, f"{vm['name']}: has no copy at all")
