"""Collect an inventory from every endpoint concurrently, then add the operator's labels.

Each endpoint is probed first: the mechanisms and capabilities its site offers now travel with
it (``EndpointInfo.mechanisms`` / ``.capabilities``), so plans made from the inventory, even
offline from a saved one, never ask a site for what it said it cannot do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ftbridge.drivers.base import BackendInfo, Capability, Driver, StoragePlacement
from ftbridge.errors import FtbridgeError, StateStorageError, UnsupportedOperation
from ftbridge.inventory import Inventory, InventoryPart
from ftbridge.labels import apply_labels
from ftbridge.model import EndpointInfo
from ftbridge.services import lastseen
from ftbridge.services.session import Session

log = logging.getLogger(__name__)


def offered_mechanisms(drv: Driver, info: BackendInfo) -> tuple[str, ...]:
    """The mechanisms this site offers, preferred first: what ``probe()`` narrowed to, within what
    the class declares; contract-1 drivers said it in ``details["mechanisms"]`` (deprecated)."""
    declared = tuple(type(drv).mechanisms)
    narrowed = info.mechanisms
    if narrowed is None and isinstance(info.details.get("mechanisms"), (list, tuple)):
        narrowed = tuple(str(m) for m in info.details["mechanisms"])
    if narrowed is None:
        return declared
    return tuple(m for m in narrowed if m in declared)


def offered_capabilities(drv: Driver, info: BackendInfo) -> tuple[str, ...]:
    """What this site can do now: what ``probe()`` found, never more than the class declares.
    It travels with the endpoint into the inventory; the planner plans nothing outside it."""
    return tuple(c.value for c in Capability if c in info.capabilities and c in type(drv).capabilities)


def collect(session: Session, endpoints: Iterable[str] | None = None) -> Inventory:
    """Every endpoint's inventory, merged and labelled. Any endpoint failing fails the call:
    a partial inventory would make the audit and the planner lie."""
    names = session.endpoints(endpoints)

    def one(name: str) -> tuple[EndpointInfo, InventoryPart]:
        drv = session.driver(name)
        if not isinstance(drv, StoragePlacement):
            raise UnsupportedOperation(f"driver {drv.name} cannot take an inventory", endpoint=name)
        info = drv.probe()
        offered = offered_mechanisms(drv, info)
        t0 = time.perf_counter()
        part = drv.inventory()
        log.info("%s: inventory of %d VMs in %.2fs", name, len(part.vms), time.perf_counter() - t0)
        ep = EndpointInfo(
            name=name,
            driver=drv.name,
            version=info.version,
            mechanisms=offered,
            capabilities=offered_capabilities(drv, info),
        )
        return ep, part

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(names)))) as pool:
        futures = [pool.submit(one, n) for n in names]
        results = []
        for name, fut in zip(names, futures, strict=True):
            try:
                results.append(fut.result())
            except FtbridgeError as exc:
                exc.endpoint = exc.endpoint or name
                raise
    inv = Inventory(collected_at=time.time())
    for ep, part in results:
        inv = inv.with_parts(ep, part)
    try:
        lastseen.record(Path(session.config.state_dir), inv)
    except (OSError, StateStorageError) as exc:  # a read-only state dir must not stop a read-only command
        log.warning("cannot record where VMs run in %s: %s", session.config.state_dir, exc)
    return apply_labels(inv, session.config.domains)
