"""Placement over the lab: correlation-id handles, jobs that fail, copies of running and stopped
VMs the way the engine allows them, leases, call counts."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from ftbridge_ovirt.driver import OvirtDriver
from ftbridge_ovirt.lab import OvirtLab

from ftbridge.drivers import Operation, OpState, SecondarySpec
from ftbridge.errors import Conflict, NotFound, UnsupportedOperation
from ftbridge.model import SecondaryState

pytestmark = pytest.mark.lab


def _leftovers(lab: OvirtLab, vm: str) -> tuple[list[str], list[str], list[str]]:
    """ftbridge's snapshots on the VM, its transient clone VMs, and the VM's copy disks."""
    snaps = [s.description for v in lab.vms() if v.id == vm for s in v.snapshots]
    clones = [v.name for v in lab.vms() if v.name.startswith("ftbridge-clone-")]
    copies = [d.alias for d in lab.disks() if d.alias.startswith(f"ftbridge-copy.{vm}.")]
    return snaps, clones, copies


def test_handle_is_a_correlation_id_a_fresh_driver_resumes(
    lab: OvirtLab, make_driver: Callable[..., OvirtDriver]
) -> None:
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


def test_a_running_vm_is_copied_from_a_live_snapshot(lab: OvirtLab, driver: OvirtDriver) -> None:
    """The engine copies no disk of a running VM: ftbridge snapshots it, clones the snapshot's
    disks onto the target, keeps them, and drops the transient VM and the snapshot."""
    vm = lab.id("vm", "vm1")  # db01 runs
    spec = SecondarySpec(
        "ovirt-copy",
        {lab.id("disk", "vm1/d0"): lab.id("sd", "sd-r1"), lab.id("disk", "vm1/d1"): lab.id("sd", "sd-r1")},
        metadata_datastore=lab.id("sd", "sd-a2"),
    )
    op = driver.protect(vm, spec)
    assert [s.description for s in lab.snapshot("vms", "db01").snapshots] == [
        f"ftbridge-copy {op.data['secondary_id']}"
    ]
    status = driver.wait(op, timeout=30)
    assert status.state is OpState.SUCCEEDED, status.message
    sid = status.result["secondary_id"]
    assert lab.snapshot("vms", "db01").status == "up"  # never stopped
    (sec,) = [s for s in driver.replication_status(vm) if s.id == sid]
    assert sec.mechanism == "ovirt-copy" and sec.state is SecondaryState.IN_SYNC and sec.missing == ()
    assert {d.datastore for d in sec.disks} == {lab.id("sd", "sd-r1")}
    assert sec.lag is not None and sec.lag < 60
    assert sec.metadata_datastore is None  # the lease is the VM's: a promote moves it where the copy is
    assert lab.snapshot("vms", "db01").lease == lab.id("sd", "sd-a2")
    snaps, clones, copies = _leftovers(lab, vm)
    assert snaps == [] and clones == [] and len(copies) == 2
    assert all(not lab.engine.vms_of_disk(d.id) for d in lab.disks() if d.alias in copies)  # floating
    thin = next(d for d in lab.disks() if d.alias == f"ftbridge-copy.{vm}.{lab.id('disk', 'vm1/d1')}.{sid}")
    assert thin.sparse and thin.format == "cow" and thin.used == 30 << 30  # the copy stays thin
    assert driver.wait(driver.unprotect(vm, sid), timeout=30).state is OpState.SUCCEEDED
    with pytest.raises(NotFound):
        driver.unprotect(vm, sid)


def test_a_stopped_vm_is_copied_directly(lab: OvirtLab, driver: OvirtDriver) -> None:
    vm = lab.id("vm", "vm4")  # batch01 is down: nothing writes its disk while it copies
    op = driver.protect(vm, SecondarySpec("ovirt-copy", {lab.id("disk", "vm4/d0"): lab.id("sd", "sd-r1")}))
    assert op.data["path"] == "copy"
    assert driver.wait(op, timeout=30).state is OpState.SUCCEEDED
    assert lab.snapshot("vms", "batch01").snapshots == []
    (sec,) = driver.replication_status(vm)
    assert sec.state is SecondaryState.IN_SYNC


def test_failed_copies_leave_no_half_secondary(lab: OvirtLab, driver: OvirtDriver) -> None:
    stopped = lab.id("vm", "vm4")
    lab.fail_next("copy")
    status = driver.wait(
        driver.protect(stopped, SecondarySpec("ovirt-copy", {lab.id("disk", "vm4/d0"): lab.id("sd", "sd-r1")})),
        timeout=30,
    )
    assert status.state is OpState.FAILED
    assert _leftovers(lab, stopped)[2] == []
    running = lab.id("vm", "vm1")
    lab.fail_next("clone")  # the engine fails to clone the snapshot
    spec = SecondarySpec(
        "ovirt-copy", {lab.id("disk", "vm1/d0"): lab.id("sd", "sd-r1"), lab.id("disk", "vm1/d1"): lab.id("sd", "sd-r1")}
    )
    status = driver.wait(driver.protect(running, spec), timeout=30)
    assert status.state is OpState.FAILED and status.retryable
    lab.finish_jobs()  # the snapshot's removal the failure started
    assert _leftovers(lab, running) == ([], [], [])
    assert all(s.mechanism != "ovirt-copy" for s in driver.replication_status(running))


def test_a_failed_snapshot_removal_keeps_the_copies(lab: OvirtLab, driver: OvirtDriver) -> None:
    vm = lab.id("vm", "vm3")  # web01 runs
    lab.fail_next("merge")  # the copies are made; removing the snapshot fails
    status = driver.wait(
        driver.protect(vm, SecondarySpec("ovirt-copy", {lab.id("disk", "vm3/d0"): lab.id("sd", "sd-r1")})), timeout=30
    )
    assert status.state is OpState.FAILED and "remove that snapshot" in status.message
    (sec,) = driver.replication_status(vm)
    assert sec.id == status.result["secondary_id"] and sec.state is SecondaryState.IN_SYNC
    snaps, clones, copies = _leftovers(lab, vm)
    assert len(snaps) == 1 and clones == [] and len(copies) == 1


def test_protect_refuses_what_the_engine_would(lab: OvirtLab, driver: OvirtDriver) -> None:
    vm = lab.id("vm", "vm1")
    spec = {lab.id("disk", "vm1/d0"): lab.id("sd", "sd-r1"), lab.id("disk", "vm1/d1"): lab.id("sd", "sd-r1")}
    with pytest.raises(Conflict, match="every copyable disk"):
        driver.protect(vm, SecondarySpec("ovirt-copy", {lab.id("disk", "vm1/d0"): lab.id("sd", "sd-r1")}))
    with pytest.raises(UnsupportedOperation):
        driver.protect(vm, SecondarySpec("ovirt-dr", spec))
    with pytest.raises(Conflict, match="GiB free"):  # 40 GiB + the thin disk's 30 GiB data * 1.1 on 30 GiB
        driver.protect(vm, SecondarySpec("ovirt-copy", {k: lab.id("sd", "sd-small") for k in spec}))
    with pytest.raises(Conflict, match="hosted engine"):
        driver.protect(
            lab.id("vm", "he"), SecondarySpec("ovirt-copy", {lab.id("disk", "he/d0"): lab.id("sd", "sd-r1")})
        )
    with pytest.raises(Conflict, match="managed block storage"):
        driver.protect(
            lab.id("vm", "ceph1"), SecondarySpec("ovirt-copy", {lab.id("disk", "ceph1/d0"): lab.id("sd", "sd-r1")})
        )
    assert [v.name for v in lab.vms() if v.snapshots] == []  # nothing was started


def test_room_is_counted_as_the_engine_counts_it(lab: OvirtLab, driver: OvirtDriver) -> None:
    """A thin disk needs its data (plus qcow2's 10 %), not its size; the blocker stays free."""
    vm = lab.id("vm", "tpl1")  # a 10 GiB thin disk holding 2 GiB
    op = driver.protect(vm, SecondarySpec("ovirt-copy", {lab.id("disk", "tpl1/d0"): lab.id("sd", "sd-small")}))
    assert driver.wait(op, timeout=30).state is OpState.SUCCEEDED  # 2.2 GiB fits above the 5 GiB blocker
    d = next(x for x in driver.inventory().vms if x.id == vm).disks[0]
    assert d.thin and d.allocated == int(2.2 * (1 << 30)) + 1 and d.size == 10 << 30


def test_copies_keep_shareable_disks_in_place_and_say_what_they_lack(lab: OvirtLab, driver: OvirtDriver) -> None:
    vm = lab.id("vm", "cl1")
    boot, shared = lab.id("disk", "cl1/boot"), lab.id("disk", "shared/shared0/cl1,cl2")
    status = driver.wait(
        driver.protect(vm, SecondarySpec("ovirt-copy", {boot: lab.id("sd", "sd-r1"), shared: lab.id("sd", "sd-r1")})),
        timeout=30,
    )
    assert status.state is OpState.SUCCEEDED, status.message
    (sec,) = driver.replication_status(vm)
    quorum = next(d.id for d in lab.engine.disks.values() if d.lun is not None)
    assert sec.missing == tuple(sorted((quorum, shared)))  # no copy holds the LUN nor the shareable disk
    assert {d.disk: d.datastore for d in sec.disks} == {boot: lab.id("sd", "sd-r1")}
    assert [
        d.alias for d in lab.disks() if d.alias.startswith("ftbridge-copy.") and d.alias.split(".")[2] == shared
    ] == []  # never copied
    assert {v.name for v in lab.engine.vms_of_disk(shared)} == {"clnode1", "clnode2"}


def test_inventory_calls_do_not_grow_with_vms(lab: OvirtLab, driver: OvirtDriver) -> None:
    lab.stats.reset()
    driver.inventory()
    api_calls = {k: v for k, v in lab.stats.by_route.items() if not k.startswith("sso")}
    assert sum(api_calls.values()) == 6, api_calls  # templates only because one VM uses a template
    assert all(v == 1 for v in api_calls.values())


def test_filters_narrow_the_scope(lab: OvirtLab, make_driver: Callable[..., OvirtDriver]) -> None:
    drv = make_driver(cluster="rtm")
    drv.open()
    try:
        lab.stats.reset()
        part = drv.inventory()
        assert {h.name for h in part.hosts} == {"rtm-host1", "rtm-host2"}
        assert part.vms == ()
        assert all(set(d.hosts) <= {h.id for h in part.hosts} for d in part.datastores)
        assert "GET /templates" not in lab.stats.by_route
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
    assert lab.snapshot("vms", "db01").lease == lab.id("sd", "sd-a2")  # as seeded
    assert driver.wait(driver.ex_set_lease(vm, lab.id("sd", "sd-r1")), timeout=30).state is OpState.SUCCEEDED
    assert lab.snapshot("vms", "db01").lease == lab.id("sd", "sd-r1")
    lab.fail_datastore("ams-nfs1")
    with pytest.raises(Conflict):
        driver.ex_set_lease(vm, lab.id("sd", "sd-a1"))
