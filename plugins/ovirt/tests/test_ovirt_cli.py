"""The installed CLI over the lab: health and failover planning see what the lab injects."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from ftbridge_ovirt.lab import OvirtLab
from ovirt_helpers import ftbridge_exe, write_config

pytestmark = pytest.mark.lab


def test_health_and_failover_plan_after_a_domain_fails(lab: OvirtLab, tmp_path: Path) -> None:
    exe = ftbridge_exe()
    cfg = write_config(lab, tmp_path)
    env = {**os.environ, **lab.secrets(), "NO_COLOR": "1"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([exe, "--config", str(cfg), *args], capture_output=True, text=True, env=env, timeout=120)
        assert "Traceback" not in p.stderr
        return p

    healthy = json.loads(run("health", "-o", "json").stdout)
    assert healthy["endpoints"]["ovirt"]["datastores_down"] == []
    lab.fail_datastore("ams-nfs1")
    p = run("health", "-o", "json")
    assert p.returncode == 1
    assert json.loads(p.stdout)["endpoints"]["ovirt"]["datastores_down"] == ["ams-nfs1"]
    paused = json.loads(run("failover", "plan", "-o", "json").stdout)  # app01 pauses on I/O errors: it runs
    assert "app01" in {b["vm_name"] for b in paused["blocked"]}
    plan = json.loads(run("failover", "plan", "--fence", "-o", "json").stdout)
    (step,) = plan["steps"]
    assert step["vm_name"] == "app01" and step["mechanism"] == "ovirt-copy"
    blocked = {b["vm_name"] for b in plan["blocked"]}
    assert {"db01", "clnode1", "clnode2"} <= blocked  # on the failed domain, no secondary
    lab.restore()
    lab.partition_host("rtm-host1")
    health = json.loads(run("health", "-o", "json").stdout)["endpoints"]["ovirt"]
    assert "rtm-host1" not in health.get("hosts_down", [])  # unreachable is not down
