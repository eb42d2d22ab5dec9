"""How ftbridge recognises what it made on an engine: names are the only place it can keep that.

ovirt-copy secondaries are floating (unattached) disks whose alias is::

    ftbridge-copy.<vm-id>.<disk-id>.<copy-set>

``<copy-set>`` is ``<epoch>-<4 hex>``: the epoch is when the copy started, which is the point in
time the copy holds (the engine snapshots the source when a copy begins), so ``now - epoch`` is
the secondary's lag. All disks copied by one ``protect`` share the set, and the set is the
secondary's id. Test-failover VMs are named ``ftbridge-test-<name>-<4 hex>`` and carry
``ftbridge-test vm=<vm-id> set=<copy-set>`` as their description. Correlation ids are
``ftbridge-<kind>-<12 hex>``. Nothing else on the engine is ever touched by name.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

COPY_PREFIX = "ftbridge-copy"
TEST_PREFIX = "ftbridge-test"
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


def correlation_id(kind: str) -> str:
    return f"ftbridge-{kind.replace('_', '-')}-{secrets.token_hex(6)}"


def test_vm_name(vm_name: str) -> str:
    return f"{TEST_PREFIX}-{vm_name[:40]}-{secrets.token_hex(2)}"


def test_description(vm_id: str, set_id: str) -> str:
    return f"{TEST_PREFIX} vm={vm_id} set={set_id}"


def parse_test_description(text: str | None) -> tuple[str, str] | None:
    if not text or not text.startswith(TEST_PREFIX + " "):
        return None
    fields = dict(p.split("=", 1) for p in text.split()[1:] if "=" in p)
    if "vm" in fields and "set" in fields:
        return fields["vm"], fields["set"]
    return None
