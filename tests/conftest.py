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
