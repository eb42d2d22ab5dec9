"""Helpers for the oVirt tests (a unique module name: every plugin's tests share sys.path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftbridge_ovirt.config import OvirtConfig
from ftbridge_ovirt.lab import OvirtLab

DATA = Path(__file__).parent / "data"
ESTATE_FILE = DATA / "ovirt_estate.toml"


def make_config(lab: OvirtLab, scheme: str = "https", **extra: Any) -> OvirtConfig:
    return OvirtConfig.model_validate({**lab.endpoint_config(scheme), "timeout": 20, **extra})


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return json.dumps(v)


def write_config(lab: OvirtLab, tmp: Path) -> Path:
    ep = lab.endpoint_config()
    lines = ["[endpoints.ovirt]", *(f"{k} = {_toml(v)}" for k, v in ep.items()), ""]
    for kind, pattern, site in (("datastore", "ams-*", "ams"), ("datastore", "rtm-*", "rtm"),
                                ("cluster", "ams", "ams"), ("cluster", "rtm", "rtm")):
        lines += ["[[domains]]", 'endpoint = "ovirt"', f"{kind} = {_toml(pattern)}", f"site = {_toml(site)}", ""]
    lines += ["[policies.tier1]", 'separation = "site"', 'mechanisms = ["ovirt-copy"]', "rpo = \"1h\"",
              'match = [{ endpoint = "ovirt" }]', "", "[state]", f"dir = {_toml(str(tmp / 'state'))}", ""]
    cfg = tmp / "ftbridge.toml"
    cfg.write_text("\n".join(lines), encoding="utf-8")
    return cfg
