"""Placement over the lab: correlation-id handles, jobs that fail, copies, leases, call counts."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from ftbridge_ovirt.driver import OvirtDriver
from ftbridge_ovirt.lab import OvirtLab

from ftbridge.drivers import Operation, OpState, SecondarySpec
from ftbridge.errors import Conflict, NotFound, UnsupportedOperation
from ftbridge.model import PowerState, SecondaryState

pytestmark = pytest.mark.lab


def test_handle_is_a_correlation_id_a_fresh_driver_resumes(lab: OvirtLab,
                                                           make_driver: Callable[..., OvirtDriver]) -> None:
    lab.set_faults(slow_jobs=0.6)
    first = make_driver()
    first.open()
    op = first.move_disk(lab.id("vm", "vm1"), lab.id("disk", "vm1/d0"), lab.id("sd", "sd-r1"))
    assert op.id.startswith("ftbridge-move-")
    assert first.poll(op).state is OpState.RUNNING
    saved = json.dumps(op.to_dict())
    first.close()  # the caller "crashes" while the engine works on

    second = make_driver("http")  # another process, another transport: same engine
    second.open()
    try:
        status = second.wait(Operation.from_dict(json.loads(saved)), timeout=30)
        assert status.state is OpState.SUCCEEDED
        assert lab.snapshot("disks", "db01_d0").domain == lab.id("sd", "sd-r1")
        # the engine clears old jobs: the handle still resolves by its effect
        with lab.engine.lock:
            lab.engine.jobs.clear()
        assert second.poll(Operation.from_dict(json.loads(saved))).state is OpState.SUCCEEDED
    finally:
        second.close()


def test_failed_job_is_reported_and_the_disk_stays(lab: OvirtLab, driver: OvirtDriver) -> None:
    lab.fail_next("move")
    op = driver.move_disk(lab.id("vm", "vm3"), lab.id("disk", "vm3/d0"), lab.id("sd", "sd-r1"))
    status = driver.wait(op, timeout=30)
    assert status.state is OpState.FAILED and "Moving Disk" in status.message and status.retryable
    assert lab.snapshot("disks", "web01_d0").domain == lab.id("sd", "sd-a2")
    assert lab.snapshot("disks", "web01_d0").status == "ok"


def test_failed_protect_leaves_no_half_secondary(lab: OvirtLab, driver: OvirtDriver) -> None:
    vm = lab.id("vm", "vm1")
    spec = SecondarySpec("ovirt-copy", {lab.id("disk", "vm1/d0"): lab.id("sd", "sd-r1"),
                                        lab.id("disk", "vm1/d1"): lab.id("sd", "sd-r1")})
    lab.fail_next("copy")  # the first of two copies fails, the second completes
    status = driver.wait(driver.protect(vm, spec), timeout=30)
    assert status.state is OpState.FAILED
    assert not [d for d in lab.disks() if d.alias.startswith(f"ftbridge-copy.{vm}.")]
    assert all(s.mechanism != "ovirt-copy" for v in driver.inventory().vms if v.id == vm for s in v.secondaries)


def test_protect_copies_every_disk_and_sets_the_lease(lab: OvirtLab, driver: OvirtDriver) -> None:
    vm = lab.id("vm", "vm1")
    spec = SecondarySpec("ovirt-copy", {lab.id("disk", "vm1/d0"): lab.id("sd", "sd-r1"),
                                        lab.id("disk", "vm1/d1"): lab.id("sd", "sd-r1")},
                         metadata_datastore=lab.id("sd", "sd-a2"))
    op = driver.protect(vm, spec)
    assert driver.wait(op, timeout=30).state is OpState.SUCCEEDED
    sid = driver.poll(op).result["secondary_id"]
    (sec,) = [s for s in driver.replication_status(vm) if s.id == sid]
    assert sec.mechanism == "ovirt-copy" and sec.state is SecondaryState.IN_SYNC
    assert sec.lag is not None and sec.lag < 60 and sec.metadata_datastore == lab.id("sd", "sd-a2")
    assert lab.snapshot("vms", "db01").lease == lab.id("sd", "sd-a2")
    with pytest.raises(Conflict, match="every disk"):
        driver.protect(vm, SecondarySpec("ovirt-copy", {lab.id("disk", "vm1/d0"): lab.id("sd", "sd-r1")}))
    with pytest.raises(UnsupportedOperation):
        driver.protect(vm, SecondarySpec("ovirt-dr", dict(spec.disks)))
    with pytest.raises(Conflict, match="GiB free"):
        driver.protect(vm, SecondarySpec("ovirt-copy", {k: lab.id("sd", "sd-small") for k in spec.disks}))
    assert driver.wait(driver.unprotect(vm, sid), timeout=30).state is OpState.SUCCEEDED
    with pytest.raises(NotFound):
        driver.unprotect(vm, sid)


def test_inventory_reads_the_engine_as_it_is(lab: OvirtLab, driver: OvirtDriver) -> None:
    part = driver.inventory()
    by_name = {v.name: v for v in part.vms}
    db = by_name["db01"]
    assert db.ha and db.vcpus == 2 and db.memory == 4 << 30 and db.tags == ("tier1",)
    assert db.power is PowerState.ON and db.host == lab.id("host", "h1") and db.config_datastore is None
    assert [d.datastore for d in db.disks] == [lab.id("sd", "sd-a1")] * 2
    assert by_name["batch01"].power is PowerState.OFF and by_name["batch01"].host is None
    (copy,) = by_name["app01"].secondaries
    assert copy.mechanism == "ovirt-copy" and copy.state is SecondaryState.IN_SYNC
    assert copy.disks[0].datastore == lab.id("sd", "sd-r1") and 25 <= (copy.lag or 0) < 120
    ds = {d.name: d for d in part.datastores}
    assert ds["ams-iscsi1"].kind == "iscsi" and ds["ams-nfs1"].shared and len(ds["ams-nfs1"].hosts) == 4
    assert ds["ams-small"].capacity == 30 << 30
    hosts = {h.name: h for h in part.hosts}
    assert hosts["ams-host1"].cluster == "ams" and hosts["rtm-host2"].cluster == "rtm"


def test_inventory_calls_do_not_grow_with_vms(lab: OvirtLab, driver: OvirtDriver) -> None:
    lab.stats.reset()
    driver.inventory()
    api_calls = {k: v for k, v in lab.stats.by_route.items() if not k.startswith("sso")}
    assert sum(api_calls.values()) == 5, api_calls
    assert all(v == 1 for v in api_calls.values())


def test_filters_narrow_the_scope(lab: OvirtLab, make_driver: Callable[..., OvirtDriver]) -> None:
    drv = make_driver(cluster="rtm")
    drv.open()
    try:
        part = drv.inventory()
        assert {h.name for h in part.hosts} == {"rtm-host1", "rtm-host2"}
        assert part.vms == ()
        assert all(set(d.hosts) <= {h.id for h in part.hosts} for d in part.datastores)
    finally:
        drv.close()
    drv = make_driver(data_center="elsewhere")
    drv.open()
    try:
        assert drv.inventory().hosts == ()
    finally:
        drv.close()


def test_lease_can_be_moved_apart_from_the_disks(lab: OvirtLab, driver: OvirtDriver) -> None:
    vm = lab.id("vm", "vm1")
    assert lab.snapshot("vms", "db01").lease == lab.id("sd", "sd-a1")  # with its disks, as seeded
    assert driver.wait(driver.ex_set_lease(vm, lab.id("sd", "sd-a2")), timeout=30).state is OpState.SUCCEEDED
    assert lab.snapshot("vms", "db01").lease == lab.id("sd", "sd-a2")
    lab.fail_datastore("rtm-nfs1")
    with pytest.raises(Conflict):
        driver.ex_set_lease(vm, lab.id("sd", "sd-r1"))
