"""The sim platform refuses what a hypervisor would, and guards every VM's last good copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftbridge.drivers import OpState, SecondarySpec
from ftbridge.errors import BackendUnavailable, Conflict, InvariantViolation, NotFound
from ftbridge.sim.driver import SimConfig, SimDriver

GIB = 1024**3


@pytest.fixture
def sim(small_estate: Path) -> SimDriver:
    drv = SimDriver(SimConfig(driver="sim", estate=small_estate, name="lab"), endpoint="lab")
    drv.open()
    return drv


def vm(drv: SimDriver, vm_id: str):  # type: ignore[no-untyped-def]
    return next(v for v in drv.inventory().vms if v.id == vm_id)


def free(drv: SimDriver, ds_id: str) -> int:
    return next(d.free for d in drv.inventory().datastores if d.id == ds_id)


def test_move_needs_a_datastore_the_host_mounts(sim: SimDriver) -> None:
    with pytest.raises(Conflict, match="does not mount"):
        sim.move_disk("vm1", "d0", "ds-r")  # h1 does not mount rtm-shared


def test_copy_holds_space_on_both_sides_until_done(small_estate: Path) -> None:
    drv = SimDriver(SimConfig(driver="sim", estate=small_estate, op_seconds=60), endpoint="lab")
    drv.open()
    src, dst = free(drv, "ds-l1"), free(drv, "ds-a")
    op = drv.move_disk("vm1", "d1", "ds-a")
    assert free(drv, "ds-a") == dst - 100 * GIB  # reserved on the target
    assert free(drv, "ds-l1") == src  # the source is not freed while copying
    with pytest.raises(Conflict, match="locked by operation"):
        drv.move_disk("vm1", "d0", "ds-a")  # one operation per VM
    assert drv.poll(op).state is OpState.RUNNING


def test_move_completes_and_frees_the_source(sim: SimDriver) -> None:
    src = free(sim, "ds-l1")
    status = sim.wait(sim.move_disk("vm1", "d1", "ds-a"))
    assert status.state is OpState.SUCCEEDED
    assert {d.id: d.datastore for d in vm(sim, "vm1").disks} == {"d0": "ds-l1", "d1": "ds-a"}
    assert free(sim, "ds-l1") == src + 100 * GIB


def test_capacity_is_enforced(small_estate: Path) -> None:
    small_estate.write_text(small_estate.read_text().replace("capacity_gib = 1000", "capacity_gib = 120", 1))
    drv = SimDriver(SimConfig(driver="sim", estate=small_estate), endpoint="lab")
    drv.open()
    with pytest.raises(Conflict, match="GiB free, 100 GiB needed"):
        drv.move_disk("vm1", "d1", "ds-a")


def test_unknown_objects_are_not_found(sim: SimDriver) -> None:
    with pytest.raises(NotFound):
        sim.move_disk("nope", "d0", "ds-a")
    with pytest.raises(NotFound):
        sim.move_disk("vm1", "d9", "ds-a")


def test_state_is_shared_between_instances(small_estate: Path, sim: SimDriver) -> None:
    sim.wait(sim.move_disk("vm1", "d0", "ds-a"))
    other = SimDriver(SimConfig(driver="sim", estate=small_estate, name="lab"), endpoint="lab")
    other.open()
    assert {d.id: d.datastore for d in vm(other, "vm1").disks}["d0"] == "ds-a"
    assert other.ex_reset()
    fresh = SimDriver(SimConfig(driver="sim", estate=small_estate, name="lab"), endpoint="lab")
    fresh.open()
    assert {d.id: d.datastore for d in vm(fresh, "vm1").disks}["d0"] == "ds-l1"


def test_invariant_violation_is_recorded(small_estate: Path) -> None:
    drv = SimDriver(SimConfig(driver="sim", estate=small_estate, op_seconds=0), endpoint="lab")
    drv.open()
    old = vm(drv, "vm2").secondaries[0]
    op = drv.protect("vm2", SecondarySpec("sim-copy", {"d0": "ds-b"}))
    # do not wait for the new copy: the old one is still the only verified secondary
    with drv._mutate() as state:
        state["ops"][op.id]["duration"] = 1e9
        state["ops"][op.id]["state"] = "succeeded"  # release the VM lock, copy still syncing
    with pytest.raises(InvariantViolation, match="replacement is still syncing"):
        drv.unprotect("vm2", old.id)
    assert drv.ex_violations() == ["app01: removing its only verified secondary while its replacement is still syncing"]


def test_unprotect_after_replacement_is_in_sync_is_fine(sim: SimDriver) -> None:
    old = vm(sim, "vm2").secondaries[0]
    assert sim.wait(sim.protect("vm2", SecondarySpec("sim-copy", {"d0": "ds-b"}))).state is OpState.SUCCEEDED
    assert sim.wait(sim.unprotect("vm2", old.id)).state is OpState.SUCCEEDED
    assert [s.datastores for s in vm(sim, "vm2").secondaries] == [frozenset({"ds-b"})]
    assert sim.ex_violations() == []


def test_ft_rules(small_estate: Path) -> None:
    text = small_estate.read_text().replace('flavor = "generic"', 'flavor = "vsphere"')
    small_estate.write_text(text)
    drv = SimDriver(SimConfig(driver="sim", estate=small_estate), endpoint="lab")
    drv.open()
    spec = SecondarySpec("vsphere-ft", {"d0": "ds-b"}, config_datastore="ds-b", host="h2", metadata_datastore="ds-b")
    with pytest.raises(Conflict, match="another host"):
        drv.protect("vm3", SecondarySpec("vsphere-ft", {"d0": "ds-b"}, "ds-b", "h1", "ds-b"))
    with pytest.raises(Conflict, match="metadata datastore must be shared"):
        drv.protect("vm3", SecondarySpec("vsphere-ft", {"d0": "ds-b"}, "ds-b", "h2", "ds-l1"))
    with pytest.raises(Conflict, match="not offered here"):
        drv.protect("vm3", SecondarySpec("pve-replication", {"d0": "ds-b"}, host="h2"))
    assert drv.wait(drv.protect("vm3", spec)).state is OpState.SUCCEEDED
    with pytest.raises(Conflict, match="cannot move while it exists"):
        drv.move_disk("vm3", "d0", "ds-b")


def test_promote_refuses_split_brain_then_runs_from_the_secondary(sim: SimDriver) -> None:
    sec = vm(sim, "vm2").secondaries[0]
    with pytest.raises(Conflict, match="may still run"):
        sim.promote("vm2", sec.id)
    sim.ex_inject(hosts_down=["h2"], datastores_down=["ds-a"])
    assert sim.wait(sim.promote("vm2", sec.id)).state is OpState.SUCCEEDED
    v = vm(sim, "vm2")
    assert v.host == "h3" and [d.datastore for d in v.disks] == ["ds-r"] and not v.secondaries


def test_test_failover_leaves_production_unchanged(sim: SimDriver) -> None:
    before = sim.inventory()
    sec = vm(sim, "vm2").secondaries[0]
    status = sim.wait(sim.test_failover("vm2", sec.id))
    assert status.state is OpState.SUCCEEDED and sim.ex_tests()
    assert sim.inventory() == before
    assert sim.wait(sim.cleanup_test("vm2", status.result["test_id"])).state is OpState.SUCCEEDED
    assert sim.ex_tests() == {}


def test_injected_faults(small_estate: Path) -> None:
    drv = SimDriver(SimConfig(driver="sim", estate=small_estate), endpoint="lab")
    drv.ex_inject(fail_rate=1.0)
    drv.open()
    with pytest.raises(BackendUnavailable) as info:
        drv.move_disk("vm1", "d0", "ds-a")
    assert info.value.retryable
    drv.ex_inject(fail_rate=0.0, fail_permanent=["vm1"])
    status = drv.wait(drv.move_disk("vm1", "d0", "ds-a"))
    assert status.state is OpState.FAILED and not status.retryable
    assert {d.id: d.datastore for d in vm(drv, "vm1").disks}["d0"] == "ds-l1"  # nothing moved
    assert free(drv, "ds-a") == 1000 * GIB - 20 * GIB - 10 * GIB  # reservation released
