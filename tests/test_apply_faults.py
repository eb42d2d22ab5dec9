"""Faults: 10% of operations fail retryably, some VMs fail for good. The apply retries what is
retryable (and nothing else), finishes what it can, reports each failure, exits 1, leaves a
consistent journal, and a later ``--resume`` (faults cleared) completes the plan."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "data"))

import plankit as K  # noqa: E402

from ftbridge.config import load_config  # noqa: E402
from ftbridge.services.inventory import collect  # noqa: E402
from ftbridge.services.session import Session  # noqa: E402
from ftbridge.sim.driver import SimDriver  # noqa: E402


def inject(cfg_path: Path, **faults: object) -> None:
    cfg = load_config(cfg_path)
    for name, ep in cfg.endpoints.items():
        SimDriver(ep, endpoint=name).ex_inject(**faults)


def test_faults_partial_failure_then_resume(tmp_path: Path) -> None:
    cfg_path = K.copy_demo(tmp_path, op_seconds=0.01, extra="retries = 4")
    plan = tmp_path / "plan.json"
    assert K.ftb("-c", str(cfg_path), "plan", "--out", str(plan)).returncode == 0
    doc = json.loads(plan.read_text())
    # ams-build01's move fails for good; so does the replacement copy of rtm-app02 (111)
    inject(cfg_path, fail_rate=0.1, seed=11, fail_permanent=["vm-1190", "111:protect"])

    r = K.ftb("-c", str(cfg_path), "apply", str(plan), "--yes", "-o", "json")
    assert r.returncode == 1, r.stderr
    assert "error: " in r.stderr and "failed" in r.stderr and "--resume" in r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    by_id = {a["vm_name"] + ":" + a["kind"]: a["id"] for a in doc["actions"]}
    failed = {e["action"] for e in events if e["event"] == "action_failed"}
    blocked = {e["action"] for e in events if e["event"] == "action_blocked"}
    assert failed == {by_id["ams-build01:move_vm"], by_id["rtm-app02:protect"]}
    assert blocked == {by_id["rtm-app02:unprotect"]}, "the old copy stays while its replacement failed"
    assert any(e["event"] == "action_retry" for e in events), "transient failures are retried"
    summary = events[-1]
    assert summary["event"] == "summary"
    assert {f["action"] for f in summary["failures"]} == failed | blocked
    assert all(f["message"] for f in summary["failures"])
    assert summary["succeeded"] == len(doc["actions"]) - 3

    # the journal is consistent: the run ended, every action has a final state and a reason
    db = tmp_path / "state" / "journal.sqlite"
    with sqlite3.connect(db) as c:
        (status,) = c.execute("SELECT status FROM runs").fetchone()
        rows = c.execute("SELECT action_id, state, error FROM actions").fetchall()
    assert status == "failed"
    assert {s for _, s, _ in rows} == {"succeeded", "failed", "blocked"}
    assert all(err for _, s, err in rows if s in ("failed", "blocked"))
    state = K.normalized_state(tmp_path)
    assert all(s["violations"] == [] and s["running"] == [] for s in state.values())
    # the old, unseparated copy of rtm-app02 is still there
    with Session(load_config(cfg_path)) as s:
        inv = collect(s)
    app02 = inv.find_vm("pve-rtm/rtm-app02")
    assert app02 is not None and [x.id for x in app02.secondaries] == ["111-s0"]

    # plain apply now refuses (an unfinished run exists); --resume after the faults are gone completes
    assert K.ftb("-c", str(cfg_path), "apply", str(plan), "--yes").returncode == 8
    inject(cfg_path, fail_rate=0.0, fail_permanent=[])
    r = K.ftb("-c", str(cfg_path), "apply", str(plan), "--yes", "--resume")
    assert r.returncode == 0, r.stderr
    assert "resumed run" in r.stderr
    with sqlite3.connect(db) as c:
        (status,) = c.execute("SELECT status FROM runs").fetchone()
        states = {s for (s,) in c.execute("SELECT state FROM actions")}
    assert status == "done" and states <= {"succeeded", "skipped"}
    state = K.normalized_state(tmp_path)
    assert all(s["violations"] == [] for s in state.values())
    r = K.ftb("-c", str(cfg_path), "audit", "-o", "json")
    left = {f["id"] for f in json.loads(r.stdout)["findings"] if f["fixable"]}
    assert left <= {u["finding"] for u in doc["unfixable"]}


def test_permanent_errors_are_not_retried(tmp_path: Path) -> None:
    cfg_path = K.copy_demo(tmp_path, op_seconds=0.01, extra="retries = 5")
    plan = tmp_path / "plan.json"
    assert K.ftb("-c", str(cfg_path), "plan", "--out", str(plan)).returncode == 0
    inject(cfg_path, fail_permanent=["vm-1190"])
    r = K.ftb("-c", str(cfg_path), "apply", str(plan), "--yes", "-o", "json")
    assert r.returncode == 1
    events = [json.loads(line) for line in r.stdout.splitlines()]
    build = [e for e in events if e.get("vm_name") == "ams-build01"]
    assert [e["event"] for e in build if e["event"] in ("op_started", "action_retry", "action_failed")] == [
        "op_started",
        "action_failed",
    ]
    ops = [o for o in K.sim_ops(tmp_path) if o["vm"] == "vm-1190"]
    assert len(ops) == 1 and ops[0]["state"] == "failed"
