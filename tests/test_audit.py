"""Audit rules: each fires where it should, and only there."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from ftbridge.audit import RULES, Severity, audit
from ftbridge.config import load_config
from ftbridge.services.inventory import collect
from ftbridge.services.session import Session


def run_audit(cfg_path: Path):  # type: ignore[no-untyped-def]
    cfg = load_config(cfg_path)
    with Session(cfg) as s:
        inv = collect(s)
    return inv, audit(inv, cfg)


def test_demo_has_every_rule_on_every_endpoint_it_applies_to(demo_config: Path) -> None:
    inv, report = run_audit(demo_config)
    rules = {f.rule for f in report.findings}
    required = {
        "primary-not-shared",
        "no-secondary",
        "secondary-not-separated",
        "secondary-on-primary-host",
        "secondary-lag",
        "ft-metadata-not-shared",
        "datastore-over-headroom",
    }
    assert required <= rules, required - rules
    assert {f.endpoint for f in report.findings} == {"vc-ams", "pve-rtm", "ovirt-fra"}
    assert len(inv.vms) >= 55
    # evidence for a known violation: ams-erp01's FT secondary sits in the primary's site
    erp = [f for f in report.findings if f.vm_name == "ams-erp01"]
    assert [f.rule for f in erp] == ["secondary-not-separated"]
    assert erp[0].evidence["level"] == "site" and "losing site ams1 takes" in erp[0].message
    # compliant VMs raise nothing
    assert not [f for f in report.findings if f.vm_name in ("ams-sql01", "rtm-pg01", "fra-oracle01")]


SMALL = """
[endpoints.lab]
driver = "sim"
estate = "estate.toml"

[[domains]]
cluster = "ams"
site = "ams"
[[domains]]
cluster = "rtm"
site = "rtm"
[[domains]]
datastore = "ams-shared-a"
array = "A"
[[domains]]
datastore = "ams-shared-b"
array = "B"
[[domains]]
datastore = "rtm-shared"
site = "rtm"
array = "R"

[policies.p]
separation = "{sep}"
rpo = "{rpo}"
headroom = {headroom}
"""


def cfg(small_estate: Path, sep: str = "array", rpo: str = "15m", headroom: float = 10) -> Path:
    p = small_estate.parent / "ftbridge.toml"
    p.write_text(SMALL.format(sep=sep, rpo=rpo, headroom=headroom))
    return p


def by_vm(report) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    out: dict[str, set[str]] = {}
    for f in report.findings:
        out.setdefault(f.vm_name or f"ds:{f.datastore}", set()).add(f.rule)
    return out


def test_rules_on_small_estate(small_estate: Path) -> None:
    _, report = run_audit(cfg(small_estate))
    found = by_vm(report)
    assert found["db01"] == {"primary-not-shared", "no-secondary"}
    assert "app01" not in found  # 30 s lag < 15 min RPO, ams/A vs rtm/R
    assert found["web01"] == {"no-secondary"}
    f = next(f for f in report.findings if f.vm_name == "db01" and f.rule == "primary-not-shared")
    assert f.evidence["datastores"] == ["esx-a1-local"] and f.evidence["bytes"] == 140 * 1024**3
    assert f.severity is Severity.ERROR and f.fixable


def test_lag_over_rpo(small_estate: Path) -> None:
    _, report = run_audit(cfg(small_estate, rpo="10s"))
    lag = [f for f in report.findings if f.rule == "secondary-lag"]
    assert [(f.vm_name, f.evidence["lag"], f.evidence["rpo"]) for f in lag] == [("app01", 30, 10.0)]


def test_separation_level_matters(small_estate: Path) -> None:
    # app01: ds-a (site ams, array A) -> ds-r (site rtm): separated at every level
    _, report = run_audit(cfg(small_estate, sep="site"))
    assert "app01" not in by_vm(report)
    # move its copy next to the primary: now not separated at array level, with evidence
    text = small_estate.read_text().replace('disks = { d0 = "ds-r" }', 'disks = { d0 = "ds-a" }')
    small_estate.write_text(text)
    for state in small_estate.parent.glob("*.simstate.db*"):
        state.unlink()  # the sim keeps its state; start from the edited estate
    _, report = run_audit(cfg(small_estate))
    f = next(f for f in report.findings if f.vm_name == "app01")
    assert f.rule == "secondary-not-separated" and "losing array A takes" in f.message


def test_headroom(small_estate: Path) -> None:
    # esx-a1-local: 500 GiB, 140 GiB used -> 72% free; a 75% headroom flags it
    _, report = run_audit(cfg(small_estate, headroom=75))
    flagged = {f.evidence["name"] for f in report.findings if f.rule == "datastore-over-headroom"}
    assert flagged == {"esx-a1-local"}


def test_findings_sorted_worst_first_and_ids_stable(small_estate: Path) -> None:
    path = cfg(small_estate, rpo="10s")
    _, a = run_audit(path)
    _, b = run_audit(path)
    assert [f.id for f in a.findings] == [f.id for f in b.findings]
    ranks = [f.severity.rank for f in a.findings]
    assert ranks == sorted(ranks, reverse=True)
    assert len({f.id for f in a.findings}) == len(a.findings)


def test_every_rule_is_documented() -> None:
    for rule in RULES.values():
        assert rule.summary and isinstance(rule.severity, Severity)


@pytest.mark.parametrize("down", ["hosts_down", "datastores_down"])
def test_primary_unavailable_is_critical_and_not_plan_fixable(small_estate: Path, down: str) -> None:
    from ftbridge.sim.driver import SimConfig, SimDriver

    drv = SimDriver(SimConfig(driver="sim", estate=small_estate), endpoint="lab")
    drv.ex_inject(**{down: ["h1"] if down == "hosts_down" else ["ds-l1"]})
    _, report = run_audit(cfg(small_estate))
    f = next(f for f in report.findings if f.vm_name == "db01" and f.rule == "primary-unavailable")
    assert f.severity is Severity.CRITICAL and not f.fixable and "failover" in f.fix


def test_fixable_settled_from_a_given_plan_equals_one_made_here(demo_config: Path) -> None:
    from ftbridge.planning import make_plan
    from ftbridge.services.compliance import audit_estate

    cfg = load_config(demo_config)
    with Session(cfg) as s:
        inv = collect(s)
    own = audit_estate(inv, cfg)
    given = audit_estate(inv, cfg, make_plan(inv, cfg))
    assert [(f.id, f.fixable, f.fix) for f in own.findings] == [(f.id, f.fixable, f.fix) for f in given.findings]
    assert sum(f.fixable for f in own.findings) == 24  # the demo: 27 findings, 3 the planner cannot fix


def test_the_audit_is_the_same_whatever_order_the_estate_lists_its_vms(demo_config: Path) -> None:
    """The audit visits VMs host by host (:meth:`Inventory.vms_by_host`, for the processor's
    caches), so its report must not depend on that order: findings sort by VM id after the
    name, which two VMs may share (Proxmox VE allows it), here two on one host."""
    import random
    from dataclasses import replace

    from ftbridge.inventory import Inventory

    cfg = load_config(demo_config)
    inv, report = run_audit(demo_config)
    named = {f.vm for f in report.findings if f.rule == "no-secondary"}
    twin_of = next(v for v in inv.vms if v.id in named and v.host is not None)
    twin = replace(twin_of, id=f"{twin_of.id}-twin")
    vms = [*inv.vms, twin]
    seen = []
    for order in (vms, vms[::-1], random.Random(7).sample(vms, len(vms))):
        again = Inventory(inv.endpoints, inv.hosts, inv.datastores, order, inv.collected_at, inv.networks)
        seen.append([(f.id, f.message) for f in audit(again, cfg).findings])
    assert seen[0] == seen[1] == seen[2]
    twins = [fid for fid, _ in seen[0] if fid.startswith("no-secondary:") and twin_of.id in fid]
    assert twins == [f"no-secondary:{twin_of.endpoint}/{twin_of.id}", f"no-secondary:{twin_of.endpoint}/{twin.id}"]


def test_vms_by_host_lists_each_vm_once_host_by_host_cluster_by_cluster(demo_config: Path) -> None:
    import random
    from dataclasses import replace

    from ftbridge.inventory import Inventory

    demo, _ = run_audit(demo_config)
    stray = replace(demo.vms[0], id="no-host", host=None)  # listed first, belongs last in its endpoint
    mixed = [stray, *random.Random(3).sample(demo.vms, len(demo.vms))]  # clusters and hosts interleaved
    inv = Inventory(demo.endpoints, demo.hosts, demo.datastores, mixed, demo.collected_at, demo.networks)
    order = inv.vms_by_host()
    assert sorted((v.endpoint, v.id) for v in order) == sorted((v.endpoint, v.id) for v in inv.vms)
    assert order is inv.vms_by_host()  # asked once, then kept
    position = {(v.endpoint, v.id): k for k, v in enumerate(inv.vms)}
    for key in (lambda v: (v.endpoint, inv.cluster_of(v)), lambda v: (v.endpoint, inv.cluster_of(v), v.host)):
        left: set[object] = set()
        prev: object = None
        for v in order:
            k = key(v)
            if k != prev:
                assert k not in left, f"{k} comes back after others"
                left.add(k)
                prev = k
    for ep in {v.endpoint for v in order}:
        hosts = [v.host for v in order if v.endpoint == ep]
        assert hosts[hosts.index(None) if None in hosts else len(hosts) :] == [None] * hosts.count(None)
    assert [v.host for v in order if v.endpoint == stray.endpoint][-1] is None
    for a, b in itertools.pairwise(order):
        if (a.endpoint, a.host) == (b.endpoint, b.host):
            assert position[(a.endpoint, a.id)] < position[(b.endpoint, b.id)]  # inventory order within a host
    assert len({(v.endpoint, v.host) for v in order}) > 3 and len(inv.vms) > len({(v.endpoint, v.host) for v in order})
