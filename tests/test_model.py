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
