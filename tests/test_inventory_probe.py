"""What probe() narrows travels with the endpoint into the inventory, and survives a saved file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ftbridge.config import load_config
from ftbridge.drivers import BackendInfo, Capability
from ftbridge.inventory import Inventory
from ftbridge.services.inventory import collect
from ftbridge.services.session import Session
from ftbridge.sim.driver import FLAVOR_CAPABILITIES, SimDriver


def inventory(cfg: Path) -> Inventory:
    with Session(load_config(cfg)) as s:
        return collect(s)


def test_a_site_that_narrows_is_inventoried_as_it_said(demo_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A site without FT licences and without failover tests: the inventory says so per endpoint."""
    probe = SimDriver.probe

    def narrowed(self: SimDriver) -> BackendInfo:
        info = probe(self)
        if self.endpoint != "vc-ams":
            return info
        caps = info.capabilities - {Capability.PROTECT, Capability.TEST_FAILOVER}
        return dataclasses.replace(info, capabilities=caps, mechanisms=())

    monkeypatch.setattr(SimDriver, "probe", narrowed)
    inv = inventory(demo_config)
    vc = inv.endpoint("vc-ams")
    assert vc is not None and vc.capabilities is not None
    assert "protect" not in vc.capabilities and "test_failover" not in vc.capabilities
    assert "move_disk" in vc.capabilities and vc.mechanisms == ()
    assert list(vc.capabilities) == [c.value for c in Capability if c.value in vc.capabilities], "stable order"
    pve = inv.endpoint("pve-rtm")  # the sim answers as the flavour's real driver declares
    assert pve is not None and pve.capabilities == tuple(
        c.value for c in Capability if c in FLAVOR_CAPABILITIES["proxmox"]
    )
    assert "move_vm" not in pve.capabilities
    assert pve.mechanisms == ("pve-replication", "pve-standby")  # the sim's flavour narrows mechanisms
    again = Inventory.from_dict(json.loads(json.dumps(inv.to_dict())))
    assert again.endpoint("vc-ams") == vc, "a saved inventory keeps what the site said"


def test_probe_cannot_widen_what_the_class_declares(demo_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = SimDriver.probe
    monkeypatch.setattr(SimDriver, "capabilities", frozenset(Capability) - {Capability.FENCE})

    def wider(self: SimDriver) -> BackendInfo:
        return dataclasses.replace(probe(self), capabilities=frozenset(Capability), mechanisms=("teleport", "sim-copy"))

    monkeypatch.setattr(SimDriver, "probe", wider)
    inv = inventory(demo_config)
    for ep in inv.endpoints:
        assert ep.capabilities is not None and "fence" not in ep.capabilities
        assert ep.mechanisms == ("sim-copy",), "an undeclared mechanism is dropped"


def test_contract_1_drivers_still_narrow_mechanisms_through_details(
    demo_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = SimDriver.probe

    def old(self: SimDriver) -> BackendInfo:
        info = probe(self)
        return dataclasses.replace(info, mechanisms=None, details={"mechanisms": ["sim-copy"]})

    monkeypatch.setattr(SimDriver, "probe", old)
    assert {ep.mechanisms for ep in inventory(demo_config).endpoints} == {("sim-copy",)}


def test_the_planner_asks_no_site_for_what_it_said_it_cannot_do(
    demo_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vc-ams's site says: no protect, no moves. Its findings stay unfixed, saying why."""
    from ftbridge.planning import plan

    probe = SimDriver.probe
    cannot = {Capability.PROTECT, Capability.MOVE_DISK, Capability.MOVE_VM}

    def narrowed(self: SimDriver) -> BackendInfo:
        info = probe(self)
        return dataclasses.replace(info, capabilities=info.capabilities - cannot) if self.endpoint == "vc-ams" else info

    full = plan(inventory(demo_config), load_config(demo_config))
    assert {a.kind for a in full.actions if a.endpoint == "vc-ams"} & {"protect", "move_disk", "move_vm"}
    monkeypatch.setattr(SimDriver, "probe", narrowed)
    inv = inventory(demo_config)
    result = plan(inv, load_config(demo_config))
    asked = {a.kind for a in result.actions if a.endpoint == "vc-ams"}
    assert not asked & {c.value for c in cannot}, asked
    assert any(u.endpoint == "vc-ams" and "cannot" in u.reason for u in result.unfixable), result.unfixable
