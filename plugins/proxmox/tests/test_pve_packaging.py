"""Registration, lazy imports, and the lab's command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ftbridge_proxmox.config import ProxmoxConfig
from ftbridge_proxmox.driver import ProxmoxDriver
from ftbridge_proxmox.lab import ProxmoxLab
from pve_helpers import DATA

from ftbridge.drivers import list_drivers, load_driver
from ftbridge.labs import list_labs, load_lab


def test_registered_as_proxmox() -> None:
    assert "proxmox" in {d.name for d in list_drivers()}
    assert load_driver("proxmox") is ProxmoxDriver
    assert "proxmox" in list_labs() and load_lab("proxmox") is ProxmoxLab


def test_loading_the_driver_imports_no_sdk() -> None:
    code = (
        "import sys, ftbridge_proxmox.driver, ftbridge_proxmox.lab; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('proxmoxer', 'requests', 'urllib3')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_lab_command_line(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ftbridge_proxmox.lab",
            "--estate",
            str(DATA / "pve_estate.toml"),
            "--token-file",
            str(token_file),
            "--task-seconds",
            "0.05",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["endpoint"]["token"] == {"file": str(token_file.resolve())}
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        assert token_file.read_text().strip() not in json.dumps(info)
        drv = ProxmoxDriver(ProxmoxConfig.model_validate(info["endpoint"]), endpoint="pve")
        drv.open()
        try:
            assert len(drv.inventory().vms) == 6
        finally:
            drv.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_lab_command_line_reports_a_bad_estate(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[estates.x]\nhosts = 3\n")
    env = {**os.environ}
    res = subprocess.run(
        [sys.executable, "-m", "ftbridge_proxmox.lab", "--estate", str(tmp_path / "nope.toml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert res.returncode == 3 and "cannot read estate file" in res.stderr and "Traceback" not in res.stderr
