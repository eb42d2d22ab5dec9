"""Operations against the lab: handles that survive a crash, PVE's refusals as clear errors,
protection with both mechanisms, failover, test failover, fencing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from ftbridge_proxmox.driver import ProxmoxDriver
from ftbridge_proxmox.lab import ProxmoxLab

from ftbridge.drivers import Operation, OpState, SecondarySpec
from ftbridge.errors import Conflict, NotFound, UnsupportedOperation

Factory = Callable[[], ProxmoxDriver]


def vm_of(drv: ProxmoxDriver, vm_id: str) -> Any:
    return next(v for v in drv.inventory().vms if v.id == vm_id)


def done(drv: ProxmoxDriver, op: Operation, timeout: float = 30) -> Any:
    status = drv.wait(op, timeout=timeout, interval=0.05)
    assert status.state is OpState.SUCCEEDED, status.message
    return status


# handles ---------------------------------------------------------------------------------------
def test_upid_handle_is_resumed_by_a_fresh_driver(lab: ProxmoxLab, driver_factory: Factory) -> None:
    first = driver_factory()
    first.open()
    op = first.move_disk("101", "scsi0", "nfs-b")
    saved = json.dumps(op.to_dict())
    first.close()  # the caller "crashes" with only the journaled handle left
    assert op.id.startswith("UPID:pve1:") and op.data["node"] == "pve1"
    second = driver_factory()
    second.open()
    try:
        status = done(second, Operation.from_dict(json.loads(saved)))
        assert status.progress == 1.0
        vm = vm_of(second, "101")
        assert vm.disks[0].datastore == "nfs-b" and "nfs-b:101/" in vm.disks[0].path
        assert not any(d.kind == "unused" for d in vm.disks)  # delete=1: the source is gone
    finally:
        second.close()


def test_a_failed_task_is_failed_with_its_exitstatus(lab: ProxmoxLab, pve: ProxmoxDriver) -> None:
    lab.fail_tasks(type="qmmove", vmid=102, message="storage migration failed: io error")
    status = pve.wait(pve.move_disk("102", "scsi0", "nfs-b"), timeout=30, interval=0.05)
    assert status.state is OpState.FAILED and status.message == "storage migration failed: io error"
    assert vm_of(pve, "102").disks[0].datastore == "ceph-a"


def test_pending_operations_find_a_running_task(lab: ProxmoxLab, pve: ProxmoxDriver) -> None:
    lab.cluster.task_seconds = 5.0
    op = pve.move_disk("102", "scsi0", "nfs-b")
    found = pve.pending_operations("102")
    assert [(o.id, o.kind) for o in found] == [(op.id, "move_disk")]


# placement refusals ----------------------------------------------------------------------------
def test_move_disk_refusals_are_clear(pve: ProxmoxDriver) -> None:
    with pytest.raises(Conflict, match="has 10 GiB free; scsi0 needs 16 GiB"):
        pve.move_disk("105", "scsi0", "small-lvm@pve2")
    with pytest.raises(Conflict, match="local to node pve2, but VM 101 runs on pve1"):
        pve.move_disk("101", "scsi0", "small-lvm@pve2")
    with pytest.raises(Conflict, match="cannot be moved: passthrough"):
        pve.move_disk("104", "scsi1", "ceph-a")
    with pytest.raises(NotFound, match="no disk 'scsi9'"):
        pve.move_disk("102", "scsi9", "nfs-b")
    with pytest.raises(NotFound):
        pve.move_disk("999", "scsi0", "nfs-b")
    assert done(pve, pve.move_disk("102", "scsi0", "ceph-a")).message == "scsi0 is already on ceph-a"


def test_container_volume_moves_only_while_stopped(lab: ProxmoxLab, pve: ProxmoxDriver) -> None:
    ct = vm_of(pve, "103")
    assert ct.power.value == "on" and not any(d.movable for d in ct.disks)  # PVE would refuse
    with pytest.raises(Conflict, match="cannot move volumes of a running container"):
        pve.move_disk("103", "mp0", "ceph-a")
    done(pve, pve.fence("103"))  # stopped
    assert all(d.movable for d in vm_of(pve, "103").disks)
    done(pve, pve.move_disk("103", "mp0", "ceph-a"))
    disk = {d.id: d for d in vm_of(pve, "103").disks}["mp0"]
    assert (disk.datastore, disk.content, disk.kind) == ("ceph-a", "rootdir", "mountpoint")


def test_replication_refusals_are_clear(pve: ProxmoxDriver) -> None:
    spec = SecondarySpec("pve-replication", {"scsi0": "ceph-a@pve3"}, host="pve3")
    with pytest.raises(Conflict, match="No replicatable volumes found"):  # its only disk is shared
        pve.protect("102", spec)
    with pytest.raises(Conflict, match="another node than the VM's own"):
        pve.protect("105", SecondarySpec("pve-replication", {"scsi0": "local-zfs@pve2"}, host="pve2"))
    with pytest.raises(Conflict, match="same storage on the target node: local-zfs@pve3"):
        pve.protect("105", SecondarySpec("pve-replication", {"scsi0": "other@pve3"}, host="pve3"))
    with pytest.raises(Conflict, match="one per target"):
        pve.protect(
            "100", SecondarySpec("pve-replication", {"scsi0": "local-zfs@pve2", "scsi1": "local-zfs@pve2"}, host="pve2")
        )
    with pytest.raises(Conflict, match="not offered"):
        pve.protect("105", SecondarySpec("vsphere-ft", {"scsi0": "ceph-a"}))
    with pytest.raises(Conflict, match="unable to parse volume ID '/dev/disk/by-id/.*pass-through device"):
        pve.protect("104", SecondarySpec("pve-standby", {"scsi0": "nfs-b"}))
    with pytest.raises(Conflict, match="every disk to one storage"):
        pve.protect("100", SecondarySpec("pve-standby", {"scsi0": "nfs-b", "scsi1": "ceph-a"}))
    with pytest.raises(Conflict, match="QEMU VMs only"):
        pve.protect("103", SecondarySpec("pve-standby", {"rootfs": "nfs-b", "mp0": "nfs-b"}))


# protection --------------------------------------------------------------------------------------
def test_replication_protect_adds_ha_and_prefers_the_replica_node(lab: ProxmoxLab, pve: ProxmoxDriver) -> None:
    op = pve.protect("105", SecondarySpec("pve-replication", {"scsi0": "local-zfs@pve3"}, host="pve3"))
    status = done(pve, op)
    assert status.result == {"secondary_id": "105-0"}
    assert lab.cluster.ha_resources["vm:105"]["state"] == "started"
    assert lab.cluster.ha_rules["ftbridge_105"]["nodes"] == "pve2:2,pve3:1"
    sec = next(s for s in pve.replication_status("105") if s.id == "105-0")
    assert sec.state.value == "in_sync" and sec.host == "pve3" and sec.lag is not None and sec.lag < 30
    done(pve, pve.unprotect("105", "105-0"))
    assert "ftbridge_105" not in lab.cluster.ha_rules
    assert not pve.replication_status("105")


@pytest.mark.parametrize("lab_version", ["8.4.1"])
def test_replication_protect_on_pve8_uses_an_ha_group(lab: ProxmoxLab, pve: ProxmoxDriver) -> None:
    done(pve, pve.protect("105", SecondarySpec("pve-replication", {"scsi0": "local-zfs@pve3"}, host="pve3")))
    assert lab.cluster.ha_groups["ftbridge_105"]["nodes"] == "pve2:2,pve3:1"
    assert lab.cluster.ha_resources["vm:105"]["group"] == "ftbridge_105"
    done(pve, pve.unprotect("105", "105-0"))
    assert "ftbridge_105" not in lab.cluster.ha_groups and "group" not in lab.cluster.ha_resources["vm:105"]


def test_standby_protect_copies_to_another_domain_and_node(lab: ProxmoxLab, pve: ProxmoxDriver) -> None:
    status = done(pve, pve.protect("102", SecondarySpec("pve-standby", {"scsi0": "nfs-b"})))
    sid = status.result["secondary_id"]
    vm = vm_of(pve, "102")
    sec = next(s for s in vm.secondaries if s.id == sid)
    assert sec.mechanism == "pve-standby" and sec.host != vm.host and sec.state.value == "in_sync"
    assert [(x.disk, x.datastore) for x in sec.disks] == [("scsi0", "nfs-b")] and sec.lag is not None
    assert vm.ha and lab.cluster.ha_resources["vm:102"]["state"] == "started"
    clone = lab.guest(int(sid.split("-")[1]))
    assert clone.status == "stopped" and clone.name == "ftbridge-standby-102"


def test_a_standby_whose_vm_is_gone_is_shown_not_hidden(lab: ProxmoxLab, pve: ProxmoxDriver) -> None:
    with lab.cluster.lock:
        del lab.cluster.guests[101]  # someone removed app01 but not its standby copy
    orphan = next(v for v in pve.inventory().vms if v.name == "ftbridge-standby-101")
    assert any("VM 101, which no longer exists" in w for w in orphan.warnings)


# failover ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("lab_version", ["9.1.3", "8.4.1"])
def test_failover_of_a_replicated_vm_after_its_node_dies(lab: ProxmoxLab, pve: ProxmoxDriver) -> None:
    with pytest.raises(Conflict, match="may still run on pve1"):
        pve.promote("100", "100-0")
    lab.cluster.fence_delay = 3600  # pve1 drops out; PVE's HA has not fenced it yet: db01 may still run
    lab.partition_host("pve1")
    assert pve.health().hosts["pve1"].value == "unreachable"
    assert vm_of(pve, "100").power.value == "unknown"
    with pytest.raises(Conflict, match="may still run on pve1"):
        pve.promote("100", "100-0")
    lab.elapse_fence_delay()  # pve1's LRM held the lock (app01 is HA): its watchdog fires, HA fences it
    assert pve.health().hosts["pve1"].value == "down"
    before = vm_of(pve, "100")
    assert before.power.value == "off"  # a fenced node runs nothing
    assert next(s for s in before.secondaries if s.id == "100-0").state.value == "stale"
    status = done(pve, pve.promote("100", "100-0"))
    assert status.result["host"] == "pve2"
    prefs = lab.cluster.affinity("vm:100")[0]  # HA was told to prefer the replica node
    assert max(prefs, key=lambda n: prefs[n]) == "pve2"
    vm = vm_of(pve, "100")
    assert (vm.host, vm.power.value) == ("pve2", "on")
    assert {d.datastore for d in vm.disks} == {"local-zfs@pve2"}
    job = next(s for s in vm.secondaries if s.id == "100-0")  # pvesr reversed the job
    assert job.host == "pve1" and job.state.value == "broken"
    # the survivors still run; and a new secondary on the third node restores protection
    done(
        pve,
        pve.reprotect(
            "100", SecondarySpec("pve-replication", {"scsi0": "local-zfs@pve3", "scsi1": "local-zfs@pve3"}, host="pve3")
        ),
    )
    assert {s.host: s.state.value for s in vm_of(pve, "100").secondaries}["pve3"] == "in_sync"


def test_promote_while_the_source_answers_migrates_with_force(lab: ProxmoxLab, pve: ProxmoxDriver) -> None:
    status = done(pve, pve.promote("100", "100-0", force=True))
    assert status.result["host"] == "pve2"
    assert (lab.guest(100).node, lab.guest(100).status) == ("pve2", "running")


def test_ha_recovers_a_protected_vm_and_promote_confirms(lab: ProxmoxLab, pve: ProxmoxDriver) -> None:
    done(pve, pve.protect("105", SecondarySpec("pve-replication", {"scsi0": "local-zfs@pve3"}, host="pve3")))
    lab.fail_host("pve2")
    deadline = time.monotonic() + 10
    while lab.guest(105).node != "pve3" and time.monotonic() < deadline:
        pve.health()  # any request lets the lab's HA manager act
        time.sleep(0.05)
    assert lab.guest(105).node == "pve3"
    status = done(pve, pve.promote("105", "105-0"))
    assert status.result["host"] == "pve3" and "already runs" in status.message


def test_failover_to_a_standby_when_the_primary_storage_fails(lab: ProxmoxLab, pve: ProxmoxDriver) -> None:
    lab.fail_datastore("ceph-a")
    vm = vm_of(pve, "101")
    sec = vm.secondaries[0]
    status = done(pve, pve.promote("101", sec.id))
    new_id = status.result["vm_id"]
    assert new_id == sec.id.split("-")[1] and status.result["host"] == "pve2"
    promoted = next(v for v in pve.inventory().vms if v.id == new_id)
    assert (promoted.name, promoted.power.value) == ("app01", "on")
    assert {d.datastore for d in promoted.disks} == {"nfs-b"}
    assert lab.cluster.ha_resources["vm:101"]["state"] == "disabled"  # HA will not start the original too


def test_test_failover_leaves_production_unchanged_and_cleanup_leaves_nothing(
    lab: ProxmoxLab, pve: ProxmoxDriver
) -> None:
    def snapshot() -> tuple[Any, Any, Any]:
        inv = pve.inventory()
        vms = json.dumps(
            [
                [
                    v.id,
                    v.host,
                    v.power.value,
                    [(d.id, d.datastore, d.size) for d in v.disks],
                    [(s.id, s.host, s.state.value, [(x.disk, x.datastore) for x in s.disks]) for s in v.secondaries],
                    v.ha,
                ]
                for v in inv.vms
            ]
        )
        return vms, {d.id: d.free for d in inv.datastores}, sorted(lab.cluster.guests)

    before = snapshot()
    vm = vm_of(pve, "101")
    status = done(pve, pve.test_failover("101", vm.secondaries[0].id))
    test_vmid = int(status.result["test_id"])
    test_vm = lab.guest(test_vmid)
    assert test_vm.status == "running" and test_vm.name == "ftbridge-test-101"
    assert test_vm.nets and all("link_down=1" in n for n in test_vm.nets.values())
    during = vm_of(pve, "101")
    assert any("test-failover instance" in w for w in during.warnings)
    assert json.loads(snapshot()[0]) == json.loads(before[0])  # production and its standby untouched
    done(pve, pve.cleanup_test("101", str(test_vmid)))
    assert snapshot() == before
    assert test_vmid not in lab.cluster.guests
    done(pve, pve.cleanup_test("101", str(test_vmid)))  # idempotent


def test_test_failover_refuses_what_it_cannot_do(pve: ProxmoxDriver) -> None:
    with pytest.raises(UnsupportedOperation, match="pvesr replica"):
        pve.test_failover("100", "100-0")
    with pytest.raises(NotFound):
        pve.test_failover("102", "standby-777")
    with pytest.raises(Conflict, match="not a test instance"):
        pve.cleanup_test("101", "102")


def test_fence_stops_the_primary(lab: ProxmoxLab, pve: ProxmoxDriver) -> None:
    done(pve, pve.fence("102"))
    assert lab.guest(102).status == "stopped"
    done(pve, pve.fence("101"))  # HA-managed: disabled, and HA stops it
    assert lab.guest(101).status == "stopped" and lab.cluster.ha_resources["vm:101"]["state"] == "disabled"


def test_fence_on_an_offline_node_succeeds_only_when_pve_fenced_it(lab: ProxmoxLab, pve: ProxmoxDriver) -> None:
    # pve3 runs no HA service: its LRM holds no lock, no watchdog will reset it, and PVE has no
    # power fencing: nothing can prove legacy01 (104) is not running there
    lab.partition_host("pve3")
    status = pve.wait(pve.fence("104"), timeout=30, interval=0.05)
    assert status.state is OpState.FAILED and not status.retryable
    assert "PVE cannot fence it" in status.message and "force" in status.message
    assert pve.health().hosts["pve3"].value == "unreachable"
    lab.restore()  # (with two of three nodes gone the cluster has no quorum, and HA fences nothing)
    # pve1 runs app01 under HA: its LRM holds the agent lock, so its watchdog resets it once it
    # is cut off, and PVE's HA manager then takes the lock: fenced, and so is db01 with it
    lab.cluster.fence_delay = 3600
    lab.partition_host("pve1")
    op = pve.fence("100")
    assert pve.poll(op).state is OpState.RUNNING  # waiting for PVE's HA manager
    lab.elapse_fence_delay()
    assert "fenced node pve1" in done(pve, op).message
    assert lab.guest(100).status == "stopped" and not lab.cluster.nodes["pve1"].alive
    assert lab.split_brain == []
