"""Helpers of the proxmox tests (a unique module name: every plugin's tests share sys.path)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftbridge_proxmox.config import ProxmoxConfig
from ftbridge_proxmox.driver import ProxmoxDriver
from ftbridge_proxmox.lab import ProxmoxLab

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[3]


def shared_dir() -> Path:
    """The project's shared folder of real data and reference material, never part of the
    repository: ``$FTBRIDGE_SHARED``, else ``<repo>/../shared`` (CI clones the repository
    beside it), else ``/work/shared`` (a worktree under /work/wt)."""
    env = os.environ.get("FTBRIDGE_SHARED")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared", Path("/work/shared")]:
        if cand.is_dir():
            return cand
    return Path(env) if env else REPO.parent / "shared"


SHARED = shared_dir()
REFERENCE = SHARED / "reference"
REAL = SHARED / "real"

#: every request any lab answered during this test session (the fidelity test reads it)
RECORDS: list[dict[str, Any]] = []

LabFactory = Callable[..., ProxmoxLab]


def make_driver(lab: ProxmoxLab, **overrides: Any) -> ProxmoxDriver:
    cfg = ProxmoxConfig.model_validate({**lab.endpoint_config(), **overrides})
    return ProxmoxDriver(cfg, endpoint="pve")
