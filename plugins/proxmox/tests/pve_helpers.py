"""Helpers of the proxmox tests (a unique module name: every plugin's tests share sys.path)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftbridge_proxmox.config import ProxmoxConfig
from ftbridge_proxmox.driver import ProxmoxDriver
from ftbridge_proxmox.lab import ProxmoxLab

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[3]
REFERENCE = REPO.parent / "shared" / "reference"

#: every request any lab answered during this test session (the fidelity test reads it)
RECORDS: list[dict[str, Any]] = []

LabFactory = Callable[..., ProxmoxLab]


def make_driver(lab: ProxmoxLab, **overrides: Any) -> ProxmoxDriver:
    cfg = ProxmoxConfig.model_validate({**lab.endpoint_config(), **overrides})
    return ProxmoxDriver(cfg, endpoint="pve")
