"""Failover planning: who comes up where, who cannot and why, and no split brain."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftbridge.config import load_config
from ftbridge.domains import DomainSelector, Failed
from ftbridge.errors import ConfigError
from ftbridge.failover.plan import FailoverPlan, affected_by, plan_failover
from ftbridge.failover.recovery import RecoveryPlan, load_recovery_plan
from ftbridge.services.inventory import collect
from ftbridge.services.session import Session
from ftbridge.sim.driver import SimDriver


def inventory(cfg_path: Path):  # type: ignore[no-untyped-def]
    cfg = load_config(cfg_path)
    with Session(cfg) as s:
        return cfg, collect(s)


def site_plan(cfg_path: Path, **kw):  # type: ignore[no-untyped-def]
    cfg, inv = inventory(cfg_path)
    failed = Failed.from_selectors(inv, [DomainSelector.parse("site=ams1")])
    return inv, plan_failover(inv, cfg, affected_by(inv, failed), failed, **kw)


def test_site_failure_brings_up_every_vm_with_a_secondary_outside_it(demo_config: Path) -> None:
    inv, plan = site_plan(demo_config, fence=True)
    up = {s.vm_name: s for s in plan.steps}
    # storage lost with the site: promoted from copies outside it; storage in ams2 but run in
    # ams1: restarted from that intact storage, losing nothing
    assert {n for n, s in up.items() if s.kind == "promote"} == {"ams-sql01", "ams-sql02", "ams-dc01"}
    assert {n for n, s in up.items() if s.kind == "restart"} == {"ams-web09", "ams-web10"}
    for s in up.values():
        host = inv.host(s.endpoint, s.host)
        assert host is not None and host.domain.site == "ams2"  # a survivor
        assert s.fence  # the site is declared failed but its hosts still answer: fence first
        assert s.original["disks"]  # where it ran, for failback
    assert all(s.lag == 0 and "losing nothing" in s.why for s in up.values() if s.kind == "restart")
    blocked = {b.vm_name: b.reason for b in plan.blocked}
    assert "lies in the failed domain" in blocked["ams-erp01"]
    # its FT tie-breaker sat on a local disk of a host in the lost site: the copy cannot take over
    assert "esx-ams1-01-local" in blocked["ams-mq01"]
    assert blocked["ams-pay01"].endswith("it has no secondary")
    assert not set(up) & set(blocked)


def test_no_promotion_while_the_primary_runs_unless_fenced_or_forced(demo_config: Path) -> None:
    _, plan = site_plan(demo_config)
    assert not plan.steps
    assert all("fence it" in b.reason or "secondary" in b.reason for b in plan.blocked)
    assert any("still runs on a reachable host" in b.reason for b in plan.blocked)
    _, forced = site_plan(demo_config, force=True)
    assert forced.steps and all(s.forced and not s.fence for s in forced.steps)


def test_real_outage_needs_no_fencing(demo_config: Path) -> None:
    cfg = load_config(demo_config)
    SimDriver(cfg.endpoints["vc-ams"], endpoint="vc-ams").ex_inject(
        hosts_down=["host-11", "host-12"],
        datastores_down=["datastore-101", "datastore-102", "datastore-103", "datastore-104", "datastore-111"],
    )
    cfg, inv = inventory(demo_config)
    failed = Failed.from_inventory(inv)
    plan = plan_failover(inv, cfg, affected_by(inv, failed), failed)
    assert {s.vm_name for s in plan.steps if s.kind == "promote"} == {"ams-sql01", "ams-sql02", "ams-dc01"}
    assert {s.vm_name for s in plan.steps if s.kind == "restart"} == {"ams-web09", "ams-web10"}
    assert not any(s.fence or s.forced for s in plan.steps)  # the hosts are reported down: proven


def test_recovery_plan_orders_groups(demo_config: Path, tmp_path: Path) -> None:
    rp = tmp_path / "recovery.toml"
    rp.write_text(
        '[[groups]]\nname = "dc"\nvms = ["ams-dc*"]\n[[groups]]\nname = "db"\nvms = ["vc-ams/ams-sql02", "ams-sql*"]\n'
    )
    _, plan = site_plan(demo_config, fence=True, recovery=load_recovery_plan(rp))
    assert [(s.group, s.vm_name) for s in plan.steps] == [
        ("dc", "ams-dc01"),
        ("db", "ams-sql02"),
        ("db", "ams-sql01"),
        ("rest", "ams-web09"),
        ("rest", "ams-web10"),
    ]


def test_survivors_without_memory_block_with_reason(small_estate: Path) -> None:
    text = small_estate.read_text().replace('name = "esx-b1"', 'name = "esx-b1"\nmemory_gib = 8')
    text = text.replace('name = "app01"', 'name = "app01"\nmemory_gib = 16')
    text = text.replace(
        'secondaries = [{ mechanism = "sim-copy", disks = { d0 = "ds-r" }',
        'secondaries = [{ mechanism = "sim-copy", host = "h3", disks = { d0 = "ds-r" }',
    )
    small_estate.write_text(text)
    cfgp = small_estate.parent / "ftbridge.toml"
    cfgp.write_text('[endpoints.lab]\ndriver = "sim"\nestate = "estate.toml"\n')
    cfg, inv = inventory(cfgp)
    vm = inv.find_vm("app01")
    failed = Failed(frozenset({("lab", "h2")}), frozenset({("lab", "ds-a")}), "test")
    plan = plan_failover(inv, cfg, [vm], failed, force=True)
    assert not plan.steps
    assert "not enough memory" in plan.blocked[0].reason and "16 GiB" in plan.blocked[0].reason


@pytest.mark.parametrize("text", ["site", "planet=earth", "site=", "=x"])
def test_bad_domain_selector(text: str) -> None:
    with pytest.raises(ConfigError, match="expected LEVEL=LABEL"):
        DomainSelector.parse(text)


def test_unknown_domain_label_is_an_error(demo_config: Path) -> None:
    _, inv = inventory(demo_config)
    with pytest.raises(ConfigError, match="no host or datastore is labelled site=atlantis"):
        Failed.from_selectors(inv, [DomainSelector.parse("site=atlantis")])


def test_plan_file_round_trip_and_corruption(demo_config: Path, tmp_path: Path) -> None:
    from ftbridge.errors import PlanError

    _, plan = site_plan(demo_config, fence=True)
    path = tmp_path / "fo.json"
    plan.save(path)
    again = FailoverPlan.load(path)
    assert again.to_dict() == plan.to_dict()
    path.write_text("{not json")
    with pytest.raises(PlanError, match="not JSON"):
        FailoverPlan.load(path)
    path.write_text('{"kind": "apply"}')
    with pytest.raises(PlanError, match="not an ftbridge failover plan"):
        FailoverPlan.load(path)


def test_recovery_plan_file_errors_name_the_key(tmp_path: Path) -> None:
    rp = tmp_path / "r.toml"
    rp.write_text('[[groups]]\nname = "x"\nvm = ["a"]\n')
    with pytest.raises(ConfigError, match=r"groups\[0\]\.vm: unknown key"):
        load_recovery_plan(rp)
    assert RecoveryPlan().groups == ()


@pytest.mark.parametrize("ha", [True, False])
def test_a_lost_host_with_intact_storage_restarts_from_the_primary(small_estate: Path, ha: bool) -> None:
    """Only the host died: the VM restarts from its intact shared storage, losing nothing, with
    or without a copy; promoting its copy (30 s behind) would lose data. With HA the platform
    goes first and ftbridge checks after the grace."""
    if ha:
        small_estate.write_text(small_estate.read_text().replace('name = "app01"', 'name = "app01"\nha = true'))
    cfgp = small_estate.parent / "ftbridge.toml"
    cfgp.write_text('[endpoints.lab]\ndriver = "sim"\nestate = "estate.toml"\n[failover]\nha_grace = "2m"\n')
    cfg, inv = inventory(cfgp)
    vm = inv.find_vm("app01")
    host_only = Failed(frozenset({("lab", "h2")}), frozenset(), "host h2")
    plan = plan_failover(inv, cfg, [vm], host_only, force=True)
    (step,) = plan.steps
    assert (step.kind, step.lag, step.secondary) == ("restart", 0.0, None) and not plan.blocked
    assert step.ha_grace == (120.0 if ha else 0.0)
    assert ("platform's HA" in step.why) is ha and "losing nothing" in step.why
    # its storage failed too: now the copy is the way back, and it may lose its lag
    both = Failed(frozenset({("lab", "h2")}), frozenset({("lab", "ds-a")}), "host and storage")
    plan = plan_failover(inv, cfg, [vm], both, force=True)
    (step,) = plan.steps
    assert step.kind == "promote" and step.secondary is not None and "primary storage is lost" in step.why
    again = FailoverPlan.from_dict(plan_failover(inv, cfg, [vm], host_only, force=True).to_dict())
    assert [s.kind for s in again.steps] == ["restart"]


def test_an_unreachable_host_is_not_a_dead_one(small_estate: Path) -> None:
    """A host management cannot reach may still run its VMs: neither a restart nor a promotion
    is planned for its VMs without a fence or a force, and nothing treats it as down."""
    cfgp = small_estate.parent / "ftbridge.toml"
    cfgp.write_text('[endpoints.lab]\ndriver = "sim"\nestate = "estate.toml"\n')
    cfg = load_config(cfgp)
    SimDriver(cfg.endpoints["lab"], endpoint="lab").ex_inject(hosts_unreachable=["h2"])
    cfg, inv = inventory(cfgp)
    assert inv.host("lab", "h2").state.value == "unreachable"
    assert not affected_by(inv, Failed.from_inventory(inv))  # unreachable is not reported down
    vm = inv.find_vm("app01")
    declared = Failed.from_selectors(inv, [DomainSelector.parse("host=esx-a2")])
    plan = plan_failover(inv, cfg, [vm], declared)
    assert not plan.steps and "cannot be reached" in plan.blocked[0].reason
    forced = plan_failover(inv, cfg, [vm], declared, force=True)
    assert forced.steps and forced.steps[0].forced


def test_no_step_asks_an_endpoint_for_what_its_site_does_not_offer(demo_config: Path) -> None:
    """What ``probe()`` found travels in the inventory (a bare ESXi host offers no promote, a
    read-only oVirt account nothing that changes): a failover plan that counted on it would fail
    at 2 a.m. half way; such VMs are blocked, saying why, and other endpoints' steps stay."""
    from dataclasses import replace

    from ftbridge.inventory import Inventory

    cfg, inv = inventory(demo_config)
    failed = Failed.from_selectors(inv, [DomainSelector.parse("site=ams1")])
    full = plan_failover(inv, cfg, affected_by(inv, failed), failed, fence=True)
    promoted = {s.endpoint for s in full.steps if s.kind == "promote"}
    ep = sorted(promoted)[0]

    def offering(*caps: str) -> Inventory:
        eps = [replace(e, capabilities=caps) if e.name == ep else e for e in inv.endpoints]
        return Inventory(eps, inv.hosts, inv.datastores, inv.vms, inv.collected_at, inv.networks)

    for caps, words in (
        (("inventory", "health", "fence", "restart"), "cannot promote a copy (its driver or site offers no promote)"),
        (
            ("inventory", "health", "promote", "restart"),
            "cannot fence a VM's host (its driver or site offers no fence)",
        ),
    ):
        less = offering(*caps)
        plan = plan_failover(less, cfg, affected_by(less, failed), failed, fence=True)
        mine = {s.vm_name for s in full.steps if s.endpoint == ep and (s.kind == "promote" or "fence" not in caps)}
        blocked = {b.vm_name: b.reason for b in plan.blocked}
        assert mine and all(blocked.get(n) == f"endpoint {ep} {words}" for n in mine), blocked
        assert {s.vm_name for s in plan.steps} == {s.vm_name for s in full.steps} - mine
