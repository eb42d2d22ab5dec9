from __future__ import annotations

import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def small_estate(tmp_path: Path) -> Path:
    """A private copy of the small estate, so each test's sim state starts fresh."""
    dst = tmp_path / "estate.toml"
    shutil.copy(DATA / "small_estate.toml", dst)
    return dst


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the user's config or state directories."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.delenv("FTBRIDGE_CONFIG", raising=False)


@pytest.fixture
def demo_config(tmp_path: Path) -> Path:
    """The demo config and estate, copied so the sim state is private to the test."""
    from helpers import copy_demo

    return copy_demo(tmp_path)
