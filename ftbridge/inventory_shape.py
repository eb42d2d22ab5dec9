"""The saved inventory's JSON shape (what :meth:`Inventory.to_dict` writes), checked before it is read.

A saved inventory is an input like any other (``--from FILE``): edited by hand, cut short or
hostile. This module says what every key must hold, so a wrong type, a negative size or a
datastore with more free space than capacity is one line naming the file and the key
(``inv.json: vms[3].disks[0].size: must be at least 0``) instead of a ``KeyError`` from deep
in the reader. Only the reader's own keys are checked; a key it does not read is left alone
(files written by a newer ftbridge). Free space may be negative: an overcommitted datastore is
a fact a platform can report, not a malformed file.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from ftbridge.errors import ConfigError
from ftbridge.loading import validation_line
from ftbridge.model import HostState, PowerState, SecondaryState
from ftbridge.timefmt import parse_rfc3339

# scalars as JSON holds them (a number is not a string, 1 is not true); lists and tables in lax
# mode, which takes the tuples Inventory.to_dict leaves before any JSON round trip, and is faster
Str = StrictStr
Bool = StrictBool
Int = StrictInt
Num = Annotated[float, Field(strict=True)]
_Bytes = Annotated[StrictInt, Field(ge=0)]
_Seconds = Annotated[float, Field(strict=True, ge=0)]


def _time(value: str | float | None) -> str | float | None:
    if isinstance(value, str):
        try:
            parse_rfc3339(value)
        except ValueError:
            raise ValueError("expected an RFC 3339 time such as 2025-03-01T10:00:00Z") from None
    return value


#: a time as a saved inventory holds it: RFC 3339 (what ftbridge writes) or epoch seconds (older files)
_Time = Annotated[StrictStr | Num | None, AfterValidator(_time)]


def _one_of(kind: type[enum.Enum]) -> AfterValidator:
    values = [str(m.value) for m in kind]

    def check(value: str) -> str:
        if value not in values:
            raise ValueError(f"expected one of {', '.join(values)}")
        return value

    return AfterValidator(check)


class _S(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Domain(_S):
    site: Str | None = None
    room: Str | None = None
    array: Str | None = None
    datastore: Str | None = None
    host: Str | None = None


class _Endpoint(_S):
    name: Str
    driver: Str
    version: Str = ""
    mechanisms: list[Str] = []
    capabilities: list[Str] | None = None


class _Host(_S):
    id: Str
    name: Str
    endpoint: Str
    cluster: Str | None = None
    state: Annotated[str, _one_of(HostState)]
    memory: _Bytes = 0
    domain: _Domain = _Domain()


class _Datastore(_S):
    id: Str
    name: Str
    endpoint: Str
    kind: Str
    shared: Bool
    hosts: list[Str]
    capacity: _Bytes
    free: Int
    accessible: Bool = True
    domain: _Domain = _Domain()
    content: list[Str] | None = None
    thin: Bool = False
    committed: _Bytes | None = None
    reserve: _Bytes = 0

    @model_validator(mode="after")
    def _free_within_capacity(self) -> _Datastore:
        if self.free > self.capacity:
            raise ValueError(".free: more free space than capacity")
        return self


class _Network(_S):
    id: Str
    name: Str
    endpoint: Str
    kind: Str
    vlan: Int | None = Field(default=None, ge=0, le=4095)
    hosts: list[Str] = []


class _Dependency(_S):
    kind: Str
    datastore: Str
    path: Str = ""


class _Nic(_S):
    id: Str
    network: Str | None
    mac: Str = ""
    model: Str = ""


class _Disk(_S):
    id: Str
    size: _Bytes
    datastore: Str
    path: Str = ""
    movable: Bool = True
    kind: Str = "disk"
    content: Str = "images"
    allocated: _Bytes | None = None
    thin: Bool = False
    shared_by: list[Str] = []


class _SecondaryDisk(_S):
    disk: Str
    datastore: Str
    path: Str = ""
    size: _Bytes = 0


class _Secondary(_S):
    id: Str
    mechanism: Str = Field(min_length=1)
    config_datastore: Str | None = None
    host: Str | None = None
    state: Annotated[str, _one_of(SecondaryState)]
    last_sync: _Time = None
    lag: _Seconds | None = None
    metadata_datastore: Str | None = None
    target_endpoint: Str | None = None
    missing: list[Str] = []
    disks: list[_SecondaryDisk]


class _VM(_S):
    id: Str
    name: Str
    endpoint: Str
    host: Str | None = None
    power: Annotated[str, _one_of(PowerState)]
    config_datastore: Str | None = None
    config_path: Str = ""
    tags: list[Str] = []
    vcpus: Int = Field(default=1, ge=0)
    memory: _Bytes = 0
    ha: Bool = False
    warnings: list[Str] = []
    mechanisms: list[Str] | None = None
    managed_by: Str | None = None
    cluster: Str | None = None
    uuid: Str = ""
    depends_on: list[_Dependency] = []
    nics: list[_Nic] = []
    disks: list[_Disk]
    secondaries: list[_Secondary] = []


class _Inventory(BaseModel):
    model_config = ConfigDict(extra="ignore")
    schema_version: Int
    collected_at: _Time = None
    endpoints: list[_Endpoint]
    hosts: list[_Host]
    datastores: list[_Datastore]
    networks: list[_Network] = []
    vms: list[_VM]


def check_inventory(data: Any, *, source: Str) -> None:
    """Raise :class:`ConfigError` (one line: file, key, what was expected) unless ``data`` has
    the saved inventory's shape."""
    try:
        _Inventory.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_line(source, exc.errors()[0])) from None
    for what in ("hosts", "datastores", "networks", "vms"):
        seen: set[tuple[str, str]] = set()
        for i, item in enumerate(data.get(what, [])):
            key = (item["endpoint"], item["id"])
            if key in seen:  # one object of two: which one a plan means would be a guess
                raise ConfigError(f"{source}: {what}[{i}].id: {key[0]}/{key[1]} appears twice")
            seen.add(key)
