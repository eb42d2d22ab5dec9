"""The lab speaks the engine's API as ovirtsdk4 expects: every route it serves parses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pytest
from ftbridge_ovirt.lab import OvirtLab

from ftbridge.estate import load_estates
from ftbridge.labs import load_lab

sdk = pytest.importorskip("ovirtsdk4")
pytestmark = pytest.mark.lab


def test_every_collection_and_entity_parses(lab: OvirtLab, conn: object) -> None:
    s = conn.system_service()  # type: ignore[attr-defined]
    api = s.get()
    assert api.product_info.version.major == 4
    (dc,) = s.data_centers_service().list(follow="storage_domains,clusters,networks.vnic_profiles")
    assert dc.storage_domains and dc.clusters and dc.storage_domains[0].status is not None
    assert {n.name for n in dc.networks} == {"ovirtmgmt", "prod", "backend"}
    assert all(n.vnic_profiles for n in dc.networks) and {n.vlan.id for n in dc.networks if n.vlan} == {10, 20}
    dcs = s.data_centers_service().data_center_service(dc.id)
    assert dcs.get().name == dc.name and dcs.storage_domains_service().list()
    assert dcs.storage_domains_service().storage_domain_service(dc.storage_domains[0].id).get().available > 0
    for c in s.clusters_service().list():
        assert s.clusters_service().cluster_service(c.id).get().data_center.id == dc.id
    for h in s.hosts_service().list():
        got = s.hosts_service().host_service(h.id).get()
        assert got.spm.status is not None and got.status is not None and got.power_management.enabled is False
    for sd in s.storage_domains_service().list():
        assert sd.storage.type is not None and sd.status is None  # top level: no DC view of status
        assert s.storage_domains_service().storage_domain_service(sd.id).get().name == sd.name
        assert sd.critical_space_action_blocker is not None and sd.available % (1 << 30) == 0  # whole GiB
    ceph = next(sd for sd in dc.storage_domains if sd.name == "ams-ceph")
    assert ceph.type is None and ceph.storage.type == sdk.types.StorageType.MANAGED_BLOCK_STORAGE
    iscsi = next(sd for sd in dc.storage_domains if sd.name == "ams-iscsi1")
    assert iscsi.storage.volume_group.logical_units[0].target.startswith("iqn.")
    assert {p.name for p in s.vnic_profiles_service().list()} == {"ovirtmgmt", "prod", "backend"}
    vms = s.vms_service().list()
    assert vms and all(v.disk_attachments is not None and len(v.disk_attachments) == 0 for v in vms)  # links only
    for v in s.vms_service().list(follow="disk_attachments.disk,tags,nics"):
        assert v.disk_attachments[0].disk.provisioned_size > 0 and v.nics
        vs = s.vms_service().vm_service(v.id)
        assert vs.get(follow="disk_attachments").disk_attachments[0].disk.href
        att = vs.disk_attachments_service().list()
        assert vs.disk_attachments_service().attachment_service(att[0].id).get().interface is not None
        assert vs.nics_service().list()[0].mac.address
        assert [x.snapshot_type for x in vs.snapshots_service().list()] == [sdk.types.SnapshotType.ACTIVE]
    he = s.vms_service().list(search="name=HostedEngine")[0]
    assert he.origin == "managed_hosted_engine"
    lun = s.disks_service().list(search="alias=clnode1_quorum")[0]
    assert lun.storage_type == sdk.types.DiskStorageType.LUN and not lun.storage_domains
    assert lun.lun_storage.logical_units[0].size == 2 << 30
    shared = s.disks_service().list(search="alias=shared0_shared")[0]
    assert shared.shareable and len(shared.vms) == 2
    (tpl,) = s.templates_service().list(follow="disk_attachments.disk")
    assert tpl.name == "rhel9" and tpl.disk_attachments[0].disk.storage_domains
    thin = s.vms_service().list(search="name=rhel-thin01")[0]
    assert thin.template.id == tpl.id
    for d in s.disks_service().list():
        assert s.disks_service().disk_service(d.id).get().alias == d.alias
    assert s.jobs_service().list() == []


def test_search_follow_and_errors(lab: OvirtLab, conn: object) -> None:
    s = conn.system_service()  # type: ignore[attr-defined]
    assert [v.name for v in s.vms_service().list(search="name=db*")] == ["db01"]
    assert [v.name for v in s.vms_service().list(search="status=down")] == ["batch01"]
    assert [d.name for d in s.storage_domains_service().list(search="name=ams-ceph")] == ["ams-ceph"]
    assert len(s.disks_service().list(search="alias=ftbridge-copy.*")) == 1
    with pytest.raises(sdk.Error) as info:
        s.vms_service().list(search="colour=blue")
    assert info.value.code == 400
    with pytest.raises(sdk.Error) as info:
        s.vms_service().list(follow="nonsense")
    assert info.value.code == 400
    with pytest.raises(sdk.NotFoundError):
        s.disks_service().disk_service("00000000-0000-0000-0000-00000000abcd").get()


def test_actions_answer_as_the_engine(lab: OvirtLab, conn: object) -> None:
    s = conn.system_service()  # type: ignore[attr-defined]
    lab.set_faults(slow_jobs=1.0)  # the move job outlives the checks below
    disk = s.disks_service().list(search="alias=web01_d0")[0]
    target = next(d for d in s.storage_domains_service().list() if d.name == "rtm-nfs1")
    ds = s.disks_service().disk_service(disk.id)
    ds.move(storage_domain=sdk.types.StorageDomain(id=target.id), async_=True, query={"correlation_id": "t-1"})
    with pytest.raises(sdk.Error) as info:  # locked while it moves
        ds.copy(storage_domain=sdk.types.StorageDomain(id=target.id), query={"correlation_id": "t-2"})
    assert info.value.code == 409 and "locked" in str(info.value)
    (job,) = s.jobs_service().list(search="correlation_id=t-1")
    assert job.status == sdk.types.JobStatus.STARTED
    deadline = time.monotonic() + 10
    while s.jobs_service().list(search="correlation_id=t-1")[0].status == sdk.types.JobStatus.STARTED:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert ds.get().storage_domains[0].id == target.id
    vm = s.vms_service().list(search="name=batch01")[0]
    vs = s.vms_service().vm_service(vm.id)
    vs.start(query={"correlation_id": "t-3"})
    with pytest.raises(sdk.Error) as info:
        vs.start()
    assert info.value.code == 409
    assert lab.stats.by_route["POST /vms/{id}/start"] == 2


def test_lab_entry_point_and_demo_estate() -> None:
    assert load_lab("ovirt") is OvirtLab
    demo = Path(str(resources.files("ftbridge") / "demo" / "estate.toml"))
    if not demo.exists():
        pytest.skip("the core ships no demo estate")
    ovirt = [e for e in load_estates(demo).values() if e.flavor == "ovirt"]
    for est in ovirt:
        lab = OvirtLab(est)
        assert len(lab.engine.vms) == len(est.vms)
        assert {d.name for d in lab.engine.domains.values()} == {d.name for d in est.datastores}


def test_runs_on_its_own(tmp_path: Path) -> None:
    estate = Path(__file__).parent / "data" / "ovirt_estate.toml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ftbridge_ovirt.lab", "--estate", str(estate), "--name", "lab"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        first = proc.stdout.readline()  # type: ignore[union-attr]
        assert first.strip() == "[endpoints.ovirt]"
        lines = [proc.stdout.readline() for _ in range(5)]  # type: ignore[union-attr]
        assert any(line.startswith('url = "https://127.0.0.1:') for line in lines)
        assert any("password = { file = " in line for line in lines)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()  # not left serving after the test (it once deadlocked on its Ctrl-C)
            proc.communicate()
            raise
    assert proc.returncode == 0, err
    assert "Traceback" not in err
