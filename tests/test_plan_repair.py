"""The planner's repair step and the headroom pass's joint choice, on small estates where the
greedy pass leaves a finding open that a different choice of this plan's own placements fixes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "data"))

import plankit as K  # noqa: E402

from ftbridge.audit import audit  # noqa: E402
from ftbridge.inventory import Inventory  # noqa: E402
from ftbridge.model import SecondaryState  # noqa: E402
from ftbridge.planning import (  # noqa: E402
    capabilities_for,
    make_plan,
    plan_document,
    planner as P,  # noqa: E402
    repair as R,  # noqa: E402
    rules_for,
)
from ftbridge.planning.cover import EXACT_COVER, choose_cover  # noqa: E402

GIB = K.GIB
TIER1 = {
    "t1": {"separation": "array", "headroom": 10, "match": [{"tag": "t1"}]},
    "rest": {"separation": "array", "headroom": 10, "require_secondary": False, "match": [{}]},
}
HOSTS = [K.host("h1"), K.host("h2"), K.host("h3")]
#: every VM under one policy that wants no secondary: only moves (headroom, shared storage)
MOVES_ONLY = {"all": {"separation": "array", "headroom": 10, "require_secondary": False, "match": [{}]}}


def _copies(*sizes: int) -> Inventory:
    """VMs on array A needing a copy outside it; room above the 10% headroom: 100 GiB on b1
    (array B), 60 GiB on b2 (array C). Copies of 60, 50 and 50 GiB: the roomiest-first pass
    puts the 60 on b1 and a 50 on b2, and the last 50 fits nowhere, though 60 on b2 and both
    50s on b1 fit."""
    dss = [K.ds("p", 2000, 1500, array="A"), K.ds("b1", 1000, 200, array="B"), K.ds("b2", 1000, 160, array="C")]
    vms = [K.vm(f"x{k}-{s}", "h1", [("d0", s, "p")], tags=("t1",)) for k, s in enumerate(sizes)]
    return K.inventory(HOSTS, dss, vms)


def _balanced(inv: Inventory, policies: dict[str, Any] = TIER1) -> tuple[P.Planner, dict[str, Any]]:
    """One balanced planning run (no best-fit rerun): what the repair step itself achieves."""
    cfg = K.config(policies)
    rules, known = rules_for(inv)
    planner = P.Planner(inv, cfg, audit(inv, cfg).findings, rules, known, capabilities=capabilities_for(inv))
    doc = plan_document(inv, cfg, planner.run(), created_at=0.0, generator="test")
    return planner, doc


def _fixed_for_good(doc: dict[str, Any], inv: Inventory, policies: dict[str, Any] = TIER1) -> None:
    """Safe at every step whatever the order, and after it the model finds nothing the plan
    claims to have closed (every copy separated from its primary, every datastore above its
    headroom)."""
    assert K.capacity_violations(doc, inv, keep_pct=10) == []
    after = audit(K.apply_virtually(doc, inv), K.config(policies))
    closed = {c for a in doc["actions"] for c in a["closes"]}
    assert not closed & {f.id for f in after.findings if f.fixable}


def test_repair_moves_a_copy_this_plan_placed_to_make_room() -> None:
    inv = _copies(60, 50, 50)
    planner, doc = _balanced(inv)
    assert doc["unfixable"] == []
    where = {a["vm"]: a["spec"]["disks"]["d0"] for a in doc["actions"]}
    assert where == {"x0-60": "b2", "x1-50": "b1", "x2-50": "b1"}
    assert planner.repair.work > 0
    _fixed_for_good(doc, inv)
    # the moved copy's action reads as if planned there: its reason names its new place
    (big,) = [a for a in doc["actions"] if a["vm"] == "x0-60"]
    assert "on ds-b2" in big["reason"] and big["datastores"] == ["b2"]


def test_repair_gives_up_when_no_choice_fits_and_keeps_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    # 210 GiB of copies for 160 GiB of room: one 50 GiB copy cannot be placed, however they move
    inv = _copies(60, 50, 50, 50)
    planner, doc = _balanced(inv)
    assert len([a for a in doc["actions"] if a["kind"] == "protect"]) == 3
    (u,) = doc["unfixable"]
    assert u["category"] == "capacity" and "50 GiB free above its 10% headroom" in u["reason"], u
    assert 0 < planner.repair.work <= R.REPAIR_WORK_EACH
    _fixed_for_good(doc, inv)
    # the work is bounded by what it is given (placements considered, counted): in all, and per
    # VM it tries to fix; seven copies are left whatever it does here
    inv = _copies(60, 50, 50, 50, 40, 40, 30, 30, 20, 20)
    unbounded, _ = _balanced(inv)
    assert unbounded.repair.work > 10
    monkeypatch.setattr(R, "REPAIR_WORK", 5)
    planner, doc = _balanced(inv)
    assert planner.repair.work <= 5 and len(doc["unfixable"]) == 7
    monkeypatch.setattr(R, "REPAIR_WORK", 2_000)
    monkeypatch.setattr(R, "REPAIR_WORK_EACH", 1)
    planner, doc = _balanced(inv)
    assert planner.repair.work <= 7 and len(doc["unfixable"]) == 7
    assert K.capacity_violations(doc, inv, keep_pct=10) == []


def test_nothing_left_open_means_no_repair() -> None:
    inv = _copies(50, 50)
    planner, doc = _balanced(inv)
    assert doc["unfixable"] == [] and planner.repair.work == 0 and planner.repair._reg is None


def test_headroom_repair_puts_an_earlier_disk_move_elsewhere() -> None:
    # full1 must free 30 GiB, full2 80 GiB; room above the headroom: 50 GiB on a, 100 on b. The
    # roomiest-first pass moves full1's 30 GiB disk to b, leaving 70 there: full2's 80 GiB disk
    # then fits nowhere, unless the earlier move goes to a instead.
    dss = [
        K.ds("full1", 1000, 70, array="A"),
        K.ds("full2", 1000, 20, array="A"),
        K.ds("a", 1000, 150, array="B"),
        K.ds("b", 1000, 200, array="C"),
    ]
    vms = [
        K.vm("v1", "h1", [("d0", 30, "full1")]),
        K.vm("f1", "h1", [("d0", 500, "full1")]),
        K.vm("v2", "h1", [("d0", 80, "full2")]),
        K.vm("f2", "h1", [("d0", 500, "full2")]),
    ]
    inv = K.inventory(HOSTS, dss, vms)
    planner, doc = _balanced(inv, MOVES_ONLY)
    assert doc["unfixable"] == []
    assert {a["vm"]: a["to"] for a in doc["actions"]} == {"v1": "a", "v2": "b"}
    _fixed_for_good(doc, inv, MOVES_ONLY)
    (m1,) = [a for a in doc["actions"] if a["vm"] == "v1"]
    assert m1["reason"].endswith("from ds-full1 to ds-a") and m1["datastores"] == ["a", "full1"]
    # through make_plan too (the same plan: nothing was left for a best-fit run)
    assert make_plan(inv, K.config(MOVES_ONLY), created_at=0.0)["actions"] == doc["actions"]


def test_headroom_choice_is_joint_with_where_the_disks_fit() -> None:
    """The fewest bytes that free enough (30: the 20 and the 10) do not fit; the greedy choice
    leaves out the disk that found no room and then has too little left; trying every set,
    fewest bytes first, finds the 20 and the 12."""
    cands = [(30, "a30", None, ""), (20, "b20", None, ""), (12, "c12", None, ""), (10, "d10", None, "")]
    tried: list[list[str]] = []

    def attempt(picks: list[Any]) -> str | None:
        keys = sorted(c[1] for c in picks)
        tried.append(keys)
        if keys == ["b20", "c12"]:
            return None
        return "b20" if "b20" in keys else keys[0]

    done, _ = choose_cover(cands, 30, attempt)
    assert done and tried[-1] == ["b20", "c12"]
    assert tried[0] in (["a30"], ["b20", "d10"])  # the fewest bytes first
    assert all(sum(int(k[1:]) for k in t) >= 30 for t in tried)
    # beyond EXACT_COVER candidates: greedy (leave out what found no room), bounded
    many = cands + [(1, f"z{k:02d}", None, "") for k in range(EXACT_COVER)]
    tried.clear()
    done, left_out = choose_cover(many, 30, attempt)
    assert len(tried) <= len(many) + 1 and left_out


def test_a_primary_move_without_room_tries_again_after_the_headroom_pass() -> None:
    # L's primary must leave host-local storage for s, the one shared datastore its host mounts,
    # which is 10 GiB below its headroom; the headroom pass moves v1's 100 GiB off s (to t, which
    # L's host does not mount): then s has room for L's 90 GiB, once v1's move is done.
    dss = [
        K.ds("loc", 1000, 500, hosts=("h1",), array="L"),
        K.ds("s", 1000, 90, array="B"),
        K.ds("t", 1000, 200, hosts=("h2", "h3"), array="C"),
    ]
    vms = [
        K.vm("L", "h1", [("d0", 90, "loc")]),
        K.vm("v1", "h2", [("d0", 100, "s")]),
        K.vm("f", "h2", [("d0", 810, "s")]),
    ]
    inv = K.inventory(HOSTS, dss, vms)
    _, doc = _balanced(inv, MOVES_ONLY)
    assert doc["unfixable"] == []
    (v1,) = [a for a in doc["actions"] if a["vm"] == "v1"]
    (mv,) = [a for a in doc["actions"] if a["vm"] == "L"]
    assert (v1["to"], mv["to"]) == ("t", "s") and v1["id"] in mv["depends_on"]
    _fixed_for_good(doc, inv, MOVES_ONLY)


def test_a_copy_put_elsewhere_waits_for_the_room_it_takes() -> None:
    # w's broken copy on b2 goes once its replacement (on p) is made: 70 GiB freed by that
    # removal. x1's copy takes 40 of it (and waits for it), x2's 50 fits nowhere: the repair step
    # puts the 60 GiB copy on b2 instead (room free only once w's old copy is gone, an action
    # planned before it: it waits for that) and both 50s on b1.
    dss = [
        K.ds("p", 2000, 1500, array="A"),
        K.ds("p2", 1000, 100, array="D"),
        K.ds("b1", 1000, 200, array="B"),
        K.ds("b2", 1000, 110, array="C"),
    ]
    broken = K.sec("w-s", "sim-copy", {"d0": "b2"}, sizes={"d0": 70}, state=SecondaryState.BROKEN)
    vms = [
        K.vm("w", "h1", [("d0", 70, "p2")], tags=("t1",), secs=(broken,)),
        *(K.vm(f"x{k}-{s}", "h1", [("d0", s, "p")], tags=("t1",)) for k, s in enumerate((60, 50, 50))),
    ]
    inv = K.inventory(HOSTS, dss, vms)
    _, doc = _balanced(inv)
    assert doc["unfixable"] == []
    (gone,) = [a for a in doc["actions"] if a["kind"] == "unprotect"]
    (big,) = [a for a in doc["actions"] if a["vm"] == "x0-60"]
    assert big["spec"]["disks"] == {"d0": "b2"} and gone["id"] in big["depends_on"]
    _fixed_for_good(doc, inv)
