"""What each endpoint may be asked: the capabilities its site offers, as plans and failover
plans read them from the inventory."""

from __future__ import annotations

from collections.abc import Mapping

from ftbridge.errors import FtbridgeError
from ftbridge.inventory import Inventory

Offered = Mapping[str, frozenset[str] | None]


def capabilities_for(inv: Inventory) -> dict[str, frozenset[str] | None]:
    """Per endpoint, what the plan may ask of it: what its site said it can do (``probe()``,
    carried in the inventory), else what its driver class declares, else (driver not installed
    here) nothing is ruled out."""
    from ftbridge.drivers.registry import load_driver

    out: dict[str, frozenset[str] | None] = {}
    for ep in inv.endpoints:
        if ep.capabilities is not None:
            out[ep.name] = frozenset(ep.capabilities)
            continue
        try:
            out[ep.name] = frozenset(c.value for c in load_driver(ep.driver).capabilities)
        except FtbridgeError:
            out[ep.name] = None
    return out


def offers(caps: Offered, endpoint: str, capability: str) -> bool:
    """May a plan ask ``endpoint`` for ``capability``? What its site narrowed (``caps``, from
    :func:`capabilities_for`); an endpoint of unknown capabilities (its driver not installed
    here): nothing is ruled out."""
    site = caps.get(endpoint)
    return site is None or capability in site
