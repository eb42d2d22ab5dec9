"""The proxmox driver passes ftbridge's conformance kit against the lab, as PVE 9 and as PVE 8."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from ftbridge_proxmox.driver import ProxmoxDriver
from ftbridge_proxmox.lab import ProxmoxLab
from pve_helpers import make_driver

from ftbridge.drivers import SecondarySpec
from ftbridge.testing import DriverConformance, MoveCase, ProtectCase


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
