"""Fixtures: an oVirt lab on free loopback ports per test, and drivers that reach it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from ftbridge_ovirt.driver import OvirtDriver
from ftbridge_ovirt.lab import OvirtLab
from ovirt_helpers import ESTATE_FILE, make_config, sdk_session

from ftbridge.estate import Estate, load_estates


@pytest.fixture
def estate() -> Estate:
    return load_estates(ESTATE_FILE)["lab"]


@pytest.fixture
def lab(estate: Estate, monkeypatch: pytest.MonkeyPatch) -> Iterator[OvirtLab]:
    lab = OvirtLab(estate, op_seconds=0.05, ha_restart=False)
    lab.start()
    for k, v in lab.secrets().items():
        monkeypatch.setenv(k, v)
    try:
        yield lab
    finally:
        lab.stop()


@pytest.fixture
def make_driver(lab: OvirtLab) -> Callable[..., OvirtDriver]:
    def make(scheme: str = "https", **extra: Any) -> OvirtDriver:
        return OvirtDriver(make_config(lab, scheme, **extra), endpoint="lab")

    return make


def _opened(make_driver: Callable[..., OvirtDriver]) -> Iterator[OvirtDriver]:
    drv = make_driver()
    drv.open()
    try:
        yield drv
    finally:
        drv.close()


@pytest.fixture
def driver(make_driver: Callable[..., OvirtDriver]) -> Iterator[OvirtDriver]:
    yield from _opened(make_driver)


@pytest.fixture
def fresh(make_driver: Callable[..., OvirtDriver]) -> Iterator[OvirtDriver]:
    """A second driver, as a new process after a crash would open one: it knows no handle."""
    yield from _opened(make_driver)


@pytest.fixture
def conn(lab: OvirtLab) -> Iterator[Any]:
    """Someone else's session on the engine (its UI, another tool): the raw SDK."""
    c = sdk_session(lab)
    try:
        yield c
    finally:
        c.close()
