"""Fixtures: a lab peer per test (free port, own CA), drivers that reach it, and the record
of every request the lab saw, which the fidelity test checks against the official schema."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from ftbridge_proxmox.driver import ProxmoxDriver
from ftbridge_proxmox.lab import ProxmoxLab
from pve_helpers import DATA, RECORDS, LabFactory, make_driver

from ftbridge.estate import Estate, load_estates


@pytest.fixture(scope="session")
def estate() -> Estate:
    return load_estates(DATA / "pve_estate.toml")["pve"]


@pytest.fixture
def lab_factory(estate: Estate) -> Iterator[LabFactory]:
    """Start labs on demand; each is stopped after the test, and must have hit no lab bug."""
    labs: list[ProxmoxLab] = []

    def make(**options: Any) -> ProxmoxLab:
        lab = ProxmoxLab(
            options.pop("estate", estate), **{"task_seconds": 0.05, "sync_seconds": 0.05, "fence_delay": 0.2, **options}
        )
        lab.start()
        labs.append(lab)
        return lab

    yield make
    errors = []
    for lab in labs:
        RECORDS.extend(lab.records)
        errors += lab.internal_errors
        lab.stop()
    assert not errors, f"the lab failed internally: {errors}"


@pytest.fixture
def lab_version() -> str:
    return "9.1.3"


@pytest.fixture
def lab(lab_factory: LabFactory, lab_version: str, monkeypatch: pytest.MonkeyPatch) -> ProxmoxLab:
    lab = lab_factory(version=lab_version)
    for key, value in lab.secrets().items():
        monkeypatch.setenv(key, value)
    return lab


@pytest.fixture
def driver_factory(lab: ProxmoxLab) -> Callable[[], ProxmoxDriver]:
    return lambda: make_driver(lab)


@pytest.fixture
def pve(driver_factory: Callable[[], ProxmoxDriver]) -> Iterator[ProxmoxDriver]:
    drv = driver_factory()
    drv.open()
    try:
        yield drv
    finally:
        drv.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fidelity test checks what the other tests sent, so it runs last."""
    items.sort(key=lambda item: item.path.name == "test_pve_fidelity.py")
