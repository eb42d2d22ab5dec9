"""End to end through the real CLI against the lab: inventory, audit, plan, apply, audit.

Runs ``python -m ftbridge`` in a subprocess with only the lab's secrets added to the
environment, as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ftbridge_proxmox.lab import ProxmoxLab  # noqa: E402
from pve_helpers import LabFactory  # noqa: E402

pytestmark = [pytest.mark.lab]

# every storage in its own array (node-local ZFS is its node's "array"); one site
DOMAINS = {
    "ceph-a": "ceph-a",
    "nfs-b": "nfs-b",
    "local-zfs@pve1": "pve1-local",
    "local-zfs@pve2": "pve2-local",
    "local-zfs@pve3": "pve3-local",
    "small-lvm@pve2": "pve2-local",
}


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return json.dumps(v)


def write_config(lab: ProxmoxLab, tmp: Path, domains: dict[str, str] = DOMAINS) -> Path:
    lines = ["[endpoints.pve]", *(f"{k} = {_toml(v)}" for k, v in lab.endpoint_config().items()), ""]
    for ds, array in domains.items():
        lines += [
            "[[domains]]",
            'endpoint = "pve"',
            f"datastore = {_toml(ds)}",
            'site = "ams"',
            f"array = {_toml(array)}",
            "",
        ]
    lines += [
        # VMs on node-local ZFS are protected by pvesr, which needs them there
        "[policies.replicated]",
        'separation = "array"',
        'rpo = "1h"',
        "require_shared_primary = false",
        'mechanisms = ["pve-replication"]',
        'match = [{ tag = "zfs" }]',
        "",
        "[policies.tier1]",
        'separation = "array"',
        'rpo = "2h"',
        'match = [{ tag = "tier1" }]',
        "",
        "[state]",
        f"dir = {_toml(str(tmp / 'state'))}",
        "",
    ]
    cfg = tmp / "ftbridge.toml"
    cfg.write_text("\n".join(lines), encoding="utf-8")
    return cfg


def test_inventory_audit_plan_apply_audit(lab_factory: LabFactory, tmp_path: Path) -> None:
    lab = lab_factory(task_seconds=0.05)
    cfg = write_config(lab, tmp_path)
    env = {**os.environ, **lab.secrets(), "NO_COLOR": "1"}
    for key in lab.secrets():
        assert key in env

    def run(*args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(
            [sys.executable, "-m", "ftbridge", "--config", str(cfg), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            cwd=tmp_path,
        )
        assert p.returncode in ok, f"ftbridge {' '.join(args)} exited {p.returncode}: {p.stderr}"
        assert "Traceback" not in p.stderr
        assert lab.token not in p.stdout + p.stderr
        return p

    inv = json.loads(run("inventory", "-o", "json").stdout)
    assert {v["name"] for v in inv["vms"]} == {"db01", "app01", "web01", "ct01", "legacy01", "zfs01"}
    assert {d["id"] for d in inv["datastores"]} >= {"ceph-a", "nfs-b", "local-zfs@pve1", "local-zfs@pve3"}

    before = json.loads(run("audit", "-o", "json", ok=(0, 1)).stdout)
    fixable = {(f["vm_name"], f["rule"]) for f in before["findings"] if f["fixable"]}
    assert fixable == {("web01", "no-secondary"), ("zfs01", "no-secondary"), ("ct01", "no-secondary")}

    plan = tmp_path / "plan.json"
    run("plan", "--out", str(plan))
    assert json.loads(plan.read_text())["actions"]
    run("apply", str(plan), "--yes")

    after = json.loads(run("audit", "-o", "json", ok=(0, 1)).stdout)
    assert [f for f in after["findings"] if f["fixable"]] == []
    vms = {v["name"]: v for v in json.loads(run("inventory", "-o", "json").stdout)["vms"]}
    assert {s["mechanism"] for s in vms["web01"]["secondaries"]} == {"pve-standby"}
    assert {s["mechanism"] for s in vms["zfs01"]["secondaries"]} == {"pve-replication"}
    assert {s["mechanism"] for s in vms["ct01"]["secondaries"]} == {"pve-replication"}
    assert all(s["state"] == "in_sync" for v in ("web01", "zfs01", "ct01") for s in vms[v]["secondaries"])


# issue 11: a cluster shaped like real ones, through the CLI -----------------------------------------
TRUTH_DOMAINS = {
    "ceph-vm": "ceph",
    "ceph-ct": "ceph",
    "cephfs": "ceph",
    "nfs-b": "netapp",
    "san-lun": "san",
    **{f"{s}@pve{i}": f"pve{i}-local" for i in (1, 2, 3) for s in ("local-zfs", "local")},
}


def test_truth_cluster_inventory_audit_plan_apply_audit(lab_factory: LabFactory, tmp_path: Path) -> None:
    """A storage missing on one node, content-restricted storages, a running container, a container
    with a ZFS root and a Ceph mount point, pending config: no planned action is refused, and the
    second audit has no fixable finding."""
    from pve_helpers import DATA

    from ftbridge.estate import load_estates

    lab = lab_factory(estate=load_estates(DATA / "pve_truth_estate.toml")["truth"], task_seconds=0.05)
    lab.fail_datastore("nfs-b@pve3")  # the NFS export is missing on pve3
    lab.set_pending(205, "scsi1", None)  # pend01: a detach that waits for a reboot ...
    lab.set_pending(205, "scsi2", "ceph-vm:vm-205-disk-9,size=3G")  # ... and a disk not attached yet
    cfg = write_config(lab, tmp_path, domains=TRUTH_DOMAINS)
    env = {**os.environ, **lab.secrets(), "NO_COLOR": "1"}

    def run(*args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(
            [sys.executable, "-m", "ftbridge", "--config", str(cfg), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            cwd=tmp_path,
        )
        assert p.returncode in ok, f"ftbridge {' '.join(args)} exited {p.returncode}: {p.stderr}"
        assert "Traceback" not in p.stderr and lab.token not in p.stdout + p.stderr
        return p

    inv = json.loads(run("inventory", "-o", "json").stdout)
    ds = {d["id"]: d for d in inv["datastores"]}
    vms = {v["name"]: v for v in inv["vms"]}
    assert ds["nfs-b"]["hosts"] == ["pve1", "pve2"] and ds["ceph-vm"]["content"] == ["images"]
    assert not any(d["movable"] for d in vms["ct01"]["disks"])  # a running container
    assert sorted(d["id"] for d in vms["pend01"]["disks"]) == ["scsi0", "scsi1"]  # the current config
    before = json.loads(run("audit", "-o", "json", ok=(0, 1)).stdout)
    assert {(f["vm_name"], f["rule"]) for f in before["findings"] if f["fixable"]} == {("ct02", "primary-not-shared")}

    plan_file = tmp_path / "plan.json"
    run("plan", "--out", str(plan_file))
    plan = json.loads(plan_file.read_text())
    for action in plan["actions"]:  # every target takes what moves there, on the VM's node
        vm = next(v for v in inv["vms"] if v["id"] == action["vm"])
        if action["kind"] == "move_disk":
            disk = next(d for d in vm["disks"] if d["id"] == action["disk"])
            target = ds[action["to"]]
            assert disk["content"] in (target["content"] or [disk["content"]]), (action, target["content"])
            assert vm["host"] in target["hosts"], action
    run("apply", str(plan_file), "--yes")
    refused = [r for r in lab.records if r["method"] != "GET" and r["status"] >= 400]
    assert refused == [], refused
    after = json.loads(run("audit", "-o", "json", ok=(0, 1)).stdout)
    assert [f for f in after["findings"] if f["fixable"]] == []
