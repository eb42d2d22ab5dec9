"""The sim's "vsphere" flavor imitates this driver: the same mechanisms with the same rules, and
the same capabilities (issue 10: a demo must not show plans the real platform cannot run)."""

from __future__ import annotations

from dataclasses import replace

from ftbridge_vsphere.driver import VsphereDriver

from ftbridge.sim import driver as sim


def test_the_vsphere_flavor_offers_the_drivers_mechanisms_with_its_rules() -> None:
    offered = sim.FLAVOR_MECHANISMS["vsphere"]
    assert tuple(VsphereDriver.mechanisms) == offered  # same names, same preference order
    for name in offered:  # every rule but the wording
        assert replace(sim.MECHANISMS[name], description="") == replace(VsphereDriver.mechanisms[name], description="")


def test_the_vsphere_flavor_declares_the_drivers_capabilities() -> None:
    assert frozenset(sim.FLAVOR_CAPABILITIES["vsphere"]) == VsphereDriver.capabilities
