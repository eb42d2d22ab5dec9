"""The sim driver passes the same conformance kit as every other driver."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ftbridge.drivers import SecondarySpec
from ftbridge.sim.driver import SimConfig, SimDriver
from ftbridge.testing import DriverConformance, MoveCase, ProtectCase


class TestSimConformance(DriverConformance):
    @pytest.fixture
    def driver_factory(self, small_estate: Path) -> Callable[[], SimDriver]:
        cfg = SimConfig(driver="sim", estate=small_estate, name="lab", op_seconds=0.02)
        return lambda: SimDriver(cfg, endpoint="lab")

    @pytest.fixture
    def bad_auth_factory(self, small_estate: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], SimDriver]:
        import hashlib

        text = small_estate.read_text().replace(
            'flavor = "generic"', f'flavor = "generic"\npassword_sha256 = "{hashlib.sha256(b"right").hexdigest()}"'
        )
        small_estate.write_text(text)
        monkeypatch.setenv("SIM_PW", "wrong")
        cfg = SimConfig.model_validate(
            {"driver": "sim", "estate": str(small_estate), "name": "lab", "password": {"env": "SIM_PW"}}
        )
        return lambda: SimDriver(cfg, endpoint="lab")

    @pytest.fixture
    def move_case(self) -> MoveCase:
        return MoveCase(vm="vm1", disk="d0", target="ds-a")

    @pytest.fixture
    def protect_case(self) -> ProtectCase:
        return ProtectCase(vm="vm3", spec=SecondarySpec(mechanism="sim-copy", disks={"d0": "ds-r"}))
