"""Coriolis ``storage_mappings`` and ``network_map`` JSON.

The shapes are Coriolis' own schemas (cloudbase/coriolis ``coriolis/schemas/
storage_mappings_schema.json``: ``default``, ``backend_mappings[{source, destination}]``,
``disk_mappings[{disk_id, destination}]``, no other key, "per-disk, per-backend, and finally
the default"; ``network_map_schema.json``: an object of source network -> destination).

Coriolis keys a disk by its id within one transfer (VMware: the device key, ``"2000"``), so a
disk rule without instances applies to that id in any VM (``vm`` None in the model). When
per-disk rules name VMs, the writer emits one transfer fragment per VM
(``{"transfers": [{"instances": [...], "storage_mappings": ..., "network_map": ...}]}``, the
shape of Coriolis' transfer API), so ids from different VMs never collide. The reader takes a
bare ``{storage_mappings, network_map}``, a ``{"transfer": {...}}`` request, a
``{"transfers": [...]}`` list (and the same for deployments), a ``{"migration": ...}`` request
(README), and the flat
legacy ``storage_mappings`` of ``destination_environment`` (``{backend: destination}``), which
Coriolis still accepts there.
"""

from __future__ import annotations

import json
from typing import Any

from ftbridge.loading import parse_json
from ftbridge.migrate.mapping import ItemRule, Mapping, Rule

NAME = "coriolis"
STORAGE_KEYS = ("default", "backend_mappings", "disk_mappings")


def _err(msg: str) -> Exception:
    from ftbridge.migrate.formats import MappingError

    return MappingError(msg)


def read(text: str, *, source: str = "coriolis") -> Mapping:
    from ftbridge.migrate.formats import MappingError

    data = parse_json(text, source=source, what="mapping file", error=MappingError)
    if not isinstance(data, dict):
        raise _err(f"{source}: expected a JSON object with storage_mappings and/or network_map")
    parts: list[tuple[str, Any]] = [("", data)]
    for many in ("transfers", "deployments", "migrations"):
        if isinstance(data.get(many), list):
            parts = [(f"{many}[{i}]", t) for i, t in enumerate(data[many])]
    for one in ("transfer", "deployment", "migration"):
        if isinstance(data.get(one), dict):
            parts = [(one, data[one])]
    default: str | None = None
    backends: dict[str, Rule] = {}
    networks: dict[str, Rule] = {}
    disks: dict[tuple[str | None, str], ItemRule] = {}
    vms: list[str] = []
    found = False
    for path, part in parts:
        if not isinstance(part, dict):
            raise _err(f"{source}: {path}: expected an object")
        pre = f"{path}." if path else ""
        instances = part.get("instances") or []
        if not isinstance(instances, list) or not all(isinstance(x, str) for x in instances):
            raise _err(f"{source}: {pre}instances: expected a list of instance names")
        vms += instances
        for where, sm in _storage_sources(part, pre):
            found = True
            d, b, k = _storage(sm, f"{source}: {where}", instances, "destination_environment" in where)
            if d is not None:
                if default is not None and d != default:
                    raise _err(f"{source}: {where}.default: {d!r} contradicts the default {default!r} read before")
                default = d
            for r in b:
                _merge(backends, r.source, r, source)
            for ir in k:
                _merge(disks, (ir.vm, ir.item), ir, source)
        for where, nm in _network_sources(part, pre):
            found = True
            if not isinstance(nm, dict):
                raise _err(f"{source}: {where}: expected an object of source network -> destination")
            for src, dst in nm.items():
                if not isinstance(dst, str) or not dst:
                    raise _err(f"{source}: {where}.{src}: expected a destination network name or id")
                _merge(networks, src, Rule(src, dst, "name", where=f"{source}: {where}.{src}"), source)
    if not found:
        raise _err(f"{source}: no storage_mappings or network_map in it")
    return Mapping(
        storage_default=default,
        datastores=tuple(backends.values()),
        disks=tuple(disks.values()),
        networks=tuple(networks.values()),
        vms=tuple(vms),
        origin=source,
    )


def _storage_sources(part: dict[str, Any], pre: str) -> list[tuple[str, Any]]:
    out = []
    if "storage_mappings" in part:
        out.append((f"{pre}storage_mappings", part["storage_mappings"]))
    env = part.get("destination_environment")
    if isinstance(env, dict) and "storage_mappings" in env:
        out.append((f"{pre}destination_environment.storage_mappings", env["storage_mappings"]))
    return out


def _network_sources(part: dict[str, Any], pre: str) -> list[tuple[str, Any]]:
    out = []
    if "network_map" in part:
        out.append((f"{pre}network_map", part["network_map"]))
    for env_key in ("destination_environment", "target_environment"):
        env = part.get(env_key)
        if isinstance(env, dict) and "network_map" in env:
            out.append((f"{pre}{env_key}.network_map", env["network_map"]))
    dest = part.get("destination")
    if isinstance(dest, dict) and isinstance(dest.get("target_environment"), dict):
        te = dest["target_environment"]
        if "network_map" in te:
            out.append((f"{pre}destination.target_environment.network_map", te["network_map"]))
    return out


def _merge(into: dict[Any, Any], key: Any, rule: Any, source: str) -> None:
    old = into.get(key)
    if old is not None and old.target != rule.target:
        raise _err(
            f"{rule.where}: maps {key!r} to {rule.target!r}, but {old.where.split(': ')[-1]} says {old.target!r}"
        )
    into[key] = rule


def _storage(sm: Any, where: str, instances: list[str], flat_ok: bool) -> tuple[str | None, list[Rule], list[ItemRule]]:
    if not isinstance(sm, dict):
        raise _err(f"{where}: expected an object")
    if flat_ok and sm and not any(k in STORAGE_KEYS for k in sm):
        # the flat legacy form {backend: destination} of destination_environment
        rules = []
        for src, dst in sm.items():
            if not isinstance(dst, str) or not dst:
                raise _err(f"{where}.{src}: expected a destination storage name")
            rules.append(Rule(src, dst, "name", where=f"{where}.{src}"))
        return None, rules, []
    for k in sm:
        if k not in STORAGE_KEYS:
            raise _err(f"{where}.{k}: unknown key (the schema allows {', '.join(STORAGE_KEYS)})")
    default = sm.get("default")
    if default is not None and (not isinstance(default, str) or not default):
        raise _err(f"{where}.default: expected a storage name")
    backends = []
    for i, b in enumerate(sm.get("backend_mappings") or []):
        key = f"{where}.backend_mappings[{i}]"
        if not isinstance(b, dict) or set(b) != {"source", "destination"}:
            raise _err(f"{key}: expected exactly source and destination")
        if not all(isinstance(b[x], str) and b[x] for x in ("source", "destination")):
            raise _err(f"{key}: source and destination must be non-empty strings")
        backends.append(Rule(b["source"], b["destination"], "name", where=key))
    disks = []
    for i, d in enumerate(sm.get("disk_mappings") or []):
        key = f"{where}.disk_mappings[{i}]"
        if not isinstance(d, dict) or set(d) != {"disk_id", "destination"}:
            raise _err(f"{key}: expected exactly disk_id and destination")
        if not all(isinstance(d[x], str) and d[x] for x in ("disk_id", "destination")):
            raise _err(f"{key}: disk_id and destination must be non-empty strings")
        owners: list[str | None] = list(instances) or [None]
        for vm in owners:
            disks.append(ItemRule(vm, d["disk_id"], d["destination"], where=key))
    return default, backends, disks


# -- writing -----------------------------------------------------------------------------------
def _storage_doc(mapping: Mapping, disks: list[ItemRule]) -> dict[str, Any]:
    sm: dict[str, Any] = {}
    if mapping.storage_default:
        sm["default"] = mapping.storage_default
    backends = [r for r in mapping.datastores if r.target is not None]
    if backends:
        sm["backend_mappings"] = [{"source": r.source, "destination": r.target} for r in backends]
    if disks:
        sm["disk_mappings"] = [{"disk_id": d.item, "destination": d.target} for d in disks if d.target]
    return sm


def _network_doc(mapping: Mapping, ctx: Any) -> dict[str, str]:
    nm = {r.source: r.target for r in mapping.networks if r.target is not None}
    for vm in ctx.vms:
        for src, dst in vm.networks:
            if dst is not None and src not in nm:
                nm[src] = dst
    return dict(sorted(nm.items()))


def write(mapping: Mapping, ctx: Any) -> str:
    per_vm = sorted({d.vm for d in mapping.disks if d.vm is not None})
    any_vm = [d for d in mapping.disks if d.vm is None]
    network_map = _network_doc(mapping, ctx)
    if not per_vm:
        doc: dict[str, Any] = {"storage_mappings": _storage_doc(mapping, any_vm), "network_map": network_map}
        if mapping.vms or ctx.vms:
            doc = {"transfers": [{"instances": sorted(set(mapping.vms) | {v.name for v in ctx.vms}), **doc}]}
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    groups: list[dict[str, Any]] = []
    rest = sorted((set(mapping.vms) | {v.name for v in ctx.vms}) - set(per_vm))
    for vm in per_vm:
        own = [d for d in mapping.disks if d.vm == vm] + any_vm
        groups.append({"instances": [vm], "storage_mappings": _storage_doc(mapping, own), "network_map": network_map})
    if rest or any_vm:
        groups.append(
            {"instances": rest, "storage_mappings": _storage_doc(mapping, any_vm), "network_map": network_map}
        )
    return json.dumps({"transfers": groups}, indent=2, ensure_ascii=False) + "\n"
