"""End to end through the installed CLI against the lab: inventory, audit, plan, apply, audit,
then a test failover and a failover, on an estate with running VMs, a direct LUN, a shareable
disk, the hosted engine, a VM lease and a managed-block-storage domain.

Runs the real ``ftbridge`` executable (the one beside this interpreter) in a subprocess with
only the lab's secrets added to the environment, as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from ftbridge_ovirt.lab import OvirtLab
from ovirt_helpers import ftbridge_exe, write_config

from ftbridge.estate import Estate

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def test_inventory_audit_plan_apply_audit_test_and_failover(estate: Estate, tmp_path: Path) -> None:
    exe = ftbridge_exe()
    lab = OvirtLab(estate, op_seconds=0.05, ha_restart=False)
    lab.start()
    shared = lab.id("disk", "shared/shared0/cl1,cl2")

    def sharing() -> set[str]:
        with lab.engine.lock:
            return {v.name for v in lab.engine.vms_of_disk(shared)}

    try:
        cfg = write_config(lab, tmp_path)
        env = {**os.environ, **lab.secrets(), "NO_COLOR": "1"}

        def run(*args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
            p = subprocess.run(
                [exe, "--config", str(cfg), *args], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path
            )
            assert p.returncode in ok, f"ftbridge {' '.join(args)} exited {p.returncode}: {p.stderr}"
            assert "Traceback" not in p.stderr
            return p

        inv = json.loads(run("inventory", "-o", "json").stdout)
        names = {v["name"] for v in inv["vms"]}
        assert names == {
            "db01",
            "app01",
            "web01",
            "batch01",
            "HostedEngine",
            "clnode1",
            "clnode2",
            "cephvm01",
            "rhel-thin01",
        }
        kinds = {d["name"]: d["kind"] for d in inv["datastores"]}
        assert kinds["ams-ceph"] == "managed_block_storage" and "lun" in kinds.values()

        before = json.loads(run("audit", "-o", "json", ok=(1,)).stdout)
        fixable = {f["vm_name"] for f in before["findings"] if f["fixable"]}
        assert fixable >= {"db01", "web01", "batch01", "clnode1", "clnode2", "rhel-thin01"}
        assert not [f for f in before["findings"] if f["vm_name"] in ("app01", "HostedEngine") and f["fixable"]]

        plan = tmp_path / "plan.json"
        run("plan", "--out", str(plan))
        doc = json.loads(plan.read_text())
        touched = {a["vm_name"] for a in doc["actions"]}
        assert "HostedEngine" not in touched and "cephvm01" not in touched
        run("apply", str(plan), "--yes")  # exit 0: no planned action was refused

        after = json.loads(run("audit", "-o", "json", ok=(0, 1)).stdout)
        assert [f for f in after["findings"] if f["fixable"]] == []
        copies = [d for d in lab.disks() if d.alias.startswith("ftbridge-copy.")]
        assert {lab.engine.domains[d.domain].name for d in copies} == {"rtm-nfs1"}
        assert shared not in {d.alias.split(".")[2] for d in copies}  # the shareable disk is never copied
        assert not [v for v in lab.vms() if v.snapshots or v.name.startswith("ftbridge-clone-")]  # cleaned up
        assert sharing() == {"clnode1", "clnode2"}

        out = run("failover", "test", "-o", "json", ok=(1,)).stdout  # every protected VM, isolated, cleaned up
        summary = json.loads(out.strip().splitlines()[-1])
        states = {v["vm_name"]: v["state"] for v in summary["vms"]}
        assert states.pop("clnode1") == states.pop("clnode2") == "failed"  # partial: they lack the shared disk
        assert set(states.values()) == {"ok"} and {"db01", "web01", "batch01", "rhel-thin01"} <= set(states)
        assert not [v for v in lab.vms() if v.name.startswith("ftbridge-test-")]
        assert sharing() == {"clnode1", "clnode2"}
        assert lab.snapshot("vms", "clnode1").status == "up"

        lab.fail_datastore("ams-iscsi1")  # web01, batch01 and the thin clone live there
        fplan = tmp_path / "failover.json"
        run("failover", "plan", "--domain", "datastore=ams-iscsi1", "--fence", "--out", str(fplan), ok=(0, 1))
        steps = {s["vm_name"] for s in json.loads(fplan.read_text())["steps"]}
        assert {"web01", "rhel-thin01"} <= steps
        run("failover", "run", str(fplan), "--yes")
        web = lab.snapshot("vms", "web01")
        assert web.status == "up" and {lab.engine.disks[a.disk].domain for a in web.attachments} == {
            lab.id("sd", "sd-r1")
        }
        assert sharing() == {"clnode1", "clnode2"}  # never split
        assert lab.split_brains() == []
    finally:
        lab.stop()
