"""Unreachable is not down (issue 10, vSphere's side): a partitioned host proves nothing, so
fence, promote and restart refuse; a host vCenter reports down lets a VM restart from its own
files elsewhere (UnregisterVM + RegisterVM_Task + PowerOnVM_Task); fencing a reachable VM powers
it off. And failover's room check runs on vSphere's host memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ftbridge_vsphere.driver import VsphereDriver
from ftbridge_vsphere.lab import VsphereLab
from vsphere_testlib import Names

from ftbridge.drivers import Capability, OpState
from ftbridge.errors import Conflict
from ftbridge.estate import load_estates
from ftbridge.model import HostState, PowerState

DATA = Path(__file__).parent / "data"


def test_a_partitioned_host_proves_nothing(vs: VsphereDriver, names: Names, lab: VsphereLab) -> None:
    web01, ft01 = names.vm["web01"], names.vm["ft01"]  # both run on esx-a1
    lab.partition_host("esx-a1")
    assert vs.health().hosts[names.host["esx-a1"]] is HostState.UNREACHABLE
    now = Names(vs.inventory())
    assert now.vm["web01"].power is PowerState.UNKNOWN  # vCenter shows the last state it knew
    with pytest.raises(Conflict, match="cannot be proven off"):
        vs.fence(web01.id)
    with pytest.raises(Conflict, match="esx-a1 is unreachable"):
        vs.restart(web01.id)
    (sec,) = ft01.secondaries
    with pytest.raises(Conflict, match="may still run .its host esx-a1 is unreachable"):
        vs.promote(ft01.id, sec.id)
    assert lab.faults()["hosts"]["esx-a1"]["power"] == "unknown"
    lab.restore()
    assert vs.health().hosts[names.host["esx-a1"]] is HostState.UP
    assert Names(vs.inventory()).vm["web01"].power is PowerState.ON  # it ran all along


def test_a_vm_restarts_from_its_own_files_when_its_host_is_down(
    vs: VsphereDriver, names: Names, lab: VsphereLab
) -> None:
    web01 = names.vm["web01"]  # esx-a1, on ams-nfs-a (shared by esx-a1..a3)
    lab.fail_host("esx-a1")
    health = vs.health()
    assert health.hosts[names.host["esx-a1"]] is HostState.DOWN
    assert health.datastores[names.ds["esx-a1-local"]] is False  # no host reaches it now
    fenced = vs.wait(vs.fence(web01.id), timeout=60)  # its host is down: proven off at once
    assert fenced.state is OpState.SUCCEEDED and "down" in fenced.message

    with pytest.raises(Conflict, match="its storage esx-a1-local is not accessible"):
        vs.restart(names.vm["db01"].id)  # its disks died with the host

    status = vs.wait(vs.restart(web01.id), timeout=60)
    assert status.state is OpState.SUCCEEDED, status.message
    new_id, host = status.result["vm_id"], status.result["host"]
    assert new_id != web01.id and host in {names.host["esx-a2"], names.host["esx-a3"]}
    after = Names(vs.inventory())
    now = after.vm["web01"]
    assert (now.id, now.host, now.power) == (new_id, host, PowerState.ON)
    assert web01.id not in {v.id for v in after.part.vms}  # one instance, not two
    assert [(d.id, d.datastore, d.path, d.size) for d in now.disks] == [
        (d.id, d.datastore, d.path, d.size) for d in web01.disks
    ]
    assert (now.config_path, now.uuid) == (web01.config_path, web01.uuid)

    again = vs.wait(vs.restart(new_id), timeout=60)  # idempotent: it runs already
    assert again.state is OpState.SUCCEEDED and again.result["host"] == host


def test_fence_then_restart_on_a_reachable_host(vs: VsphereDriver, names: Names) -> None:
    web01 = names.vm["web01"]
    assert vs.wait(vs.fence(web01.id), timeout=60).state is OpState.SUCCEEDED
    assert Names(vs.inventory()).vm["web01"].power is PowerState.OFF
    status = vs.wait(vs.restart(web01.id), timeout=60)
    assert status.state is OpState.SUCCEEDED, status.message
    assert status.result == {"host": web01.host or "", "vm_id": web01.id}  # powered on where it is
    assert Names(vs.inventory()).vm["web01"].power is PowerState.ON
    assert Capability.RESTART in vs.capabilities and Capability.RESTART in vs.probe().capabilities


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"
    if isinstance(v, int | float):
        return repr(v)
    return json.dumps(str(v))


def test_failover_leaves_a_vm_down_for_lack_of_room_on_the_survivors(vcsim_bin: Path, tmp_path: Path) -> None:
    estate = load_estates(DATA / "room_estate.toml")["room"]
    with VsphereLab(estate) as lab:
        cfg = tmp_path / "ftbridge.toml"
        lines = [
            "[endpoints.vc]",
            *(f"{k} = {_toml(v)}" for k, v in lab.endpoint_config().items()),
            "",
            "[state]",
            f"dir = {_toml(str(tmp_path / 'state'))}",
            "",
        ]
        cfg.write_text("\n".join(lines), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FTBRIDGE_")}
        env.update({**lab.secrets(), "NO_COLOR": "1"})

        def ftb(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "ftbridge", "-c", str(cfg), *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=300,
            )

        r = ftb("inventory", "-o", "json")
        assert r.returncode == 0, r.stderr
        memory = {h["name"]: h["memory"] for h in json.loads(r.stdout)["hosts"]}
        assert memory == {"esx-1": 64 << 30, "esx-2": 8 << 30}

        lab.fail_host("esx-1")
        plan = tmp_path / "fo.json"
        r = ftb("failover", "plan", "--out", str(plan), "-o", "json")
        doc = json.loads(plan.read_text())
        assert [s["vm_name"] for s in doc["steps"]] == ["small"], r.stdout + r.stderr
        (blocked,) = doc["blocked"]
        assert blocked["vm_name"] == "big" and "has room for its 6 GiB" in blocked["reason"], blocked
        assert r.returncode == 1  # some affected VMs cannot be brought up
