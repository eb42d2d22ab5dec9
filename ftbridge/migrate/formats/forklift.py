"""Forklift (MTV) ``StorageMap`` and ``NetworkMap`` manifests, and a ``Plan`` skeleton.

The shapes are the CRDs' (``forklift.konveyor.io/v1beta1``, kubev2v/forklift
``operator/config/crd/bases/forklift.konveyor.io_{storagemaps,networkmaps,plans}.yaml``):
``spec.map[]`` pairs a ``source`` (``id`` or ``name``, optional ``type``/``namespace``) with a
``destination``: ``storageClass`` (required; ``volumeMode``, ``accessMode`` optional) for
storage, ``type`` (required: ``pod`` | ``multus`` | ``ignored``) plus ``namespace``/``name``
for networks. ``spec.provider`` needs ``source`` and ``destination``; a Plan needs ``map``,
``provider``, ``targetNamespace`` and ``vms``. Forklift maps per datastore and per network
only: per-disk and per-NIC rules and defaults have no place here, so the writer resolves a
default into one entry per source datastore the plan uses and says what it cannot express.

Network targets: ``pod`` is the pod network, ``ignored`` leaves the NIC unconnected (None in
the model), a ``multus`` target is ``namespace/name`` (or ``name``). Fields the model does not
use (``volumeMode``, ``offloadPlugin``, a source's ``type``) are kept as rule options, so a
manifest read and written back is the same manifest.
"""

from __future__ import annotations

from typing import Any

from ftbridge.loading import parse_yaml
from ftbridge.migrate.mapping import Mapping, Rule

NAME = "forklift"
API_VERSION = "forklift.konveyor.io/v1beta1"
KINDS = ("StorageMap", "NetworkMap", "Plan")


def _err(msg: str) -> Exception:
    from ftbridge.migrate.formats import MappingError

    return MappingError(msg)


def _yaml() -> Any:
    import importlib

    return importlib.import_module("yaml")  # PyYAML: safe_load / safe_dump only


def read(text: str, *, source: str = "forklift") -> Mapping:
    from ftbridge.migrate.formats import MappingError

    docs = parse_yaml(text, source=source, what="mapping file", error=MappingError, every=True)
    if len(docs) == 1 and isinstance(docs[0], dict) and docs[0].get("kind") == "List":
        docs = list(docs[0].get("items") or [])
    storage: list[Rule] = []
    networks: list[Rule] = []
    vms: list[str] = []
    found = False
    for n, doc in enumerate(docs):
        kind = doc.get("kind") if isinstance(doc, dict) else None
        where = f"{source}: document {n + 1}"
        if kind not in KINDS:
            raise _err(f"{where}: kind: expected one of {', '.join(KINDS)}")
        if doc.get("apiVersion") != API_VERSION:
            raise _err(f"{where} ({kind}): apiVersion: expected {API_VERSION}")
        spec = doc.get("spec")
        if not isinstance(spec, dict):
            raise _err(f"{where} ({kind}): spec: expected a mapping")
        meta = doc.get("metadata") or {}
        name = meta.get("name", "") if isinstance(meta, dict) else ""
        name = name if isinstance(name, str) else ""
        where = f"{source}: {kind} {name}".rstrip()
        found = True
        if kind == "Plan":
            for i, vm in enumerate(spec.get("vms") or []):
                ref = vm.get("name") or vm.get("id") if isinstance(vm, dict) else None
                if not isinstance(ref, str) or not ref:
                    raise _err(f"{where}: spec.vms[{i}]: expected a name or id")
                vms.append(ref)
            continue
        entries = spec.get("map")
        if not isinstance(entries, list):
            raise _err(f"{where}: spec.map: expected a list of source/destination pairs")
        for i, entry in enumerate(entries):
            key = f"{where}: spec.map[{i}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("source"), dict):
                raise _err(f"{key}.source: expected a mapping with id or name")
            dst = entry.get("destination")
            if not isinstance(dst, dict):
                raise _err(f"{key}.destination: expected a mapping")
            src = entry["source"]
            by = "id" if src.get("id") else "name" if src.get("name") else ""
            if not by or not isinstance(src[by], str):
                raise _err(f"{key}.source: expected an id or a name")
            opts = {f"source.{k}": v for k, v in src.items() if k not in ("id", "name")}
            if kind == "StorageMap":
                sc = dst.get("storageClass")
                if not isinstance(sc, str) or not sc:
                    raise _err(f"{key}.destination.storageClass: missing (the target storage)")
                opts |= {f"destination.{k}": v for k, v in dst.items() if k != "storageClass"}
                opts |= {k: v for k, v in entry.items() if k not in ("source", "destination")}
                storage.append(Rule(src[by], sc, by, opts, where=key))
            else:
                networks.append(Rule(src[by], _net_target(dst, key), by, opts, where=key))
    if not found:
        raise _err(f"{source}: no StorageMap, NetworkMap or Plan in it")
    _no_duplicates(storage, "StorageMap", source)
    _no_duplicates(networks, "NetworkMap", source)
    return Mapping(datastores=tuple(storage), networks=tuple(networks), vms=tuple(vms), origin=source)


def _net_target(dst: dict[str, Any], key: str) -> str | None:
    kind = dst.get("type")
    if kind == "pod":
        return "pod"
    if kind == "ignored":
        return None
    if kind == "multus":
        name = dst.get("name")
        if not isinstance(name, str) or not name:
            raise _err(f"{key}.destination.name: a multus destination needs the network attachment's name")
        ns = dst.get("namespace")
        return f"{ns}/{name}" if ns else name
    raise _err(f"{key}.destination.type: {kind!r}, expected pod, multus or ignored")


def _no_duplicates(rules: list[Rule], kind: str, source: str) -> None:
    seen: dict[tuple[str, str], str] = {}
    for r in rules:
        k = (r.by, r.source)
        if k in seen:
            raise _err(f"{r.where}: source {r.by} {r.source!r} is already mapped by {seen[k].split(': ')[-1]}")
        seen[k] = r.where


# -- writing -----------------------------------------------------------------------------------
def _meta(name: str, namespace: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace}


def write(mapping: Mapping, ctx: Any) -> str:
    """StorageMap, NetworkMap and a Plan naming the plan's VMs, as one YAML stream."""
    ns = ctx.namespace
    provider = {
        "source": {"name": ctx.source or mapping.source or "source", "namespace": ns},
        "destination": {"name": ctx.target or mapping.target or "host", "namespace": ns},
    }
    storage_rules = list(mapping.datastores)
    network_rules = list(mapping.networks)
    notes: list[str] = []
    # a default (or per-disk rules) has no place in a StorageMap: write what the plan resolved
    known = {r.source for r in storage_rules}
    for vm in ctx.vms:
        for src, dst in vm.storages:
            if src not in known:
                storage_rules.append(Rule(src, dst, "name"))
                known.add(src)
    known = {r.source for r in network_rules}
    for vm in ctx.vms:
        for src, dst in vm.networks:
            if src not in known:
                network_rules.append(Rule(src, dst, "name"))
                known.add(src)
    if mapping.disks or mapping.nics:
        notes.append("per-disk and per-NIC rules are not expressible in a StorageMap/NetworkMap: left out")
    if mapping.storage_default and not ctx.vms:
        notes.append(f"the default target {mapping.storage_default} applies to no listed datastore: left out")
    storage_map = {
        "apiVersion": API_VERSION,
        "kind": "StorageMap",
        "metadata": _meta(f"{ctx.name}-storage", ns),
        "spec": {"provider": provider, "map": [_storage_entry(r) for r in _sorted(storage_rules)]},
    }
    network_map = {
        "apiVersion": API_VERSION,
        "kind": "NetworkMap",
        "metadata": _meta(f"{ctx.name}-network", ns),
        "spec": {"provider": provider, "map": [_network_entry(r) for r in _sorted(network_rules)]},
    }
    docs: list[dict[str, Any]] = [storage_map, network_map]
    names = sorted({vm.name for vm in ctx.vms} | set(mapping.vms))
    if names:
        docs.append(
            {
                "apiVersion": API_VERSION,
                "kind": "Plan",
                "metadata": _meta(ctx.name, ns),
                "spec": {
                    "provider": provider,
                    "map": {
                        "storage": _meta(f"{ctx.name}-storage", ns),
                        "network": _meta(f"{ctx.name}-network", ns),
                    },
                    "targetNamespace": ns,
                    "vms": [{"name": n} for n in names],
                },
            }
        )
    yaml = _yaml()
    head = "".join(f"# note: {n}\n" for n in notes)
    body: str = yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, explicit_start=True)
    return head + body


def _sorted(rules: list[Rule]) -> list[Rule]:
    return sorted(rules, key=lambda r: (r.source, r.by))


def _source(r: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {"id" if r.by == "id" else "name": r.source}
    out |= {k.split(".", 1)[1]: v for k, v in r.options.items() if k.startswith("source.")}
    return out


def _storage_entry(r: Rule) -> dict[str, Any]:
    dst: dict[str, Any] = {"storageClass": r.target}
    dst |= {k.split(".", 1)[1]: v for k, v in r.options.items() if k.startswith("destination.")}
    entry: dict[str, Any] = {"source": _source(r), "destination": dst}
    entry |= {k: v for k, v in r.options.items() if "." not in k}
    return entry


def _network_entry(r: Rule) -> dict[str, Any]:
    if r.target is None:
        dst: dict[str, Any] = {"type": "ignored"}
    elif r.target == "pod":
        dst = {"type": "pod"}
    else:
        ns, _, name = r.target.rpartition("/")
        dst = {"type": "multus", **({"namespace": ns} if ns else {}), "name": name}
    return {"source": _source(r), "destination": dst}
