"""Estate descriptions: one file that seeds the sim driver and every lab peer.

An estate file (TOML or JSON) holds one or more named estates, each shaped like one endpoint
(``flavor`` says which platform it imitates). The sim driver runs one of them in memory; the
Proxmox, oVirt and vSphere labs serve one over their real wire protocols. So one description
gives one demo and four proofs. Sizes are given in GiB (``*_gib``) or bytes; a datastore's free
space is derived from what lives on it, so every consumer starts from the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ftbridge.errors import ConfigError
from ftbridge.gcpause import gc_paused
from ftbridge.loading import load_json, load_toml, validation_line
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
    loader = load_json if path.suffix == ".json" else load_toml
    with gc_paused():
        return parse_estates(loader(path, what="estate file"), source=str(path))


# -- the file's shape: types of every key the reader below uses (unknown keys are left alone,
# lab estates carry their own); sizes are numbers of 0 or more
_Id = Annotated[str | int, Field(union_mode="left_to_right")]
_Size = Annotated[float, Field(ge=0)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class _Sized(_Shape):
    memory: _Size | None = None
    memory_gib: _Size | None = None
    memory_mib: _Size | None = None


class _HostShape(_Sized):
    id: _Id
    name: _Id | None = None
    cluster: str | None = None
    state: str = "up"


class _DatastoreShape(_Shape):
    id: _Id
    kind: str
    name: _Id | None = None
    hosts: list[_Id] = []
    shared: bool | None = None
    accessible: bool = True
    thin: bool = False
    content: list[str] | None = None
    capacity: _Size | None = None
    capacity_gib: _Size | None = None
    capacity_mib: _Size | None = None
    reserved: _Size | None = None
    reserved_gib: _Size | None = None
    reserved_mib: _Size | None = None
    reserve: _Size | None = None
    reserve_gib: _Size | None = None
    reserve_mib: _Size | None = None


class _NetworkShape(_Shape):
    id: _Id
    name: _Id | None = None
    kind: str = "bridge"
    vlan: int | None = Field(default=None, ge=0, le=4095)
    hosts: list[_Id] = []


class _DiskShape(_Shape):
    id: _Id | None = None
    datastore: _Id
    path: str = ""
    movable: bool = True
    kind: str = "disk"
    content: str = "images"
    thin: bool = False
    shared_by: list[_Id] = []
    size: _Size | None = None
    size_gib: _Size | None = None
    size_mib: _Size | None = None
    allocated: _Size | None = None
    allocated_gib: _Size | None = None
    allocated_mib: _Size | None = None


class _NicShape(_Shape):
    id: _Id | None = None
    network: _Id | None = None
    mac: str = ""
    model: str = ""


class _DependencyShape(_Shape):
    kind: str
    datastore: _Id
    path: str = ""


class _SecondaryShape(_Shape):
    id: _Id | None = None
    mechanism: str = Field(min_length=1)
    disks: dict[str, _Id] = {}
    config_datastore: _Id | None = None
    metadata_datastore: _Id | None = None
    host: _Id | None = None
    state: str = "in_sync"
    lag_s: _Size | None = None
    missing: list[_Id] = []


class _VMShape(_Sized):
    id: _Id
    name: _Id | None = None
    host: _Id | None = None
    power: str = "on"
    disks: list[_DiskShape] = []
    nics: list[_NicShape] = []
    depends_on: list[_DependencyShape] = []
    secondaries: list[_SecondaryShape] = []
    config_datastore: _Id | None = None
    tags: list[str] = []
    vcpus: int = Field(default=1, ge=1)
    ha: bool = False
    managed_by: str | None = None
    cluster: str | None = None
    uuid: str = ""


class _EstateShape(_Shape):
    flavor: str = "generic"
    hosts: list[_HostShape] = []
    datastores: list[_DatastoreShape] = []
    networks: list[_NetworkShape] = []
    vms: list[_VMShape] = []
    password_sha256: str | None = None


class _EstatesShape(_Shape):
    estates: dict[str, _EstateShape]


def parse_estates(data: Any, *, source: str = "estate") -> dict[str, Estate]:
    if not isinstance(data, dict) or not isinstance(data.get("estates"), dict):
        raise ConfigError(f"{source}: expected a table 'estates' of named estates")
    try:
        _EstatesShape.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_line(source, exc.errors()[0])) from None
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


def _unique(ids: list[str], what: str) -> None:
    """Two objects of one id in one estate: which one a plan means would be a guess."""
    seen: set[str] = set()
    for i, x in enumerate(ids):
        if x in seen:
            raise _Bad(f"{what}[{i}].id", f"{x!r} appears twice")
        seen.add(x)


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
    _unique([h.id for h in hosts], "hosts")

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
    _unique([str(d["id"]) for d, *_ in ds_raw], "datastores")

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
    _unique([n.id for n in networks], "networks")
    _unique([str(v["id"]) for v in body.get("vms", [])], "vms")

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

    for i, (d, _, cap, reserved, _) in enumerate(ds_raw):
        if reserved + used[str(d["id"])] > cap:
            raise _Bad(
                f"datastores[{i}]",
                f"overcommitted: what lives on it ({(reserved + used[str(d['id'])]) / GIB:.1f} GiB) "
                f"exceeds its capacity ({cap / GIB:.1f} GiB)",
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
