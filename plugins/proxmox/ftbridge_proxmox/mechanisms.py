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
from collections.abc import Iterable, Mapping
from typing import Any

from ftbridge.drivers import MechanismRules
from ftbridge_proxmox.diskline import DriveLine

REPLICATION = "pve-replication"
STANDBY = "pve-standby"

MECHANISMS: dict[str, MechanismRules] = {
    REPLICATION: MechanismRules(
        name=REPLICATION,
        description="PVE storage replication (pvesr): ZFS snapshots of every disk sent to the same "
        "zfspool storage on another node on a schedule; RPO = schedule interval",
        primary_kinds=frozenset({"zfspool"}),
        secondary_kinds=frozenset({"zfspool"}),
        needs_other_host=True,
        host_must_mount=True,
        # pvesr schedules are calendar events of minute granularity (pve-common
        # PVE/CalendarEvent.pm), so one minute is the best RPO a job can hold
        rpo=60.0,
        # pve-ha-manager recovers a dead node's guests only once its LRM lock (120 s) has
        # expired and the node counts as fenced (src/PVE/HA/Manager.pm, NodeStatus.pm)
        rto=120.0,
    ),
    STANDBY: MechanismRules(
        name=STANDBY,
        description="a stopped full clone (ftbridge-standby-<vmid>) on a storage in another failure "
        "domain, refreshed by re-cloning; RPO = age of the copy",
        refreshable=True,
        # not a platform figure: ftbridge's estimate for 'failover run' renaming and starting a
        # stopped clone; the RPO is the age of the copy, set by the policy's refresh
        rto=300.0,
    ),
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


# which guests each mechanism takes: one function per rule, used by the inventory (a guest's
# ``VM.mechanisms``) and by ``protect`` (its refusal), so a plan holds nothing the driver refuses
def _shared(cfg: Mapping[str, Any]) -> bool:
    return bool(int(cfg.get("shared", 0) or 0))


def replication_plan(
    vmid: int, drives: Iterable[DriveLine], storages: Mapping[str, Mapping[str, Any]]
) -> tuple[set[str], str | None]:
    """(the drive keys pvesr copies, why it refuses the guest or None).

    As qemu-server ``PVE/QemuConfig.pm`` and pve-container ``PVE/LXC/Config.pm``
    ``get_replicatable_volumes`` decide, with pve-manager ``PVE/API2/ReplicationConfig.pm``:
    CD-ROMs and cloud-init drives are skipped; a drive marked ``replicate=0`` is skipped; a
    device or host path is refused ("unable to replicate local file/device" / "mountpoint
    type"); a volume on shared storage, or owned by another guest (a linked clone's base), is
    skipped; a volume that is not a guest image is refused; every other volume, ``unused`` ones
    included, needs the ``replicate`` feature, which only ``zfspool`` has (pve-storage
    ``ZFSPoolPlugin.pm``); a guest with nothing to copy is refused ("No replicatable volumes
    found").
    """
    copied: set[str] = set()
    for d in drives:
        if d.kind in ("cdrom", "cloudinit"):
            continue
        if not d.replicate and d.kind != "unused":
            continue
        if d.storage is None:
            if d.key == "rootfs" or d.key.startswith("mp"):  # a container mount point
                return copied, f"unable to replicate mountpoint type '{'device' if d.device else 'bind'}'"
            return copied, f"unable to replicate local file/device '{d.volume}'"
        cfg = storages.get(d.storage)
        if cfg is None:
            return copied, f"storage '{d.storage}' does not exist"
        if _shared(cfg) or d.owner not in (None, vmid):
            continue
        if d.vtype != "images":
            return copied, f"unable to replicate volume '{d.volume}', type '{d.vtype}'"
        if cfg.get("type") != "zfspool":
            return copied, f"missing replicate feature on volume '{d.volume}'"
        copied.add(d.key)
    if not copied:
        return copied, "No replicatable volumes found"
    return copied, None


def replicated_drives(vmid: int, drives: Iterable[DriveLine], storages: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The drive keys pvesr copies (what a job's replica holds)."""
    return replication_plan(vmid, drives, storages)[0]


def standby_refusal(*, lxc: bool, running: bool, drives: Iterable[DriveLine]) -> str | None:
    """Why a standby clone cannot be made of this guest, or None.

    ftbridge clones QEMU guests only (a running container clones only from a snapshot). A full
    clone parses every drive's volume id, so a pass-through device stops it ("unable to parse
    volume ID"), and PVE refuses to copy TPM state of a running VM (qemu-server
    ``PVE/API2/Qemu.pm`` ``clone_vm``).
    """
    if lxc:
        return "pve-standby copies QEMU VMs only (protect containers with pve-replication)"
    drives = list(drives)
    for d in drives:
        if d.kind == "passthrough":
            return f"unable to parse volume ID '{d.volume}' ({d.key} is a pass-through device: a clone cannot copy it)"
    if running and any(d.kind == "tpmstate" for d in drives):
        return "cannot clone TPM state while VM is running"
    return None


def guest_mechanisms(
    vmid: int, *, lxc: bool, running: bool, drives: Iterable[DriveLine], storages: Mapping[str, Mapping[str, Any]]
) -> tuple[str, ...]:
    """The mechanisms ``protect`` accepts for this guest now, in the driver's order."""
    drives = list(drives)
    out = []
    if replication_plan(vmid, drives, storages)[1] is None:
        out.append(REPLICATION)
    if standby_refusal(lxc=lxc, running=running, drives=drives) is None:
        out.append(STANDBY)
    return tuple(out)
