"""The conformance kit cannot be fooled: a missing case fails, and so does a broken driver.

Each test runs the kit (through pytester, in this process) against the sim driver with one
thing taken away or broken, and checks that the right test of the kit fails, saying why.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ftbridge.inventory import InventoryPart
from ftbridge.model import VM, Datastore, Disk, Host, PowerState, Secondary, SecondaryDisk
from ftbridge.testing import CASE_FIXTURES, check_inventory

pytest_plugins = ["pytester"]

TESTS = Path(__file__).resolve().parent

PRELUDE = f"""
import shutil, sys
from pathlib import Path

import pytest

sys.path.insert(0, {str(TESTS)!r})
from test_sim_conformance import TestSimConformance as Kit  # noqa: E402  (not collected: no Test prefix)
from ftbridge.sim.driver import SimDriver  # noqa: E402


@pytest.fixture
def small_estate(tmp_path: Path) -> Path:
    dst = tmp_path / "estate.toml"
    shutil.copy({str(TESTS / "data" / "small_estate.toml")!r}, dst)
    return dst
"""


def run_kit(pytester: pytest.Pytester, body: str, *only: str) -> pytest.RunResult:
    pytester.makepyfile(test_mutant=PRELUDE + textwrap.dedent(body))
    args = ["-p", "no:cacheprovider", "-q", "-rfE", "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    if only:
        args += ["-k", " or ".join(only)]
    return pytester.runpytest_inprocess(*args)


def failed(result: pytest.RunResult) -> set[str]:
    """The kit tests that failed (or erred), from the short summary (-rfE)."""
    return set(re.findall(r"^(?:FAILED|ERROR) \S+::(test_\w+)", result.stdout.str(), re.M))


def test_the_unbroken_sim_passes(pytester: pytest.Pytester) -> None:
    result = run_kit(pytester, "class TestWhole(Kit):\n    pass\n", "pending or promote or fence")
    result.assert_outcomes(passed=4)


@pytest.mark.parametrize("fixture", sorted({*CASE_FIXTURES.values(), "pending_case", "bad_auth_factory"}))
def test_a_declared_capability_without_its_case_fails(pytester: pytest.Pytester, fixture: str) -> None:
    result = run_kit(pytester, f"class TestDropped(Kit):\n    {fixture} = None  # the case is gone\n")
    lost = failed(result)
    assert lost, f"the kit passed without {fixture}"
    assert result.parseoutcomes().get("skipped", 0) == 0, "the kit skips nothing"
    if fixture != "bad_auth_factory":
        result.stdout.fnmatch_lines([f"*provide no '{fixture}' fixture*"])


MUTANTS = {
    # a resumed apply would start the operation a second time
    "pending": ("def pending_operations(self, vm_id): return []", {"test_pending_operations_after_a_crash"}),
    # split brain: promotes although the primary runs
    "promote": (
        "def promote(self, vm_id, secondary_id, *, host_id=None, force=False):\n"
        "        return SimDriver.promote(self, vm_id, secondary_id, host_id=host_id, force=True)",
        {"test_promote_refuses_while_the_primary_runs"},
    ),
    # fence that does not stop the primary
    "fence": (
        "def fence(self, vm_id):\n        return SimDriver.test_failover(self, vm_id, 'vm2-s0')",
        {"test_fence_stops_the_primary"},
    ),
    # probe that offers a mechanism the class never declared
    "probe": (
        "def probe(self):\n"
        "        import dataclasses\n"
        "        return dataclasses.replace(SimDriver.probe(self), mechanisms=('teleport',))",
        {"test_probe_narrows_never_widens"},
    ),
    # a handle that only the instance that made it can poll
    "poll": (
        "def poll(self, op):\n"
        "        if not getattr(self, 'mine', set()) >= {op.id}:\n"
        "            from ftbridge.errors import NotFound\n"
        "            raise NotFound('forgotten')\n"
        "        return SimDriver.poll(self, op)\n"
        "    def move_disk(self, *a):\n"
        "        op = SimDriver.move_disk(self, *a)\n"
        "        self.mine = getattr(self, 'mine', set()) | {op.id}\n"
        "        return op",
        {"test_move_disk_handle_survives_a_new_connection", "test_pending_operations_after_a_crash"},
    ),
}


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_a_broken_driver_fails_the_kit(pytester: pytest.Pytester, mutant: str) -> None:
    method, expected = MUTANTS[mutant]
    body = f"""
class Broken(SimDriver):
    {method}


class TestBroken(Kit):
    @pytest.fixture
    def driver_class(self):
        return Broken

    @pytest.fixture
    def driver_factory(self, small_estate):
        from ftbridge.sim.driver import SimConfig

        cfg = SimConfig(driver="sim", estate=small_estate, name="lab", op_seconds=0.02)
        return lambda: Broken(cfg, endpoint="lab")
"""
    result = run_kit(pytester, body, *sorted(expected))
    assert failed(result) >= expected, result.stdout.str()[-3000:]


# the inventory invariants, on hand-made parts -------------------------------------------
def _part(disk: dict[str, Any] | None = None, sec: dict[str, Any] | None = None, reserve: int = 0) -> InventoryPart:
    host = Host("h1", "h1", "ep")
    ds = Datastore("ds1", "ds1", "ep", "nfs", True, ("h1",), capacity=100, free=40, reserve=reserve)
    d0 = replace(Disk("d0", 10, "ds1", thin=True), **(disk or {}))
    copy = replace(Secondary("s1", "m", (SecondaryDisk("d0", "ds1"),)), **(sec or {}))
    vm = VM("v1", "v1", "ep", "h1", PowerState.ON, (d0,), secondaries=(copy,))
    return InventoryPart((host,), (ds,), (vm,))


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({}, None),
        ({"disk": {"allocated": 4}}, None),
        ({"disk": {"allocated": 11}}, "11 bytes allocated of 10 provisioned"),
        ({"disk": {"allocated": -1}}, "allocated"),
        ({"reserve": 101}, "reserve 101 of 100"),
        ({"disk": {"shared_by": ("v1",)}}, "shared by unknown VMs"),
        ({"disk": {"content": ""}}, "no content type"),
        ({"sec": {"missing": ("d0",)}}, "missing lists held disks"),
        ({"disk": {"datastore": "nope"}}, "unknown datastore nope"),
    ],
)
def test_check_inventory_catches_sizes_and_references(change: dict[str, Any], needle: str | None) -> None:
    part = _part(**change)
    if needle is None:
        check_inventory(part, "ep", frozenset({"m"}))
    else:
        with pytest.raises(AssertionError, match=needle):
            check_inventory(part, "ep", frozenset({"m"}))
