"""Failover per driver, through the real CLI against each driver's lab: the primary's host
fails, ``failover plan`` + ``failover run --yes`` bring the VM up from its secondary on a
surviving host. A platform is skipped only when its plugin (or its lab) is not installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ftbridge.estate import Estate, load_estates
from ftbridge.labs import Lab

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"


def _proxmox() -> tuple[type[Lab], dict[str, Any]]:
    from ftbridge_proxmox.lab import ProxmoxLab

    return ProxmoxLab, {
        "task_seconds": 0.05,
        "sync_seconds": 0.05,
        "fence_delay": 120.0,
    }  # HA must not recover it first


def _ovirt() -> tuple[type[Lab], dict[str, Any]]:
    from ftbridge_ovirt.lab import OvirtLab

    return OvirtLab, {"op_seconds": 0.05, "ha_restart": False}


def _vsphere() -> tuple[type[Lab], dict[str, Any]]:
    from ftbridge_vsphere.lab import VcsimUnavailable, VsphereLab, vcsim_binary

    try:
        vcsim_binary()
    except VcsimUnavailable as exc:
        pytest.skip(f"the vSphere lab cannot be built here: {exc.one_line()}")
    return VsphereLab, {}


# platform -> (lab loader, estate file, estate name, the protected VM)
CASES: dict[str, tuple[Callable[[], tuple[type[Lab], dict[str, Any]]], str, str, str]] = {
    "proxmox": (_proxmox, "proxmox/tests/data/pve_estate.toml", "pve", "app01"),  # pve-standby: new VMID
    "ovirt": (_ovirt, "ovirt/tests/data/ovirt_estate.toml", "lab", "app01"),  # ovirt-copy
    "vsphere": (_vsphere, "vsphere/tests/data/ft_estate.toml", "vlab", "ft01"),  # FT secondary
}


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))


def ftb(cfg: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ftbridge", "-c", str(cfg), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.parametrize("platform", list(CASES))
def test_host_failure_fails_the_vm_over_to_its_secondary(platform: str, tmp_path: Path) -> None:
    loader, estate_file, estate_name, vm_name = CASES[platform]
    pytest.importorskip(f"ftbridge_{platform}")
    lab_cls, options = loader()
    estate: Estate = load_estates(PLUGINS / estate_file)[estate_name]
    vm = next(v for v in estate.vms if v.name == vm_name)
    (sec,) = vm.secondaries
    host_name = {h.id: h.name for h in estate.hosts}
    failed_host = host_name[vm.host or ""]
    sec_ds_names = {d.name for d in estate.datastores if d.id in {x.datastore for x in sec.disks}}

    with lab_cls(estate, **options) as lab:
        ep = "lab"
        lines = [f"[endpoints.{ep}]", *(f"{k} = {_toml(v)}" for k, v in lab.endpoint_config().items()), ""]
        lines += ["[state]", f"dir = {_toml(str(tmp_path / 'state'))}", "", "[apply]", 'backoff = "0.05s"', ""]
        cfg = tmp_path / "ftbridge.toml"
        cfg.write_text("\n".join(lines), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FTBRIDGE_")}
        env.update({**lab.secrets(), "NO_COLOR": "1"})

        lab.fail_host(failed_host)
        plan = tmp_path / "fo.json"
        r = ftb(cfg, env, "failover", "plan", "--vm", f"{ep}/{vm_name}", "--out", str(plan), "-o", "json")
        assert r.returncode == 0, r.stderr + r.stdout
        (step,) = json.loads(plan.read_text())["steps"]
        assert step["vm_name"] == vm_name and not step["forced"]

        r = ftb(cfg, env, "failover", "run", str(plan), "--yes", "-o", "json")
        assert r.returncode == 0, r.stderr + r.stdout
        summary = json.loads(r.stdout.splitlines()[-1])
        (res,) = summary["vms"]
        assert res["state"] == "promoted" and res["seconds"] is not None

        r = ftb(cfg, env, "inventory", "-o", "json")
        assert r.returncode == 0, r.stderr
        inv = json.loads(r.stdout)
        hosts = {h["id"]: h for h in inv["hosts"]}
        names = {d["id"]: d["name"] for d in inv["datastores"]}
        running = [v for v in inv["vms"] if v["name"] == vm_name and v["power"] == "on"]
        assert len(running) == 1, running  # exactly one instance runs: no split brain
        now = running[0]
        assert hosts[now["host"]]["name"] != failed_host and hosts[now["host"]]["state"] == "up"
        assert {names[d["datastore"]] for d in now["disks"]} <= sec_ds_names
