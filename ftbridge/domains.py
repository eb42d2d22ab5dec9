"""Selecting failure domains: ``site=ams1``, ``array=netapp-a``, ``host=esx-01``."""

from __future__ import annotations

from dataclasses import dataclass

from ftbridge.errors import ConfigError
from ftbridge.inventory import Inventory
from ftbridge.model import FailureDomain, Level


@dataclass(frozen=True, slots=True)
class DomainSelector:
    level: Level
    value: str

    @classmethod
    def parse(cls, text: str) -> DomainSelector:
        level, sep, value = text.partition("=")
        try:
            lvl = Level(level.strip())
        except ValueError:
            lvl = None
        if not sep or not value.strip() or lvl is None:
            raise ConfigError(
                f"--domain {text!r}: expected LEVEL=LABEL with LEVEL one of {', '.join(x.value for x in Level)}"
            )
        return cls(lvl, value.strip())

    def contains(self, domain: FailureDomain) -> bool:
        return domain.label(self.level) == self.value

    def __str__(self) -> str:
        return f"{self.level.value}={self.value}"


@dataclass(frozen=True)
class Failed:
    """What is down: (endpoint, id) of hosts and datastores."""

    hosts: frozenset[tuple[str, str]]
    datastores: frozenset[tuple[str, str]]
    why: str

    @classmethod
    def from_selectors(cls, inv: Inventory, selectors: list[DomainSelector]) -> Failed:
        hosts = {(h.endpoint, h.id) for h in inv.hosts if any(s.contains(h.domain) for s in selectors)}
        dss = {(d.endpoint, d.id) for d in inv.datastores if any(s.contains(d.domain) for s in selectors)}
        # storage no surviving host mounts (a failed host's local disks) is lost with its hosts
        dss |= {
            (d.endpoint, d.id) for d in inv.datastores if d.hosts and all((d.endpoint, h) in hosts for h in d.hosts)
        }
        if not hosts and not dss:
            raise ConfigError(
                f"no host or datastore is labelled {', '.join(map(str, selectors))} (check the [[domains]] rules)"
            )
        return cls(frozenset(hosts), frozenset(dss), ", ".join(map(str, selectors)))

    @classmethod
    def from_inventory(cls, inv: Inventory) -> Failed:
        """What the platforms report as down right now."""
        from ftbridge.model import HostState

        return cls(
            frozenset((h.endpoint, h.id) for h in inv.hosts if h.state is HostState.DOWN),
            frozenset((d.endpoint, d.id) for d in inv.datastores if not d.accessible),
            "reported down",
        )
