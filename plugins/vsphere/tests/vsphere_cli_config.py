"""The ftbridge.toml the vSphere end-to-end test writes: the lab's endpoint, site labels, a policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftbridge_vsphere.lab import VsphereLab


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return json.dumps(v)


def write_config(lab: VsphereLab, tmp: Path, endpoint: str = "vc") -> Path:
    ep = lab.endpoint_config()
    lines = [f"[endpoints.{endpoint}]", *(f"{k} = {_toml(v)}" for k, v in ep.items()), ""]
    for kind, pattern, site in (
        ("datastore", "ams-*", "ams"),
        ("datastore", "rtm-*", "rtm"),
        ("datastore", "ft-meta", "witness"),
        ("host", "esx-a*", "ams"),
        ("host", "esx-r*", "rtm"),
    ):
        lines += [
            "[[domains]]",
            f"endpoint = {_toml(endpoint)}",
            f"{kind} = {_toml(pattern)}",
            f"site = {_toml(site)}",
            "",
        ]
    lines += [
        "[policies.tier1]",
        'separation = "site"',
        'mechanisms = ["vsphere-ft"]',
        f"match = [{{ endpoint = {_toml(endpoint)} }}]",
        "",
        "[state]",
        f"dir = {_toml(str(tmp / 'state'))}",
        "",
    ]
    cfg = tmp / "ftbridge.toml"
    cfg.write_text("\n".join(lines), encoding="utf-8")
    return cfg
