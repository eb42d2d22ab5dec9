"""The oVirt disaster-recovery role's vars file, as a migration's mapping.

Keys as the role reads them (oVirt/ovirt-ansible-collection ``roles/disaster_recovery``:
``examples/disaster_recovery_vars.yml``, ``tasks/recover/add_*_domain.yml`` read
``dr_import_storages[]`` items by ``dr_domain_type``, ``dr_primary_name``/``dr_secondary_name``,
``dr_primary_dc_name``/``dr_secondary_dc_name`` and the type's address/path/target keys;
``files/fail_over.py``/``generate_vars.py`` build ``dr_cluster_mappings``,
``dr_network_mappings`` (``primary_network_name``, ``primary_profile_name``,
``primary_profile_id``, and the ``secondary_*`` three) and the other ``{primary_name,
secondary_name}`` lists). Storage pairs map datastores, cluster and network lists map clusters
and networks. Keys the model has no use for (addresses, paths, master flags, the site URLs) are
kept as options, so a file read and written back keeps them; a ``*_password`` key is refused:
the role asks for passwords at run time and a mapping never holds one.

The oVirt driver reads this file too, for its own ``ovirt-dr`` pairing (``ftbridge_ovirt.drmap``);
this module is independent of it: it only carries a migration's mapping in and out.
"""

from __future__ import annotations

from typing import Any

from ftbridge.loading import parse_yaml
from ftbridge.migrate.mapping import Mapping, Rule

NAME = "ovirt-dr"
SITE_KEYS = tuple(
    f"dr_sites_{side}_{what}" for side in ("primary", "secondary") for what in ("url", "username", "ca_file")
)
NAME_LISTS = (
    "dr_affinity_group_mappings",
    "dr_affinity_label_mappings",
    "dr_domain_mappings",
    "dr_role_mappings",
)
TOP_KEYS = (
    *SITE_KEYS,
    "dr_import_storages",
    "dr_cluster_mappings",
    "dr_network_mappings",
    "dr_lun_mappings",
    *NAME_LISTS,
)
DOMAIN_TYPES = ("nfs", "iscsi", "fcp", "glusterfs", "posixfs")
#: target datastore kinds -> the role's dr_domain_type (its add_<type>_domain.yml tasks)
KIND_TO_TYPE = {"nfs": "nfs", "iscsi": "iscsi", "fcp": "fcp", "glusterfs": "glusterfs"}


def _err(msg: str) -> Exception:
    from ftbridge.migrate.formats import MappingError

    return MappingError(msg)


def _yaml() -> Any:
    import importlib

    return importlib.import_module("yaml")  # PyYAML: safe_load / safe_dump only


def _no_password(obj: Any, where: str) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(k, str) and k.endswith("_password") and v not in (None, ""):
                raise _err(f"{where}.{k}: a password has no place in a mapping file (the role asks for it)")
            _no_password(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _no_password(v, f"{where}[{i}]")


def read(text: str, *, source: str = "ovirt-dr") -> Mapping:
    from ftbridge.migrate.formats import MappingError

    data = parse_yaml(text, source=source, what="mapping file", error=MappingError)
    if not isinstance(data, dict):
        raise _err(f"{source}: expected the role's vars (a mapping with dr_import_storages)")
    for key in data:
        if key not in TOP_KEYS:
            raise _err(f"{source}: {key}: not a key the disaster_recovery role reads")
    _no_password(data, source)
    storages = []
    for i, s in enumerate(_list(data, "dr_import_storages", source)):
        where = f"{source}: dr_import_storages[{i}]"
        if not isinstance(s, dict):
            raise _err(f"{where}: expected a mapping")
        for key in ("dr_domain_type", "dr_primary_name", "dr_secondary_name"):
            if not isinstance(s.get(key), str) or not s[key]:
                raise _err(f"{where}.{key}: missing")
        if s["dr_domain_type"] not in DOMAIN_TYPES:
            raise _err(f"{where}.dr_domain_type: {s['dr_domain_type']!r}, expected one of {', '.join(DOMAIN_TYPES)}")
        opts = {k: v for k, v in s.items() if k not in ("dr_primary_name", "dr_secondary_name")}
        storages.append(Rule(s["dr_primary_name"], s["dr_secondary_name"], "name", opts, where=where))
    clusters = [
        Rule(p, s, "name", where=w)
        for p, s, w in _pairs(data, "dr_cluster_mappings", "primary_name", "secondary_name", source)
    ]
    networks = []
    for i, n in enumerate(_list(data, "dr_network_mappings", source)):
        where = f"{source}: dr_network_mappings[{i}]"
        if not isinstance(n, dict):
            raise _err(f"{where}: expected a mapping")
        src = n.get("primary_network_name") or n.get("primary_profile_name")
        dst = n.get("secondary_network_name") or n.get("secondary_profile_name")
        if not isinstance(src, str) or not src or not isinstance(dst, str) or not dst:
            raise _err(f"{where}: needs primary_network_name and secondary_network_name")
        opts = {k: v for k, v in n.items() if k not in ("primary_network_name", "secondary_network_name")}
        networks.append(Rule(src, dst, "name", opts, where=where))
    extra = {k: data[k] for k in (*SITE_KEYS, *NAME_LISTS, "dr_lun_mappings") if k in data}
    for seen in (storages, networks, clusters):
        sources: dict[str, str] = {}
        for r in seen:
            if r.source in sources:
                raise _err(f"{r.where}: {r.source!r} is already paired by {sources[r.source].split(': ')[-1]}")
            sources[r.source] = r.where
    return Mapping(
        datastores=tuple(storages),
        networks=tuple(networks),
        clusters=tuple(clusters),
        options={"ovirt-dr": extra} if extra else {},
        origin=source,
    )


def _list(data: dict[str, Any], key: str, source: str) -> list[Any]:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise _err(f"{source}: {key}: expected a list")
    return value


def _pairs(data: dict[str, Any], key: str, a: str, b: str, source: str) -> list[tuple[str, str, str]]:
    out = []
    for i, x in enumerate(_list(data, key, source)):
        where = f"{source}: {key}[{i}]"
        if not isinstance(x, dict) or not isinstance(x.get(a), str) or not isinstance(x.get(b), str):
            raise _err(f"{where}: needs {a} and {b}")
        out.append((x[a], x[b], where))
    return out


# -- writing -----------------------------------------------------------------------------------
def write(mapping: Mapping, ctx: Any) -> str:
    extra: dict[str, Any] = dict(mapping.options.get("ovirt-dr", {}))
    out: dict[str, Any] = {k: extra[k] for k in SITE_KEYS if k in extra}
    pairs = {r.source: r for r in mapping.datastores if r.target is not None}
    for vm in ctx.vms:  # a default has no place in the role's file: the plan's resolved pairs
        for src, dst in vm.storages:
            pairs.setdefault(src, Rule(src, dst, "name"))
    storages = []
    for src, r in sorted(pairs.items()):
        item: dict[str, Any] = {}
        opts = dict(r.options)
        kind = ctx.target_kinds.get(r.target or "", "")
        item["dr_domain_type"] = opts.pop("dr_domain_type", KIND_TO_TYPE.get(kind, "posixfs"))
        item["dr_primary_name"] = src
        item["dr_secondary_name"] = r.target
        item.update(opts)
        storages.append(item)
    out["dr_import_storages"] = storages
    out["dr_cluster_mappings"] = [
        {"primary_name": r.source, "secondary_name": r.target} for r in mapping.clusters if r.target is not None
    ]
    for k in NAME_LISTS:
        if k in extra:
            out[k] = extra[k]
    nets = {r.source: r for r in mapping.networks if r.target is not None}
    for vm in ctx.vms:
        for src, dst in vm.networks:
            if dst is not None:
                nets.setdefault(src, Rule(src, dst, "name"))
    out["dr_network_mappings"] = [
        {"primary_network_name": src, **{k: v for k, v in r.options.items()}, "secondary_network_name": r.target}
        for src, r in sorted(nets.items())
    ]
    if "dr_lun_mappings" in extra:
        out["dr_lun_mappings"] = extra["dr_lun_mappings"]
    head = "# oVirt disaster_recovery role vars: storage domains, clusters and networks paired by ftbridge\n"
    if mapping.storage_default or mapping.disks or mapping.nics or mapping.network_default:
        head += "# note: defaults and per-disk/per-NIC rules have no place in this file; the pairs are as resolved\n"
    body: str = _yaml().safe_dump(out, sort_keys=False, default_flow_style=False)
    return head + body
