"""What the apply trusts: what made a document, the command line at run time, the live estate.

* a plan's id is a digest anyone can recompute: a plan edited to hold a forced promote of a
  running VM, or to say a failover made it, or to turn a VM's only copy off, is refused;
* a step the file marks forced needs ``--force`` on the command line of the run;
* removing a copy is refused when the primary stopped being readable *during* the apply;
* a secondary that breaks at once is reported as broken, with the driver's reason;
* the lock belongs to the estate: two state directories, one sim estate, one apply at a time;
  a reset refuses while an apply holds the estate.

Synchronised on the sim's ``hold`` fault and on apply events, never on sleeps.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "data"))

import plankit as K  # noqa: E402

from ftbridge.apply import EstateLock  # noqa: E402
from ftbridge.config import load_config  # noqa: E402
from ftbridge.services.inventory import collect  # noqa: E402
from ftbridge.services.session import Session  # noqa: E402
from ftbridge.sim.driver import SimDriver  # noqa: E402


@pytest.fixture
def demo(tmp_path: Path) -> tuple[Path, Path]:
    """(config, plan) for a fresh demo estate, with its sim state seeded."""
    cfg = K.copy_demo(tmp_path)
    plan = tmp_path / "plan.json"
    r = K.ftb("-c", str(cfg), "plan", "--out", str(plan))
    assert r.returncode == 0, r.stderr
    return cfg, plan


def refused(cfg: Path, *args: str, code: int) -> str:
    """Run ftbridge, expect ``code`` and one error line; return it. The estate must not change."""
    before = K.sim_states(cfg.parent)
    r = K.ftb("-c", str(cfg), *args)
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert K.sim_states(cfg.parent) == before, "the estate changed"
    return lines[0]


def promote_of_running_vm(cfg: Path) -> dict[str, Any]:
    """A forced promote of ams-sql01 (running, on a host that is up), as a failover writes one."""
    with Session(load_config(cfg)) as s:
        inv = collect(s)
    vm = next(v for v in inv.vms if v.name == "ams-sql01")
    sec = vm.secondaries[0]
    return {
        "id": "a9000",
        "kind": "promote",
        "endpoint": vm.endpoint,
        "vm": vm.id,
        "vm_name": vm.name,
        "secondary": sec.id,
        "mechanism": sec.mechanism,
        "host": None,
        "secondary_disks": {d.disk: d.datastore for d in sec.disks},
        "forced": True,
        "bytes": 0,
        "datastores": [],
        "depends_on": [],
        "closes": [],
        "reason": "hand-edited",
    }


def test_a_plan_edited_to_hold_a_forced_promote_is_refused(demo: tuple[Path, Path]) -> None:
    cfg, plan = demo
    doc = json.loads(plan.read_text())
    assert doc["made_by"] == "plan"
    doc["actions"].append(promote_of_running_vm(cfg))
    plan.write_text(json.dumps(K.resign(doc)))  # the id recomputed the way the code computes it
    line = refused(cfg, "apply", str(plan), "--yes", code=8)
    assert "action a9000: a plan document cannot hold a promote action" in line, line
    # saying a failover made it does not help: 'ftbridge apply' runs plans only
    doc["made_by"] = "failover"
    doc["actions"] = [doc["actions"][-1]]
    plan.write_text(json.dumps(K.resign(doc)))
    line = refused(cfg, "apply", str(plan), "--yes", code=8)
    assert "a failover document, not one this command runs" in line and "ftbridge failover run" in line, line


def test_a_window_without_its_restore_is_refused_though_the_fingerprint_matches(demo: tuple[Path, Path]) -> None:
    """The fingerprint says the estate is the one planned for; the actions are checked anyway."""
    cfg, plan = demo
    doc = json.loads(plan.read_text())
    with Session(load_config(cfg)) as s:
        inv = collect(s)
    vm = next(v for v in inv.vms if v.name == "ams-sql01")
    doc["actions"] = [
        {
            "id": "a1",
            "kind": "unprotect",
            "endpoint": vm.endpoint,
            "vm": vm.id,
            "vm_name": vm.name,
            "secondary": vm.secondaries[0].id,
            "mechanism": vm.secondaries[0].mechanism,
            "after": None,
            "keeps": [],
            "window": True,
            "restore": None,
            "bytes": 0,
            "datastores": [],
            "depends_on": [],
            "closes": [],
            "reason": "hand-edited: turn the only copy off",
        }
    ]
    plan.write_text(json.dumps(K.resign(doc)))
    line = refused(cfg, "apply", str(plan), "--yes", code=8)
    assert "a1: turns" in line and "no later protect action" in line, line


def test_a_forced_failover_step_needs_force_on_the_command_line(tmp_path: Path) -> None:
    cfg = K.copy_demo(tmp_path, op_seconds=0.01)
    fplan = tmp_path / "fo.json"
    r = K.ftb("-c", str(cfg), "failover", "plan", "--vm", "ams-sql01", "--force", "--out", str(fplan))
    (step,) = json.loads(fplan.read_text())["steps"]
    assert step["forced"], r.stderr
    line = refused(cfg, "failover", "run", str(fplan), "--yes", code=2)
    assert "would promote ams-sql01 while its primary may still run" in line and "--force" in line, line
    r = K.ftb("-c", str(cfg), "failover", "run", str(fplan), "--yes", "--force")
    assert r.returncode == 0, r.stderr


# -- the frozen apply: the primary lost between making a new copy and removing the old one --------
def make_before_break(cfg: Path, plan: Path, vm_name: str) -> tuple[dict[str, Any], str, list[str]]:
    """The demo plan cut to one VM's protect + unprotect-after pair; (doc, old secondary, primary stores)."""
    doc = json.loads(plan.read_text())
    (unprotect,) = [a for a in doc["actions"] if a["vm_name"] == vm_name and a["kind"] == "unprotect"]
    assert unprotect["after"] and not unprotect["window"]
    (protect,) = [a for a in doc["actions"] if a["id"] == unprotect["after"]]
    doc["actions"] = [protect, unprotect]
    with Session(load_config(cfg)) as s:
        inv = collect(s)
    vm = next(v for v in inv.vms if v.name == vm_name)
    return K.resign(doc), unprotect["secondary"], sorted(vm.primary_datastores)


def test_frozen_apply_keeps_the_copy_when_the_primary_is_lost_mid_apply(demo: tuple[Path, Path]) -> None:
    from ftbridge.apply import ApplyEvent, apply_plan
    from ftbridge.errors import PartialFailure

    cfg_path, plan = demo
    doc, old, stores = make_before_break(cfg_path, plan, "fra-crm01")
    plan.write_text(json.dumps(doc))
    cfg = load_config(cfg_path)
    protect_id, unprotect_id = (a["id"] for a in doc["actions"])
    ep = doc["actions"][0]["endpoint"]
    lost: list[str] = []

    def on_event(e: ApplyEvent) -> None:
        # the new copy is verified: now, before the old one goes, the primary's storage is lost
        if e.event == "action_succeeded" and e.action == protect_id:
            SimDriver(cfg.endpoints[ep], endpoint=ep).ex_inject(datastores_down=stores)
            lost.extend(stores)

    result = apply_plan(cfg, plan, yes=True, on_event=on_event)
    assert lost, "the protect never succeeded: the test did not reach the removal"
    outcome = result.outcomes[unprotect_id]
    assert outcome.state == "failed", outcome
    assert "its primary cannot be read now" in outcome.message and "the copy stays" in outcome.message
    assert "not accessible" in outcome.message, outcome.message
    with pytest.raises(PartialFailure) as exc:
        result.raise_for_failures()
    assert exc.value.exit_code == 1  # README "Exit codes": a partial failure
    drv = SimDriver(cfg.endpoints[ep], endpoint=ep)
    drv.open()
    vm = next(v for v in drv.inventory().vms if v.name == "fra-crm01")
    assert old in {s.id for s in vm.secondaries}, "the old copy was removed while the primary was lost"
    assert drv.ex_inject()  # still answers


def test_a_secondary_that_breaks_at_once_is_reported_broken_with_the_reason(demo: tuple[Path, Path]) -> None:
    from ftbridge.apply import apply_plan

    cfg_path, plan = demo
    doc = json.loads(plan.read_text())
    (protect,) = [a for a in doc["actions"] if a["vm_name"] == "rtm-kafka01" and a["kind"] == "protect"]
    assert not protect["depends_on"]
    doc["actions"] = [protect]
    plan.write_text(json.dumps(K.resign(doc)))
    cfg = load_config(cfg_path)
    ep = protect["endpoint"]
    SimDriver(cfg.endpoints[ep], endpoint=ep).ex_inject(fail_sync=[protect["vm"]])
    result = apply_plan(cfg, plan, yes=True)
    outcome = result.outcomes[protect["id"]]
    assert outcome.state == "failed"
    assert "did not reach in_sync" in outcome.message and "within" not in outcome.message, outcome.message
    assert "is broken: the initial sync failed (fault fail_sync)" in outcome.message, outcome.message


def test_a_lease_that_lapses_after_action_started_stops_the_step_before_its_request(
    demo: tuple[Path, Path], tmp_path: Path
) -> None:
    """``action_started`` was written while this process led; the live reads and checks that
    follow can outlast its lease (a stopped or starved controller). The request that changes
    the estate is then not made: another controller may already run that step."""
    from ftbridge.apply import apply_plan
    from ftbridge.apply.events import ApplyEvent
    from ftbridge.apply.journal import Fence, Journal, SqliteJournalStore, StaleLeader

    cfg_path, plan = demo
    doc = json.loads(plan.read_text())
    (protect,) = [a for a in doc["actions"] if a["vm_name"] == "rtm-kafka01" and a["kind"] == "protect"]
    doc["actions"] = [protect]
    plan.write_text(json.dumps(K.resign(doc)))
    journal = Journal(tmp_path / "fenced.sqlite")
    lapsed = threading.Event()

    def check() -> None:
        if lapsed.is_set():
            raise StaleLeader("controller t could not renew its lease before the deadline: it stopped acting")

    store = journal.store
    assert isinstance(store, SqliteJournalStore)
    store.fence = Fence(store.bump_epoch(), check)

    def on_event(e: ApplyEvent) -> None:
        if e.event == "action_started":  # journaled under the lease; it lapses now
            lapsed.set()

    before = K.sim_ops(cfg_path.parent)
    try:
        with pytest.raises(StaleLeader, match="could not renew its lease"):
            apply_plan(load_config(cfg_path), plan, yes=True, on_event=on_event, journal=journal)
    finally:
        store.fence = None
        journal.close()
    assert lapsed.is_set(), "the step never started: the test did not reach the request"
    assert K.sim_ops(cfg_path.parent) == before, "a deposed process asked the platform to act"


# -- the lock belongs to the estate ----------------------------------------------------------------
def hold_operations(cfg_path: Path, hold: bool) -> None:
    cfg = load_config(cfg_path)
    for name, ep in cfg.endpoints.items():
        SimDriver(ep, endpoint=name).ex_inject(hold=hold)


def one_action_plan(plan: Path, vm_name: str, kind: str) -> dict[str, Any]:
    doc = json.loads(plan.read_text())
    (action,) = [a for a in doc["actions"] if a["vm_name"] == vm_name and a["kind"] == kind]
    doc["actions"] = [action]
    plan.write_text(json.dumps(K.resign(doc)))
    assert isinstance(action, dict)
    return action


def run_in_thread_until_an_operation_runs(cfg_path: Path, plan: Path) -> tuple[threading.Thread, list[Any]]:
    """An apply of ``plan`` in a thread of this process, returned once its operation started
    (and, the sim holding operations, keeps running): it holds the estate's lock."""
    from ftbridge.apply import ApplyEvent, apply_plan

    started = threading.Event()
    out: list[Any] = []

    def on_event(e: ApplyEvent) -> None:
        if e.event == "op_started":
            started.set()

    def work() -> None:
        try:
            out.append(apply_plan(load_config(cfg_path), plan, yes=True, on_event=on_event))
        except BaseException as exc:  # the assertion below reports it
            out.append(exc)
        finally:
            started.set()

    t = threading.Thread(target=work)
    t.start()
    assert started.wait(120), "the apply never started its operation"  # a bound for a broken run
    assert not out, out
    return t, out


def test_two_applies_with_two_state_dirs_on_one_estate(demo: tuple[Path, Path]) -> None:
    cfg, plan = demo
    other = cfg.with_name("ftbridge-b.toml")  # the same estate, another state directory
    other.write_text(cfg.read_text().replace('dir = "state"', 'dir = "state-b"'))
    one_action_plan(plan, "fra-crm01", "protect")
    hold_operations(cfg, True)
    try:
        t, out = run_in_thread_until_an_operation_runs(cfg, plan)
        line = refused(other, "apply", str(plan), "--yes", code=9)
        assert "endpoint ovirt-fra is locked by another run" in line and f"pid {os.getpid()}" in line, line
        assert not (cfg.parent / "state-b" / "journal.sqlite").exists()
    finally:
        hold_operations(cfg, False)
    t.join(120)
    (result,) = out
    assert not isinstance(result, BaseException), result
    assert result.counts() == {"succeeded": 1}
    # once the first run ended, the lock is free for the other state directory
    with EstateLock.for_endpoints(load_config(other), ["ovirt-fra"], holder="test"):
        pass


# -- resets refuse while a run holds the estate ----------------------------------------------------
def test_sim_reset_refuses_while_an_apply_holds_the_estate(demo: tuple[Path, Path]) -> None:
    cfg, plan = demo
    one_action_plan(plan, "fra-crm01", "protect")
    hold_operations(cfg, True)
    try:
        t, out = run_in_thread_until_an_operation_runs(cfg, plan)
        line = refused(cfg, "sim", "reset", "--endpoint", "ovirt-fra", code=9)
        assert "endpoint ovirt-fra is locked by another run" in line and f"pid {os.getpid()}" in line, line
    finally:
        hold_operations(cfg, False)
    t.join(120)
    (result,) = out
    assert not isinstance(result, BaseException) and result.counts() == {"succeeded": 1}, result
    assert K.ftb("-c", str(cfg), "sim", "reset", "--endpoint", "ovirt-fra").returncode == 0  # free again


def test_demo_reset_refuses_while_an_apply_holds_the_estate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "xdg")}
    monkeypatch.setenv("XDG_STATE_HOME", env["XDG_STATE_HOME"])  # this process's apply: the same state dir
    r = K.ftb("demo", env=env)
    assert r.returncode == 0, r.stderr
    where = tmp_path / "xdg" / "ftbridge" / "demo"
    cfg = where / "ftbridge.toml"
    plan = tmp_path / "plan.json"
    assert K.ftb("-c", str(cfg), "plan", "--out", str(plan), env=env).returncode == 0
    one_action_plan(plan, "fra-crm01", "protect")
    hold_operations(cfg, True)
    try:
        t, out = run_in_thread_until_an_operation_runs(cfg, plan)
        before = K.sim_states(where)
        r = K.ftb("demo", "--reset", env=env)
        assert r.returncode == 9, r.stderr
        assert "is locked by another run" in r.stderr and f"pid {os.getpid()}" in r.stderr, r.stderr
        assert K.sim_states(where) == before, "the reset removed the state under the apply"
    finally:
        hold_operations(cfg, False)
    t.join(120)
    (result,) = out
    assert not isinstance(result, BaseException) and result.counts() == {"succeeded": 1}, result


def test_a_removal_is_refused_up_front_when_the_primary_cannot_be_read(demo: tuple[Path, Path]) -> None:
    cfg_path, plan = demo
    doc, old, stores = make_before_break(cfg_path, plan, "fra-crm01")
    plan.write_text(json.dumps(doc))
    ep = doc["actions"][0]["endpoint"]
    SimDriver(load_config(cfg_path).endpoints[ep], endpoint=ep).ex_inject(datastores_down=stores)
    line = refused(cfg_path, "apply", str(plan), "--yes", "--revalidate", code=8)
    assert f"{doc['actions'][1]['id']}: fra-crm01's primary cannot be read" in line, line


def test_a_lock_in_the_machine_wide_directory_opens_for_every_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's umask (077) must not make the shared lock file unopenable by other users: they
    would then be refused on that estate for as long as the file exists, run or no run."""
    from ftbridge.apply import locks

    system = tmp_path / "run-lock"
    system.mkdir()
    monkeypatch.setattr(locks, "_SYSTEM_DIR", system)
    monkeypatch.delenv(locks.LOCK_DIR_ENV, raising=False)
    key = locks.EstateKey("vc", "vsphere:vc.example:443", locks.lock_dir() / "vc.lock")
    assert key.path.parent == system / "ftbridge"
    old = os.umask(0o077)
    try:
        with EstateLock([key]):
            pass
    finally:
        os.umask(old)
    assert key.path.stat().st_mode & 0o777 == 0o644
    assert (system / "ftbridge").stat().st_mode & 0o7777 == 0o1777


def test_a_controller_goes_past_another_controllers_lock_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An elected controller goes on past a deposed controller's lock, never past a person's,
    even one whose plan path happens to contain the controller's name."""
    from ftbridge.apply.locks import CONTROLLER_HOLDER, LOCK_DIR_ENV
    from ftbridge.errors import LockBusy

    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path / "locks"))
    cfg = load_config(K.copy_demo(tmp_path / "demo"))

    def controller() -> EstateLock:
        return EstateLock.for_endpoints(
            cfg, ["ovirt-fra"], holder=f"{CONTROLLER_HOLDER} apply plan.json", yield_to=CONTROLLER_HOLDER
        )

    with EstateLock.for_endpoints(cfg, ["ovirt-fra"], holder=f"ftbridge apply /srv/{CONTROLLER_HOLDER}/plan.json"):
        with pytest.raises(LockBusy, match="locked by another run"), controller():
            pass
    with EstateLock.for_endpoints(cfg, ["ovirt-fra"], holder=f"{CONTROLLER_HOLDER} apply old.json"), controller():
        pass  # the deposed controller's lock does not stop it
