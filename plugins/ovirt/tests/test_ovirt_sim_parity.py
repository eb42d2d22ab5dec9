"""The sim's "ovirt" flavor imitates this driver: same capabilities, same mechanisms, same rules.

The demo and the core's tests plan on the sim; a plan they make must be one the real driver can
run (issue 10: the sim gave oVirt-shaped endpoints ``move_vm``, which the engine has no form of).
"""

from __future__ import annotations

import dataclasses

from ftbridge_ovirt.driver import MECHANISMS, OvirtDriver

from ftbridge.sim import driver as sim


def test_the_sim_declares_what_the_driver_implements() -> None:
    flavor = sim.FLAVOR_CAPABILITIES["ovirt"]
    assert flavor == OvirtDriver.capabilities


def test_the_sim_offers_the_mechanisms_with_the_drivers_rules() -> None:
    # ovirt-dr needs an array and a second engine: the driver offers it only with DR pairs
    offered = tuple(m for m in OvirtDriver.mechanisms if m != "ovirt-dr")
    assert sim.FLAVOR_MECHANISMS["ovirt"] == offered
    for name in offered:
        mine = dataclasses.replace(MECHANISMS[name], description="")
        theirs = dataclasses.replace(sim.MECHANISMS[name], description="")
        assert mine == theirs, name
