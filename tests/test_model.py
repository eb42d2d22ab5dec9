"""Failure domains: "separated at level L" is the core of every audit rule."""

from __future__ import annotations

import pytest

from ftbridge.model import FailureDomain, Level


def fd(**kw: str) -> FailureDomain:
    return FailureDomain(**kw)


@pytest.mark.parametrize(
    ("a", "b", "level", "separated"),
    [
        # differing at the level itself
        (fd(site="ams", array="a"), fd(site="ams", array="b"), Level.ARRAY, True),
        # differing above the level implies separation below it
        (fd(site="ams", array="a"), fd(site="rtm", array="a"), Level.ARRAY, True),
        (fd(site="ams", room="r1"), fd(site="rtm", room="r1"), Level.DATASTORE, True),
        # differing only below the level is not enough
        (fd(site="ams", array="a"), fd(site="ams", array="b"), Level.SITE, False),
        (fd(site="ams", room="r1", datastore="x"), fd(site="ams", room="r1", datastore="y"), Level.ROOM, False),
        # same everywhere
        (fd(site="ams", array="a"), fd(site="ams", array="a"), Level.ARRAY, False),
        # unknown labels prove nothing
        (fd(), fd(), Level.DATASTORE, False),
        (fd(array="a"), fd(), Level.ARRAY, False),
        (fd(site="ams"), fd(array="b"), Level.ARRAY, False),
        # a known difference above an unknown level still separates
        (fd(site="ams"), fd(site="rtm"), Level.ARRAY, True),
        # host stands apart from the nested levels
        (fd(host="h1", site="ams"), fd(host="h2", site="ams"), Level.HOST, True),
        (fd(host="h1", site="ams"), fd(host="h1", site="rtm"), Level.HOST, False),
    ],
)
def test_separated_at(a: FailureDomain, b: FailureDomain, level: Level, separated: bool) -> None:
    assert a.separated_at(b, level) is separated
    assert b.separated_at(a, level) is separated  # symmetric


def test_merged_labels_override_and_ignore_unknown_keys() -> None:
    d = fd(datastore="ds1", site="old").merged({"site": "ams", "array": "a", "colour": "red"})
    assert d == fd(datastore="ds1", site="ams", array="a")
    assert d.as_dict() == {"site": "ams", "array": "a", "datastore": "ds1"}


def test_the_inventory_fingerprint_is_the_digest_saved_plans_were_made_with() -> None:
    """A plan records its inventory's fingerprint and apply refuses a plan whose estate moved
    since: the digest must stay the one earlier versions computed (or every saved plan reads as
    stale), whatever order the drivers list VMs in. VMs go in (endpoint, id) order: "a" before
    "a-b" (a tuple compares the endpoint first), "vm10" before "vm9" (ids compare as strings)."""
    import hashlib

    from ftbridge.inventory import Inventory
    from ftbridge.model import VM, Disk, EndpointInfo, PowerState

    def vm(ep: str, vid: str) -> VM:
        disk = Disk(id="d0", size=1, datastore="ds1")
        return VM(id=vid, name=vid, endpoint=ep, host="h1", power=PowerState.ON, disks=(disk,), config_datastore="ds1")

    eps = [EndpointInfo(name=n, driver="sim") for n in ("a-b", "a")]
    listed = [vm("a-b", "vm1"), vm("a", "vm9"), vm("a", "vm10"), vm("a-b", "vm0")]
    text = "Ea\nEa-b\n" + "".join(
        f"V{ep}/{vid}/h1/ds1\n dd0/ds1/1\n" for ep, vid in (("a", "vm10"), ("a", "vm9"), ("a-b", "vm0"), ("a-b", "vm1"))
    )
    expected = hashlib.sha256(text.encode()).hexdigest()[:32]
    assert Inventory(eps, (), (), listed).fingerprint() == expected
    assert Inventory(eps, (), (), listed[::-1]).fingerprint() == expected
