"""Run ftbridge's conformance kit against your driver. Point driver_factory at a lab."""

import pytest
from ftbridge_example.config import ExampleConfig
from ftbridge_example.driver import ExampleDriver

from ftbridge.testing import DriverConformance, MoveCase


class TestExampleConformance(DriverConformance):
    @pytest.fixture
    def driver_factory(self):  # type: ignore[no-untyped-def]
        cfg = ExampleConfig(
            driver="example", url="https://127.0.0.1:8443/api", user="u", password={"env": "EXAMPLE_PASSWORD"}
        )  # type: ignore[arg-type]
        return lambda: ExampleDriver(cfg, endpoint="lab")

    @pytest.fixture
    def move_case(self) -> MoveCase:
        return MoveCase(vm="vm-1", disk="disk-0", target="pool-b")
