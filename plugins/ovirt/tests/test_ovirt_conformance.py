"""The oVirt driver passes the core's conformance kit against the lab, over the real SDK."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from ftbridge_ovirt.driver import OvirtDriver
from ftbridge_ovirt.lab import OvirtLab

from ftbridge.drivers import Driver, Operation, SecondarySpec
from ftbridge.testing import DriverConformance, FailoverCase, MoveCase, PendingCase, ProtectCase, RestartCase

pytestmark = pytest.mark.lab


class TestOvirtConformance(DriverConformance):
    @pytest.fixture
    def driver_factory(self, make_driver: Callable[..., OvirtDriver]) -> Callable[[], OvirtDriver]:
        return make_driver

    @pytest.fixture
    def bad_auth_factory(
        self, lab: OvirtLab, make_driver: Callable[..., OvirtDriver], monkeypatch: pytest.MonkeyPatch
    ) -> Callable[[], OvirtDriver]:
        monkeypatch.setenv(lab.env_var, "not-the-password")
        return make_driver

    @pytest.fixture
    def move_case(self, lab: OvirtLab) -> MoveCase:
        return MoveCase(vm=lab.id("vm", "vm3"), disk=lab.id("disk", "vm3/d0"), target=lab.id("sd", "sd-r1"))

    @pytest.fixture
    def protect_case(self, lab: OvirtLab) -> ProtectCase:
        spec = SecondarySpec(mechanism="ovirt-copy", disks={lab.id("disk", "vm3/d0"): lab.id("sd", "sd-r1")})
        return ProtectCase(vm=lab.id("vm", "vm3"), spec=spec)

    # cases of the failover capabilities (conformance kit, issue 17)
    @pytest.fixture
    def reprotect_case(self, lab: OvirtLab) -> ProtectCase:
        spec = SecondarySpec(mechanism="ovirt-copy", disks={lab.id("disk", "vm3/d0"): lab.id("sd", "sd-r1")})
        return ProtectCase(vm=lab.id("vm", "vm3"), spec=spec)

    @pytest.fixture
    def failover_case(self, lab: OvirtLab, make_driver: Callable[..., OvirtDriver]) -> FailoverCase:
        """app01 and its disk copy on rtm-nfs1."""
        vm = lab.id("vm", "vm2")
        drv = make_driver()
        drv.open()
        try:
            (sec,) = drv.replication_status(vm)
        finally:
            drv.close()
        return FailoverCase(vm=vm, secondary=sec.id, stop_primary=lambda: lab.fail_host("ams-host2"))

    @pytest.fixture
    def restart_case(self, lab: OvirtLab) -> RestartCase:
        """web01 (not HA) on ams-host1 from sd-a2, which every host mounts: its host fails."""
        return RestartCase(vm=lab.id("vm", "vm3"), fail_host=lambda: lab.fail_host("ams-host1"))

    @pytest.fixture
    def pending_case(self, lab: OvirtLab) -> PendingCase:
        """web01's disk moving live to rtm-nfs1, its job held by the lab until released."""
        vm = lab.id("vm", "vm3")

        def start(drv: Driver) -> Operation:
            assert isinstance(drv, OvirtDriver)
            lab.hold_jobs()
            return drv.move_disk(vm, lab.id("disk", "vm3/d0"), lab.id("sd", "sd-r1"))

        return PendingCase(vm=vm, start=start, release=lab.release_jobs)
