"""ftbridge's own mapping file (TOML): every rule the model has, nothing else.

```toml
source = "vc-ams"                   # optional: the endpoints the mapping is for
target = "pve-rtm"

[storage]
default = "ceph-rtm"                # every disk no other rule maps

[storage.datastores]                # per source datastore (its name or id)
"ams1-netapp-a-01" = "ceph-rtm"

[[storage.disks]]                   # per disk: beats its datastore's rule
vm = "ams-sql01"
disk = "2001"
to = "nfs-rtm-b"

[network]
default = "vmbr0"

[network.networks]                  # per source network; false: leave the NIC unconnected
"VM Network" = "vmbr0"

[[network.nics]]                    # per NIC (its id or MAC)
vm = "ams-sql01"
nic = "4000"
to = "vmbr1"

[clusters]                          # source cluster -> target cluster
"ams-stretch" = "rtm"
```
"""

from __future__ import annotations

import json
from typing import Any

from ftbridge.loading import kind_of, parse_toml
from ftbridge.migrate.mapping import ItemRule, Mapping, Rule

NAME = "ftbridge"
TOP = ("source", "target", "vms", "storage", "network", "clusters")


def _err(source: str, key: str, msg: str) -> Exception:
    from ftbridge.migrate.formats import MappingError

    return MappingError(f"{source}: {key}: {msg}")


def read(text: str, *, source: str = "mapping") -> Mapping:
    from ftbridge.migrate.formats import MappingError

    data = parse_toml(text, source=source, what="mapping file", error=MappingError)
    for key in data:
        if key not in TOP:
            raise _err(source, key, f"unknown key (expected one of: {', '.join(TOP)})")
    storage = _table(data, "storage", source)
    network = _table(data, "network", source)
    _only(storage, "storage", ("default", "datastores", "disks"), source)
    _only(network, "network", ("default", "networks", "nics"), source)
    return Mapping(
        storage_default=_opt_str(storage.get("default"), "storage.default", source),
        datastores=_pairs(storage.get("datastores", {}), "storage.datastores", source, allow_none=False),
        disks=_items(storage.get("disks", []), "storage.disks", "disk", source, allow_none=False),
        network_default=_opt_str(network.get("default"), "network.default", source),
        networks=_pairs(network.get("networks", {}), "network.networks", source, allow_none=True),
        nics=_items(network.get("nics", []), "network.nics", "nic", source, allow_none=True),
        clusters=_pairs(data.get("clusters", {}), "clusters", source, allow_none=False),
        source=_opt_str(data.get("source"), "source", source),
        target=_opt_str(data.get("target"), "target", source),
        vms=tuple(_str_list(data.get("vms", []), "vms", source)),
        origin=source,
    )


def _table(data: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise _err(source, key, "expected a table")
    return value


def _only(table: dict[str, Any], where: str, keys: tuple[str, ...], source: str) -> None:
    for k in table:
        if k not in keys:
            raise _err(source, f"{where}.{k}", f"unknown key (expected one of: {', '.join(keys)})")


def _opt_str(value: Any, key: str, source: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _err(source, key, "expected a non-empty string")
    return value


def _str_list(value: Any, key: str, source: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
        raise _err(source, key, "expected a list of names")
    return list(value)


def _target(value: Any, key: str, source: str, allow_none: bool) -> str | None:
    if value is False and allow_none:
        return None
    if isinstance(value, str) and value:
        return value
    expected = "a target name, or false to leave it unconnected" if allow_none else "a target name"
    raise _err(source, key, f"expected {expected}, got {kind_of(value)}")


def _pairs(table: Any, where: str, source: str, allow_none: bool) -> tuple[Rule, ...]:
    if not isinstance(table, dict):
        raise _err(source, where, "expected a table of source = target")
    out = []
    for src, dst in table.items():
        key = f"{where}.{json.dumps(src)}"
        out.append(Rule(src, _target(dst, key, source, allow_none), "any", where=f"{source}: {key}"))
    return tuple(out)


def _items(rows: Any, where: str, item: str, source: str, allow_none: bool) -> tuple[ItemRule, ...]:
    if not isinstance(rows, list):
        raise _err(source, where, f"expected an array of tables with vm, {item}, to")
    out = []
    seen: set[tuple[str, str]] = set()
    for i, row in enumerate(rows):
        key = f"{where}[{i}]"
        if not isinstance(row, dict):
            raise _err(source, key, f"expected a table with vm, {item}, to")
        for k in row:
            if k not in ("vm", item, "to"):
                raise _err(source, f"{key}.{k}", f"unknown key (expected vm, {item}, to)")
        vm = _opt_str(row.get("vm"), f"{key}.vm", source)
        ident = row.get(item)
        if isinstance(ident, int) and not isinstance(ident, bool):
            ident = str(ident)
        if not isinstance(ident, str) or not ident:
            raise _err(source, f"{key}.{item}", f"expected the {item}'s id")
        if "to" not in row:
            raise _err(source, f"{key}.to", "missing")
        if (vm or "", ident) in seen:
            raise _err(source, key, f"{item} {ident} of {vm or 'any VM'} is mapped twice")
        seen.add((vm or "", ident))
        out.append(ItemRule(vm, ident, _target(row["to"], f"{key}.to", source, allow_none), where=f"{source}: {key}"))
    return tuple(out)


# -- writing -----------------------------------------------------------------------------------
def _s(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _t(value: str | None) -> str:
    return "false" if value is None else _s(value)


def write(mapping: Mapping, ctx: object = None) -> str:
    lines = ["# ftbridge migration mapping: per disk > per datastore > default; networks likewise", ""]
    for key in ("source", "target"):
        value = getattr(mapping, key)
        if value:
            lines.append(f"{key} = {_s(value)}")
    if mapping.vms:
        lines.append("vms = [" + ", ".join(_s(v) for v in mapping.vms) + "]")
    lines.append("")
    lines.append("[storage]")
    if mapping.storage_default:
        lines.append(f"default = {_s(mapping.storage_default)}")
    lines += ["", "[storage.datastores]"]
    lines += [f"{_s(r.source)} = {_t(r.target)}" for r in mapping.datastores]
    for d in mapping.disks:
        lines += ["", "[[storage.disks]]"]
        if d.vm is not None:
            lines.append(f"vm = {_s(d.vm)}")
        lines += [f"disk = {_s(d.item)}", f"to = {_t(d.target)}"]
    lines += ["", "[network]"]
    if mapping.network_default:
        lines.append(f"default = {_s(mapping.network_default)}")
    lines += ["", "[network.networks]"]
    lines += [f"{_s(r.source)} = {_t(r.target)}" for r in mapping.networks]
    for n in mapping.nics:
        lines += ["", "[[network.nics]]"]
        if n.vm is not None:
            lines.append(f"vm = {_s(n.vm)}")
        lines += [f"nic = {_s(n.item)}", f"to = {_t(n.target)}"]
    lines += ["", "[clusters]"]
    lines += [f"{_s(r.source)} = {_t(r.target)}" for r in mapping.clusters]
    return "\n".join(lines) + "\n"
