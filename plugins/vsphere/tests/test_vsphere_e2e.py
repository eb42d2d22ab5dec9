"""End to end through the installed CLI against the vSphere lab: inventory, audit, plan, apply,
audit, FT placement included.

Skips until the core's apply service exists. Runs the real ``ftbridge`` executable in a
subprocess with only the lab's secrets added to the environment, as a user would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ftbridge_vsphere.lab import VsphereLab  # noqa: E402
from vsphere_cli_config import write_config  # noqa: E402

from ftbridge.estate import load_estates  # noqa: E402

pytestmark = [pytest.mark.lab, pytest.mark.slow]
DATA = Path(__file__).parent / "data"


def test_inventory_audit_plan_apply_audit(vcsim_bin: Path, tmp_path: Path) -> None:
    exe = shutil.which("ftbridge", path=str(Path(sys.executable).parent)) or shutil.which("ftbridge")
    if exe is None:
        pytest.skip("the ftbridge executable is not installed")
    lab = VsphereLab(load_estates(DATA / "e2e_estate.toml")["ve2e"])
    lab.start()
    try:
        cfg = write_config(lab, tmp_path)
        env = {**os.environ, **lab.secrets(), "NO_COLOR": "1"}

        def run(*args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
            p = subprocess.run(
                [exe, "--config", str(cfg), *args], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path
            )
            assert p.returncode in ok, f"ftbridge {' '.join(args)} exited {p.returncode}: {p.stderr}"
            assert "Traceback" not in p.stderr
            assert lab.secrets()[lab.password_env] not in p.stdout + p.stderr
            return p

        inv = json.loads(run("inventory", "-o", "json").stdout)
        assert {v["name"] for v in inv["vms"]} == {"db01", "app01", "web01", "batch01", "rtm01"}

        before = json.loads(run("audit", "-o", "json", ok=(1,)).stdout)
        fixable = [f for f in before["findings"] if f["fixable"]]
        assert {f["vm_name"] for f in fixable} == {"db01", "app01", "web01", "batch01"}

        plan = tmp_path / "plan.json"
        run("plan", "--out", str(plan))
        assert plan.exists() and json.loads(plan.read_text())
        run("apply", str(plan), "--yes")

        after = json.loads(run("audit", "-o", "json", ok=(0, 1)).stdout)
        assert [f for f in after["findings"] if f["fixable"]] == []

        # FT placement: every VM runs from shared storage with its one FT secondary in the other
        # site, on another host, the tie-breaker on shared storage, files where vCenter says.
        final = json.loads(run("inventory", "-o", "json").stdout)
        ds = {d["id"]: d for d in final["datastores"]}
        site = {d_id: d["name"].split("-")[0] for d_id, d in ds.items()}  # ams-*, rtm-*
        for vm in final["vms"]:
            primary = {site[d["datastore"]] for d in vm["disks"]}
            assert all(ds[d["datastore"]]["shared"] for d in vm["disks"]), vm["name"]
            (sec,) = vm["secondaries"]
            assert sec["mechanism"] == "vsphere-ft" and sec["state"] == "in_sync", vm["name"]
            secondary = {site[x["datastore"]] for x in sec["disks"]} | {site[sec["config_datastore"]]}
            assert len(primary) == 1 and len(secondary) == 1 and primary != secondary, vm["name"]
            assert ds[sec["metadata_datastore"]]["shared"]
            assert sec["host"] != vm["host"]
            for x in sec["disks"]:
                local = lab.local_path(x["path"])
                assert local is not None and local.exists(), x["path"]
        local_ds = lab.local_path("[ams-local1] x")
        assert local_ds is not None and not any(p.is_file() for p in local_ds.parent.rglob("*"))
    finally:
        lab.stop()
