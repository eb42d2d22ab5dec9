"""Failover primitives against injected failures: health, promote, test failover, fence, reprotect."""

from __future__ import annotations

import pytest
from ftbridge_ovirt.driver import OvirtDriver
from ftbridge_ovirt.lab import OvirtLab

from ftbridge.drivers import OpState, SecondarySpec
from ftbridge.errors import Conflict
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
    lab.fail_datastore("ams-nfs1")
    report = driver.health()
    assert report.hosts[lab.id("host", "h1")] is HostState.DOWN
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
    # reprotect onto a healthy domain away from the new primary
    spec = SecondarySpec("ovirt-copy", {d.id: lab.id("sd", "sd-a2") for d in after.disks})
    assert driver.wait(driver.reprotect(vm, spec), timeout=30).state is OpState.SUCCEEDED
    (new,) = driver.replication_status(vm)
    assert new.state is SecondaryState.IN_SYNC and new.disks[0].datastore == lab.id("sd", "sd-a2")


def test_site_failure_promote_moves_to_the_other_cluster(lab: OvirtLab, driver: OvirtDriver) -> None:
    vm = lab.id("vm", "vm2")
    sid = _secondary_id(driver, vm)
    for host in ("ams-host1", "ams-host2"):
        lab.fail_host(host)
    lab.fail_datastore("ams-nfs1")
    op = driver.promote(vm, sid)
    assert driver.wait(op, timeout=30).state is OpState.SUCCEEDED
    app = lab.snapshot("vms", "app01")
    assert app.status == "up" and lab.engine.hosts[app.host].name.startswith("rtm-")
    assert lab.engine.clusters[app.cluster].name == "rtm"
    assert op.data["host"] == app.host


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


def test_fence_stops_the_vm_or_confirms_its_dead_host(lab: OvirtLab, driver: OvirtDriver) -> None:
    assert driver.wait(driver.fence(lab.id("vm", "vm3")), timeout=30).state is OpState.SUCCEEDED
    assert lab.snapshot("vms", "web01").status == "down"
    lab.fail_host("ams-host2")
    assert lab.snapshot("vms", "app01").status == "unknown"
    assert driver.wait(driver.fence(lab.id("vm", "vm2")), timeout=30).state is OpState.SUCCEEDED
    assert lab.snapshot("vms", "app01").status == "down"


def test_ha_vm_with_a_lease_is_restarted_by_the_engine(estate: object) -> None:
    lab = OvirtLab(estate, op_seconds=0.05, ha_restart=True)  # type: ignore[arg-type]
    lab.start()
    try:
        lab.fail_host("ams-host1")
        import time

        deadline = time.monotonic() + 10
        while lab.snapshot("vms", "db01").status != "up" and time.monotonic() < deadline:
            time.sleep(0.1)
        db = lab.snapshot("vms", "db01")
        assert db.status == "up" and lab.engine.hosts[db.host].name != "ams-host1"
        assert lab.snapshot("vms", "web01").status == "unknown"  # no lease: waits for a fence
    finally:
        lab.stop()


def test_dr_failover_registers_the_replicas_at_the_second_site(lab: OvirtLab, make_driver: object,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from ovirt_helpers import ESTATE_FILE, make_config

    from ftbridge.estate import load_estates

    pairs = [{"primary_name": "ams-iscsi1", "secondary_name": "ams-iscsi1-replica"}]
    primary = make_driver(dr_storage_mappings=pairs, dr_secondary_endpoint="rtm-dr")  # type: ignore[operator]
    primary.open()
    try:
        web = next(v for v in primary.inventory().vms if v.name == "web01")
    finally:
        primary.close()
    (dr,) = [s for s in web.secondaries if s.mechanism == "ovirt-dr"]
    assert dr.target_endpoint == "rtm-dr"

    site2 = OvirtLab(load_estates(ESTATE_FILE)["rtm-dr"], op_seconds=0.05)
    site2.start()
    try:
        for k, v in site2.secrets().items():
            monkeypatch.setenv(k, v)
        site2.receive_replicas(lab, {"ams-iscsi1": "ams-iscsi1-replica"})
        for host in ("ams-host1", "ams-host2", "rtm-host1", "rtm-host2"):
            lab.fail_host(host)  # the primary site is gone
        drv = OvirtDriver(make_config(site2), endpoint="rtm-dr")
        drv.open()
        try:
            before = {v.name for v in drv.inventory().vms}
            assert "web01" not in before
            op = drv.ex_register_replicas(["ams-iscsi1-replica"], cluster="recovery")
            assert drv.wait(op, timeout=30).state is OpState.SUCCEEDED
            vms = {v.name: v for v in drv.inventory().vms}
        finally:
            drv.close()
        assert vms["web01"].id == web.id and vms["web01"].power is PowerState.ON
        assert {d.datastore for d in vms["web01"].disks} == {x.datastore for x in dr.disks}
        assert vms["batch01"].power is PowerState.ON  # every VM the replica carried
        assert site2.engine.hosts[site2.snapshot("vms", "web01").host].name.startswith("dr-host")
    finally:
        site2.stop()
