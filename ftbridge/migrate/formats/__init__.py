"""Mapping files in the formats the moving tools read: one module per format.

Why these live in the core although the core names no hypervisor: they are *file formats of
tools* (Forklift's Kubernetes manifests, Coriolis' mapping JSON, the grammar of Proxmox's
``--target-storage``/``--target-bridge`` pair lists, the oVirt DR role's vars file), read and
written as text with no SDK and no connection to any platform. A user migrating from vSphere
to Proxmox hands ftbridge's placement to whichever tool does the copy; that hand-over is the
core's job, whichever drivers are installed. Nothing here imports a driver, and nothing a
driver does depends on these modules (the oVirt driver keeps its own reader of the DR file for
its ``ovirt-dr`` pairing; this one only carries a migration's mapping).

Each format module has ``NAME``, ``read(text, source) -> Mapping`` and ``write(mapping, ctx)
-> str``; every error is one :class:`MappingError` line naming the file and the entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from ftbridge.errors import ConfigError
from ftbridge.migrate.mapping import Mapping


class MappingError(ConfigError):
    """A mapping file is malformed, or names something the inventories do not have (exit 3)."""


@dataclass(frozen=True)
class ExportVM:
    """One VM of a migration plan, as the writers that emit per-VM lines need it."""

    id: str
    name: str
    uuid: str = ""
    #: (source datastore name, target datastore name), one per disk
    storages: tuple[tuple[str, str], ...] = ()
    #: (source network name, target network name or None for unconnected), one per NIC
    networks: tuple[tuple[str, str | None], ...] = ()
    #: the VM's disks hold container volumes (Proxmox: pct, not qm)
    container: bool = False
    running: bool = False


@dataclass(frozen=True)
class ExportContext:
    """What a writer may know beyond the mapping: the plan's VMs and the target's objects."""

    source: str | None = None
    target: str | None = None
    vms: tuple[ExportVM, ...] = ()
    #: target datastore name -> its kind (the oVirt DR role wants a domain type)
    target_kinds: dict[str, str] = field(default_factory=dict)
    #: the Kubernetes namespace for Forklift objects
    namespace: str = "openshift-mtv"
    #: a name for generated objects (Forklift metadata.name stem)
    name: str = "ftbridge-migration"


def _formats() -> dict[str, ModuleType]:
    from ftbridge.migrate.formats import coriolis, forklift, native, ovirtdr, pvepairs

    return {m.NAME: m for m in (native, forklift, coriolis, pvepairs, ovirtdr)}


def names() -> tuple[str, ...]:
    return tuple(_formats())


def detect(path: Path, text: str) -> str:
    """The format of a mapping file, from its suffix and first content."""
    suffix = path.suffix.lower()
    head = text.lstrip()[:4000]
    if suffix == ".toml":
        return "ftbridge"
    if suffix == ".json" or head.startswith("{"):
        return "coriolis"
    if "forklift.konveyor.io" in head:
        return "forklift"
    if "dr_import_storages" in text or "dr_cluster_mappings" in text or "dr_network_mappings" in text:
        return "ovirt-dr"
    if suffix in (".yaml", ".yml"):
        return "forklift"
    if "target-storage" in head or "target-bridge" in head or "remote-migrate" in head:
        return "pve"
    return "ftbridge"


def read_mapping(path: str | Path, fmt: str | None = None) -> Mapping:
    """A mapping file in any known format (``fmt`` None: detected)."""
    from ftbridge.loading import read_text

    path = Path(path)
    text = read_text(path, what="mapping file", error=MappingError)
    return parse_mapping(text, fmt or detect(path, text), source=str(path))


def parse_mapping(text: str, fmt: str, *, source: str = "mapping") -> Mapping:
    mod = _module(fmt)
    reader: Callable[..., Mapping] = mod.read
    return reader(text, source=source)


def write_mapping(mapping: Mapping, fmt: str, ctx: ExportContext | None = None) -> str:
    writer: Callable[[Mapping, ExportContext], str] = _module(fmt).write
    return writer(mapping, ctx or ExportContext(source=mapping.source, target=mapping.target))


def _module(fmt: str) -> ModuleType:
    found = _formats().get(fmt)
    if found is None:
        raise MappingError(f"unknown mapping format {fmt!r} (known: {', '.join(names())})")
    return found


__all__ = [
    "ExportContext",
    "ExportVM",
    "MappingError",
    "detect",
    "names",
    "parse_mapping",
    "read_mapping",
    "write_mapping",
]
