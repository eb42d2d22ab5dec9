"""Running the real ``ftbridge`` command in a subprocess, isolated from the user's files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "ftbridge" / "demo"
PLUGINS = Path(__file__).parent / "data" / "plugins"


@dataclass
class Result:
    code: int
    out: str
    err: str


def ftb(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120) -> Result:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FTBRIDGE_")}
    base.update(env or {})
    p = subprocess.run(
        [sys.executable, "-m", "ftbridge", *args], capture_output=True, text=True, env=base, cwd=cwd, timeout=timeout
    )
    return Result(p.returncode, p.stdout, p.stderr)


def copy_demo(dst: Path) -> Path:
    for name in ("ftbridge.toml", "estate.toml"):
        shutil.copy(DEMO / name, dst / name)
    return dst / "ftbridge.toml"
