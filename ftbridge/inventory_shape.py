"""The saved inventory's JSON shape (what :meth:`Inventory.to_dict` writes), checked before it is read.

A saved inventory is an input like any other (``--from FILE``): edited by hand, cut short or
hostile. This module says what every key must hold, so a wrong type, a negative size or a
datastore with more free space than capacity is one line naming the file and the key
(``inv.json: vms[3].disks[0].size: must be at least 0``) instead of a ``KeyError`` from deep
in the reader. Only the reader's own keys are checked; a key it does not read is left alone
(files written by a newer ftbridge). Free space may be negative: an overcommitted datastore is
a fact a platform can report, not a malformed file.

``schemas/inventory.schema.json`` describes the same keys for other programs (JSON Schema is
too slow to check a million VMs with); ``tests/test_inventory_shape.py`` keeps the two naming
the same keys.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, NotRequired

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    with_config,
)
from typing_extensions import TypedDict

from ftbridge.errors import ConfigError
from ftbridge.loading import validation_line
from ftbridge.model import HostState, PowerState, SecondaryState
from ftbridge.timefmt import checked_time

# scalars as JSON holds them (a number is not a string, 1 is not true); lists and tables in lax
# mode, which takes the tuples Inventory.to_dict leaves before any JSON round trip, and is faster
Str = StrictStr
Bool = StrictBool
Int = StrictInt
Num = Annotated[float, Field(strict=True)]
_Bytes = Annotated[StrictInt, Field(ge=0)]
_Seconds = Annotated[float, Field(strict=True, ge=0)]


#: a time as a saved inventory holds it: RFC 3339 (what ftbridge writes) or epoch seconds (older files)
_Time = Annotated[StrictStr | Num | None, AfterValidator(checked_time)]


def _one_of(kind: type[enum.Enum]) -> AfterValidator:
    values = [str(m.value) for m in kind]

    def check(value: str) -> str:
        if value not in values:
            raise ValueError(f"expected one of {', '.join(values)}")
        return value

    return AfterValidator(check)


@with_config(ConfigDict(extra="forbid"))
class _Domain(TypedDict):
    site: NotRequired[Str | None]
    room: NotRequired[Str | None]
    array: NotRequired[Str | None]
    datastore: NotRequired[Str | None]
    host: NotRequired[Str | None]


@with_config(ConfigDict(extra="forbid"))
class _Endpoint(TypedDict):
    name: Str
    driver: Str
    version: NotRequired[Str]
    mechanisms: NotRequired[list[Str]]
    capabilities: NotRequired[list[Str] | None]


@with_config(ConfigDict(extra="forbid"))
class _Host(TypedDict):
    id: Str
    name: Str
    endpoint: Str
    cluster: NotRequired[Str | None]
    state: Annotated[Str, _one_of(HostState)]
    memory: NotRequired[_Bytes]
    domain: NotRequired[_Domain]


@with_config(ConfigDict(extra="forbid"))
class _Datastore(TypedDict):
    id: Str
    name: Str
    endpoint: Str
    kind: Str
    shared: Bool
    hosts: list[Str]
    capacity: _Bytes
    free: Int
    accessible: NotRequired[Bool]
    domain: NotRequired[_Domain]
    content: NotRequired[list[Str] | None]
    thin: NotRequired[Bool]
    committed: NotRequired[_Bytes | None]
    reserve: NotRequired[_Bytes]


@with_config(ConfigDict(extra="forbid"))
class _Network(TypedDict):
    id: Str
    name: Str
    endpoint: Str
    kind: Str
    vlan: NotRequired[Annotated[Int, Field(ge=0, le=4095)] | None]
    hosts: NotRequired[list[Str]]


@with_config(ConfigDict(extra="forbid"))
class _Dependency(TypedDict):
    kind: Str
    datastore: Str
    path: NotRequired[Str]


@with_config(ConfigDict(extra="forbid"))
class _Nic(TypedDict):
    id: Str
    network: Str | None
    mac: NotRequired[Str]
    model: NotRequired[Str]


@with_config(ConfigDict(extra="forbid"))
class _Disk(TypedDict):
    id: Str
    size: _Bytes
    datastore: Str
    path: NotRequired[Str]
    movable: NotRequired[Bool]
    kind: NotRequired[Str]
    content: NotRequired[Str]
    allocated: NotRequired[_Bytes | None]
    thin: NotRequired[Bool]
    shared_by: NotRequired[list[Str]]


@with_config(ConfigDict(extra="forbid"))
class _SecondaryDisk(TypedDict):
    disk: Str
    datastore: Str
    path: NotRequired[Str]
    size: NotRequired[_Bytes]


@with_config(ConfigDict(extra="forbid"))
class _Secondary(TypedDict):
    id: Str
    mechanism: Annotated[Str, Field(min_length=1)]
    config_datastore: NotRequired[Str | None]
    host: NotRequired[Str | None]
    state: Annotated[Str, _one_of(SecondaryState)]
    last_sync: NotRequired[_Time]
    lag: NotRequired[_Seconds | None]
    metadata_datastore: NotRequired[Str | None]
    target_endpoint: NotRequired[Str | None]
    missing: NotRequired[list[Str]]
    reason: NotRequired[Str]
    disks: list[_SecondaryDisk]


@with_config(ConfigDict(extra="forbid"))
class _VM(TypedDict):
    id: Str
    name: Str
    endpoint: Str
    host: NotRequired[Str | None]
    power: Annotated[Str, _one_of(PowerState)]
    config_datastore: NotRequired[Str | None]
    config_path: NotRequired[Str]
    tags: NotRequired[list[Str]]
    vcpus: NotRequired[Annotated[Int, Field(ge=0)]]
    memory: NotRequired[_Bytes]
    ha: NotRequired[Bool]
    warnings: NotRequired[list[Str]]
    mechanisms: NotRequired[list[Str] | None]
    managed_by: NotRequired[Str | None]
    cluster: NotRequired[Str | None]
    uuid: NotRequired[Str]
    depends_on: NotRequired[list[_Dependency]]
    nics: NotRequired[list[_Nic]]
    disks: list[_Disk]
    secondaries: NotRequired[list[_Secondary]]


@with_config(ConfigDict(extra="ignore"))
class _Inventory(TypedDict):
    schema_version: Int
    collected_at: NotRequired[_Time]
    endpoints: list[_Endpoint]
    hosts: list[_Host]
    datastores: list[_Datastore]
    networks: NotRequired[list[_Network]]
    vms: list[_VM]


_SHAPE = TypeAdapter(_Inventory)
_VM_SHAPE = TypeAdapter(_VM)


def check_inventory(data: Any, *, source: str) -> None:
    """Raise :class:`ConfigError` (one line: file, key, what was expected) unless ``data`` has
    the saved inventory's shape."""
    check_head(data, source=source)
    check = VmCheck(source)
    for i, vm in enumerate(data["vms"]):
        check(i, vm)


def check_head(data: dict[str, Any], *, source: str) -> None:
    """Everything but the VMs themselves (``vms`` must be a list): the shape, free space within
    capacity, and each host, datastore and network once. A reader that streams the VMs checks
    this before the first one (:class:`VmCheck` checks each)."""
    vms = data.get("vms")
    try:
        _SHAPE.validate_python({**data, "vms": []} if isinstance(vms, list) else data)
    except ValidationError as exc:
        raise ConfigError(validation_line(source, exc.errors()[0])) from None
    for i, d in enumerate(data["datastores"]):
        if d["free"] > d["capacity"]:
            raise ConfigError(f"{source}: datastores[{i}].free: more free space than capacity")
    for what in ("hosts", "datastores", "networks"):
        _once(data.get(what, []), what, source, set())


class VmCheck:
    """One VM's shape, and its id once per endpoint across the calls: ``check(i, vm)`` for the
    i-th VM of the file, in order."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.seen: set[tuple[str, str]] = set()

    def __call__(self, i: int, vm: Any) -> None:
        try:
            _VM_SHAPE.validate_python(vm)
        except ValidationError as exc:
            raise ConfigError(validation_line(self.source, exc.errors()[0], ("vms", i))) from None
        _once([vm], "vms", self.source, self.seen, i)


def _once(items: list[Any], what: str, source: str, seen: set[tuple[str, str]], first: int = 0) -> None:
    for i, item in enumerate(items, first):
        key = (item["endpoint"], item["id"])
        if key in seen:  # one object of two: which one a plan means would be a guess
            raise ConfigError(f"{source}: {what}[{i}].id: {key[0]}/{key[1]} appears twice")
        seen.add(key)
