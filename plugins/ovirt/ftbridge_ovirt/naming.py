"""How ftbridge recognises what it made on an engine: names are the only place it can keep that.

ovirt-copy secondaries are floating (unattached) disks whose alias is::

    ftbridge-copy.<vm-id>.<disk-id>.<copy-set>

``<copy-set>`` is ``<epoch>-<4 hex>``: the epoch is the point in time the copy holds, so
``now - epoch`` is the secondary's lag. For a VM that is Down, nothing writes its disks while the
engine copies them (``POST disks/{id}/copy``), so the copy holds the disks as of its start. The
engine refuses to copy a disk plugged into a VM that is not Down (MoveOrCopyDiskCommand,
``DiskValidator.isDiskPluggedToAnyNonDownVm``), so for a running VM ftbridge first takes a live
snapshot named ``ftbridge-copy <copy-set>`` (its creation is the point in time), clones that
snapshot's disks onto the target domains through a transient VM named
``ftbridge-clone-<copy-set>`` (AddVmFromSnapshotCommand), keeps the clone's disks as the copies,
removes the transient VM, then the snapshot. The engine does not snapshot anything when a plain
copy begins.

All disks copied by one ``protect`` share the set, and the set is the secondary's id.
Test-failover VMs are named ``ftbridge-test-<name>-<4 hex>``; both kinds of ftbridge VM carry
``ftbridge-test|ftbridge-clone vm=<vm-id> set=<copy-set>`` as their description. Correlation
ids are ``ftbridge-<kind>-<12 hex>``. Nothing else on the engine is ever touched by name.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

COPY_PREFIX = "ftbridge-copy"
TEST_PREFIX = "ftbridge-test"
CLONE_PREFIX = "ftbridge-clone"
_SET_RE = re.compile(r"^\d{9,12}-[0-9a-f]{4}$")


@dataclass(frozen=True, slots=True)
class CopyAlias:
    vm: str
    disk: str
    set: str

    @property
    def started(self) -> float:
        return float(self.set.split("-", 1)[0])

    def __str__(self) -> str:
        return f"{COPY_PREFIX}.{self.vm}.{self.disk}.{self.set}"


def new_set(now: float | None = None) -> str:
    return f"{int(now if now is not None else time.time())}-{secrets.token_hex(2)}"


def is_set(text: str) -> bool:
    return bool(_SET_RE.match(text))


def parse_copy_alias(alias: str | None) -> CopyAlias | None:
    """The parts of a copy's alias, or None for any other disk."""
    if not alias or not alias.startswith(COPY_PREFIX + "."):
        return None
    parts = alias.split(".")
    if len(parts) != 4 or not all(parts[1:]) or not is_set(parts[3]):
        return None
    return CopyAlias(vm=parts[1], disk=parts[2], set=parts[3])


def copy_search(vm_id: str | None = None, set_id: str | None = None) -> str:
    """The engine search that finds copies (of one VM, of one set)."""
    if vm_id and set_id:
        return f"alias={COPY_PREFIX}.{vm_id}.*.{set_id}"
    if vm_id:
        return f"alias={COPY_PREFIX}.{vm_id}.*"
    return f"alias={COPY_PREFIX}.*"


def snapshot_description(set_id: str) -> str:
    """The live snapshot a running VM's copy set is cloned from."""
    return f"{COPY_PREFIX} {set_id}"


def clone_vm_name(set_id: str) -> str:
    """The transient VM that holds a copy set while the engine clones it from the snapshot."""
    return f"{CLONE_PREFIX}-{set_id}"


def correlation_id(kind: str) -> str:
    return f"ftbridge-{kind.replace('_', '-')}-{secrets.token_hex(6)}"


def test_vm_name(vm_name: str) -> str:
    return f"{TEST_PREFIX}-{vm_name[:40]}-{secrets.token_hex(2)}"


def test_description(vm_id: str, set_id: str) -> str:
    return f"{TEST_PREFIX} vm={vm_id} set={set_id}"


def clone_description(vm_id: str, set_id: str) -> str:
    return f"{CLONE_PREFIX} vm={vm_id} set={set_id}"


def parse_internal_description(text: str | None) -> tuple[str, str, str] | None:
    """(kind, vm id, set) of an ftbridge test twin or clone VM; None for any other VM."""
    for prefix in (TEST_PREFIX, CLONE_PREFIX):
        if text and text.startswith(prefix + " "):
            fields = dict(p.split("=", 1) for p in text.split()[1:] if "=" in p)
            if "vm" in fields and "set" in fields:
                return prefix, fields["vm"], fields["set"]
    return None


def parse_test_description(text: str | None) -> tuple[str, str] | None:
    found = parse_internal_description(text)
    if found is None or found[0] != TEST_PREFIX:
        return None
    return found[1], found[2]
