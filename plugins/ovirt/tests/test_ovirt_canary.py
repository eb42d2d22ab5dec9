"""A canary password never shows up: not in logs, errors, inventory, handles, or CLI output."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ftbridge_ovirt.config import OvirtConfig
from ftbridge_ovirt.driver import OvirtDriver
from ftbridge_ovirt.lab import OvirtLab
from ovirt_helpers import ftbridge_exe

from ftbridge.drivers import SecondarySpec
from ftbridge.errors import FtbridgeError
from ftbridge.estate import Estate

pytestmark = pytest.mark.lab

CANARY = "canary-ovirt-5d1f0e9b7c"
WRONG = "canary-wrong-81c4a2f6de"


def test_canary_secret_never_leaks(
    estate: Estate, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    lab = OvirtLab(estate, op_seconds=0.02, password=CANARY, ha_restart=False)
    lab.start()
    seen: list[str] = []
    try:
        monkeypatch.setenv(lab.env_var, CANARY)
        caplog.set_level(logging.DEBUG)
        cfg = OvirtConfig.model_validate(lab.endpoint_config("https"))
        drv = OvirtDriver(cfg, endpoint="lab")
        drv.open()
        try:
            part = drv.inventory()
            seen.append(json.dumps([repr(x) for x in (part.hosts, part.datastores, part.vms)]))
            vm = lab.id("vm", "vm3")
            op = drv.protect(vm, SecondarySpec("ovirt-copy", {lab.id("disk", "vm3/d0"): lab.id("sd", "sd-r1")}))
            seen.append(json.dumps(op.to_dict()))
            seen.append(repr(drv.wait(op, timeout=30)))
            seen.append(repr(drv.probe()) + repr(drv.health()))
            lab.set_faults(error_rate=1.0)
            with pytest.raises(FtbridgeError) as info:
                drv.inventory()
            seen.append(info.value.one_line() + repr(info.value.__cause__))
            lab.set_faults(error_rate=0.0)
        finally:
            drv.close()
        monkeypatch.setenv(lab.env_var, WRONG)
        bad = OvirtDriver(cfg, endpoint="lab")
        with pytest.raises(FtbridgeError) as info:
            bad.open()
        seen.append(info.value.one_line() + repr(info.value.__cause__) + repr(info.value.args))
        bad.close()
        cli = _cli_output(lab, tmp_path)
        seen.append(cli)
    finally:
        lab.stop()
    seen.append(caplog.text)
    for text in seen:
        assert CANARY not in text and WRONG not in text


def _cli_output(lab: OvirtLab, tmp_path: Path) -> str:
    """The installed CLI's inventory and audit output, when the CLI is there."""
    exe = ftbridge_exe()
    cfg = tmp_path / "ftbridge.toml"
    ep = lab.endpoint_config("https")
    cfg.write_text(
        f'[endpoints.lab]\ndriver = "ovirt"\nurl = "{ep["url"]}"\nuser = "{ep["user"]}"\n'
        f'password = {{ env = "{lab.env_var}" }}\nca_file = "{ep["ca_file"]}"\n'
        f'[state]\ndir = "{tmp_path / "state"}"\n'
    )
    env = {**os.environ, lab.env_var: CANARY}
    out = []
    for args in (["inventory", "-o", "json"], ["--debug", "inventory", "-o", "json"]):
        p = subprocess.run([exe, "--config", str(cfg), *args], capture_output=True, text=True, env=env, timeout=120)
        out.append(p.stdout + p.stderr)
        assert "Traceback" not in p.stderr or args[0] == "--debug"
    env[lab.env_var] = WRONG
    p = subprocess.run(
        [exe, "--config", str(cfg), "inventory", "-o", "json"], capture_output=True, text=True, env=env, timeout=120
    )
    out.append(p.stdout + p.stderr)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    return "\n".join(out) + sys.version
