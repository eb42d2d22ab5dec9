"""The proxmox driver passes ftbridge's conformance kit against the lab, as PVE 9 and as PVE 8."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from ftbridge_proxmox.driver import ProxmoxDriver
from ftbridge_proxmox.lab import ProxmoxLab
from pve_helpers import make_driver

from ftbridge.drivers import Driver, Operation, SecondarySpec
from ftbridge.testing import DriverConformance, FailoverCase, MoveCase, PendingCase, ProtectCase, RestartCase


class TestConformance(DriverConformance):
    @pytest.fixture
    def bad_auth_factory(self, lab: ProxmoxLab, monkeypatch: pytest.MonkeyPatch) -> Callable[[], ProxmoxDriver]:
        monkeypatch.setenv("WRONG_PVE_TOKEN", "00000000-0000-0000-0000-000000000000")
        return lambda: make_driver(lab, token={"env": "WRONG_PVE_TOKEN"})

    @pytest.fixture
    def move_case(self) -> MoveCase:
        return MoveCase(vm="102", disk="scsi0", target="nfs-b")

    @pytest.fixture
    def protect_case(self) -> ProtectCase:
        return ProtectCase(
            vm="105", spec=SecondarySpec(mechanism="pve-replication", disks={"scsi0": "local-zfs@pve3"}, host="pve3")
        )

    # cases of the failover capabilities and of pending_operations (conformance kit, issue 17)
    @pytest.fixture
    def reprotect_case(self) -> ProtectCase:
        return ProtectCase(vm="102", spec=SecondarySpec(mechanism="pve-standby", disks={"scsi0": "nfs-b"}))

    @pytest.fixture
    def failover_case(self, lab: ProxmoxLab) -> FailoverCase:
        """app01 (101) and its standby copy: the mechanism a test failover can start."""
        drv = make_driver(lab)
        drv.open()
        try:
            (sec,) = next(v for v in drv.inventory().vms if v.id == "101").secondaries
        finally:
            drv.close()
        return FailoverCase(vm="101", secondary=sec.id, stop_primary=lambda: lab.fail_host("pve1"))

    @pytest.fixture
    def restart_case(self, lab: ProxmoxLab) -> RestartCase:
        """app01 (101) on ceph-a, HA-managed: its node fails, PVE fences it, it restarts elsewhere."""
        return RestartCase(vm="101", fail_host=lambda: lab.fail_host("pve1"))

    @pytest.fixture
    def pending_case(self, lab: ProxmoxLab) -> PendingCase:
        """A move_disk task the lab keeps running until released (no race with its duration)."""

        def start(drv: Driver) -> Operation:
            assert isinstance(drv, ProxmoxDriver)
            with lab.cluster.lock:
                lab.cluster.task_seconds = 1e9
            return drv.move_disk("102", "scsi0", "nfs-b")

        def release() -> None:
            with lab.cluster.lock:
                lab.cluster.task_seconds = 0.05
                for task in lab.cluster.tasks.values():
                    if task.status == "running":
                        task.duration = 0.0

        return PendingCase(vm="102", start=start, release=release)


class TestConformancePve8(TestConformance):
    """The same kit against a lab that answers as PVE 8.4 (HA groups instead of rules)."""

    @pytest.fixture
    def lab_version(self) -> str:
        return "8.4.1"


class TestConformanceStandby(TestConformance):
    """The kit's protect/unprotect cycle with the other mechanism: a standby clone."""

    @pytest.fixture
    def protect_case(self) -> ProtectCase:
        return ProtectCase(vm="102", spec=SecondarySpec(mechanism="pve-standby", disks={"scsi0": "nfs-b"}))
