"""Failover primitives against injected failures: health, fence, restart, promote, test failover,
and ovirt-dr brought up at the second site the way the DR role does it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ftbridge_ovirt import drmap
from ftbridge_ovirt.driver import OvirtDriver
from ftbridge_ovirt.lab import OvirtLab
from ftbridge_ovirt.lab.model import Attachment, Disk
from ovirt_helpers import ESTATE_FILE, make_config

from ftbridge.drivers import OpState, SecondarySpec
from ftbridge.errors import Conflict, UnsupportedOperation
from ftbridge.estate import Estate, load_estates
from ftbridge.model import HostState, PowerState, SecondaryState

pytestmark = pytest.mark.lab


def _secondary_id(driver: OvirtDriver, vm_id: str) -> str:
    (sec,) = [s for s in driver.replication_status(vm_id) if s.mechanism == "ovirt-copy"]
    return sec.id


def test_health_sees_injected_failures(lab: OvirtLab, driver: OvirtDriver) -> None:
    report = driver.health()
    assert all(s is HostState.UP for s in report.hosts.values()) and all(report.datastores.values())
    assert any("SPM ams-host1" in n for n in report.notes)
    lab.fail_host("ams-host1")
    lab.partition_host("rtm-host1")
    lab.fail_datastore("ams-nfs1")
    report = driver.health()
    assert report.hosts[lab.id("host", "h1")] is HostState.DOWN
    assert report.hosts[lab.id("host", "h3")] is HostState.UNREACHABLE
    assert report.datastores[lab.id("sd", "sd-a1")] is False
    assert any("SPM ams-host2" in n for n in report.notes)  # the engine elected another SPM
    lab.restore()
    assert all(driver.health().datastores.values())


def test_promote_refuses_while_the_primary_runs(lab: OvirtLab, driver: OvirtDriver) -> None:
    vm = lab.id("vm", "vm2")
    with pytest.raises(Conflict, match="still runs"):
        driver.promote(vm, _secondary_id(driver, vm))


def test_domain_failure_promote_runs_the_copy_on_a_surviving_host(lab: OvirtLab, driver: OvirtDriver) -> None:
    vm = lab.id("vm", "vm2")  # app01: disk on ams-nfs1, copy on rtm-nfs1
    sid = _secondary_id(driver, vm)
    lab.fail_datastore("ams-nfs1")
    before = next(v for v in driver.inventory().vms if v.id == vm)
    assert before.power is PowerState.SUSPENDED  # paused on I/O errors
    op = driver.promote(vm, sid)
    status = driver.wait(op, timeout=30)
    assert status.state is OpState.SUCCEEDED, status.message
    after = next(v for v in driver.inventory().vms if v.id == vm)
    assert after.power is PowerState.ON
    assert {d.datastore for d in after.disks} == {lab.id("sd", "sd-r1")}
    host = lab.snapshot("vms", "app01").host
    assert host is not None and lab.engine.hosts[host].status == "up"
    assert after.secondaries == ()  # the copy became the primary
    # reprotect onto a healthy domain away from the new primary: the VM runs, so a live snapshot
    spec = SecondarySpec("ovirt-copy", {d.id: lab.id("sd", "sd-a2") for d in after.disks})
    assert driver.wait(driver.reprotect(vm, spec), timeout=30).state is OpState.SUCCEEDED
    (new,) = driver.replication_status(vm)
    assert new.state is SecondaryState.IN_SYNC and new.disks[0].datastore == lab.id("sd", "sd-a2")


def test_site_failure_promote_moves_to_the_other_cluster(lab: OvirtLab, driver: OvirtDriver) -> None:
    vm = lab.id("vm", "vm2")
    sid = _secondary_id(driver, vm)
    for host in ("ams-host1", "ams-host2"):
        lab.fail_host(host)  # reported down: the engine already cleared their VMs
    lab.fail_datastore("ams-nfs1")
    op = driver.promote(vm, sid)
    assert driver.wait(op, timeout=30).state is OpState.SUCCEEDED
    app = lab.snapshot("vms", "app01")
    assert app.status == "up" and lab.engine.hosts[app.host].name.startswith("rtm-")
    assert lab.engine.clusters[app.cluster].name == "rtm"
    assert op.data["host"] == app.host


def test_an_unreachable_host_is_not_fenced_on_a_guess(lab: OvirtLab, driver: OvirtDriver) -> None:
    """A partitioned host still runs its VMs: no manual fence, no promotion, unless power
    management proves it off (or the operator forces and vouches for it)."""
    vm = lab.id("vm", "vm2")
    sid = _secondary_id(driver, vm)
    lab.partition_host("ams-host2")
    assert lab.snapshot("vms", "app01").status == "unknown"
    with pytest.raises(Conflict, match="no power management"):
        driver.fence(vm)
    with pytest.raises(Conflict, match="nothing proves"):
        driver.promote(vm, sid)
    assert lab.split_brains() == [] and lab.snapshot("hosts", "ams-host2").status == "non_responsive"
    lab.set_power_management("ams-host2")
    status = driver.wait(driver.fence(vm), timeout=30)  # powered off through its fence agent
    assert status.state is OpState.SUCCEEDED
    assert lab.snapshot("hosts", "ams-host2").status == "down"
    assert driver.wait(driver.promote(vm, sid), timeout=30).state is OpState.SUCCEEDED
    assert lab.snapshot("vms", "app01").status == "up" and lab.split_brains() == []


def test_forcing_over_a_partition_is_the_operators_word(lab: OvirtLab, driver: OvirtDriver) -> None:
    vm = lab.id("vm", "vm2")
    sid = _secondary_id(driver, vm)
    lab.partition_host("ams-host2")
    assert driver.wait(driver.promote(vm, sid, force=True), timeout=30).state is OpState.SUCCEEDED
    assert lab.split_brains() == [vm]  # what the refusal above prevents


def test_fence_stops_what_the_engine_reaches_and_confirms_what_it_reports_down(
    lab: OvirtLab, driver: OvirtDriver
) -> None:
    assert driver.wait(driver.fence(lab.id("vm", "vm3")), timeout=30).state is OpState.SUCCEEDED
    assert lab.snapshot("vms", "web01").status == "down"
    assert driver.wait(driver.fence(lab.id("vm", "vm3")), timeout=30).state is OpState.SUCCEEDED  # nothing to do
    with lab.engine.lock:  # a host the engine reports down whose VM it still lists as unknown
        h = lab.engine.hosts[lab.id("host", "h2")]
        h.status = "down"
        lab.engine.vms[lab.id("vm", "vm2")].status = "unknown"
    assert driver.wait(driver.fence(lab.id("vm", "vm2")), timeout=30).state is OpState.SUCCEEDED
    assert lab.snapshot("vms", "app01").status == "down" and lab.split_brains() == []


def test_restart_from_the_primary_on_a_surviving_host(lab: OvirtLab, driver: OvirtDriver) -> None:
    vm = lab.id("vm", "vm3")  # web01 on ams-host1, not HA: nobody else restarts it
    with pytest.raises(Conflict, match="fenced or confirmed rebooted"):
        lab.partition_host("ams-host1")
        driver.restart(vm)
    lab.restore()
    lab.fail_host("ams-host1")
    assert lab.snapshot("vms", "web01").status == "down"
    op = driver.restart(vm)
    status = driver.wait(op, timeout=30)
    assert status.state is OpState.SUCCEEDED and status.result["host"] == lab.id("host", "h2")
    web = lab.snapshot("vms", "web01")
    assert web.status == "up" and web.host == lab.id("host", "h2")
    assert web.attachments[0].disk == lab.id("disk", "vm3/d0")  # its own disk: nothing lost
    again = driver.restart(vm)  # idempotent: it runs
    assert driver.wait(again, timeout=30).result["host"] == lab.id("host", "h2")
    with pytest.raises(Conflict, match="hosted engine"):
        driver.restart(lab.id("vm", "he"))


def test_test_failover_leaves_production_alone_and_cleanup_leaves_nothing(lab: OvirtLab, driver: OvirtDriver) -> None:
    vm = lab.id("vm", "vm2")
    sid = _secondary_id(driver, vm)
    prod_before = lab.snapshot("vms", "app01")
    disks_before = sorted((d.id, d.domain, d.alias) for d in lab.disks())
    op = driver.test_failover(vm, sid)
    status = driver.wait(op, timeout=30)
    assert status.state is OpState.SUCCEEDED
    test_id = status.result["test_id"]
    twin = lab.engine.vms[test_id]
    assert twin.status == "up" and twin.stateless and twin.nics and not any(n.plugged for n in twin.nics)
    assert len(twin.attachments) == 1
    prod = lab.snapshot("vms", "app01")
    assert (prod.status, prod.host, prod.attachments) == (prod_before.status, prod_before.host, prod_before.attachments)
    assert test_id not in {v.id for v in driver.inventory().vms}  # ftbridge's twin is not an estate VM
    assert driver.wait(driver.cleanup_test(vm, test_id), timeout=30).state is OpState.SUCCEEDED
    assert not [v for v in lab.vms() if v.name.startswith("ftbridge-test-")]
    assert sorted((d.id, d.domain, d.alias) for d in lab.disks()) == disks_before
    assert driver.wait(driver.cleanup_test(vm, test_id), timeout=30).state is OpState.SUCCEEDED  # idempotent
    with pytest.raises(Conflict, match="not a test failover"):
        driver.cleanup_test(vm, lab.id("vm", "vm3"))


def test_shareable_disks_are_never_split(lab: OvirtLab, driver: OvirtDriver) -> None:
    """A twin gets no shareable disk or LUN (it would write production's); a promote keeps them."""
    vm = lab.id("vm", "cl1")
    shared = lab.id("disk", "shared/shared0/cl1,cl2")
    boot = lab.id("disk", "cl1/boot")
    op = driver.protect(vm, SecondarySpec("ovirt-copy", {boot: lab.id("sd", "sd-r1")}))
    sid = driver.wait(op, timeout=30).result["secondary_id"]
    test = driver.wait(driver.test_failover(vm, sid), timeout=30)
    twin = lab.engine.vms[test.result["test_id"]]
    assert [a.disk for a in twin.attachments] != [] and shared not in {a.disk for a in twin.attachments}
    assert {v.name for v in lab.engine.vms_of_disk(shared)} == {"clnode1", "clnode2"}
    driver.wait(driver.cleanup_test(vm, test.result["test_id"]), timeout=30)
    lab.fail_host("ams-host1")  # clnode1's host; its shared disk and LUN are fine
    assert driver.wait(driver.promote(vm, sid), timeout=30).state is OpState.SUCCEEDED
    cl1 = lab.snapshot("vms", "clnode1")
    assert cl1.status == "up" and shared in {a.disk for a in cl1.attachments}
    assert any(lab.engine.disks[a.disk].lun for a in cl1.attachments)  # the LUN stayed attached
    assert {v.name for v in lab.engine.vms_of_disk(shared)} == {"clnode1", "clnode2"}


def test_ha_vm_is_restarted_by_the_engine_once_its_host_is_down(estate: Estate) -> None:
    lab = OvirtLab(
        estate,
        op_seconds=0.05,
        ha_restart=True,
    )
    lab.start()
    try:
        lab.partition_host("ams-host1")
        lab.finish_jobs()
        assert lab.snapshot("vms", "db01").status == "unknown"  # its lease is still held: no restart
        lab.restore()
        lab.fail_host("ams-host1")
        with lab.engine.lock:
            for vid in list(lab.engine.pending_restarts):
                lab.engine.pending_restarts[vid] = 0.0
            lab.engine.tick()
        db = lab.snapshot("vms", "db01")
        assert db.status == "up" and lab.engine.hosts[db.host].name != "ams-host1"
        assert lab.snapshot("vms", "web01").status == "down"  # not HA: ftbridge's restart brings it back
    finally:
        lab.stop()


# ovirt-dr: the second site ---------------------------------------------------------------------
@pytest.fixture
def site2(monkeypatch: pytest.MonkeyPatch) -> Iterator[OvirtLab]:
    lab = OvirtLab(load_estates(ESTATE_FILE)["rtm-dr"], op_seconds=0.02)
    lab.start()
    for k, v in lab.secrets().items():
        monkeypatch.setenv(k, v)
    try:
        yield lab
    finally:
        lab.stop()


def _dr_setup(lab: OvirtLab, site2: OvirtLab, tmp_path: Path) -> tuple[OvirtDriver, OvirtDriver, dict[str, Any]]:
    """Replicate ams-nfs1 and ams-iscsi1 (and the quorum LUN) to site2; write the role's mapping."""
    with lab.engine.lock:  # a disk web01 has on a domain the array does not replicate
        extra = Disk(id=lab.id("disk", "vm3/extra"), alias="web01_extra", size=1 << 30, domain=lab.id("sd", "sd-small"))
        lab.engine.disks[extra.id] = extra
        lab.engine.vms[lab.id("vm", "vm3")].attachments.append(Attachment(disk=extra.id))
    quorum = next(x for x in lab.engine.luns)
    replica_lun = "36001405" + "f" * 24
    site2.receive_replicas(
        lab, {"ams-nfs1": "ams-nfs1-replica", "ams-iscsi1": "ams-iscsi1-replica"}, luns={quorum: replica_lun}
    )
    pairs = [
        {
            "primary_name": "ams-nfs1",
            "secondary_name": "ams-nfs1-replica",
            "secondary_dc": "rtm-dr",
            "secondary_address": "replica.sd-a1.storage.lab",
            "secondary_path": "/exports/ams-nfs1",
        },
        {
            "primary_name": "ams-iscsi1",
            "secondary_name": "ams-iscsi1-replica",
            "secondary_dc": "rtm-dr",
            "secondary_address": "replica.sd-a2.storage.lab",
            "secondary_target": ["iqn.2024-01.lab.ftbridge:ams-iscsi1-replica"],
        },
    ]
    clusters = [
        {"primary_name": "ams", "secondary_name": "recovery"},
        {"primary_name": "rtm", "secondary_name": "recovery"},
    ]
    primary = OvirtDriver(
        make_config(lab, dr_storage_mappings=pairs, dr_secondary_endpoint="rtm-dr", dr_cluster_mappings=clusters),
        endpoint="lab",
    )
    plain2 = OvirtDriver(make_config(site2), endpoint="rtm-dr")
    primary.open()
    plain2.open()
    try:
        inv = {v.name: v for v in primary.inventory().vms}
        data = drmap.dumps(primary.ex_dr_mapping(secondary=plain2))
    finally:
        primary.close()
        plain2.close()
    doc = yaml.safe_load(data)
    doc["dr_lun_mappings"] = [
        {  # the array's replica of the quorum LUN, as the user writes it
            "logical_unit_alias": "quorum",
            "primary_logical_unit_id": quorum,
            "primary_storage_type": "iscsi",
            "primary_logical_unit_address": "lun-q.san.lab",
            "primary_logical_unit_target": "iqn.x:q",
            "secondary_logical_unit_id": replica_lun,
            "secondary_storage_type": "iscsi",
            "secondary_logical_unit_address": "replica.lun-q.san.lab",
            "secondary_logical_unit_target": "iqn.x:q-replica",
        }
    ]
    path = tmp_path / "disaster_recovery_vars.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    drmap.load(path)
    target = OvirtDriver(make_config(site2, dr_site="secondary", dr_mapping_file=str(path)), endpoint="rtm-dr")
    source = OvirtDriver(make_config(lab, dr_mapping_file=str(path), dr_secondary_endpoint="rtm-dr"), endpoint="lab")
    return source, target, inv


def _dr_id(source: OvirtDriver, vm_id: str) -> str:
    (sec,) = [s for s in source.replication_status(vm_id) if s.mechanism == "ovirt-dr"]
    assert sec.target_endpoint == "rtm-dr" and sec.state is SecondaryState.UNKNOWN
    return sec.id


def test_dr_failover_brings_the_replicas_up_the_way_the_role_does(
    lab: OvirtLab, site2: OvirtLab, tmp_path: Path
) -> None:
    source, target, before = _dr_setup(lab, site2, tmp_path)
    source.open()
    try:
        ids = {
            n: _dr_id(source, before[n].id) for n in ("web01", "db01", "clnode1", "clnode2", "batch01", "rhel-thin01")
        }
        with pytest.raises(UnsupportedOperation, match="rtm-dr"):
            source.promote(before["web01"].id, ids["web01"])
    finally:
        source.close()
    for host in ("ams-host1", "ams-host2", "rtm-host1", "rtm-host2"):
        lab.fail_host(host)  # the primary site is gone
    target.open()
    try:
        assert "web01" not in {v.name for v in target.inventory().vms}
        results = {}
        for name in ("db01", "clnode1", "clnode2", "web01", "batch01", "rhel-thin01"):  # HA first, then the rest
            status = target.wait(target.promote(before[name].id, ids[name]), timeout=30)
            assert status.state is OpState.SUCCEEDED, (name, status.message)
            results[name] = status
        again = target.wait(target.promote(before["web01"].id, ids["web01"]), timeout=30)  # idempotent
        assert again.state is OpState.SUCCEEDED
        vms = {v.name: v for v in target.inventory().vms}
    finally:
        target.close()
    eng = site2.engine
    attached = [
        j.description
        for j in sorted(eng.jobs.values(), key=lambda j: j.start)
        if j.description.startswith("Attaching Storage Domain")
    ]
    assert [a.split()[3] for a in attached] == ["ams-nfs1-replica", "ams-iscsi1-replica"]  # the file's master first
    for name in ("db01", "clnode1", "clnode2", "web01", "rhel-thin01"):
        assert vms[name].id == before[name].id and vms[name].power is PowerState.ON, name
        assert results[name].result["host"]
    assert vms["batch01"].power is PowerState.OFF  # it was down: registered, not started
    assert {t.name for t in eng.templates.values()} == {"rhel9"}  # registered before its VM
    assert len(vms["web01"].disks) == 1  # partial import: the disk on an unreplicated domain stays behind
    shared = lab.id("disk", "shared/shared0/cl1,cl2")
    assert {v.name for v in eng.vms_of_disk(shared)} == {"clnode1", "clnode2"}  # still shared
    quorum = next(d for d in vms["clnode1"].disks if d.kind == "lun")
    assert quorum.datastore == "36001405" + "f" * 24  # the LUN mapping applied
    db = eng.vms[before["db01"].id]
    assert [n.profile for n in db.nics] == [site2.id("profile", "prod"), site2.id("profile", "backend")]
    assert eng.clusters[db.cluster].name == "recovery"


def test_dr_test_failover_and_its_cleanup(lab: OvirtLab, site2: OvirtLab, tmp_path: Path) -> None:
    source, target, before = _dr_setup(lab, site2, tmp_path)
    source.open()
    try:
        ids = {n: _dr_id(source, before[n].id) for n in ("clnode1", "clnode2")}
    finally:
        source.close()
    target.open()
    try:
        tests = {}
        for name in ("clnode1", "clnode2"):
            status = target.wait(target.test_failover(before[name].id, ids[name]), timeout=30)
            assert status.state is OpState.SUCCEEDED, status.message
            tests[name] = status.result["test_id"]
        for test_id in tests.values():
            vm = site2.engine.vms[test_id]
            assert vm.status == "up" and vm.stateless and not any(n.plugged for n in vm.nics)
        shared = lab.id("disk", "shared/shared0/cl1,cl2")
        assert {v.name for v in site2.engine.vms_of_disk(shared)} == {"clnode1", "clnode2"}
        assert lab.snapshot("vms", "clnode1").status == "up"  # production untouched
        for name, test_id in tests.items():
            assert target.wait(target.cleanup_test(before[name].id, test_id), timeout=30).state is OpState.SUCCEEDED
        assert not site2.engine.vms and not [
            d for d in site2.engine.domains.values() if d.imported and d.dc and d.name.endswith("-replica")
        ]
        # the array's copy is as it was: a real failover still finds everything
        status = target.wait(target.promote(before["clnode1"].id, ids["clnode1"]), timeout=30)
        assert status.state is OpState.SUCCEEDED
    finally:
        target.close()
