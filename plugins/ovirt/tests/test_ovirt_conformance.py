"""The oVirt driver passes the core's conformance kit against the lab, over the real SDK."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from ftbridge_ovirt.driver import OvirtDriver
from ftbridge_ovirt.lab import OvirtLab

from ftbridge.drivers import SecondarySpec
from ftbridge.testing import DriverConformance, MoveCase, ProtectCase

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
