"""Failover against the lab: a host fails, the FT secondary takes over; test failover and
cleanup leave production as it was; fencing; health."""

from __future__ import annotations

import pytest
from ftbridge_vsphere.driver import VsphereDriver
from ftbridge_vsphere.lab import VsphereLab
from vsphere_testlib import Names

from ftbridge.drivers import OpState, SecondarySpec
from ftbridge.errors import Conflict
from ftbridge.model import HostState, PowerState


def test_fail_the_primarys_host_promote_and_reprotect(vs: VsphereDriver, names: Names, lab: VsphereLab) -> None:
    ft01 = names.vm["ft01"]
    (sec,) = ft01.secondaries
    assert ft01.host is not None and sec.host is not None
    assert names.host_name[ft01.host] == "esx-a1" and names.host_name[sec.host] == "esx-a2"

    with pytest.raises(Conflict, match="may still run .it runs on esx-a1"):
        vs.promote(ft01.id, sec.id)

    lab.fail_host("esx-a1")
    health = vs.health()
    assert health.hosts[names.host["esx-a1"]] is HostState.DOWN
    assert health.hosts[names.host["esx-a2"]] is HostState.UP
    assert any("esx-a1" in n for n in health.notes)
    down = Names(vs.inventory()).vm["ft01"]
    assert down.power is PowerState.UNKNOWN

    status = vs.wait(vs.promote(ft01.id, sec.id), timeout=60)
    assert status.state is OpState.SUCCEEDED, status.message

    after = Names(vs.inventory()).vm["ft01"]
    assert after.id == ft01.id  # the VM keeps its identity
    assert after.host == sec.host and after.power is PowerState.ON
    assert {d.id: d.datastore for d in after.disks} == {x.disk: x.datastore for x in sec.disks}
    assert [d.path for d in after.disks] == [x.path for x in sec.disks]
    assert after.config_datastore == sec.config_datastore
    assert after.secondaries == ()  # FT needs a new secondary now
    assert lab.local_path(after.config_path).exists()  # type: ignore[union-attr]

    # reprotect on a host that is up, with room
    spec = SecondarySpec(
        "vsphere-ft",
        {d.id: names.ds["ams-nfs-b"] for d in after.disks},
        config_datastore=names.ds["ams-nfs-b"],
        host=names.host["esx-b3"],
        metadata_datastore=names.ds["ft-meta"],
    )
    with pytest.raises(Conflict, match="esx-b3 does not mount datastore ams-nfs-b"):
        vs.reprotect(ft01.id, spec)
    spec = SecondarySpec(
        "vsphere-ft",
        {d.id: names.ds["rtm-nfs"] for d in after.disks},
        config_datastore=names.ds["rtm-nfs"],
        host=names.host["esx-b3"],
        metadata_datastore=names.ds["ft-meta"],
    )
    status = vs.wait(vs.reprotect(ft01.id, spec), timeout=60)
    assert status.state is OpState.SUCCEEDED, status.message
    (new,) = Names(vs.inventory()).vm["ft01"].secondaries
    assert new.id == status.result["secondary_id"] and new.host == names.host["esx-b3"]

    lab.restore()
    assert vs.health().hosts[names.host["esx-a1"]] is HostState.UP


def test_a_secondary_on_a_failed_host_cannot_be_promoted(vs: VsphereDriver, names: Names, lab: VsphereLab) -> None:
    app01 = names.vm["app01"]
    (sec,) = app01.secondaries
    lab.fail_host("esx-a3")  # the secondary's host
    state = Names(vs.inventory()).vm["app01"].secondaries[0].state
    assert state.value == "broken"
    with pytest.raises(Conflict, match="not up"):
        vs.promote(app01.id, sec.id, force=True)


def test_fence_then_promote(vs: VsphereDriver, names: Names) -> None:
    app01 = names.vm["app01"]
    (sec,) = app01.secondaries
    assert vs.wait(vs.fence(app01.id), timeout=60).state is OpState.SUCCEEDED
    assert Names(vs.inventory()).vm["app01"].power is PowerState.OFF
    again = vs.wait(vs.fence(app01.id), timeout=60)  # already off: still a success
    assert again.state is OpState.SUCCEEDED
    status = vs.wait(vs.promote(app01.id, sec.id), timeout=60)
    assert status.state is OpState.SUCCEEDED, status.message
    assert Names(vs.inventory()).vm["app01"].host == sec.host


def test_test_failover_leaves_production_unchanged_and_cleanup_leaves_nothing(
    vs: VsphereDriver, names: Names, lab: VsphereLab
) -> None:
    before = vs.inventory()
    app01 = names.vm["app01"]
    (sec,) = app01.secondaries

    status = vs.wait(vs.test_failover(app01.id, sec.id), timeout=60)
    assert status.state is OpState.SUCCEEDED, status.message
    test_id = status.result["test_id"]
    tests = vs.ex_tests()
    assert [t[0] for t in tests] == [test_id]

    # the clone runs on the secondary's host, from the secondary's datastore, cut off the network
    props = vs.session.retrieve(
        "VirtualMachine",
        [test_id],
        ["runtime.powerState", "runtime.host", "config.hardware.device", "config.files.vmPathName"],
    )
    p = props[test_id]
    assert str(p["runtime.powerState"]) == "poweredOn"
    assert p["runtime.host"]._moId == sec.host
    assert sec.config_datastore is not None
    assert p["config.files.vmPathName"].startswith(f"[{names.ds_name[sec.config_datastore]}]")
    nics = [d for d in p["config.hardware.device"] if hasattr(d, "macAddress")]
    assert nics and all(not n.connectable.connected and not n.connectable.startConnected for n in nics)

    during = vs.inventory()
    assert during.vms == before.vms  # production untouched (and the clone is not a production VM)

    with pytest.raises(Conflict, match="not a test-failover VM"):
        vs.cleanup_test(app01.id, app01.id)
    status = vs.wait(vs.cleanup_test(app01.id, test_id), timeout=60)
    assert status.state is OpState.SUCCEEDED, status.message
    assert vs.ex_tests() == []
    clone_dir = lab.local_path(p["config.files.vmPathName"])
    assert clone_dir is not None and not clone_dir.parent.exists()
    after = vs.inventory()
    assert after.vms == before.vms
    assert {d.id: d.free for d in after.datastores} == {d.id: d.free for d in before.datastores}


def test_datastore_failure_shows_in_health_and_breaks_the_secondary(
    vs: VsphereDriver, names: Names, lab: VsphereLab
) -> None:
    lab.fail_datastore("ams-nfs-b")  # app01's secondary lives there
    health = vs.health()
    assert health.datastores[names.ds["ams-nfs-b"]] is False
    assert health.datastores[names.ds["ams-nfs-a"]] is True
    assert Names(vs.inventory()).vm["app01"].secondaries[0].state.value == "broken"
    assert lab.faults()["datastores_down"] == ["ams-nfs-b"]
    lab.restore()
    assert vs.health().datastores[names.ds["ams-nfs-b"]] is True
    assert Names(vs.inventory()).vm["app01"].secondaries[0].state.value == "in_sync"
