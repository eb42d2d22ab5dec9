"""The contract itself: versions and their deprecation path, typed results, and documentation
that says, for every method, what it raises and whether it must be idempotent."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import ftbridge
from ftbridge.drivers import (
    API_DEPRECATED,
    API_OLDEST,
    API_VERSION,
    CAPABILITY_METHODS,
    Driver,
    Failover,
    FtbridgeDeprecationWarning,
    OperationStatus,
    OpState,
    PromoteResult,
    ProtectResult,
    RestartResult,
    ResultMissing,
    StoragePlacement,
    TestFailoverResult,
)
from ftbridge.drivers.registry import declared_versions, negotiate
from ftbridge.errors import DriverLoadError
from ftbridge.labs import LAB_API_OLDEST, LAB_API_VERSION, Lab

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "tests" / "data" / "plugins"


def _driver(versions: tuple[int, int] | None = None, legacy: int | None = None) -> type[Driver]:
    body: dict[str, object] = {"name": "t"}
    if versions is not None:
        body["api_versions"] = versions
    if legacy is not None:
        body["api_version"] = legacy
    return type("T", (Driver,), body)


# versions -------------------------------------------------------------------------------
def test_a_range_that_meets_this_core_gets_the_newest_common_version() -> None:
    assert negotiate(_driver((API_VERSION, API_VERSION + 3))) == API_VERSION
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the current version warns of nothing
        assert negotiate(_driver((API_OLDEST, API_VERSION))) == API_VERSION


def test_a_range_that_misses_this_core_is_refused_saying_both() -> None:
    with pytest.raises(DriverLoadError) as info:
        negotiate(_driver((API_VERSION + 1, API_VERSION + 2)))
    assert f"driver API {API_VERSION + 1} to {API_VERSION + 2}" in str(info.value)
    assert f"speaks {API_OLDEST} to {API_VERSION}" in str(info.value)
    with pytest.raises(DriverLoadError, match="driver API 0,"):
        negotiate(_driver(legacy=0))


@pytest.mark.parametrize("bad", [(2, 1), (1,), ("1", "2"), (True, 2), 2])
def test_a_malformed_declaration_is_refused(bad: object) -> None:
    cls = type("T", (Driver,), {"name": "t", "api_versions": bad})
    with pytest.raises(DriverLoadError, match="expected \\(oldest, newest\\)"):
        declared_versions(cls)


def test_deprecated_versions_load_with_a_warning_naming_the_release_that_drops_them() -> None:
    assert API_DEPRECATED, "contract 1 is deprecated by contract 2"
    old = min(API_DEPRECATED)
    with pytest.warns(FtbridgeDeprecationWarning, match=f"driver API {old}.*ftbridge {API_DEPRECATED[old]}"):
        assert negotiate(_driver((old, old))) == old
    with pytest.warns(FtbridgeDeprecationWarning):
        assert negotiate(_driver()) == 1, "a driver that declares nothing predates ranges: contract 1"
    assert declared_versions(_driver(legacy=1)) == (1, 1)


def test_every_deprecated_version_is_dropped_in_a_later_major_release() -> None:
    """So a plugin that depends on ftbridge<NEXT_MAJOR never meets a core that refuses it."""
    mine = Version(ftbridge.__version__)
    for v, release in API_DEPRECATED.items():
        assert API_OLDEST <= v < API_VERSION
        assert Version(release).major > mine.major and Version(release).minor == 0 == Version(release).micro


def test_labs_get_the_same_check() -> None:
    class OldLab(Lab):  # declares nothing: lab contract 1, before partition_host
        pass

    class NewLab(Lab):
        api_versions = (LAB_API_VERSION, LAB_API_VERSION)

    class FutureLab(Lab):
        api_versions = (LAB_API_VERSION + 1, LAB_API_VERSION + 1)

    speaks = (LAB_API_OLDEST, LAB_API_VERSION)
    with pytest.warns(FtbridgeDeprecationWarning, match="lab 'old' speaks lab API 1"):
        negotiate(OldLab, kind="lab", name="old", speaks=speaks, deprecated={1: "1.0"})
    assert negotiate(NewLab, kind="lab", name="new", speaks=speaks, deprecated={1: "1.0"}) == LAB_API_VERSION
    with pytest.raises(DriverLoadError, match="lab 'future' is written for lab API"):
        negotiate(FutureLab, kind="lab", name="future", speaks=speaks, deprecated={})


@pytest.mark.parametrize("plugin", ["proxmox", "ovirt", "vsphere"])
def test_plugins_depend_on_a_compatible_core_range(plugin: str) -> None:
    meta = tomllib.loads((ROOT / "plugins" / plugin / "pyproject.toml").read_text())
    (req,) = [Requirement(d) for d in meta["project"]["dependencies"] if Requirement(d).name == "ftbridge"]
    mine = Version(ftbridge.__version__)
    assert req.specifier.contains(mine), f"{plugin} does not accept this ftbridge ({mine}): {req}"
    assert not req.specifier.contains(Version(f"{mine.major + 1}.0")), f"{plugin} accepts any future core: {req}"


def ftb(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTBRIDGE_")}
    env.update(PYTHONPATH=str(PLUGINS), NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "ftbridge", *args], capture_output=True, text=True, env=env)


def test_the_cli_says_a_deprecated_driver_in_one_line() -> None:
    r = ftb("drivers", "show", "legacy", "-o", "json")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: driver 'legacy' speaks driver API 1"), r.stderr
    assert '"api_versions": [\n    1,\n    1\n  ]' in r.stdout


def test_the_cli_refuses_a_lab_from_the_future() -> None:
    r = ftb("lab", "run", "future")
    assert r.returncode == 4 and "lab 'future' is written for lab API 7 to 9" in r.stderr, r.stderr


def test_the_cli_refuses_a_driver_from_the_future() -> None:
    r = ftb("drivers", "show", "future")
    assert r.returncode == 4 and "driver 'future' is written for driver API 7 to 9" in r.stderr, r.stderr


# typed results --------------------------------------------------------------------------
def done(**result: str) -> OperationStatus:
    return OperationStatus(OpState.SUCCEEDED, 1.0, result=result)


def test_typed_results_read_back_what_they_write() -> None:
    assert PromoteResult.read(done(**PromoteResult("105", "pve2").to_result()), vm_id="100") == PromoteResult(
        "105", "pve2"
    )
    assert PromoteResult.read(done(), vm_id="100") == PromoteResult("100", None), "no vm_id: the same VM"
    assert TestFailoverResult.read(done(**TestFailoverResult("t1").to_result())) == TestFailoverResult("t1")
    assert RestartResult.read(done(**RestartResult("vm-9", "h2").to_result()), vm_id="vm-1") == RestartResult(
        "vm-9", "h2"
    )
    assert RestartResult.read(done(host="h2"), vm_id="vm-1") == RestartResult("vm-1", "h2"), "no vm_id: the same VM"
    assert ProtectResult.read(done(secondary_id="s1")) == ProtectResult("s1")
    assert ProtectResult.read(done()) is None
    with pytest.raises(ResultMissing, match="test_id"):
        TestFailoverResult.read(done(host="h1"))


# documentation --------------------------------------------------------------------------
CONTRACT_METHODS = sorted(
    {m for methods in CAPABILITY_METHODS.values() for m in methods}
    | {"open", "close", "probe", "poll", "pending_operations", "health", "inventory"}
)


@pytest.mark.parametrize("method", CONTRACT_METHODS)
def test_every_contract_method_documents_raises_and_idempotency(method: str) -> None:
    owner = next(c for c in (Driver, StoragePlacement, Failover) if method in vars(c))
    doc = inspect.getdoc(getattr(owner, method)) or ""
    assert "\nRaises:\n" in doc, f"{owner.__name__}.{method}: no Raises section"
    assert "\nIdempotent:\n" in doc, f"{owner.__name__}.{method}: no Idempotent section"
    if method not in ("open", "close"):
        assert "\nReturns:\n" in doc, f"{owner.__name__}.{method}: no Returns section"


def test_the_contract_module_says_call_order_and_threading() -> None:
    from ftbridge.drivers import base

    doc = base.__doc__ or ""
    for section in ("Lifecycle and call order", "Threading", "Errors", "Versions"):
        assert f"\n{section}:\n" in doc
