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
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from ftbridge.errors import ConfigError
from ftbridge.loading import validation_line
from ftbridge.model import HostState, PowerState, SecondaryState
from ftbridge.timefmt import parse_rfc3339

_Bytes = Annotated[int, Field(ge=0)]
_Seconds = Annotated[float, Field(ge=0)]


def _time(value: str | float | None) -> str | float | None:
    if isinstance(value, str):
        try:
            parse_rfc3339(value)
        except ValueError:
            raise ValueError("expected an RFC 3339 time such as 2025-03-01T10:00:00Z") from None
    return value


#: a time as a saved inventory holds it: RFC 3339 (what ftbridge writes) or epoch seconds (older files)
_Time = Annotated[str | float | None, AfterValidator(_time)]


def _one_of(kind: type[enum.Enum]) -> AfterValidator:
    values = [str(m.value) for m in kind]

    def check(value: str) -> str:
        if value not in values:
            raise ValueError(f"expected one of {', '.join(values)}")
        return value

    return AfterValidator(check)


class _S(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Domain(_S):
    site: str | None = None
    room: str | None = None
    array: str | None = None
    datastore: str | None = None
    host: str | None = None


class _Endpoint(_S):
    name: str
    driver: str
    version: str = ""
    mechanisms: Sequence[str] = []
    capabilities: Sequence[str] | None = None


class _Host(_S):
    id: str
    name: str
    endpoint: str
    cluster: str | None = None
    state: Annotated[str, _one_of(HostState)]
    memory: _Bytes = 0
    domain: _Domain = _Domain()


class _Datastore(_S):
    id: str
    name: str
    endpoint: str
    kind: str
    shared: bool
    hosts: Sequence[str]
    capacity: _Bytes
    free: int
    accessible: bool = True
    domain: _Domain = _Domain()
    content: Sequence[str] | None = None
    thin: bool = False
    committed: _Bytes | None = None
    reserve: _Bytes = 0

    @model_validator(mode="after")
    def _free_within_capacity(self) -> _Datastore:
        if self.free > self.capacity:
            raise ValueError(".free: more free space than capacity")
        return self


class _Network(_S):
    id: str
    name: str
    endpoint: str
    kind: str
    vlan: int | None = Field(default=None, ge=0, le=4095)
    hosts: Sequence[str] = []


class _Dependency(_S):
    kind: str
    datastore: str
    path: str = ""


class _Nic(_S):
    id: str
    network: str | None
    mac: str = ""
    model: str = ""


class _Disk(_S):
    id: str
    size: _Bytes
    datastore: str
    path: str = ""
    movable: bool = True
    kind: str = "disk"
    content: str = "images"
    allocated: _Bytes | None = None
    thin: bool = False
    shared_by: Sequence[str] = []


class _SecondaryDisk(_S):
    disk: str
    datastore: str
    path: str = ""
    size: _Bytes = 0


class _Secondary(_S):
    id: str
    mechanism: str = Field(min_length=1)
    config_datastore: str | None = None
    host: str | None = None
    state: Annotated[str, _one_of(SecondaryState)]
    last_sync: _Time = None
    lag: _Seconds | None = None
    metadata_datastore: str | None = None
    target_endpoint: str | None = None
    missing: Sequence[str] = []
    disks: Sequence[_SecondaryDisk]


class _VM(_S):
    id: str
    name: str
    endpoint: str
    host: str | None = None
    power: Annotated[str, _one_of(PowerState)]
    config_datastore: str | None = None
    config_path: str = ""
    tags: Sequence[str] = []
    vcpus: int = Field(default=1, ge=0)
    memory: _Bytes = 0
    ha: bool = False
    warnings: Sequence[str] = []
    mechanisms: Sequence[str] | None = None
    managed_by: str | None = None
    cluster: str | None = None
    uuid: str = ""
    depends_on: Sequence[_Dependency] = []
    nics: Sequence[_Nic] = []
    disks: Sequence[_Disk]
    secondaries: Sequence[_Secondary] = []


class _Inventory(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    schema_version: int
    collected_at: _Time = None
    endpoints: Sequence[_Endpoint]
    hosts: Sequence[_Host]
    datastores: Sequence[_Datastore]
    networks: Sequence[_Network] = []
    vms: Sequence[_VM]


def check_inventory(data: Any, *, source: str) -> None:
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
