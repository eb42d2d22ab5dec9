"""Bad input: each a clear one-line error with its exit code, and nothing changed on the estate.

Corrupt plan, edited plan, plan for another estate (other endpoints, or other hosts and
datastores), stale plan (refused, then re-checked with --revalidate), unknown action kind,
and two applies at once (the lock).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "data"))

import plankit as K  # noqa: E402

from ftbridge.apply import EstateLock  # noqa: E402
from ftbridge.apply.locks import estate_keys  # noqa: E402
from ftbridge.config import load_config  # noqa: E402
from ftbridge.drivers.base import OpState  # noqa: E402
from ftbridge.sim.driver import SimDriver  # noqa: E402


@pytest.fixture
def demo(tmp_path: Path) -> tuple[Path, Path]:
    """(config, plan) for a fresh demo estate, with its sim state seeded."""
    cfg = K.copy_demo(tmp_path)
    plan = tmp_path / "plan.json"
    r = K.ftb("-c", str(cfg), "plan", "--out", str(plan))
    assert r.returncode == 0, r.stderr
    return cfg, plan


def refused(cfg: Path, plan: Path, *extra: str, code: int = 8) -> str:
    """Run apply, expect ``code`` and one error line; return it. The estate must not change."""
    before = K.sim_states(cfg.parent)
    r = K.ftb("-c", str(cfg), "apply", str(plan), "--yes", *extra)
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr
    assert K.sim_states(cfg.parent) == before, "the estate changed"
    return lines[0]


def move_now(cfg_path: Path, endpoint: str, vm: str, disk: str, target: str) -> None:
    """Change the estate behind the plan's back (and wait for it)."""
    cfg = load_config(cfg_path)
    drv = SimDriver(cfg.endpoints[endpoint], endpoint=endpoint)
    drv.open()
    op = drv.move_disk(vm, disk, target)
    assert drv.wait(op, timeout=10).state is OpState.SUCCEEDED


def test_corrupt_plan(demo: tuple[Path, Path]) -> None:
    cfg, plan = demo
    plan.write_text(plan.read_text()[:400])
    assert "not a plan file: not JSON" in refused(cfg, plan)
    plan.write_text('{"hello": "world"}')
    assert "not an ftbridge plan" in refused(cfg, plan)
    plan.write_text("\x00\xff garbage")
    assert "not" in refused(cfg, plan)


def test_edited_plan_is_refused(demo: tuple[Path, Path]) -> None:
    cfg, plan = demo
    doc = json.loads(plan.read_text())
    doc["actions"][0]["to"] = doc["actions"][0]["from"] if isinstance(doc["actions"][0]["from"], str) else "x"
    plan.write_text(json.dumps(doc))
    assert "does not match its plan_id" in refused(cfg, plan)
    doc = json.loads(plan.read_text())
    doc["actions"][0]["bytes"] = -1
    plan.write_text(json.dumps(K.resign(doc)))
    assert "malformed plan: actions[0]" in refused(cfg, plan)
    doc["actions"][0]["bytes"] = 1
    doc["actions"][0]["depends_on"] = ["a99999"]
    plan.write_text(json.dumps(K.resign(doc)))
    assert "not an earlier action" in refused(cfg, plan)


def test_unknown_action_kind(demo: tuple[Path, Path]) -> None:
    cfg, plan = demo
    doc = json.loads(plan.read_text())
    doc["actions"][2]["kind"] = "teleport"
    plan.write_text(json.dumps(K.resign(doc)))
    line = refused(cfg, plan)
    assert "action a00003: unknown kind 'teleport'" in line and "move_disk" in line


def test_plan_for_another_estate(demo: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, _ = demo
    # a plan made on another estate (other endpoints)
    other = tmp_path / "other"
    other_cfg = K.write_estate(
        other,
        "lab",
        "generic",
        {
            "hosts": [{"id": "h1", "name": "h1"}, {"id": "h2", "name": "h2"}],
            "datastores": [
                {"id": "a", "name": "a", "kind": "nfs", "hosts": ["h1", "h2"], "capacity_gib": 100},
                {"id": "l", "name": "l", "kind": "vmfs", "hosts": ["h1"], "capacity_gib": 100},
            ],
            "vms": [{"id": "v", "name": "v", "host": "h1", "disks": [{"id": "d", "size_gib": 5, "datastore": "l"}]}],
        },
        policies="[policies.all]\nmatch = [{}]\nrequire_secondary = false\n",
    )
    other_plan = tmp_path / "other.json"
    assert K.ftb("-c", str(other_cfg), "plan", "--out", str(other_plan)).returncode == 0
    line = refused(cfg, other_plan)
    assert "another estate" in line and "endpoint lab is not configured" in line


def test_plan_for_an_estate_with_other_datastores(demo: tuple[Path, Path]) -> None:
    cfg, plan = demo
    estate = cfg.parent / "estate.toml"
    estate.write_text(
        estate.read_text()
        .replace('id = "datastore-202"', 'id = "datastore-999"')
        .replace('"datastore-202"', '"datastore-999"')
    )
    for p in cfg.parent.glob("*.simstate.db*"):
        p.unlink()
    K.ftb("-c", str(cfg), "inventory")  # seed the (different) estate
    assert "another estate" in refused(cfg, plan)


def test_stale_plan_refused_then_revalidated(demo: tuple[Path, Path]) -> None:
    cfg, plan = demo
    # ams-web01 is not in the plan; moving it changes the estate, not the plan's premises
    move_now(cfg, "vc-ams", "vm-1100", "2000", "datastore-102")
    line = refused(cfg, plan)
    assert "stale plan" in line and "--revalidate" in line
    r = K.ftb("-c", str(cfg), "apply", str(plan), "--yes", "--revalidate")
    assert r.returncode == 0, r.stderr


def test_stale_plan_that_no_longer_holds(demo: tuple[Path, Path]) -> None:
    cfg, plan = demo
    doc = json.loads(plan.read_text())
    (web06,) = [a for a in doc["actions"] if a["vm_name"] == "ams-web06"]
    # someone moved that very disk elsewhere: re-checking finds the plan's premise gone
    move_now(cfg, "vc-ams", "vm-1105", "2000", "datastore-201")
    line = refused(cfg, plan, "--revalidate")
    assert "stale plan" in line and f"{web06['id']}: disk 2000 of ams-web06 is on datastore-201" in line


def test_two_applies_at_once(demo: tuple[Path, Path]) -> None:
    cfg, plan = demo
    with EstateLock.for_endpoints(load_config(cfg), ["pve-rtm"], holder="test holder"):
        line = refused(cfg, plan, code=9)
    assert "endpoint pve-rtm is locked by another run" in line and f"pid {os.getpid()}" in line
    # once the lock is released, the same command runs
    assert K.ftb("-c", str(cfg), "apply", str(plan), "--yes").returncode == 0


def hold_operations(cfg_path: Path, hold: bool) -> None:
    """Every sim endpoint of the config keeps its operations running (or lets them end)."""
    cfg = load_config(cfg_path)
    for name, ep in cfg.endpoints.items():
        SimDriver(ep, endpoint=name).ex_inject(hold=hold)


def test_two_real_applies_at_once(demo: tuple[Path, Path]) -> None:
    """Two processes: the second meets the first's lock while the first's operations are held
    running (synchronised on the lock file and on the sim's hold, not on how long things take)."""
    import subprocess
    import time

    cfg, plan = demo
    hold_operations(cfg, True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTBRIDGE_")}
    first = subprocess.Popen(
        [sys.executable, "-m", "ftbridge", "-c", str(cfg), "apply", str(plan), "--yes"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        config = load_config(cfg)
        locks = [k.path for k in estate_keys(config, config.endpoints)]  # the estates' own locks
        deadline = time.monotonic() + 120  # a bound for a broken run, not a measure of speed
        while not any(p.exists() and p.read_text().strip() for p in locks):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first apply never took its lock"
            time.sleep(0.05)
        r = K.ftb("-c", str(cfg), "apply", str(plan), "--yes")
        assert r.returncode == 9, r.stderr
        assert f"pid {first.pid}" in r.stderr
        assert first.poll() is None, "the first apply ended while its operations were held"
    finally:
        hold_operations(cfg, False)
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err
