"""The vsphere driver passes the core's conformance kit against the vcsim lab."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from ftbridge_vsphere.driver import VsphereDriver
from ftbridge_vsphere.lab import VsphereLab
from vsphere_testlib import Names

from ftbridge.drivers import SecondarySpec
from ftbridge.testing import DriverConformance, MoveCase, ProtectCase


class TestVsphereConformance(DriverConformance):
    @pytest.fixture
    def driver_factory(self, make_driver: Callable[..., VsphereDriver]) -> Callable[[], VsphereDriver]:
        return make_driver

    @pytest.fixture
    def bad_auth_factory(self, make_driver: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Callable[[], Any]:
        monkeypatch.setenv("VLAB_WRONG_PASSWORD", "not-the-password")
        return lambda: make_driver(password={"env": "VLAB_WRONG_PASSWORD"})

    @pytest.fixture
    def move_case(self, names: Names) -> MoveCase:
        db01 = names.vm["db01"]  # on local storage: moving a disk to shared storage is the classic fix
        return MoveCase(vm=db01.id, disk=db01.disks[0].id, target=names.ds["ams-nfs-a"])

    @pytest.fixture
    def protect_case(self, names: Names, lab: VsphereLab) -> ProtectCase:
        web01 = names.vm["web01"]
        spec = SecondarySpec(
            mechanism="vsphere-ft",
            disks={d.id: names.ds["rtm-nfs"] for d in web01.disks},
            config_datastore=names.ds["rtm-nfs"],
            host=names.host["esx-a2"],
            metadata_datastore=names.ds["ft-meta"],
        )
        return ProtectCase(vm=web01.id, spec=spec)
