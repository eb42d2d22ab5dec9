"""The secondary mechanisms the driver offers, and ftbridge's naming conventions on PVE.

``pve-replication``
    PVE storage replication (pvesr): a job copies every disk of a guest, as ZFS snapshots, to
    the *same* zfspool storage on another node of the cluster, on a schedule (``*/15`` by
    default). Protects against the loss of the primary node and its local disks. RPO: the
    schedule interval plus one sync (the job's ``last_sync`` gives the lag). Failover: the
    guest's config is moved to the replica node (by PVE HA after a node loss, or by a
    migration while the source still answers) and it starts from the replica; the job then
    runs in the other direction.
``pve-standby``
    A full clone of a QEMU VM, made by ftbridge on a storage in another failure domain
    (another array or site), kept stopped and named ``ftbridge-standby-<vmid>``; its
    description records when the copy was taken, and that age is the lag. Protects against
    the loss of the primary's storage (a failed Ceph pool or NFS array) or of the whole
    domain, which shared storage and HA alone cannot survive. RPO: the age of the copy (the
    refresh schedule); refreshing means cloning again and removing the older copy. Failover:
    the standby is renamed to the VM's name and started; the original's HA resource is
    disabled first so HA cannot start it twice.
"""

from __future__ import annotations

import re

from ftbridge.drivers import MechanismRules

REPLICATION = "pve-replication"
STANDBY = "pve-standby"

MECHANISMS: dict[str, MechanismRules] = {
    REPLICATION: MechanismRules(
        name=REPLICATION,
        description="PVE storage replication (pvesr): ZFS snapshots of every disk sent to the same "
                    "zfspool storage on another node on a schedule; RPO = schedule interval",
        primary_kinds=frozenset({"zfspool"}), secondary_kinds=frozenset({"zfspool"}),
        needs_other_host=True, host_must_mount=True),
    STANDBY: MechanismRules(
        name=STANDBY,
        description="a stopped full clone (ftbridge-standby-<vmid>) on a storage in another failure "
                    "domain, refreshed by re-cloning; RPO = age of the copy",
        refreshable=True),
}

_STANDBY_NAME = re.compile(r"^ftbridge-standby-(\d{3,9})$")
_TEST_NAME = re.compile(r"^ftbridge-test-(\d{3,9})$")
_SYNCED = re.compile(r"^synced: (\d+)$", re.MULTILINE)
_JOB_ID = re.compile(r"^([1-9]\d{2,8})-(\d{1,9})$")
_STANDBY_ID = re.compile(r"^standby-(\d{3,9})$")


def standby_name(vmid: int) -> str:
    return f"ftbridge-standby-{vmid}"


def test_name(vmid: int) -> str:
    return f"ftbridge-test-{vmid}"


def standby_source(name: str | None) -> int | None:
    """The VMID a standby clone copies, from its name; None for any other guest."""
    m = _STANDBY_NAME.match(name or "")
    return int(m.group(1)) if m else None


def test_source(name: str | None) -> int | None:
    m = _TEST_NAME.match(name or "")
    return int(m.group(1)) if m else None


def standby_description(vmid: int, name: str, synced: int) -> str:
    """What a standby clone's description says: whom it copies and when the copy was taken."""
    return f"ftbridge standby copy of VM {vmid} ({name})\nsynced: {synced}\n"


def synced_at(description: str | None) -> int | None:
    m = _SYNCED.search(description or "")
    return int(m.group(1)) if m else None


def standby_id(clone_vmid: int) -> str:
    """The Secondary id of a standby clone."""
    return f"standby-{clone_vmid}"


def parse_standby_id(secondary_id: str) -> int | None:
    m = _STANDBY_ID.match(secondary_id)
    return int(m.group(1)) if m else None


def parse_job_id(secondary_id: str) -> tuple[int, int] | None:
    """(guest, jobnum) of a pvesr job id such as ``100-0``."""
    m = _JOB_ID.match(secondary_id)
    return (int(m.group(1)), int(m.group(2))) if m else None


def ha_preference_name(vmid: int) -> str:
    """The HA group (PVE 8) or node-affinity rule (PVE 9) ftbridge keeps for a replicated VM."""
    return f"ftbridge_{vmid}"
