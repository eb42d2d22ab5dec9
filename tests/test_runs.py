"""``ftbridge runs``: the demo's apply, test failover and failover with their figures; kept test
failovers and their cleanup; Ctrl-C in the middle of an apply, then ``--resume``.

Figures are checked against what the commands themselves reported (the plan's bytes, the
failover's recovery times, the test's VMs and copies), so a history that reads the journal
wrong, or a run recorded wrong, fails here.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent / "data"))

import plankit as K  # noqa: E402

from ftbridge.config import load_config  # noqa: E402
from ftbridge.sim.driver import SimDriver  # noqa: E402

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")


def ftb(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return K.ftb(*args, env=env)


def data(*args: str) -> Any:
    r = ftb(*args, "-o", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def lines(r: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]


def ts(text: str) -> float:
    assert RFC3339.match(text), text
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def kept_instances(cfg: Path) -> dict[str, dict[str, Any]]:
    conf = load_config(cfg)
    out: dict[str, dict[str, Any]] = {}
    for name, ep in conf.endpoints.items():
        d = SimDriver(ep, endpoint=name)
        d.open()
        out.update(d.ex_tests())
    return out


def test_runs_shows_the_demos_apply_test_and_failover_with_their_figures(tmp_path: Path) -> None:
    cfg = K.copy_demo(tmp_path, op_seconds=0.01)
    c = ("-c", str(cfg))
    plan_file = tmp_path / "plan.json"
    assert ftb(*c, "plan", "--out", str(plan_file)).returncode == 0
    plan = json.loads(plan_file.read_text())
    assert ftb(*c, "apply", str(plan_file), "--yes").returncode == 0
    test = ftb(*c, "failover", "test", "--vm", "ams-sql01", "--vm", "ams-sql02", "--vm", "rtm-pg01", "-o", "json")
    assert test.returncode == 0, test.stderr
    tested = lines(test)[-1]
    fo_plan = tmp_path / "fo.json"
    site_ams1_fails = ["--host-down", "esx-ams1-01", "--host-down", "esx-ams1-02"] + [
        x
        for ds in ("ams1-netapp-a-01", "ams1-netapp-a-02", "ams1-pure-b-01", "ams1-pure-b-02", "esx-ams1-01-local")
        for x in ("--datastore-down", ds)
    ]
    assert ftb(*c, "sim", "fault", "vc-ams", *site_ams1_fails).returncode == 0
    ftb(*c, "failover", "plan", "--domain", "site=ams1", "--out", str(fo_plan))
    fo = ftb(*c, "failover", "run", str(fo_plan), "--yes", "-o", "json")
    assert fo.returncode == 0, fo.stderr
    failover = lines(fo)[-1]

    listed = data(*c, "runs")["runs"]
    assert [r["kind"] for r in listed] == ["apply", "test-failover", "failover"]
    assert [r["run"] for r in listed] == [1, 2, 3]
    apply_run, test_run, fo_run = listed
    for r in listed:
        assert r["result"] == "done" and r["user"] == getpass.getuser()
        assert ts(r["started_at"]) <= ts(r["finished_at"]) and r["duration_s"] > 0
    # apply: every action, the plan's bytes
    assert apply_run["plan_id"] == plan["plan_id"] and apply_run["plan_path"] == str(plan_file)
    assert apply_run["actions"] == len(plan["actions"]) == apply_run["states"]["succeeded"]
    assert apply_run["bytes"] == plan["summary"]["bytes_moved"] > 0
    # test failover: which VMs, which copy, started, verified, cleaned up
    shown = data(*c, "runs", "show", "2")
    evidence = {t["vm_name"]: t for t in shown["tests"]}
    assert set(evidence) == {v["vm_name"] for v in tested["vms"]} == {"ams-sql01", "ams-sql02", "rtm-pg01"}
    for v in tested["vms"]:
        t = evidence[v["vm_name"]]
        assert t["vm"] == v["vm"] and t["secondary"] == v["secondary"] and t["state"] == "cleaned-up"
        assert t["test_id"] and t["mechanism"]
        assert ts(t["started_at"]) <= ts(t["verified_at"]) <= ts(t["cleaned_up_at"])
        assert ts(test_run["started_at"]) <= ts(t["started_at"])
    # failover: recovery time per VM and for the run, as the failover reported them
    detail = data(*c, "runs", "show", "3")
    rec = {r["vm"]: r for r in detail["recovery"]}
    up = {v["vm"]: v for v in failover["vms"] if v["state"] in ("promoted", "restarted")}
    assert up and set(rec) == set(up)
    for vm, v in up.items():
        assert rec[vm]["state"] == v["state"] and abs(rec[vm]["recovery_s"] - v["seconds"]) < 0.002
        assert rec[vm]["how"] == v["how"] and rec[vm]["secondary"] == v["secondary"]
    assert abs(fo_run["recovery_s"] - failover["recovery_s"]) < 0.002
    assert {a["kind"] for a in detail["action_list"]} <= {"fence", "promote", "restart"}
    # and people see the same at 80 columns, and piped
    table = ftb(*c, "runs", env={"COLUMNS": "80"})
    assert table.returncode == 0
    assert all(len(x) <= 80 for x in table.stdout.splitlines())
    for kind in ("apply", "test-failover", "failover"):
        assert re.search(rf"\b{kind}\b", table.stdout)
    plain = ftb(*c, "runs")
    assert re.search(r"^3 +\S+ \S+ +failover +done", plain.stdout, re.M), plain.stdout
    assert "ams-sql01" in ftb(*c, "runs", "show", "2").stdout


def test_kept_test_failover_stays_up_until_cleanup(tmp_path: Path) -> None:
    cfg = K.copy_demo(tmp_path, op_seconds=0.01)
    c = ("-c", str(cfg))
    kept = ftb(*c, "failover", "test", "--vm", "ams-sql01", "--vm", "rtm-pg01", "--keep")
    assert kept.returncode == 0, kept.stderr
    assert "failover test --cleanup" in kept.stderr
    up = kept_instances(cfg)
    inv = data(*c, "inventory")
    ids = {v["id"] for v in inv["vms"] if v["name"] in ("ams-sql01", "rtm-pg01")}
    assert len(ids) == 2 and sorted(t["vm"] for t in up.values()) == sorted(ids)
    shown = data(*c, "runs", "show", "1")
    assert {t["state"] for t in shown["tests"]} == {"kept"}
    assert {t["test_id"] for t in shown["tests"]} == set(up)
    gone = ftb(*c, "failover", "test", "--cleanup", "-o", "json")
    assert gone.returncode == 0, gone.stderr
    assert kept_instances(cfg) == {}
    assert {v["test_id"] for v in lines(gone)[-1]["vms"]} == set(up)
    listed = data(*c, "runs")["runs"]
    assert [r["kind"] for r in listed] == ["test-failover", "test-cleanup"]
    after = data(*c, "runs", "show", "1")["tests"]
    assert {t["state"] for t in after} == {"cleaned-up"} and {t["cleanup_run"] for t in after} == {2}
    for t in after:
        assert ts(t["verified_at"]) <= ts(t["cleaned_up_at"])
    again = ftb(*c, "failover", "test", "--cleanup")
    assert again.returncode == 0 and "nothing to clean up" in again.stderr
    both = ftb(*c, "failover", "test", "--keep", "--cleanup")
    assert both.returncode == 2 and "Traceback" not in both.stderr


def test_runs_read_only_and_unknown_run(tmp_path: Path) -> None:
    cfg = K.copy_demo(tmp_path, op_seconds=0.01)
    journal = tmp_path / "state" / "journal.sqlite"
    r = ftb("-c", str(cfg), "runs")
    assert r.returncode == 0 and "no runs" in r.stderr and r.stdout == ""
    assert data("-c", str(cfg), "runs")["runs"] == []
    assert not journal.exists()  # reading the history creates no journal
    missing = ftb("-c", str(cfg), "runs", "show", "7")
    assert missing.returncode == 2 and "no run 7" in missing.stderr and "Traceback" not in missing.stderr
    bad_kind = ftb("-c", str(cfg), "runs", "--kind", "migrate")
    assert bad_kind.returncode == 2 and "apply" in bad_kind.stderr


def test_ctrl_c_says_what_is_left_and_resume_carries_on(tmp_path: Path) -> None:
    cfg = K.copy_demo(tmp_path, op_seconds=0.3, extra="concurrency_per_endpoint = 1")
    plan_file = tmp_path / "plan.json"
    assert ftb("-c", str(cfg), "plan", "--out", str(plan_file)).returncode == 0
    total = len(json.loads(plan_file.read_text())["actions"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTBRIDGE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ftbridge", "-c", str(cfg), "apply", str(plan_file), "--yes", "-o", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until an operation is really under way
        if json.loads(line)["event"] == "op_started":
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    m = re.search(r"apply interrupted: run 1: (\d+) of (\d+) actions done", err)
    assert m and int(m.group(2)) == total and int(m.group(1)) < total, err
    assert f"carry on with: ftbridge -c {cfg} apply {plan_file} --yes --resume" in err
    shown = data("-c", str(cfg), "runs", "show", "1")
    assert shown["result"] == "interrupted"
    assert shown["states"].get("succeeded", 0) == int(m.group(1))
    resumed = ftb("-c", str(cfg), "apply", str(plan_file), "--yes", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    after = data("-c", str(cfg), "runs")["runs"]
    assert len(after) == 1 and after[0]["result"] == "done" and after[0]["resumed"] == 1
    assert after[0]["states"] == {"succeeded": total}
