"""A migration plan's placement as a mapping, written in a moving tool's format.

The plan decided a target for every disk and NIC; the mapping that reproduces it uses the
coarsest rules that are exact: one per source datastore (or network) whose disks all went to
the same target, a per-disk (per-NIC) rule for each exception. Formats that cannot say
per-disk (Forklift, Proxmox pair lists, the oVirt DR role) get the per-datastore pairs and, in
a comment, what they cannot express; the per-VM lines (``qm remote-migrate``, a Forklift
``Plan``, Coriolis instances) come from the plan's VMs.
"""

from __future__ import annotations

from typing import Any

from ftbridge.migrate.formats import ExportContext, ExportVM, write_mapping
from ftbridge.migrate.mapping import ItemRule, Mapping, Rule


def plan_mapping(doc: dict[str, Any]) -> Mapping:
    """The exact mapping of a migration plan's placement."""
    planned = [v for v in doc["vms"] if v["status"] == "planned"]
    ds_targets: dict[str, dict[str, int]] = {}
    net_targets: dict[str, dict[str | None, int]] = {}
    for v in planned:
        for d in v["disks"]:
            t = ds_targets.setdefault(d["from_name"], {})
            t[d["to_name"]] = t.get(d["to_name"], 0) + 1
        for n in v["nics"]:
            if n["from_name"]:
                tn = net_targets.setdefault(n["from_name"], {})
                tn[n["to_name"]] = tn.get(n["to_name"], 0) + 1
    # the target most disks of a datastore went to is its rule; the others become per-disk rules
    ds_rule = {s: max(sorted(t.items(), key=lambda x: x[0]), key=lambda x: x[1])[0] for s, t in ds_targets.items()}
    net_rule = {
        s: max(sorted(t.items(), key=lambda x: x[0] or ""), key=lambda x: x[1])[0] for s, t in net_targets.items()
    }
    disks = [
        ItemRule(v["vm_name"], d["id"], d["to_name"])
        for v in planned
        for d in v["disks"]
        if ds_rule[d["from_name"]] != d["to_name"]
    ]
    nics = [
        ItemRule(v["vm_name"], n["id"], n["to_name"])
        for v in planned
        for n in v["nics"]
        if n["from_name"] and net_rule[n["from_name"]] != n["to_name"]
    ]
    clusters: dict[str, str] = {}
    return Mapping(
        datastores=tuple(Rule(s, t, "name") for s, t in sorted(ds_rule.items())),
        disks=tuple(disks),
        networks=tuple(Rule(s, t, "name") for s, t in sorted(net_rule.items())),
        nics=tuple(nics),
        clusters=tuple(Rule(s, t, "name") for s, t in sorted(clusters.items())),
        source=doc["source"]["endpoint"],
        target=doc["target"]["endpoint"],
        vms=tuple(v["vm_name"] for v in planned),
        origin=f"migration plan {doc['plan_id']}",
    )


def export_context(doc: dict[str, Any], *, namespace: str = "openshift-mtv") -> ExportContext:
    planned = [v for v in doc["vms"] if v["status"] == "planned"]
    return ExportContext(
        source=doc["source"]["endpoint"],
        target=doc["target"]["endpoint"],
        vms=tuple(
            ExportVM(
                id=v["vm"],
                name=v["vm_name"],
                uuid=v.get("uuid", ""),
                storages=tuple((d["from_name"], d["to_name"]) for d in v["disks"]),
                networks=tuple((n["from_name"], n["to_name"]) for n in v["nics"] if n["from_name"]),
                container=bool(v["disks"]) and all(d.get("content") == "rootdir" for d in v["disks"]),
                running=v.get("power") == "on",
            )
            for v in planned
        ),
        target_kinds={d["name"]: d["kind"] for d in doc["datastores"]},
        namespace=namespace,
        name=f"ftbridge-{doc['source']['endpoint']}-{doc['target']['endpoint']}".lower(),
    )


def export_plan(doc: dict[str, Any], fmt: str, *, namespace: str = "openshift-mtv") -> str:
    return write_mapping(plan_mapping(doc), fmt, export_context(doc, namespace=namespace))
