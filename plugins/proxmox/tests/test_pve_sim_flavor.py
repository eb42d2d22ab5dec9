"""The sim's "proxmox" flavor imitates this driver: the same capabilities and the same
mechanisms with the same placement rules, so a demo or a plan made on the sim holds nothing the
real driver refuses (issue 10). Compared from both sides' own declarations."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pytest
from ftbridge_proxmox.driver import ProxmoxDriver

from ftbridge.sim import driver as sim


def _rules(rules: Any) -> dict[str, Any]:
    out = asdict(rules)
    out.pop("description")  # words for people; each side writes its own
    return out


def test_the_sim_flavor_offers_the_drivers_mechanisms_with_the_same_rules() -> None:
    offered = sim.FLAVOR_MECHANISMS["proxmox"]
    assert tuple(offered) == tuple(ProxmoxDriver.mechanisms)
    for name in offered:
        assert _rules(sim.MECHANISMS[name]) == _rules(ProxmoxDriver.mechanisms[name]), name


def test_the_sim_flavor_declares_the_drivers_capabilities() -> None:
    flavors = getattr(sim, "FLAVOR_CAPABILITIES", None)
    if flavors is None:
        pytest.skip(
            "the sim declares no per-flavor capabilities yet (ftbridge.sim.driver.FLAVOR_CAPABILITIES, "
            "issue 10): its proxmox-shaped endpoints still offer every capability, move_vm included"
        )
    assert frozenset(flavors["proxmox"]) == ProxmoxDriver.capabilities
