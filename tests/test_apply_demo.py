"""Plan, apply, audit again, on the demo estate and on an FT estate: the real command and the
service, with the sim driver keeping score (its invariant violations must stay empty)."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import jsonschema
import pytest

sys.path.insert(0, str(Path(__file__).parent / "data"))

import plankit as K  # noqa: E402

from ftbridge.apply import ApplyEvent, apply_plan  # noqa: E402
from ftbridge.apply.journal import Journal  # noqa: E402
from ftbridge.audit import audit  # noqa: E402
from ftbridge.config import load_config  # noqa: E402
from ftbridge.services.inventory import collect  # noqa: E402
from ftbridge.services.session import Session  # noqa: E402
from ftbridge.sim.driver import SimDriver  # noqa: E402

SCHEMA = json.loads((K.ROOT / "ftbridge" / "schemas" / "plan.schema.json").read_text())


def live_audit(cfg_path: Path):  # type: ignore[no-untyped-def]
    cfg = load_config(cfg_path)
    with Session(cfg) as s:
        inv = collect(s)
        violations = [v for ep in cfg.endpoints for v in s.driver(ep).ex_violations()]  # type: ignore[attr-defined]
    return audit(inv, cfg), violations


def test_demo_plan_apply_then_audit_leaves_only_what_the_plan_explained(tmp_path: Path) -> None:
    cfg = K.copy_demo(tmp_path)
    plan_path = tmp_path / "plan.json"
    r = K.ftb("-c", str(cfg), "plan", "--out", str(plan_path), "-o", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert json.loads(plan_path.read_text()) == doc
    jsonschema.validate(doc, SCHEMA)
    assert doc["summary"]["actions"] > 15 and doc["summary"]["closed"] >= 15
    reasons = {u["vm_name"]: u["reason"] for u in doc["unfixable"]}
    assert "12 vCPUs" in reasons["ams-dwh01"] and "at most 8" in reasons["ams-dwh01"]
    assert "5,200 GiB" in reasons["fra-archive01"] and "outside array pure-fra-b" in reasons["fra-archive01"]

    r = K.ftb("-c", str(cfg), "apply", str(plan_path), "--yes", "-o", "json")
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    summary = events[-1]
    assert summary["event"] == "summary" and summary["failures"] == []
    assert summary.get("succeeded", 0) + summary.get("skipped", 0) == doc["summary"]["actions"]

    report, violations = live_audit(cfg)
    assert violations == []
    left = {f.id for f in report.findings if f.fixable}
    explained = {u["finding"] for u in doc["unfixable"]}
    closed = {c for a in doc["actions"] for c in a["closes"]}
    assert left <= explained, f"fixable findings neither fixed nor explained: {left - explained}"
    assert not ({f.id for f in report.findings} & closed)
    # applying again changes nothing: the journal knows, and says so
    again = K.ftb("-c", str(cfg), "apply", str(plan_path), "--yes")
    assert again.returncode == 0 and "applied completely" in again.stderr


def test_plan_show_is_a_readable_diff(tmp_path: Path) -> None:
    cfg = K.copy_demo(tmp_path)
    plan_path = tmp_path / "p.json"
    assert K.ftb("-c", str(cfg), "plan", "--out", str(plan_path)).returncode == 0
    r = K.ftb("plan", "show", str(plan_path), env={"COLUMNS": "250"})
    assert r.returncode == 0, r.stderr
    out = r.stdout
    # per VM: from where to where, bytes, the findings closed; then the reasons
    assert "ams-build01" in out and "esx-ams2-01-local" in out and "320 GiB" in out
    assert "primary-not-shared" in out and "secondary-not-separated" in out
    assert "fra-archive01" in out and "5,200 GiB" in out
    assert "closes" in out


def test_demo_command_prints_the_audit_and_the_plan(tmp_path: Path) -> None:
    r = K.ftb("demo", "--reset", env={"XDG_STATE_HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert "no-secondary" in r.stdout
    assert "plan " in r.stderr and "actions" in r.stderr
    doc = json.loads((tmp_path / "ftbridge" / "demo" / "plan.json").read_text())
    jsonschema.validate(doc, SCHEMA)
    r = K.ftb("demo", "-o", "json", env={"XDG_STATE_HOME": str(tmp_path)})
    data = json.loads(r.stdout)
    assert data["plan"]["plan_id"] == doc["plan_id"]


def test_without_yes_nothing_changes_and_exit_is_2(tmp_path: Path) -> None:
    cfg = K.copy_demo(tmp_path)
    plan_path = tmp_path / "p.json"
    assert K.ftb("-c", str(cfg), "plan", "--out", str(plan_path)).returncode == 0
    before = K.sim_states(tmp_path)
    r = K.ftb("-c", str(cfg), "apply", str(plan_path))
    assert r.returncode == 2
    assert "nothing was changed" in r.stderr and "--yes" in r.stderr
    assert "a00001" in r.stdout
    assert K.sim_states(tmp_path) == before
    assert not (tmp_path / "state" / "journal.sqlite").exists()


def test_concurrency_limits_per_endpoint_and_datastore(tmp_path: Path) -> None:
    cfg_path = K.copy_demo(
        tmp_path, op_seconds=0.03, extra="concurrency_per_endpoint = 2\nconcurrency_per_datastore = 1"
    )
    cfg = load_config(cfg_path)
    assert K.ftb("-c", str(cfg_path), "plan", "--out", str(tmp_path / "p.json")).returncode == 0
    doc = json.loads((tmp_path / "p.json").read_text())
    touched = {a["id"]: (a["endpoint"], a["datastores"]) for a in doc["actions"]}
    lock = threading.Lock()
    running: set[str] = set()
    peak_ep: dict[str, int] = {}
    peak_ds: dict[tuple[str, str], int] = {}

    def watch(e: ApplyEvent) -> None:
        with lock:
            if e.event == "action_started" and e.action:
                running.add(e.action)
            elif e.event in ("action_succeeded", "action_skipped", "action_failed") and e.action:
                running.discard(e.action)
            for ep in {touched[a][0] for a in running}:
                n = sum(1 for a in running if touched[a][0] == ep)
                peak_ep[ep] = max(peak_ep.get(ep, 0), n)
            for a in running:
                for d in touched[a][1]:
                    key = (touched[a][0], d)
                    n = sum(1 for b in running if touched[b][0] == key[0] and d in touched[b][1])
                    peak_ds[key] = max(peak_ds.get(key, 0), n)

    result = apply_plan(cfg, tmp_path / "p.json", yes=True, on_event=watch)
    assert result.failures() == []
    assert max(peak_ep.values()) <= 2 and max(peak_ds.values()) <= 1


@pytest.mark.parametrize("in_process", [True, False])
def test_an_apply_on_in_process_platforms_runs_on_one_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_process: bool
) -> None:
    """The sim runs in this interpreter, so the apply's threads run on one CPU (see
    ftbridge.apply.affinity); a driver that talks to a remote platform (here the sim declaring
    itself one) leaves them on every CPU. Either way the caller has its CPUs back."""
    before = os.sched_getaffinity(0)
    if len(before) < 2:
        pytest.skip("one CPU only: pinned and unpinned look the same here")
    monkeypatch.setattr(SimDriver, "in_process", in_process)
    cfg_path = K.copy_demo(tmp_path)
    assert K.ftb("-c", str(cfg_path), "plan", "--out", str(tmp_path / "p.json")).returncode == 0
    seen: list[set[int]] = []

    def watch(e: ApplyEvent) -> None:
        if e.event == "action_started" and threading.current_thread() is not threading.main_thread():
            seen.append(os.sched_getaffinity(0))

    result = apply_plan(load_config(cfg_path), tmp_path / "p.json", yes=True, on_event=watch)
    assert result.failures() == [] and seen
    if in_process:
        assert len({frozenset(s) for s in seen}) == 1 and len(seen[0]) == 1 and seen[0] <= before
    else:
        assert all(s == before for s in seen)
    assert os.sched_getaffinity(0) == before


# -- an FT estate: off / move / on, and make-before-break ---------------------------------------
FT_DOMAINS = """
[[domains]]
endpoint = "vc"
host = "esx-1*"
site = "s1"

[[domains]]
endpoint = "vc"
host = "esx-2*"
site = "s2"

[[domains]]
endpoint = "vc"
datastore = "s1-*"
site = "s1"

[[domains]]
endpoint = "vc"
datastore = "s2-*"
site = "s2"
"""
FT_POLICY = """
[policies.gold]
separation = "site"
headroom = 10
mechanisms = ["vsphere-ft"]
match = [{ tag = "gold" }]
"""


def ft_estate(where: Path) -> Path:
    allh = ["h11", "h12", "h21", "h22"]
    hosts = [{"id": h, "name": f"esx-{h[1:]}", "cluster": "c"} for h in allh]
    dss = [
        {"id": "a", "name": "s1-a", "kind": "vmfs", "hosts": allh, "capacity_gib": 2000},
        {"id": "b", "name": "s1-b", "kind": "vmfs", "hosts": allh, "capacity_gib": 2000},
        {"id": "c", "name": "s2-c", "kind": "vmfs", "hosts": allh, "capacity_gib": 2000},
        {"id": "l", "name": "s1-local-11", "kind": "vmfs", "hosts": ["h11"], "capacity_gib": 500},
    ]

    def ft(host: str, ds: str, meta: str = "a") -> dict:  # type: ignore[type-arg]
        return {
            "mechanism": "vsphere-ft",
            "host": host,
            "config_datastore": ds,
            "disks": {"d0": ds},
            "metadata_datastore": meta,
            "state": "in_sync",
            "lag_s": 0,
        }

    vms = [
        # primary on a local datastore, FT on: FT off, move, FT on again
        {
            "id": "v1",
            "name": "app-1",
            "host": "h11",
            "vcpus": 2,
            "tags": ["gold"],
            "disks": [{"id": "d0", "size_gib": 50, "datastore": "l"}],
            "secondaries": [ft("h21", "c")],
        },
        # FT secondary in the primary's site: FT keeps one secondary, so off, then on in s2
        {
            "id": "v2",
            "name": "app-2",
            "host": "h12",
            "vcpus": 2,
            "tags": ["gold"],
            "disks": [{"id": "d0", "size_gib": 40, "datastore": "a"}],
            "secondaries": [ft("h11", "b")],
        },
    ]
    return K.write_estate(
        where, "vc", "vsphere", {"hosts": hosts, "datastores": dss, "vms": vms}, policies=FT_POLICY, domains=FT_DOMAINS
    )


def test_ft_sequencing_on_the_platform(tmp_path: Path) -> None:
    cfg_path = ft_estate(tmp_path)
    plan_path = tmp_path / "p.json"
    r = K.ftb("-c", str(cfg_path), "plan", "--out", str(plan_path), "-o", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    kinds = {vm: [a["kind"] for a in doc["actions"] if a["vm"] == vm] for vm in ("v1", "v2")}
    assert kinds == {"v1": ["unprotect", "move_vm", "protect"], "v2": ["unprotect", "protect"]}
    assert doc["unfixable"] == []
    r = K.ftb("-c", str(cfg_path), "apply", str(plan_path), "--yes")
    assert r.returncode == 0, r.stderr
    report, violations = live_audit(cfg_path)
    assert violations == [] and report.findings == ()
    # the journal shows the order the platform saw
    j = Journal(tmp_path / "state" / "journal.sqlite")
    seen = [(e["action_id"], e["event"]) for e in j.events() if e["event"] in ("op_started", "action_succeeded")]
    ids = {a["vm"] + ":" + a["kind"]: a["id"] for a in doc["actions"]}

    def at(action: str, event: str) -> int:
        return seen.index((ids[action], event))

    assert at("v1:unprotect", "action_succeeded") < at("v1:move_vm", "op_started")
    assert at("v1:move_vm", "action_succeeded") < at("v1:protect", "op_started")
    assert at("v2:unprotect", "action_succeeded") < at("v2:protect", "op_started")


def test_removal_refused_when_the_kept_copy_is_not_in_sync(tmp_path: Path) -> None:
    """A plan (hand-made here) that would drop a copy while the one it keeps is broken."""
    cfg_path = K.copy_demo(tmp_path)
    cfg = load_config(cfg_path)
    with Session(cfg) as s:
        inv = collect(s)
    from ftbridge.planning import make_plan

    doc = make_plan(inv, cfg, created_at=0.0)
    # rtm-redis02 (103) has a broken replica 103-s0; pretend a plan keeps it and drops a copy
    # of rtm-redis01 (102-s0, its only one) "because 103-s0 is kept": the apply must refuse
    doc["actions"] = [
        {
            "id": "a00001",
            "kind": "unprotect",
            "endpoint": "pve-rtm",
            "vm": "103",
            "vm_name": "rtm-redis02",
            "secondary": "103-s0",
            "mechanism": "pve-replication",
            "after": None,
            "keeps": ["103-s0"],
            "window": False,
            "restore": None,
            "bytes": 0,
            "datastores": [],
            "depends_on": [],
            "closes": [],
            "reason": "test",
        }
    ]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(K.resign(doc)))
    result = apply_plan(cfg, path, yes=True)
    (failure,) = result.failures()
    assert "not in sync" in failure[1].message or "no other in-sync copy" in failure[1].message
    report, violations = live_audit(cfg_path)
    assert violations == []
    assert any(f.secondary == "103-s0" for f in report.findings), "the secondary is still there"
