"""Failover carried out by the apply machinery, on the sim demo estate: host, datastore, array
and site failures; test failover; failback and reprotect; crashes and injected faults.

The sim keeps the score: after every run each VM has at most one running instance (its record
running on a host that is up, plus any test instance), promoted VMs run on survivors, and the
platform never saw a VM lose its last copy (``ex_violations``)."""

from __future__ import annotations

import itertools
import json
import re
import signal
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "data"))

import plankit as K  # noqa: E402

from ftbridge.apply.events import ApplyEvent  # noqa: E402
from ftbridge.apply.journal import CRASH_ENV, PENDING, Journal  # noqa: E402
from ftbridge.apply.scheduler import Limits, run_actions  # noqa: E402
from ftbridge.apply.service import apply_plan, settings_for  # noqa: E402
from ftbridge.apply.steps import Executor, LiveView  # noqa: E402
from ftbridge.audit import audit  # noqa: E402
from ftbridge.config import load_config  # noqa: E402
from ftbridge.failover.plan import FailoverPlan, Step  # noqa: E402
from ftbridge.failover.run import _times, failover_document  # noqa: E402
from ftbridge.planning.planfile import barriers_as_edges, parse_plan  # noqa: E402
from ftbridge.services.inventory import collect  # noqa: E402
from ftbridge.services.session import Session  # noqa: E402
from ftbridge.sim.driver import SimDriver  # noqa: E402
from ftbridge.sim.state import dump as dump_sim_state


def inject(cfg_path: Path, endpoint: str | None = None, **faults: Any) -> None:
    cfg = load_config(cfg_path)
    for name, ep in cfg.endpoints.items():
        if endpoint in (None, name):
            SimDriver(ep, endpoint=name).ex_inject(**faults)


def sims(cfg_path: Path) -> dict[str, SimDriver]:
    cfg = load_config(cfg_path)
    out = {n: SimDriver(ep, endpoint=n) for n, ep in cfg.endpoints.items()}
    for d in out.values():
        d.open()
    return out


def raw_states(where: Path) -> dict[str, dict[str, Any]]:
    return {(s := dump_sim_state(p))["estate"]: s for p in sorted(where.glob("*.simstate.db"))}


def running(where: Path) -> dict[tuple[str, str], list[str]]:
    """(endpoint, vm id) -> the hosts each running instance of it is on (tests included)."""
    out: dict[tuple[str, str], list[str]] = {}
    for ep, s in raw_states(where).items():
        down = set(s["faults"]["hosts_down"])

        def up(h: str | None) -> bool:
            return bool(h) and h not in down and s["hosts"][h]["state"] == "up"  # noqa: B023

        for vid, v in s["vms"].items():
            hosts = [v["host"]] if v["power"] == "on" and up(v["host"]) else []
            hosts += [t["host"] for t in s["tests"].values() if t["vm"] == vid and t["power"] == "on"]
            out[(ep, vid)] = hosts
    return out


def no_violations(cfg_path: Path) -> None:
    for d in sims(cfg_path).values():
        assert d.ex_violations() == []


def ftb_json(*args: str, env: dict[str, str] | None = None) -> tuple[int, list[dict[str, Any]], str]:
    r = K.ftb(*args, "-o", "json", env=env)
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    return r.returncode, lines, r.stderr


SCENARIOS = {
    # what fails, how the sim is told, how the failover is scoped
    "host": ({"hosts_down": ["host-11"]}, []),
    "datastore": ({"datastores_down": ["datastore-102"]}, ["--fence"]),
    "array": ({}, ["--domain", "array=netapp-a", "--fence"]),
    "site": (
        {
            "hosts_down": ["host-11", "host-12"],
            "datastores_down": ["datastore-101", "datastore-102", "datastore-103", "datastore-104", "datastore-111"],
        },
        ["--domain", "site=ams1"],
    ),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_failover_brings_up_every_vm_it_can_and_none_runs_twice(tmp_path: Path, scenario: str) -> None:
    faults, scope = SCENARIOS[scenario]
    cfg = K.copy_demo(tmp_path, op_seconds=0.01)
    inject(cfg, "vc-ams", **faults)  # with no faults: seeds the state to compare with
    before = raw_states(tmp_path)["vc-ams"]
    plan = tmp_path / "fo.json"
    r = K.ftb("-c", str(cfg), "failover", "plan", *scope, "--out", str(plan), "-o", "json")
    fplan = json.loads(plan.read_text())
    kinds = {s["kind"] for s in fplan["steps"]}
    if scenario == "host":
        # only a host failed: every VM on it restarts from its intact storage, none is promoted
        assert r.returncode == 0, r.stderr
        assert kinds == {"restart"} and not fplan["blocked"]
        assert all(s["lag"] == 0 and s["secondary"] is None for s in fplan["steps"])
    else:
        assert r.returncode == 1, r.stderr  # some VMs have no secondary outside the failed domain
        assert "promote" in kinds and fplan["blocked"]
    assert all(b["reason"] for b in fplan["blocked"])

    code, lines, err = ftb_json("-c", str(cfg), "failover", "run", str(plan), "--yes")
    assert code == 0, err
    summary = lines[-1]
    assert summary["event"] == "summary"
    brought = {v["vm"]: v["state"] for v in summary["vms"]}
    assert brought == {s["vm"]: "restarted" if s["kind"] == "restart" else "promoted" for s in fplan["steps"]}
    assert all(v["seconds"] is not None and v["seconds"] >= 0 for v in summary["vms"])
    assert summary["recovery_s"] is not None
    assert {b["vm_name"] for b in summary["blocked"]} == {b["vm_name"] for b in fplan["blocked"]}
    assert all(b["reason"] for b in summary["blocked"])

    # the platform's view: nothing runs twice; VMs run on survivors, from their copy or their own disks
    inst = running(tmp_path)
    assert all(len(h) <= 1 for h in inst.values()), inst
    state = raw_states(tmp_path)["vc-ams"]
    failed_hosts = set(faults.get("hosts_down", []))
    if scope and "site=ams1" in scope:
        failed_hosts |= {"host-11", "host-12"}
    for s in fplan["steps"]:
        v = state["vms"][s["vm"]]
        assert inst[("vc-ams", s["vm"])] == [s["host"]] and s["host"] not in failed_hosts
        if s["kind"] == "promote":
            assert {d["datastore"] for d in v["disks"]} <= set(s["secondary_disks"].values())
            assert all(x["id"] != s["secondary"] for x in v["secondaries"])
        else:  # restarted from where it was: same disks, its copies kept
            assert v["disks"] == before["vms"][s["vm"]]["disks"]
            assert v["secondaries"] == before["vms"][s["vm"]]["secondaries"]
        # declared failed while its host still ran it (array), or its storage died under a running
        # host (datastore): fenced first; a host reported down proves it runs nothing
        assert s["fence"] == (scenario in ("array", "datastore") and before["vms"][s["vm"]]["host"] not in failed_hosts)
    no_violations(cfg)

    # running it again changes nothing: the estate shows every step done, no fence runs again
    again = K.ftb("-c", str(cfg), "failover", "run", str(plan), "--yes")
    assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr
    assert running(tmp_path) == inst


def test_split_brain_is_refused_live_unless_fenced_or_forced(tmp_path: Path) -> None:
    """A plan made while the primary was down, run after it came back: the promote refuses."""
    cfg = K.copy_demo(tmp_path, op_seconds=0.01)
    inject(cfg, "vc-ams", hosts_down=["host-11"])
    plan = tmp_path / "fo.json"
    K.ftb("-c", str(cfg), "failover", "plan", "--vm", "ams-sql01", "--out", str(plan))
    inject(cfg, "vc-ams", hosts_down=[])  # the host is back: the primary runs and can be reached
    code, lines, _ = ftb_json("-c", str(cfg), "failover", "run", str(plan), "--yes")
    assert code == 1
    (vm,) = lines[-1]["vms"]
    assert vm["state"] == "failed" and "split brain" in vm["message"]
    assert len(running(tmp_path)[("vc-ams", "vm-1001")]) == 1
    # forced: done, and the journal records that it was forced
    forced = tmp_path / "forced.json"
    K.ftb("-c", str(cfg), "failover", "plan", "--vm", "ams-sql01", "--force", "--out", str(forced))
    code, lines, err = ftb_json("-c", str(cfg), "failover", "run", str(forced), "--yes", "--force")
    assert code == 0, err
    assert lines[-1]["vms"][0]["forced"] is True
    from ftbridge.apply.journal import Journal

    j = Journal(tmp_path / "state" / "journal.sqlite")
    results = [e["detail"]["result"] for e in j.events() if e["event"] == "action_succeeded"]
    assert any(r.get("forced") is True for r in results)
    j.close()


def inventory_dict(cfg: Path) -> dict[str, Any]:
    with Session(load_config(cfg)) as s:
        d = collect(s).to_dict()
    d.pop("collected_at", None)
    return d


def test_test_failover_leaves_production_unchanged_and_nothing_behind(tmp_path: Path) -> None:
    cfg = K.copy_demo(tmp_path, op_seconds=0.01)
    before = inventory_dict(cfg)
    code, lines, err = ftb_json("-c", str(cfg), "failover", "test")
    assert code == 1, err  # the demo has three VMs whose only copy cannot be trusted: each says why
    vms = lines[-1]["vms"]
    assert len(vms) == sum(1 for v in before["vms"] if v["secondaries"])
    bad = {v["vm_name"]: v["message"] for v in vms if v["state"] != "ok"}
    assert "is broken" in bad.pop("rtm-redis02")
    assert "lies in the failed domain (ceph-rtm)" in bad.pop("rtm-app02")  # same datastore as its primary
    assert "lies in the failed domain" in bad.pop("fra-crm01")
    # its FT tie-breaker is on a disk only the primary's host sees: the secondary cannot take over
    assert "does not mount esx-ams1-01-local" in bad.pop("ams-mq01")
    assert bad == {}
    assert all(v["seconds"] is not None for v in vms if v["state"] == "ok")
    assert inventory_dict(cfg) == before
    assert all(d.ex_tests() == {} for d in sims(cfg).values())
    no_violations(cfg)
    # a domain-scoped test reports the VMs whose copy lies in that domain as failed, with why
    code, lines, _ = ftb_json("-c", str(cfg), "failover", "test", "--domain", "site=ams1")
    assert code == 1
    bad = {v["vm_name"]: v["message"] for v in lines[-1]["vms"] if v["state"] == "failed"}
    assert "lies in the failed domain" in bad["ams-erp01"]
    assert inventory_dict(cfg) == before


def test_test_failover_fault_and_crash_then_resume_cleans_up(tmp_path: Path) -> None:
    cfg = K.copy_demo(tmp_path, op_seconds=0.01, extra="concurrency_per_endpoint = 1")
    inject(cfg, "vc-ams", fail_permanent=["vm-1001:test_failover"])
    code, lines, _ = ftb_json("-c", str(cfg), "failover", "test", "--vm", "ams-sql01", "--vm", "ams-sql02")
    assert code == 1
    by = {v["vm_name"]: v for v in lines[-1]["vms"]}
    assert by["ams-sql01"]["state"] == "failed" and "injected permanent failure" in by["ams-sql01"]["message"]
    assert by["ams-sql02"]["state"] == "ok"
    inject(cfg, "vc-ams", fail_permanent=[])
    before = inventory_dict(cfg)
    for n in (3, 4, 5, 6, 8):
        r = K.ftb("-c", str(cfg), "failover", "test", "--vm", "ams-dc01", env={CRASH_ENV: str(n)})
        assert r.returncode == -signal.SIGKILL
        r = K.ftb("-c", str(cfg), "failover", "test", "--resume")
        assert r.returncode == 0, r.stderr
        assert all(d.ex_tests() == {} for d in sims(cfg).values()), n
    assert inventory_dict(cfg) == before
    no_violations(cfg)


# -- failback and reprotect on a small estate that starts compliant ------------------------------
HOSTS = [{"id": f"h{i}", "name": f"{'a' if i < 3 else 'b'}-esx{i}", "cluster": "c"} for i in (1, 2, 3, 4)]
ALL = ["h1", "h2", "h3", "h4"]
DATASTORES = [
    {"id": x, "name": x, "kind": "nfs", "hosts": ALL, "capacity_gib": 1000}
    for x in ("a-ds1", "a-ds2", "b-ds1", "b-ds2")
]


def vm(i: int, host: str, disks: dict[str, str], sec: dict[str, str]) -> dict[str, Any]:
    return {
        "id": f"v{i}",
        "name": f"vm{i}",
        "host": host,
        "disks": [{"id": d, "size_gib": 10, "datastore": x} for d, x in disks.items()],
        "secondaries": [{"mechanism": "sim-copy", "disks": sec, "state": "in_sync", "lag_s": 0}],
    }


VMS = [
    vm(1, "h1", {"d0": "a-ds1"}, {"d0": "b-ds1"}),
    vm(2, "h2", {"d0": "a-ds2", "d1": "a-ds2"}, {"d0": "b-ds2", "d1": "b-ds1"}),
    vm(3, "h1", {"d0": "a-ds1", "d1": "a-ds2"}, {"d0": "b-ds1", "d1": "b-ds1"}),
    vm(4, "h3", {"d0": "b-ds1"}, {"d0": "a-ds1"}),
]
POLICY = '[policies.all]\nseparation = "site"\nrpo = "1h"\nmechanisms = ["sim-copy"]\nmatch = [{}]\n'
DOMAINS = "".join(
    f'[[domains]]\nendpoint = "lab"\n{k} = "{p}*"\nsite = "{s}"\n'
    for k, p, s in (("host", "a-", "a"), ("host", "b-", "b"), ("datastore", "a-", "a"), ("datastore", "b-", "b"))
)


def test_failback_and_reprotect_leave_no_fixable_finding(tmp_path: Path) -> None:
    cfg = K.write_estate(
        tmp_path,
        "lab",
        "generic",
        {"hosts": HOSTS, "datastores": DATASTORES, "vms": VMS},
        policies=POLICY,
        domains=DOMAINS,
        op_seconds=0.01,
    )

    def fixable() -> list[str]:
        c = load_config(cfg)
        with Session(c) as s:
            return [f.id for f in audit(collect(s), c).findings if f.fixable]

    assert fixable() == []
    home = {
        k: (v["host"], sorted((d["id"], d["datastore"]) for d in v["disks"]))
        for k, v in raw_states(tmp_path)["lab"]["vms"].items()
    }
    inject(cfg, hosts_down=["h1", "h2"], datastores_down=["a-ds1", "a-ds2"])  # site a is gone
    plan = tmp_path / "fo.json"
    r = K.ftb("-c", str(cfg), "failover", "plan", "--domain", "site=a", "--out", str(plan))
    assert r.returncode == 0, r.stderr
    r = K.ftb("-c", str(cfg), "failover", "run", str(plan), "--yes")
    assert r.returncode == 0, r.stderr
    assert fixable() != []  # running from the copies: unprotected now

    # failback waits while site a is down ...
    r = K.ftb("-c", str(cfg), "failback", str(plan), "--yes")
    assert r.returncode == 1 and "cannot go back yet" in r.stderr
    # ... and goes once it is back; then reprotect
    inject(cfg, hosts_down=[], datastores_down=[])
    r = K.ftb("-c", str(cfg), "failback", str(plan))
    assert r.returncode == 2 and "dry run" in r.stderr
    r = K.ftb("-c", str(cfg), "failback", str(plan), "--yes")
    assert r.returncode == 0, r.stderr
    r = K.ftb("-c", str(cfg), "reprotect", "--yes")
    assert r.returncode == 0, r.stderr
    assert fixable() == []
    now = raw_states(tmp_path)["lab"]["vms"]
    for k, (host, disks) in home.items():
        assert (now[k]["host"], sorted((d["id"], d["datastore"]) for d in now[k]["disks"])) == (host, disks)
    assert all(len(h) == 1 for h in running(tmp_path).values())
    no_violations(cfg)


# -- crashes and faults --------------------------------------------------------------------------
def test_sigkill_during_failover_then_resume_ends_like_an_uninterrupted_run(tmp_path: Path) -> None:
    ref, crash = tmp_path / "ref", tmp_path / "crash"
    cfgs = {}
    for where in (ref, crash):
        cfgs[where] = K.copy_demo(where, op_seconds=0.01)
        K.ftb(
            "-c",
            str(cfgs[where]),
            "failover",
            "plan",
            "--domain",
            "site=ams1",
            "--fence",
            "--out",
            str(where / "fo.json"),
        )
    assert (ref / "fo.json").read_text().split('"created_at"')[0] == (crash / "fo.json").read_text().split(
        '"created_at"'
    )[0]
    r = K.ftb("-c", str(cfgs[ref]), "failover", "run", str(ref / "fo.json"), "--yes")
    assert r.returncode == 0, r.stderr

    kills = 0
    steps = itertools.cycle([8, 3, 2, 5, 1, 4, 9, 2])
    resume = False
    for _ in range(60):
        args = ["-c", str(cfgs[crash]), "failover", "run", str(crash / "fo.json"), "--yes"]
        r = K.ftb(*args, *(["--resume"] if resume else []), env={CRASH_ENV: str(next(steps))})
        if r.returncode == -signal.SIGKILL:
            kills += 1
            assert all(len(h) <= 1 for h in running(crash).values())
            if not resume:
                again = K.ftb(*args)
                assert again.returncode == 8 and "--resume" in again.stderr
            resume = True
            continue
        assert r.returncode == 0, r.stderr
        break
    else:
        raise AssertionError("the failover never finished")
    assert kills >= 4
    assert K.normalized_state(crash) == K.normalized_state(ref)
    assert running(crash) == running(ref)
    no_violations(cfgs[crash])
    # every VM was promoted or restarted exactly once
    for kind, n in (("promote", 3), ("restart", 2)):
        done = [o["vm"] for o in K.sim_ops(crash) if o["kind"] == kind and o["state"] == "succeeded"]
        assert sorted(done) == sorted(set(done)) and len(done) == n, (kind, done)


def test_injected_faults_are_reported_per_vm(tmp_path: Path) -> None:
    cfg = K.copy_demo(tmp_path, op_seconds=0.01, extra="retries = 6")
    plan = tmp_path / "fo.json"
    K.ftb("-c", str(cfg), "failover", "plan", "--domain", "site=ams1", "--fence", "--out", str(plan))
    inject(cfg, "vc-ams", fail_rate=0.3, seed=5, fail_permanent=["vm-1002:promote", "vm-1003:fence"])
    code, lines, err = ftb_json("-c", str(cfg), "failover", "run", str(plan), "--yes")
    assert code == 1 and "failed" in err
    by = {v["vm_name"]: v for v in lines[-1]["vms"]}
    assert (
        by["ams-sql02"]["state"] == "failed" and "injected permanent failure of promote" in by["ams-sql02"]["message"]
    )
    assert by["ams-dc01"]["state"] == "failed" and by["ams-dc01"]["message"].startswith("fence:")
    assert by["ams-sql01"]["state"] == "promoted" and by["ams-web09"]["state"] == "restarted"
    assert any(e["event"] == "action_retry" for e in lines), "transient failures are retried"
    assert all(len(h) <= 1 for h in running(tmp_path).values())
    # the faults cleared, --resume finishes the rest
    inject(cfg, "vc-ams", fail_rate=0.0, fail_permanent=[])
    code, lines, err = ftb_json("-c", str(cfg), "failover", "run", str(plan), "--yes", "--resume")
    assert code == 0, err
    assert {v["state"] for v in lines[-1]["vms"]} == {"promoted", "restarted"}
    no_violations(cfg)


# -- recovery order as stages (plan schema 2), and documents written before (schema 1) -----------
GROUPS = '[[groups]]\nname = "dc"\nvms = ["ams-dc*"]\n[[groups]]\nname = "db"\nvms = ["ams-sql*"]\n'


def site_failover(where: Path) -> tuple[Path, FailoverPlan]:
    """The demo's site ams1 failover (fenced), in three recovery groups: dc, db, rest."""
    cfg = K.copy_demo(where, op_seconds=0.01)
    (where / "recovery.toml").write_text(GROUPS)
    args = ["failover", "plan", "--domain", "site=ams1", "--fence", "--recovery-plan", str(where / "recovery.toml")]
    r = K.ftb("-c", str(cfg), *args, "--out", str(where / "fo.json"))
    assert r.returncode == 1, r.stderr  # VMs with no copy outside the site are blocked
    return cfg, FailoverPlan.load(where / "fo.json")


def test_a_document_has_one_edge_per_fence_however_many_vms_and_groups(demo_config: Path) -> None:
    """Recovery order is a barrier per group, not n x m edges: 3,000 VMs in 3 groups (every
    other one fenced) give exactly 1,500 edges, each from a promote to its own fence."""
    cfg = load_config(demo_config)
    steps = [
        Step("vc-ams", f"vm-{i}", f"vm{i:05d}", "promote", "why", "s1", "sim-copy", "host-21", "esx21", 5.0,
             f"g{i * 3 // 3000}", i * 3 // 3000, i, fence=i % 2 == 0, secondary_disks={"d0": "datastore-201"})
        for i in range(3000)
    ]  # fmt: skip
    doc = failover_document(FailoverPlan("test", "f" * 16, steps, []), cfg)
    parse_plan(doc)
    edges = [(a["id"], d) for a in doc["actions"] for d in a["depends_on"]]
    assert len(edges) == 1500
    kinds = {a["id"]: a["kind"] for a in doc["actions"]}
    assert all(kinds[a] == "promote" and kinds[d] == "fence" for a, d in edges)
    assert doc["schema_version"] == 2 and doc["groups"] == ["g0", "g1", "g2"]
    assert Counter(a.get("stage") for a in doc["actions"]) == {0: 1000, 1: 1000, 2: 1000, None: 1500}
    # and the file grows linearly: a bounded size per VM, whatever the groups' sizes
    assert len(json.dumps(doc)) < 3000 * 1500


def test_stages_keep_the_recovery_order_and_block_later_groups_when_one_fails(tmp_path: Path) -> None:
    """One promote of group db fails: the rest group is not run, naming it; and a document
    written the old way (schema 1, all the edges) runs the same, action for action."""
    outcomes = {}
    for how in ("staged", "edges"):
        cfg, plan = site_failover(tmp_path / how)
        doc = failover_document(plan, load_config(cfg))
        if how == "edges":
            doc = barriers_as_edges(doc)
        path = tmp_path / how / "doc.json"
        path.write_text(json.dumps(doc))
        inject(cfg, "vc-ams", fail_permanent=["vm-1002:promote"])  # ams-sql02, group db
        result = apply_plan(load_config(cfg), path, yes=True, live_checks=True, accept=("failover",))
        outcomes[how] = {a["id"]: (a["kind"], a["vm_name"], result.outcomes[a["id"]].state) for a in doc["actions"]}
        blocked = {k: o.message for k, o in result.outcomes.items() if o.state == "blocked"}
        failed = next(a["id"] for a in doc["actions"] if a["vm_name"] == "ams-sql02" and a["kind"] == "promote")
        ups = {a["id"]: a for a in doc["actions"] if a["kind"] in ("promote", "restart")}
        assert {ups[k]["vm_name"] for k in blocked} == {"ams-web09", "ams-web10"}
        assert set(blocked.values()) == {f"not run: it waits for {failed}, which failed"}
        # order: no VM of a group came up before every VM of the group before it was up
        start, end, _ = _times(result.journal, result.run_id)
        by_group: dict[str, list[str]] = {}
        for k, a in ups.items():
            by_group.setdefault(a["group"], []).append(k)
        assert max(end[k] for k in by_group["dc"]) <= min(start[k] for k in by_group["db"])
        no_violations(cfg)
    assert outcomes["staged"] == outcomes["edges"]
    states = Counter(s for _, _, s in outcomes["staged"].values())
    assert states == {"succeeded": 7, "failed": 1, "blocked": 2}, states


def test_stop_starts_no_new_action_and_leaves_the_rest_pending(tmp_path: Path) -> None:
    """The seam a signal handler uses: set from an event sink as the first action finishes,
    nothing else starts; the actions never started stay pending in the journal."""
    cfg_path, plan = site_failover(tmp_path)
    cfg = load_config(cfg_path)
    doc = parse_plan(failover_document(plan, cfg))
    stop = threading.Event()
    seen: list[str] = []

    def sink(e: ApplyEvent) -> None:
        seen.append(e.event)
        if e.event == "action_succeeded":
            stop.set()

    with Session(cfg) as s:
        eps = sorted(e.name for e in doc.endpoints)
        inv = collect(s, eps)
        journal = Journal(tmp_path / "journal.sqlite")
        acts = list(doc.actions)
        run_id = journal.start_run(
            doc.plan_id, "doc.json", inv.fingerprint(), [(a.id, a.kind, a.endpoint, a.vm) for a in acts]
        )
        ex = Executor(
            {ep: s.driver(ep) for ep in eps},
            LiveView(inv),
            journal,
            run_id,
            journal.actions(run_id),
            settings_for(cfg),
            sink,
        )
        limits = Limits({ep: 1 for ep in eps}, 1)
        pending = {a.id: PENDING for a in acts}
        out = run_actions(acts, pending, ex, limits, journal, run_id, sink, stop=stop)
        states = {k: r.state for k, r in journal.actions(run_id).items()}
        journal.close()
    assert list(out) == ["a1"] and out["a1"].state == "succeeded"
    assert states.pop("a1") == "succeeded"
    assert set(states.values()) == {PENDING} and len(states) == len(acts) - 1
    assert seen.count("action_started") == 1 and "action_blocked" not in seen


def test_stages_are_checked_when_a_document_is_read(demo_config: Path) -> None:
    """Stages only in schema 2, within its groups, in order (so every wait points back)."""
    from ftbridge.errors import PlanError

    cfg = load_config(demo_config)
    steps = [
        Step("vc-ams", f"vm-{i}", f"vm{i}", "promote", "why", "s1", "sim-copy", None, None, 5.0, f"g{i}", i, 0)
        for i in range(3)
    ]
    doc = failover_document(FailoverPlan("test", "f" * 16, steps, []), cfg)
    bad: list[tuple[str, Any]] = [
        ("groups: Field required", lambda d: d.pop("groups")),
        ("action a1: stage: not in a schema_version 1 plan", lambda d: (d.pop("groups"), d.update(schema_version=1))),
        ("action a3: stage 5, but the plan has 3 group(s)", lambda d: d["actions"][2].update(stage=5)),
        ("action a3: stage 0 after an action of stage 1", lambda d: d["actions"][2].update(stage=0)),
    ]
    for message, mutate in bad:
        d = json.loads(json.dumps(doc))
        mutate(d)
        with pytest.raises(PlanError, match=re.escape(message)):
            parse_plan(K.resign(d))
    assert barriers_as_edges(doc)["schema_version"] == 1
    parse_plan(barriers_as_edges(doc))


def test_an_operation_found_after_a_crash_that_the_platform_then_forgets_leaves_the_live_estate_to_decide(
    tmp_path: Path,
) -> None:
    """A crash between starting an action and journaling its handle: the driver's
    ``pending_operations`` lists an operation, which the platform no longer knows when polled
    (its jobs cleared, or an oVirt protect found again whose last steps needed the lost handle:
    poll raises NotFound). As for a journaled handle the platform forgot, the action goes on to
    its postcondition and runs: NotFound does not fail it."""
    from ftbridge.apply.journal import ActionRecord
    from ftbridge.drivers import Operation

    cfg_path, plan = site_failover(tmp_path)
    cfg = load_config(cfg_path)
    doc = parse_plan(failover_document(plan, cfg))
    a = doc.actions[0]
    with Session(cfg) as s:
        inv = collect(s, [a.endpoint])
        drv = s.driver(a.endpoint)
        asked: list[str] = []

        def pending(vm_id: str) -> list[Operation]:  # what no sim gives: a listed, then forgotten one
            asked.append(vm_id)
            return [Operation(id="op-the-platform-forgot", endpoint=a.endpoint, kind=a.kind, vm=vm_id)]

        drv.pending_operations = pending  # type: ignore[method-assign]
        journal = Journal(tmp_path / "journal.sqlite")
        run_id = journal.start_run(doc.plan_id, "doc.json", inv.fingerprint(), [(a.id, a.kind, a.endpoint, a.vm)])
        ex = Executor({a.endpoint: drv}, LiveView(inv), journal, run_id, {}, settings_for(cfg), lambda e: None)
        out = ex._run(a, ActionRecord(a.id, "running", 1, None, None, None), 1)
        journal.close()
    assert asked == [a.vm]
    assert out.state in ("succeeded", "skipped"), out
