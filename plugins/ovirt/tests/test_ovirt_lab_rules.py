"""The lab refuses what the engine refuses, in the engine's words and status codes (through the
real SDK). Each test names the engine source of its rule; the plugin README's rule table points
here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from ftbridge_ovirt.lab import OvirtLab

# ovirtsdk4 ships no type information (no stubs, no py.typed): its connection, services and
# types are Any here, as they are to mypy anyway.
sdk = pytest.importorskip("ovirtsdk4")
types = sdk.types
pytestmark = pytest.mark.lab


def _refused(call: Callable[[], object], code: int = 409) -> str:
    with pytest.raises(sdk.Error) as info:
        call()
    assert info.value.code == code, str(info.value)
    return str(info.value)


def _disk(s: Any, alias: str) -> Any:
    """The DiskService of the disk with this alias (``s``: the connection's system service)."""
    return s.disks_service().disk_service(s.disks_service().list(search=f"alias={alias}")[0].id)


def _sd(lab: OvirtLab, key: str) -> object:
    return types.StorageDomain(id=lab.id("sd", key))


def test_no_copy_of_a_disk_a_running_vm_writes(lab: OvirtLab, conn: Any) -> None:
    """MoveOrCopyDiskCommand.checkCanBeMoveInVm -> DiskValidator.isDiskPluggedToAnyNonDownVm."""
    s = conn.system_service()
    msg = _refused(lambda: _disk(s, "db01_d0").copy(storage_domain=_sd(lab, "sd-r1")))
    assert "Cannot copy Virtual Disk. The disk db01_d0 is plugged to non-Down VMs: db01" in msg
    _disk(s, "batch01_d0").copy(storage_domain=_sd(lab, "sd-r1"))  # a Down VM's disk copies


def test_shareable_disks_move_only_with_every_vm_down(lab: OvirtLab, conn: Any) -> None:
    """LiveMigrateDiskCommand.isDiskNotShareable; MoveOrCopyDiskCommand for the cold move."""
    s = conn.system_service()
    msg = _refused(lambda: _disk(s, "shared0_shared").move(storage_domain=_sd(lab, "sd-r1")))
    assert "Cannot move a shareable Virtual Disk (shared0_shared). This operation is not supported." in msg
    s.vms_service().vm_service(lab.id("vm", "cl1")).stop()
    msg = _refused(lambda: _disk(s, "shared0_shared").move(storage_domain=_sd(lab, "sd-r1")))
    assert "plugged to non-Down VMs: clnode2" in msg  # the other node still runs
    s.vms_service().vm_service(lab.id("vm", "cl2")).stop()
    _disk(s, "shared0_shared").move(storage_domain=_sd(lab, "sd-r1"))


def test_shareable_disk_targets(lab: OvirtLab, conn: Any) -> None:
    """MoveOrCopyDiskCommand.validateDestStorage: no shareable disk to Gluster, no thin one to block."""
    with lab.engine.lock:
        eng = lab.engine
        for vid in (lab.id("vm", "cl1"), lab.id("vm", "cl2")):
            eng.vms[vid].status, eng.vms[vid].host = "down", None
        eng.domains[lab.id("sd", "sd-r1")].storage_type = "glusterfs"
        eng.disks[lab.id("disk", "shared/shared0/cl1,cl2")].sparse = True
    s = conn.system_service()
    msg = _refused(lambda: _disk(s, "shared0_shared").move(storage_domain=_sd(lab, "sd-r1")))
    assert "shared0_shared is shareable, which Gluster domains do not support." in msg
    msg = _refused(lambda: _disk(s, "shared0_shared").copy(storage_domain=_sd(lab, "sd-a2")))
    assert "is a thin provisioned shareable disk, which is not supported for block-based domains." in msg


def test_hosted_engine_disks_and_vm_are_not_the_engines_to_handle(lab: OvirtLab, conn: Any) -> None:
    """DiskOperationsValidator (content types per command); VmActionByVmOriginTypeValidator."""
    s = conn.system_service()
    msg = _refused(lambda: _disk(s, "HostedEngine_d0").move(storage_domain=_sd(lab, "sd-r1")))
    assert "The operation is not supported for HOSTED_ENGINE disks." in msg
    msg = _refused(lambda: _disk(s, "HostedEngine_d0").copy(storage_domain=_sd(lab, "sd-r1")))
    assert "The operation is not supported for HOSTED_ENGINE disks." in msg
    he = s.vms_service().vm_service(lab.id("vm", "he"))
    assert "Cannot stop VM. This VM is not managed by the engine." in _refused(he.stop)
    msg = _refused(lambda: he.snapshots_service().add(types.Snapshot(description="x")))
    assert "Cannot create Snapshot. This VM is not managed by the engine." in msg


def test_managed_block_storage_has_no_live_move_and_no_snapshot_clone(lab: OvirtLab, conn: Any) -> None:
    """ManagedBlockStorageDomainValidator.allowedStorageOperations lists neither LiveMigrateDisk
    nor AddVmFromSnapshot (AddVmAndCloneImageCommand asks it)."""
    s = conn.system_service()
    msg = _refused(lambda: _disk(s, "cephvm01_d0").move(storage_domain=_sd(lab, "sd-r1")))
    assert "Cannot move Virtual Disk.  Managed Block Storage does not support this operation." in msg
    vs = s.vms_service().vm_service(lab.id("vm", "ceph1"))
    snap = vs.snapshots_service().add(types.Snapshot(description="s1"))
    lab.finish_jobs()
    msg = _refused(
        lambda: s.vms_service().add(
            types.Vm(name="c", cluster=types.Cluster(name="ams"), snapshots=[types.Snapshot(id=snap.id)])
        )
    )
    assert "Cannot add VM.  Managed Block Storage does not support this operation." in msg


def test_snapshots_leave_shareable_disks_and_luns_out(lab: OvirtLab, conn: Any) -> None:
    """CreateSnapshotForVmCommand: DisksFilter.ONLY_NOT_SHAREABLE, ONLY_SNAPABLE, ONLY_ACTIVE."""
    s = conn.system_service()
    vs = s.vms_service().vm_service(lab.id("vm", "cl1"))
    snap = vs.snapshots_service().add(types.Snapshot(description="all"))
    msg = _refused(lambda: vs.snapshots_service().add(types.Snapshot(description="again")))
    assert "Snapshot is currently being created for VM clnode1." in msg
    lab.finish_jobs()
    disks = vs.snapshots_service().snapshot_service(snap.id).disks_service().list()
    assert [d.alias for d in disks] == ["clnode1_boot"]


def test_a_thin_clone_moves_only_where_its_template_is(lab: OvirtLab, conn: Any) -> None:
    """MoveOrCopyDiskCommand.checkTemplateDiskExistAndValidInDestStorageDomain; a copy collapses."""
    s = conn.system_service()
    msg = _refused(lambda: _disk(s, "rhel-thin01_d0").move(storage_domain=_sd(lab, "sd-r1")))
    assert "The selected Storage Domain does not contain the VM Template." in msg


def test_room_by_the_engines_count_and_its_blocker(lab: OvirtLab, conn: Any) -> None:
    """StorageDomainValidator.isDomainWithinThresholds and hasSpaceForClonedDisks."""
    with lab.engine.lock:  # ams-small: 4 GiB free, under its 5 GiB blocker
        lab.engine.domains[lab.id("sd", "sd-small")].reserved = 26 << 30
        small = lab.engine.disks[lab.id("disk", "vm4/d0")]  # batch01 (down): 15 GiB holding 1 GiB
        small.sparse, small.format, small.actual = True, "cow", 1 << 30
    s = conn.system_service()
    msg = _refused(lambda: _disk(s, "batch01_d0").copy(storage_domain=_sd(lab, "sd-small")))
    assert "Cannot copy Virtual Disk. Low disk space on Storage Domain ams-small." in msg  # 1.1 GiB would fit
    with lab.engine.lock:
        lab.engine.domains[lab.id("sd", "sd-small")].reserved = 24 << 30  # 6 GiB free: above the blocker
    _disk(s, "batch01_d0").copy(storage_domain=_sd(lab, "sd-small"))  # the data (+10 %), not the 15 GiB size


@pytest.mark.parametrize(
    "status, ok",
    [
        ("up", False),
        ("non_responsive", True),
        ("connecting", True),
        ("non_operational", True),
        ("maintenance", True),
        ("down", True),
        ("preparing_for_maintenance", False),
    ],
)
def test_manual_fence_is_accepted_where_the_engine_accepts_it(lab: OvirtLab, conn: Any, status: str, ok: bool) -> None:
    """FenceVdsManualyCommand.isLegalStatus."""
    with lab.engine.lock:
        lab.engine.hosts[lab.id("host", "h4")].status = status
    hs = conn.system_service().hosts_service().host_service(lab.id("host", "h4"))
    if ok:
        hs.fence(fence_type="manual")
    else:
        msg = _refused(lambda: hs.fence(fence_type="manual"))
        assert "Cannot confirm 'Host has been rebooted' Host. Valid Host statuses are" in msg


def test_power_management_fencing_needs_power_management(lab: OvirtLab, conn: Any) -> None:
    """FenceValidator.isPowerManagementEnabledAndLegal (FenceVdsBaseCommand)."""
    lab.partition_host("rtm-host2")
    hs = conn.system_service().hosts_service().host_service(lab.id("host", "h4"))
    assert "Cannot fence Host, Host fence is disabled." in _refused(lambda: hs.fence(fence_type="stop"))
    lab.set_power_management("rtm-host2")
    hs.fence(fence_type="stop")
    assert lab.snapshot("hosts", "rtm-host2").status == "down"


def test_a_non_admin_query_must_be_filtered(lab: OvirtLab) -> None:
    """BaseBackendResource.isFiltered, QueriesCommandBase.validatePermissions."""
    from ovirt_helpers import ESTATE_FILE, sdk_session

    from ftbridge.estate import load_estates

    reader = OvirtLab(load_estates(ESTATE_FILE)["lab"], admin=False)
    reader.start()
    try:
        plain = sdk_session(reader)
        msg = _refused(lambda: plain.system_service().vms_service().list(), code=400)
        assert "Query execution failed due to insufficient permissions." in msg
        plain.close()
        filtered = sdk_session(reader, filtered=True)
        vms = filtered.system_service().vms_service().list()
        assert vms and all(v.host is None for v in vms)  # removeRestrictedInfo
        filtered.close()
    finally:
        reader.stop()


def test_registration_keeps_a_shareable_disk_shared(lab: OvirtLab) -> None:
    """ImportValidator.validateDiskImagesNotExistOrShareable: an existing shareable disk is attached."""
    from ovirt_helpers import ESTATE_FILE, sdk_session

    from ftbridge.estate import load_estates

    site2 = OvirtLab(load_estates(ESTATE_FILE)["rtm-dr"], op_seconds=0.0)
    site2.start()
    try:
        site2.receive_replicas(lab, {"ams-nfs1": "replica"})
        c = sdk_session(site2)
        s = c.system_service()
        host = s.hosts_service().list()[0]
        sd = s.storage_domains_service().add(
            types.StorageDomain(
                name="replica",
                type=types.StorageDomainType.DATA,
                import_=True,
                host=types.Host(id=host.id),
                storage=types.HostStorage(
                    type=types.StorageType.NFS, address="replica.sd-a1.storage.lab", path="/exports/ams-nfs1"
                ),
            )
        )
        dc = s.data_centers_service().list()[0]
        s.data_centers_service().data_center_service(dc.id).storage_domains_service().add(types.StorageDomain(id=sd.id))
        vms = s.storage_domains_service().storage_domain_service(sd.id).vms_service()
        unreg = {v.name: v for v in vms.list(unregistered=True)}
        assert unreg["db01"].status == types.VmStatus.UP  # as the OVF store last wrote it
        for name in ("clnode1", "clnode2"):
            vms.vm_service(unreg[name].id).register(cluster=types.Cluster(name="recovery"), allow_partial_import=True)
        shared = lab.id("disk", "shared/shared0/cl1,cl2")
        assert {v.name for v in site2.engine.vms_of_disk(shared)} == {"clnode1", "clnode2"}
        msg = _refused(lambda: vms.vm_service(unreg["db01"].id).register(cluster=types.Cluster(name="nope")))
        assert "Cannot import VM." in msg
        c.close()
    finally:
        site2.stop()
