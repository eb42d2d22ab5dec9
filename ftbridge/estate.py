"""Estate descriptions: one file that seeds the sim driver and every lab peer.

An estate file (TOML or JSON) holds one or more named estates, each shaped like one endpoint
(``flavor`` says which platform it imitates). The sim driver runs one of them in memory; the
Proxmox, oVirt and vSphere labs serve one over their real wire protocols. So one description
gives one demo and four proofs. Sizes are given in GiB (``*_gib``) or bytes; a datastore's free
space is derived from what lives on it, so every consumer starts from the same numbers.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftbridge.errors import ConfigError
from ftbridge.model import (
    VM,
    Datastore,
    Dependency,
    Disk,
    FailureDomain,
    Host,
    HostState,
    Network,
    Nic,
    PowerState,
    Secondary,
    SecondaryDisk,
    SecondaryState,
)

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True, slots=True)
class Estate:
    """One endpoint-shaped estate: objects carry ``endpoint = name``."""

    name: str
    flavor: str
    hosts: tuple[Host, ...]
    datastores: tuple[Datastore, ...]
    vms: tuple[VM, ...]
    #: a login the peer accepts, when the estate asks for one (sha256 of the password)
    password_sha256: str | None = None
    networks: tuple[Network, ...] = ()


def load_estates(path: str | Path) -> dict[str, Estate]:
    """Every estate in a file, by name. Errors name the file and the key."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read estate file: {exc.strerror}") from exc
    try:
        if path.suffix == ".json":
            data = json.loads(raw)
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: malformed estate file: {exc}") from exc
    return parse_estates(data, source=str(path))


def parse_estates(data: Any, *, source: str = "estate") -> dict[str, Estate]:
    if not isinstance(data, dict) or not isinstance(data.get("estates"), dict):
        raise ConfigError(f"{source}: expected a table 'estates' of named estates")
    out = {}
    for name, body in data["estates"].items():
        try:
            out[name] = _estate(name, body)
        except _Bad as exc:
            raise ConfigError(f"{source}: estates.{name}.{exc.key}: {exc.msg}") from None
    return out


class _Bad(Exception):
    def __init__(self, key: str, msg: str) -> None:
        self.key, self.msg = key, msg


def _size(d: Mapping[str, Any], key: str, where: str, default: int | None = None) -> int:
    if f"{key}_gib" in d:
        return int(float(d[f"{key}_gib"]) * GIB)
    if f"{key}_mib" in d:
        return int(float(d[f"{key}_mib"]) * MIB)
    if key in d:
        return int(d[key])
    if default is not None:
        return default
    raise _Bad(f"{where}.{key}_gib", "missing size")


def _estate(name: str, body: Mapping[str, Any]) -> Estate:
    if not isinstance(body, dict):
        raise _Bad("", "expected a table")
    flavor = str(body.get("flavor", "generic"))
    hosts = []
    for i, h in enumerate(body.get("hosts", [])):
        where = f"hosts[{i}]"
        try:
            hosts.append(
                Host(
                    id=str(h["id"]),
                    name=str(h.get("name", h["id"])),
                    endpoint=name,
                    cluster=h.get("cluster"),
                    state=HostState(h.get("state", "up")),
                    domain=FailureDomain(host=str(h.get("name", h["id"]))),
                    memory=_size(h, "memory", where, 0),
                )
            )
        except KeyError as exc:
            raise _Bad(f"{where}.{exc.args[0]}", "missing") from None
        except ValueError as exc:
            raise _Bad(f"{where}.state", str(exc)) from None
    host_ids = {h.id for h in hosts}

    ds_raw = []
    for i, d in enumerate(body.get("datastores", [])):
        where = f"datastores[{i}]"
        for key in ("id", "kind"):
            if key not in d:
                raise _Bad(f"{where}.{key}", "missing")
        mounted = tuple(str(x) for x in d.get("hosts", ()))
        for hid in mounted:
            if hid not in host_ids:
                raise _Bad(f"{where}.hosts", f"unknown host {hid!r}")
        ds_raw.append(
            (d, mounted, _size(d, "capacity", where), _size(d, "reserved", where, 0), _size(d, "reserve", where, 0))
        )
    ds_ids = {str(d["id"]) for d, *_ in ds_raw}

    networks = []
    for i, n in enumerate(body.get("networks", [])):
        where = f"networks[{i}]"
        if "id" not in n:
            raise _Bad(f"{where}.id", "missing")
        for hid in n.get("hosts", ()):
            if str(hid) not in host_ids:
                raise _Bad(f"{where}.hosts", f"unknown host {hid!r}")
        networks.append(
            Network(
                id=str(n["id"]),
                name=str(n.get("name", n["id"])),
                endpoint=name,
                kind=str(n.get("kind", "bridge")),
                vlan=None if n.get("vlan") is None else int(n["vlan"]),
                hosts=tuple(str(h) for h in n.get("hosts", ())),
            )
        )
    net_ids = {n.id for n in networks}

    vms = []
    used: dict[str, int] = {k: 0 for k in ds_ids}
    for i, v in enumerate(body.get("vms", [])):
        where = f"vms[{i}]"
        if "id" not in v:
            raise _Bad(f"{where}.id", "missing")

        def ds_ref(value: Any, key: str, where: str = where) -> str:
            if str(value) not in ds_ids:
                raise _Bad(f"{where}.{key}", f"unknown datastore {value!r}")
            return str(value)

        disks = []
        for j, dk in enumerate(v.get("disks", [])):
            dsid = ds_ref(dk.get("datastore"), f"disks[{j}].datastore")
            size = _size(dk, "size", f"{where}.disks[{j}]")
            allocated = _size(dk, "allocated", f"{where}.disks[{j}]", -1)
            used[dsid] += size if allocated < 0 else allocated
            disks.append(
                Disk(
                    id=str(dk.get("id", j)),
                    size=size,
                    datastore=dsid,
                    path=str(dk.get("path", "")),
                    movable=bool(dk.get("movable", True)),
                    kind=str(dk.get("kind", "disk")),
                    content=str(dk.get("content", "images")),
                    allocated=None if allocated < 0 else allocated,
                    thin=bool(dk.get("thin", False)),
                    shared_by=tuple(str(x) for x in dk.get("shared_by", ())),
                )
            )
        nics = []
        for j, nc in enumerate(v.get("nics", [])):
            net = nc.get("network")
            if net is not None and str(net) not in net_ids:
                raise _Bad(f"{where}.nics[{j}].network", f"unknown network {net!r}")
            nics.append(
                Nic(
                    id=str(nc.get("id", f"nic{j}")),
                    network=None if net is None else str(net),
                    mac=str(nc.get("mac", "")),
                    model=str(nc.get("model", "")),
                )
            )
        deps = []
        for j, dep in enumerate(v.get("depends_on", [])):
            if "kind" not in dep:
                raise _Bad(f"{where}.depends_on[{j}].kind", "missing")
            deps.append(
                Dependency(
                    kind=str(dep["kind"]),
                    datastore=ds_ref(dep.get("datastore"), f"depends_on[{j}].datastore"),
                    path=str(dep.get("path", "")),
                )
            )
        sizes = {d.id: d.size for d in disks}
        secs = []
        for j, s in enumerate(v.get("secondaries", [])):
            swhere = f"secondaries[{j}]"
            sdisks = []
            for disk_id, dsv in dict(s.get("disks", {})).items():
                if disk_id not in sizes:
                    raise _Bad(f"{where}.{swhere}.disks", f"unknown disk {disk_id!r}")
                dsid = ds_ref(dsv, f"{swhere}.disks.{disk_id}")
                used[dsid] += sizes[disk_id]
                sdisks.append(SecondaryDisk(disk=disk_id, datastore=dsid, size=sizes[disk_id]))
            try:
                state = SecondaryState(s.get("state", "in_sync"))
            except ValueError as exc:
                raise _Bad(f"{where}.{swhere}.state", str(exc)) from None
            secs.append(
                Secondary(
                    id=str(s.get("id", f"{v['id']}-s{j}")),
                    mechanism=str(s["mechanism"]),
                    disks=tuple(sdisks),
                    config_datastore=ds_ref(s["config_datastore"], f"{swhere}.config_datastore")
                    if s.get("config_datastore")
                    else None,
                    host=s.get("host"),
                    state=state,
                    lag=s.get("lag_s"),
                    metadata_datastore=ds_ref(s["metadata_datastore"], f"{swhere}.metadata_datastore")
                    if s.get("metadata_datastore")
                    else None,
                    missing=tuple(str(x) for x in s.get("missing", ())),
                )
            )
        host = v.get("host")
        if host is not None and host not in host_ids:
            raise _Bad(f"{where}.host", f"unknown host {host!r}")
        try:
            power = PowerState(v.get("power", "on"))
        except ValueError as exc:
            raise _Bad(f"{where}.power", str(exc)) from None
        cfg = v.get("config_datastore", disks[0].datastore if disks else None)
        vms.append(
            VM(
                id=str(v["id"]),
                name=str(v.get("name", v["id"])),
                endpoint=name,
                host=host,
                power=power,
                disks=tuple(disks),
                config_datastore=ds_ref(cfg, "config_datastore") if cfg else None,
                secondaries=tuple(secs),
                tags=tuple(v.get("tags", ())),
                vcpus=int(v.get("vcpus", 1)),
                memory=_size(v, "memory", where, 0),
                ha=bool(v.get("ha", False)),
                depends_on=tuple(deps),
                managed_by=None if v.get("managed_by") is None else str(v["managed_by"]),
                cluster=None if v.get("cluster") is None else str(v["cluster"]),
                uuid=str(v.get("uuid", "")),
                nics=tuple(nics),
            )
        )

    datastores = tuple(
        Datastore(
            id=str(d["id"]),
            name=str(d.get("name", d["id"])),
            endpoint=name,
            kind=str(d["kind"]),
            shared=bool(d.get("shared", len(mounted) > 1)),
            hosts=mounted,
            capacity=cap,
            free=cap - reserved - used[str(d["id"])],
            accessible=bool(d.get("accessible", True)),
            domain=FailureDomain(datastore=str(d.get("name", d["id"]))),
            content=None if d.get("content") is None else frozenset(str(x) for x in d["content"]),
            thin=bool(d.get("thin", False)),
            reserve=reserve,
        )
        for d, mounted, cap, reserved, reserve in ds_raw
    )
    return Estate(
        name=name,
        flavor=flavor,
        hosts=tuple(hosts),
        datastores=datastores,
        vms=tuple(vms),
        password_sha256=body.get("password_sha256"),
        networks=tuple(networks),
    )
