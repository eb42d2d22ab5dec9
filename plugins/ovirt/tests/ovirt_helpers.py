"""Helpers for the oVirt tests (a unique module name: every plugin's tests share sys.path)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from ftbridge_ovirt.config import OvirtConfig
from ftbridge_ovirt.lab import OvirtLab

DATA = Path(__file__).parent / "data"
ESTATE_FILE = DATA / "ovirt_estate.toml"
REPO = Path(__file__).resolve().parents[3]


def shared_dir() -> Path | None:
    """``../shared`` beside the repository (as CI clones it), ``FTBRIDGE_SHARED``, or /work/shared."""
    for cand in (os.environ.get("FTBRIDGE_SHARED"), REPO.parent / "shared", "/work/shared"):
        if cand and (Path(cand) / "real").is_dir():
            return Path(cand)
    return None


def real_dr_dir() -> Path:
    """The real DR mapping files (see their SOURCES.md); the test is skipped, saying why, without them."""
    base = shared_dir()
    if base is None or not (base / "real" / "ovirt-dr").is_dir():
        pytest.skip("../shared/real/ovirt-dr is absent (set FTBRIDGE_SHARED to the shared folder)")
    return base / "real" / "ovirt-dr"


def ftbridge_exe() -> str:
    """The installed ``ftbridge`` beside this interpreter (a venv's bin), else on PATH."""
    exe = shutil.which("ftbridge", path=str(Path(sys.executable).parent)) or shutil.which("ftbridge")
    if exe is None:
        pytest.fail(
            "the ftbridge executable is not installed beside the interpreter nor on PATH "
            "(pip install -e . plugins/ovirt)"
        )
    return exe


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


def endpoint_lines(name: str, cfg: dict[str, Any]) -> list[str]:
    return [f"[endpoints.{name}]", *(f"{k} = {_toml(v)}" for k, v in cfg.items()), ""]


def write_config(
    lab: OvirtLab,
    tmp: Path,
    *,
    extra_endpoints: dict[str, dict[str, Any]] | None = None,
    endpoint: dict[str, Any] | None = None,
) -> Path:
    ep = {**lab.endpoint_config(), **(endpoint or {})}
    lines = endpoint_lines("ovirt", ep)
    for name, other in (extra_endpoints or {}).items():
        lines += endpoint_lines(name, other)
    for kind, pattern, site in (
        ("datastore", "ams-*", "ams"),
        ("datastore", "rtm-*", "rtm"),
        ("datastore", "hosted_storage", "ams"),
        ("datastore", "lun-*", "ams"),
        ("cluster", "ams", "ams"),
        ("cluster", "rtm", "rtm"),
    ):
        lines += ["[[domains]]", 'endpoint = "ovirt"', f"{kind} = {_toml(pattern)}", f"site = {_toml(site)}", ""]
    lines += [
        "[policies.tier1]",
        'separation = "site"',
        'mechanisms = ["ovirt-copy"]',
        'rpo = "1h"',
        'match = [{ endpoint = "ovirt" }]',
        "",
        "[state]",
        f"dir = {_toml(str(tmp / 'state'))}",
        "",
    ]
    cfg = tmp / "ftbridge.toml"
    cfg.write_text("\n".join(lines), encoding="utf-8")
    return cfg


def sdk_session(lab: OvirtLab, *, filtered: bool = False) -> Any:
    """A raw SDK session on the lab, as someone else's tool opens one (``filtered``: with the
    ``Filter: true`` header of an account without admin roles). The caller closes it."""
    sdk = pytest.importorskip("ovirtsdk4")
    return sdk.Connection(
        url=lab.url("https"),
        username=lab.user,
        password=lab.password,
        ca_file=str(lab.ca_file),
        headers={"Filter": "true"} if filtered else None,
    )
