"""Fixtures for the vSphere driver's tests: the lab binary is built once per session; each
test that needs a lab gets a fresh one (they start in well under a second) and it is stopped
after. Tests skip only when Go and govmomi cannot be installed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ftbridge_vsphere.config import VsphereConfig
from ftbridge_vsphere.driver import VsphereDriver
from ftbridge_vsphere.lab import VcsimUnavailable, VsphereLab, vcsim_binary
from vsphere_testlib import Names

from ftbridge.estate import Estate, load_estates

DATA = Path(__file__).parent / "data"
ENDPOINT = "vlab"


@pytest.fixture(scope="session")
def vcsim_bin() -> Path:
    try:
        return vcsim_binary()
    except VcsimUnavailable as exc:
        pytest.skip(f"the vSphere lab cannot be built here: {exc.one_line()}")


@pytest.fixture(scope="session")
def ft_estate() -> Estate:
    return load_estates(DATA / "ft_estate.toml")["vlab"]


@pytest.fixture
def lab(vcsim_bin: Path, ft_estate: Estate, monkeypatch: pytest.MonkeyPatch) -> Iterator[VsphereLab]:
    lab = VsphereLab(ft_estate)
    lab.start()
    for k, v in lab.secrets().items():
        monkeypatch.setenv(k, v)
    try:
        yield lab
    finally:
        lab.stop()


@pytest.fixture
def make_driver(lab: VsphereLab) -> Callable[..., VsphereDriver]:
    def make(**overrides: Any) -> VsphereDriver:
        cfg = VsphereConfig.model_validate({**lab.endpoint_config(), **overrides})
        return VsphereDriver(cfg, endpoint=ENDPOINT)

    return make


@pytest.fixture
def vs(make_driver: Callable[..., VsphereDriver]) -> Iterator[VsphereDriver]:
    drv = make_driver()
    drv.open()
    try:
        yield drv
    finally:
        drv.close()


@pytest.fixture
def names(vs: VsphereDriver) -> Names:
    return Names(vs.inventory())
