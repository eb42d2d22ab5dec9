"""The sim driver passes the same conformance kit as every other driver."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ftbridge.drivers import Driver, Operation, SecondarySpec
from ftbridge.sim.driver import SimConfig, SimDriver
from ftbridge.testing import (
    DriverConformance,
    FailoverCase,
    MoveCase,
    MoveVMCase,
    PendingCase,
    ProtectCase,
    RestartCase,
)


def inject(factory: Callable[[], SimDriver], **faults: Any) -> Callable[[], None]:
    """A fault, injected when called (as a lab would, by the estate's ids)."""

    def do() -> None:
        factory().ex_inject(**faults)

    return do


class TestSimConformance(DriverConformance):
    @pytest.fixture
    def driver_class(self) -> type[SimDriver]:
        return SimDriver

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
        # not a dictionary word: the secrets registry is process-wide, and a registered "wrong"
        # would (rightly) mask that word in every later test's messages
        monkeypatch.setenv("SIM_PW", "not-the-sim-pw")
        cfg = SimConfig.model_validate(
            {"driver": "sim", "estate": str(small_estate), "name": "lab", "password": {"env": "SIM_PW"}}
        )
        return lambda: SimDriver(cfg, endpoint="lab")

    @pytest.fixture
    def move_case(self) -> MoveCase:
        return MoveCase(vm="vm1", disk="d0", target="ds-a")

    @pytest.fixture
    def move_vm_case(self) -> MoveVMCase:
        return MoveVMCase(vm="vm3", target="ds-b", host="h2")

    @pytest.fixture
    def protect_case(self) -> ProtectCase:
        return ProtectCase(vm="vm3", spec=SecondarySpec(mechanism="sim-copy", disks={"d0": "ds-r"}))

    @pytest.fixture
    def reprotect_case(self) -> ProtectCase:
        return ProtectCase(vm="vm3", spec=SecondarySpec(mechanism="sim-copy", disks={"d0": "ds-b"}))

    @pytest.fixture
    def failover_case(self, driver_factory: Callable[[], SimDriver]) -> FailoverCase:
        return FailoverCase(vm="vm2", secondary="vm2-s0", stop_primary=inject(driver_factory, hosts_down=["h2"]))

    @pytest.fixture
    def restart_case(self, driver_factory: Callable[[], SimDriver]) -> RestartCase:
        # app01 runs on h2 from ds-a, which h1 mounts too
        return RestartCase(vm="vm2", fail_host=inject(driver_factory, hosts_down=["h2"]))

    @pytest.fixture
    def pending_case(self, driver_factory: Callable[[], SimDriver]) -> PendingCase:
        hold = inject(driver_factory, hold=True)

        def start(drv: Driver) -> Operation:
            hold()
            assert isinstance(drv, SimDriver)
            return drv.move_disk("vm1", "d1", "ds-a")

        return PendingCase(vm="vm1", start=start, release=inject(driver_factory, hold=False))
