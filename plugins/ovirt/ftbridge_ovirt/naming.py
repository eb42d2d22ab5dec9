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
``ftbridge-test|ftbridge-clone vm=<vm-id> set=<copy-set>`` as their description. Nothing else
on the engine is ever touched by name.

Correlation ids are ``ftbridge-<kind>-<vm marker>-<nonce>`` (:func:`correlation_id`): the kind
word names the driver method (:data:`KIND_WORDS`), the marker is 10 base32 characters of a hash
of the VM's id, the nonce 6 more of randomness. The engine keeps a correlation id as given only
within its rules, which the id is made to fit:

* the REST API drops every character outside ``[0-9a-zA-Z_-]`` and keeps at most 36 characters
  (ovirt-engine ``backend/manager/modules/restapi/jaxrs/.../restapi/invocation/CurrentFilter.java``,
  ``filterCorrelationIdCharacters``); the commands accept ``[0-9a-zA-Z_-]+`` of at most 50
  (common ``action/ActionParametersBase.java``: ``@Pattern(ValidationUtils.NO_SPECIAL_CHARACTERS)``,
  ``@Size(max = BusinessEntitiesDefinitions.CORRELATION_ID_SIZE)``). A longer id would be cut
  and no longer find its jobs: the longest one made here is exactly 36 characters;
* the jobs collection is searched by ``correlation_id`` alone and only by its exact value (its
  search field is typed ``UUID``, so ``*`` is no wildcard there: searchbackend
  ``JobConditionFieldAutoCompleter.java``, ``SyntaxChecker.buildCustomizedValue``), and a job as
  the API shows it carries no correlation id at all (restapi types ``JobMapper.java``, api-model
  ``types/Job.java``);
* the audit log (``/events``) shows each command's correlation id and can be searched by it with
  ``*`` (its ``CORRELATION_ID`` field is a ``String``: ``AuditLogConditionFieldAutoCompleter.java``).
  That is where the VM marker is found again (:func:`events_search`).
"""

from __future__ import annotations

import base64
import hashlib
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


def parse_snapshot_description(text: str | None) -> str | None:
    """The copy set of an ftbridge copy snapshot (:func:`snapshot_description`); None for any other."""
    head, _, set_id = (text or "").partition(" ")
    return set_id if head == COPY_PREFIX and is_set(set_id) else None


def clone_vm_search() -> str:
    """The engine search that finds ftbridge's transient clone VMs (of every set and VM): the
    VM ``NAME`` field is typed String (searchbackend ``VmConditionFieldAutoCompleter.java``), so
    ``*`` is a wildcard there (LIKE), as it is for the audit log's correlation id."""
    return f"name={CLONE_PREFIX}-*"


def clone_vm_name(set_id: str) -> str:
    """The transient VM that holds a copy set while the engine clones it from the snapshot."""
    return f"{CLONE_PREFIX}-{set_id}"


#: the longest correlation id the REST API keeps (restapi ``invocation/CurrentFilter.java``)
CORRELATION_ID_MAX = 36
#: driver method (the ``kind`` of its operations) -> the word its correlation ids carry; short
#: enough that ``ftbridge-reprotect-<10>-<6>`` is 36 characters (a test holds every kind to it)
KIND_WORDS: dict[str, str] = {
    "move_disk": "move",
    "protect": "protect",
    "reprotect": "reprotect",
    "unprotect": "unprotect",
    "promote": "promote",
    "restart": "restart",
    "test_failover": "test",
    "cleanup_test": "cleanup",
    "fence": "fence",
    "lease": "lease",
}
_KINDS = {word: kind for kind, word in KIND_WORDS.items()}
_B32 = "a-z2-7"
_MARKER_LEN = 10
_NONCE_LEN = 6
_CORR_RE = re.compile(rf"^ftbridge-([a-z]+)-([{_B32}]{{{_MARKER_LEN}}})-([{_B32}]{{{_NONCE_LEN}}})$")


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").lower().rstrip("=")


def vm_marker(vm_id: str) -> str:
    """10 base32 characters (50 bits) of a hash of the VM id: a VM id (36) does not fit in a
    correlation id beside the rest, and two VMs of one engine share a marker with a chance of
    about n^2 / 2^51 (4e-6 for 100,000 VMs)."""
    return _b32(hashlib.sha256(vm_id.strip().lower().encode("utf-8")).digest())[:_MARKER_LEN]


def correlation_id(kind: str, vm_id: str) -> str:
    """A fresh correlation id for an operation of ``kind`` (a driver method) on ``vm_id``."""
    word = KIND_WORDS[kind]
    return f"ftbridge-{word}-{vm_marker(vm_id)}-{_b32(secrets.token_bytes(4))[:_NONCE_LEN]}"


@dataclass(frozen=True, slots=True)
class Correlation:
    kind: str  # the driver method that started the operation
    marker: str  # vm_marker() of the VM it was started on


def parse_correlation_id(text: str | None) -> Correlation | None:
    """The kind and VM marker of an ftbridge correlation id; None for anyone else's."""
    m = _CORR_RE.match(text or "")
    if m is None or m.group(1) not in _KINDS:
        return None
    return Correlation(kind=_KINDS[m.group(1)], marker=m.group(2))


def events_search(vm_id: str) -> str:
    """The audit-log search for the events of ftbridge's operations on one VM."""
    return f"correlation_id=ftbridge-*-{vm_marker(vm_id)}-*"


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


def _of_kind(text: str | None, prefix: str) -> tuple[str, str] | None:
    found = parse_internal_description(text)
    return (found[1], found[2]) if found is not None and found[0] == prefix else None


def parse_clone_description(text: str | None) -> tuple[str, str] | None:
    """(vm id, set) of an ftbridge transient clone VM (:func:`clone_description`); None for any other."""
    return _of_kind(text, CLONE_PREFIX)


def parse_test_description(text: str | None) -> tuple[str, str] | None:
    """(vm id, set) of an ftbridge test twin (:func:`test_description`); None for any other."""
    return _of_kind(text, TEST_PREFIX)
