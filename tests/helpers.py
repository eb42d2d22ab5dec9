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


def isolated_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without the user's FTBRIDGE_* settings, plus ``extra``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FTBRIDGE_")} | (extra or {})


def ftb(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120) -> Result:
    p = subprocess.run(
        [sys.executable, "-m", "ftbridge", *args],
        capture_output=True,
        text=True,
        env=isolated_env(env),
        cwd=cwd,
        timeout=timeout,
    )
    return Result(p.returncode, p.stdout, p.stderr)


def ftb_running(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """The real ``ftbridge ARGS`` started (stdout and stderr piped, as text), isolated as :func:`ftb` is."""
    return subprocess.Popen(
        [sys.executable, "-m", "ftbridge", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=isolated_env(env),
    )


def copy_demo(dst: Path) -> Path:
    for name in ("ftbridge.toml", "estate.toml"):
        shutil.copy(DEMO / name, dst / name)
    return dst / "ftbridge.toml"


def hold_journal(path: Path) -> subprocess.Popen[str]:
    """Another process holding an SQLite journal's write lock (BEGIN EXCLUSIVE, WAL mode as
    ftbridge's journal is) until :func:`release_journal`; returns once it holds it."""
    code = (
        "import sqlite3, sys\n"
        f"c = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
        "c.execute('PRAGMA journal_mode=WAL')\n"
        "c.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.readline()\n"
        "c.execute('ROLLBACK')\n"
    )
    h = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert h.stdout is not None and h.stdout.readline().strip() == "locked"
    return h


def release_journal(h: subprocess.Popen[str], timeout: float = 120) -> None:
    """Tell a :func:`hold_journal` holder to let go, and wait for it to end."""
    assert h.stdin is not None
    try:
        h.stdin.write("\n")
        h.stdin.close()
    except BrokenPipeError:
        pass  # it has ended already
    h.wait(timeout=timeout)
