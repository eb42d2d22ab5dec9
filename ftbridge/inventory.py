"""An :class:`Inventory`: everything the drivers saw, indexed, with a stable JSON form.

The JSON form (``schema_version``) is what ``ftbridge inventory -o json`` writes and
``--from FILE`` reads back; ``ftbridge/schemas/inventory.schema.json`` describes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from ftbridge.errors import ConfigError
from ftbridge.model import (
    VM,
    Datastore,
    Disk,
    EndpointInfo,
    FailureDomain,
    Host,
    HostState,
    PowerState,
    Secondary,
    SecondaryDisk,
    SecondaryState,
)

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class InventoryPart:
    """What one driver's ``inventory()`` returns: one endpoint's objects."""

    hosts: tuple[Host, ...] = ()
    datastores: tuple[Datastore, ...] = ()
    vms: tuple[VM, ...] = ()


class Inventory:
    """All objects of a set of endpoints, looked up by ``(endpoint, id)``."""

    __slots__ = ("endpoints", "hosts", "datastores", "vms", "collected_at", "_hosts", "_ds", "_vms")

    def __init__(
        self,
        endpoints: Iterable[EndpointInfo] = (),
        hosts: Iterable[Host] = (),
        datastores: Iterable[Datastore] = (),
        vms: Iterable[VM] = (),
        collected_at: float = 0.0,
    ) -> None:
        self.endpoints = tuple(endpoints)
        self.hosts = tuple(hosts)
        self.datastores = tuple(datastores)
        self.vms = tuple(vms)
        self.collected_at = collected_at
        self._hosts = {(h.endpoint, h.id): h for h in self.hosts}
        self._ds = {(d.endpoint, d.id): d for d in self.datastores}
        self._vms = {(v.endpoint, v.id): v for v in self.vms}

    # lookups ---------------------------------------------------------------------------
    def host(self, endpoint: str, host_id: str | None) -> Host | None:
        return self._hosts.get((endpoint, host_id)) if host_id else None

    def datastore(self, endpoint: str, ds_id: str | None) -> Datastore | None:
        return self._ds.get((endpoint, ds_id)) if ds_id else None

    def vm(self, endpoint: str, vm_id: str) -> VM | None:
        return self._vms.get((endpoint, vm_id))

    def endpoint(self, name: str) -> EndpointInfo | None:
        return next((e for e in self.endpoints if e.name == name), None)

    def find_vm(self, ref: str) -> VM | None:
        """A VM by ``endpoint/id``, ``endpoint/name``, or a name unique in the estate."""
        if "/" in ref:
            ep, _, key = ref.partition("/")
            found = self._vms.get((ep, key))
            if found:
                return found
            matches = [v for v in self.vms if v.endpoint == ep and v.name == key]
        else:
            matches = [v for v in self.vms if v.name == ref]
        return matches[0] if len(matches) == 1 else None

    def with_parts(self, endpoint: EndpointInfo, part: InventoryPart) -> Inventory:
        """A new inventory with one endpoint's objects replaced by ``part``."""
        keep = lambda o: o.endpoint != endpoint.name  # noqa: E731
        return Inventory(
            [e for e in self.endpoints if e.name != endpoint.name] + [endpoint],
            [*filter(keep, self.hosts), *part.hosts],
            [*filter(keep, self.datastores), *part.datastores],
            [*filter(keep, self.vms), *part.vms],
            self.collected_at,
        )

    # JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "collected_at": self.collected_at,
            "endpoints": [asdict(e) for e in self.endpoints],
            "hosts": [_host_dict(h) for h in self.hosts],
            "datastores": [_ds_dict(d) for d in self.datastores],
            "vms": [_vm_dict(v) for v in self.vms],
        }

    def fingerprint(self) -> str:
        """A digest of placement facts only: what a plan depends on, not free space or lag."""
        h = hashlib.sha256()
        for ep in sorted(e.name for e in self.endpoints):
            h.update(f"E{ep}\n".encode())
        for d in sorted(self.datastores, key=lambda d: (d.endpoint, d.id)):
            h.update(f"D{d.endpoint}/{d.id}/{d.shared}/{','.join(d.hosts)}/{d.accessible}\n".encode())
        for hst in sorted(self.hosts, key=lambda x: (x.endpoint, x.id)):
            h.update(f"H{hst.endpoint}/{hst.id}/{hst.state.value}\n".encode())
        for v in sorted(self.vms, key=lambda v: (v.endpoint, v.id)):
            h.update(f"V{v.endpoint}/{v.id}/{v.host}/{v.config_datastore}\n".encode())
            for dk in v.disks:
                h.update(f" d{dk.id}/{dk.datastore}/{dk.size}\n".encode())
            for s in v.secondaries:
                ds = ",".join(f"{x.disk}:{x.datastore}" for x in s.disks)
                h.update(f" s{s.id}/{s.mechanism}/{s.host}/{s.config_datastore}/{ds}/{s.metadata_datastore}\n".encode())
        return h.hexdigest()[:32]

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "inventory") -> Inventory:
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
            raise ConfigError(f"{source}: not an ftbridge inventory (expected schema_version {SCHEMA_VERSION})")
        try:
            return cls(
                [EndpointInfo(**{**e, "mechanisms": tuple(e.get("mechanisms", ()))}) for e in data["endpoints"]],
                [_host_from(h) for h in data["hosts"]],
                [_ds_from(d) for d in data["datastores"]],
                [_vm_from(v) for v in data["vms"]],
                float(data.get("collected_at", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: malformed inventory: {exc!r}") from exc

    @classmethod
    def load(cls, path: str) -> Inventory:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not JSON: line {exc.lineno}: {exc.msg}") from exc
        return cls.from_dict(data, source=path)


def _dom(d: FailureDomain) -> dict[str, str]:
    return d.as_dict()


def _host_dict(h: Host) -> dict[str, Any]:
    return {
        "id": h.id,
        "name": h.name,
        "endpoint": h.endpoint,
        "cluster": h.cluster,
        "state": h.state.value,
        "memory": h.memory,
        "domain": _dom(h.domain),
    }


def _ds_dict(d: Datastore) -> dict[str, Any]:
    return {
        "id": d.id,
        "name": d.name,
        "endpoint": d.endpoint,
        "kind": d.kind,
        "shared": d.shared,
        "hosts": list(d.hosts),
        "capacity": d.capacity,
        "free": d.free,
        "accessible": d.accessible,
        "domain": _dom(d.domain),
    }


def _vm_dict(v: VM) -> dict[str, Any]:
    return {
        "id": v.id,
        "name": v.name,
        "endpoint": v.endpoint,
        "host": v.host,
        "power": v.power.value,
        "config_datastore": v.config_datastore,
        "config_path": v.config_path,
        "tags": list(v.tags),
        "vcpus": v.vcpus,
        "memory": v.memory,
        "ha": v.ha,
        "warnings": list(v.warnings),
        "mechanisms": None if v.mechanisms is None else list(v.mechanisms),
        "disks": [asdict(d) for d in v.disks],
        "secondaries": [
            {
                **{
                    k: getattr(s, k)
                    for k in (
                        "id",
                        "mechanism",
                        "config_datastore",
                        "host",
                        "last_sync",
                        "lag",
                        "metadata_datastore",
                        "target_endpoint",
                    )
                },
                "state": s.state.value,
                "disks": [asdict(x) for x in s.disks],
            }
            for s in v.secondaries
        ],
    }


def _host_from(h: dict[str, Any]) -> Host:
    return Host(
        id=h["id"],
        name=h["name"],
        endpoint=h["endpoint"],
        cluster=h.get("cluster"),
        state=HostState(h["state"]),
        domain=FailureDomain(**h.get("domain", {})),
        memory=int(h.get("memory", 0)),
    )


def _ds_from(d: dict[str, Any]) -> Datastore:
    return Datastore(
        id=d["id"],
        name=d["name"],
        endpoint=d["endpoint"],
        kind=d["kind"],
        shared=bool(d["shared"]),
        hosts=tuple(d["hosts"]),
        capacity=int(d["capacity"]),
        free=int(d["free"]),
        accessible=bool(d.get("accessible", True)),
        domain=FailureDomain(**d.get("domain", {})),
    )


def _vm_from(v: dict[str, Any]) -> VM:
    secs = tuple(
        Secondary(
            id=s["id"],
            mechanism=s["mechanism"],
            config_datastore=s.get("config_datastore"),
            host=s.get("host"),
            state=SecondaryState(s["state"]),
            last_sync=s.get("last_sync"),
            lag=s.get("lag"),
            metadata_datastore=s.get("metadata_datastore"),
            target_endpoint=s.get("target_endpoint"),
            disks=tuple(SecondaryDisk(**x) for x in s["disks"]),
        )
        for s in v.get("secondaries", [])
    )
    return VM(
        id=v["id"],
        name=v["name"],
        endpoint=v["endpoint"],
        host=v.get("host"),
        power=PowerState(v["power"]),
        config_datastore=v.get("config_datastore"),
        config_path=v.get("config_path", ""),
        tags=tuple(v.get("tags", ())),
        vcpus=int(v.get("vcpus", 1)),
        memory=int(v.get("memory", 0)),
        ha=bool(v.get("ha", False)),
        warnings=tuple(v.get("warnings", ())),
        mechanisms=None if v.get("mechanisms") is None else tuple(v["mechanisms"]),
        disks=tuple(Disk(**d) for d in v["disks"]),
        secondaries=secs,
    )
