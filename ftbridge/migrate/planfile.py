"""The migration plan file: versioned JSON, the same bytes for the same input.

``ftbridge/schemas/migration-plan.schema.json`` describes it. Like the other plans it carries
a ``plan_id`` (a digest of everything but ``created_at``), so a damaged or edited file is
refused, and the fingerprints of the two inventories it was made from. Per VM it holds where
each disk and NIC goes and why (which mapping rule), the host, the secondary planned on the
target and whether it is separated, the wave, and the gap report's entry; per target
datastore, the space before and after. The protect actions are the planner's own, in its
action format, for ``migrate verify`` to compare against.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ftbridge.config import Config
from ftbridge.errors import PlanError
from ftbridge.migrate.planner import Migration
from ftbridge.planning.planfile import config_digest, dumps, write_plan

MIGRATION_SCHEMA_VERSION = 1
MIGRATION_KIND = "ftbridge-migration-plan"


def _digest(doc: dict[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k not in ("plan_id", "created_at")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def migration_document(
    m: Migration, config: Config, gaps: list[dict[str, Any]], *, created_at: str, generator: str, mapping: str
) -> dict[str, Any]:
    gap_by_vm = {g["vm"]: g for g in gaps}
    vms = []
    for o in sorted(m.outcomes, key=lambda o: (o.placed.vm.name, o.projected_id)):
        p, vm = o.placed, o.placed.vm
        entry: dict[str, Any] = {
            "vm": vm.id,
            "vm_name": vm.name,
            "uuid": vm.uuid,
            "status": "infeasible" if p.reason is not None else "planned",
            "reason": p.reason,
            "category": p.category or None,
            "wave": o.wave,
            "policy": p.policy.name if p.policy else None,
            "bytes": sum(d.size for d in vm.disks),
            "memory": vm.memory,
            "vcpus": vm.vcpus,
            "power": vm.power.value,
            "ha": vm.ha,
            "cluster": p.host.cluster if p.host else None,
            "host": p.host.id if p.host else None,
            "host_name": p.host.name if p.host else None,
            "config_datastore": p.config,
            "disks": [
                {
                    "id": dp.disk.id,
                    "size": dp.disk.size,
                    "content": dp.disk.content,
                    "from": dp.disk.datastore,
                    "from_name": dp.source_name,
                    "to": dp.target,
                    "to_name": dp.target_name,
                    "rule": dp.rule,
                    "bytes": dp.bytes,
                }
                for dp in sorted(p.disks, key=lambda x: x.disk.id)
            ],
            "nics": [
                {
                    "id": np.nic.id,
                    "mac": np.nic.mac,
                    "from": np.nic.network,
                    "from_name": np.source_name,
                    "to": np.target,
                    "to_name": np.target_name,
                    "rule": np.rule,
                }
                for np in sorted(p.nics, key=lambda x: x.nic.id)
            ],
            "protection": {
                "wanted": o.protection.wanted,
                "mechanism": o.protection.mechanism,
                "spec": o.protection.spec or None,
                "level": o.protection.level or None,
                "separated": o.protection.separated,
                "evidence": o.protection.evidence or None,
                "reason": o.protection.reason or None,
                "category": o.protection.category or None,
            },
            "gap": {k: v for k, v in gap_by_vm.get(vm.id, {}).items() if k not in ("vm", "name", "wave")},
        }
        vms.append(entry)
    secondary_bytes: dict[str, int] = {}
    for o in m.outcomes:  # the secondaries' space on each target datastore
        sizes = {d.id: d.size for d in o.placed.vm.disks}
        for disk_id, ds_id in dict(o.protection.spec.get("disks", {})).items():
            secondary_bytes[ds_id] = secondary_bytes.get(ds_id, 0) + sizes.get(disk_id, 0)
    ds_rows: list[dict[str, Any]] = []
    for i, d in enumerate(m.placer.ds_list):
        after = m.projected.datastore(m.target_endpoint, d.id)
        ds_rows.append(
            {
                "id": d.id,
                "name": d.name,
                "kind": d.kind,
                "shared": d.shared,
                "capacity": d.capacity,
                "free_before": d.free,
                "primaries": m.placer.placed_bytes[i],
                "free_after_primaries": after.free if after else d.free,
                "headroom_pct": m.placer.ledger.pct[i],
                "secondaries": secondary_bytes.get(d.id, 0),
            }
        )
        ds_rows[-1]["free_after"] = ds_rows[-1]["free_after_primaries"] - ds_rows[-1]["secondaries"]
    protect = [a.to_dict() for a in m.protect_result.actions if a.kind == "protect"]
    status: dict[str, int] = {}
    for g in gaps:
        status[g["status"]] = status.get(g["status"], 0) + 1
    planned = [v for v in vms if v["status"] == "planned"]
    src_ep = m.source.endpoint(m.source_endpoint)
    tgt_ep = m.target.endpoint(m.target_endpoint)
    doc: dict[str, Any] = {
        "schema_version": MIGRATION_SCHEMA_VERSION,
        "kind": MIGRATION_KIND,
        "plan_id": "",
        "created_at": created_at,
        "generator": generator,
        "source": {
            "endpoint": m.source_endpoint,
            "driver": src_ep.driver if src_ep else "",
            "fingerprint": m.source.fingerprint(),
        },
        "target": {
            "endpoint": m.target_endpoint,
            "driver": tgt_ep.driver if tgt_ep else "",
            "fingerprint": m.target.fingerprint(),
            "mechanisms": list(tgt_ep.mechanisms) if tgt_ep else [],
        },
        "mapping": mapping,
        "config": {"digest": config_digest(config)},
        "summary": {
            "vms": len(vms),
            "planned": len(planned),
            "infeasible": len(vms) - len(planned),
            "skipped": len(m.skipped),
            "waves": m.waves,
            "bytes": sum(v["bytes"] for v in planned),
            "protected": sum(1 for v in planned if v["protection"]["mechanism"]),
            "separated": sum(1 for v in planned if v["protection"]["separated"]),
            "gaps": dict(sorted(status.items())),
        },
        "vms": vms,
        "skipped": [{"vm": v.id, "vm_name": v.name, "reason": why} for v, why in m.skipped],
        "datastores": ds_rows,
        "protect_actions": protect,
        "unfixable": [u.to_dict() for u in m.protect_result.unfixable],
    }
    doc["plan_id"] = _digest(doc)
    return doc


def write_migration(doc: dict[str, Any], path: Path) -> None:
    write_plan(doc, path)


def load_migration(path: str | Path) -> dict[str, Any]:
    """A migration plan file, checked: kind, version, and that it is unedited."""
    from ftbridge.loading import load_json

    path = Path(path)
    data = load_json(path, what="migration plan", error=PlanError)
    if not isinstance(data, dict) or data.get("kind") != MIGRATION_KIND:
        raise PlanError(f'{path}: not an ftbridge migration plan (no "kind": "{MIGRATION_KIND}")')
    if data.get("schema_version") != MIGRATION_SCHEMA_VERSION:
        raise PlanError(
            f"{path}: migration plan schema_version {data.get('schema_version')!r} is not supported "
            f"(this ftbridge reads {MIGRATION_SCHEMA_VERSION})"
        )
    for key in ("source", "target", "vms", "summary"):
        if key not in data:
            raise PlanError(f"{path}: malformed migration plan: {key}: missing")
    if _digest(data) != data.get("plan_id"):
        raise PlanError(f"{path}: migration plan content does not match its plan_id (damaged or edited)")
    return data


__all__ = ["MIGRATION_KIND", "MIGRATION_SCHEMA_VERSION", "dumps", "load_migration", "migration_document"]
