"""End to end through the installed CLI against the lab: inventory, audit, plan, apply, audit.

Skips until the core's apply service exists. Runs the real ``ftbridge`` executable in a
subprocess with only the lab's secrets added to the environment, as a user would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from ftbridge_ovirt.lab import OvirtLab  # noqa: E402
from ovirt_helpers import write_config  # noqa: E402

from ftbridge.estate import Estate  # noqa: E402

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def test_inventory_audit_plan_apply_audit(estate: Estate, tmp_path: Path) -> None:
    exe = shutil.which("ftbridge")
    if exe is None:
        pytest.skip("the ftbridge executable is not installed")
    lab = OvirtLab(estate, op_seconds=0.05, ha_restart=False)
    lab.start()
    try:
        cfg = write_config(lab, tmp_path)
        env = {**os.environ, **lab.secrets(), "NO_COLOR": "1"}

        def run(*args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
            p = subprocess.run([exe, "--config", str(cfg), *args], capture_output=True, text=True, env=env,
                               timeout=300, cwd=tmp_path)
            assert p.returncode in ok, f"ftbridge {' '.join(args)} exited {p.returncode}: {p.stderr}"
            assert "Traceback" not in p.stderr
            return p

        inv = json.loads(run("inventory", "-o", "json").stdout)
        assert {v["name"] for v in inv["vms"]} == {"db01", "app01", "web01", "batch01"}

        before = json.loads(run("audit", "-o", "json", ok=(1,)).stdout)
        fixable = [f for f in before["findings"] if f["fixable"]]
        assert {f["vm_name"] for f in fixable} >= {"db01", "web01", "batch01"}
        assert not [f for f in before["findings"] if f["vm_name"] == "app01"]

        plan = tmp_path / "plan.json"
        run("plan", "--out", str(plan))
        assert plan.exists() and json.loads(plan.read_text())
        run("apply", str(plan), "--yes")

        after = json.loads(run("audit", "-o", "json", ok=(0, 1)).stdout)
        assert [f for f in after["findings"] if f["fixable"]] == []
        copies = [d for d in lab.disks() if d.alias.startswith("ftbridge-copy.")]
        assert {lab.engine.domains[d.domain].name for d in copies} == {"rtm-nfs1"}
        assert len(copies) == 5  # app01's seeded copy + db01 (2 disks) + web01 + batch01
    finally:
        lab.stop()
