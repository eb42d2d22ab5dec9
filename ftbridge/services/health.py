"""Health: per endpoint and failure domain, what is up; per protected VM, its secondary's state.

Reads each endpoint's ``health()`` and the inventory. An endpoint that cannot be reached is
reported as such rather than failing the call: during a disaster, the management server of the
failed site is often the first thing gone, and health must still speak about the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ftbridge.config import Config
from ftbridge.errors import FtbridgeError
from ftbridge.inventory import Inventory
from ftbridge.model import HostState, Level, SecondaryState


@dataclass
class DomainState:
    level: str
    label: str
    hosts_up: int = 0
    hosts_down: int = 0
    datastores_up: int = 0
    datastores_down: int = 0

    @property
    def status(self) -> str:
        up, down = self.hosts_up + self.datastores_up, self.hosts_down + self.datastores_down
        return "down" if down and not up else "degraded" if down else "up"


@dataclass
class VMProtection:
    endpoint: str
    vm: str
    name: str
    policy: str | None
    status: str  # ok | not-required | lagging | unprotected | broken | primary-down
    secondary: str | None = None
    mechanism: str | None = None
    state: str | None = None
    lag: float | None = None
    rpo: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """``vm`` the id and ``vm_name`` the name, as everywhere in ftbridge's JSON."""
        return {
            "endpoint": self.endpoint,
            "vm": self.vm,
            "vm_name": self.name,
            "policy": self.policy,
            "status": self.status,
            "secondary": self.secondary,
            "mechanism": self.mechanism,
            "state": self.state,
            "lag": self.lag,
            "rpo": self.rpo,
        }


@dataclass
class Health:
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    domains: list[DomainState] = field(default_factory=list)
    vms: list[VMProtection] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return (
            all(e["reachable"] for e in self.endpoints.values())
            and all(d.status == "up" for d in self.domains)
            and all(v.status in ("ok", "not-required") for v in self.vms)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "healthy": self.healthy,
            "endpoints": self.endpoints,
            "domains": [{**d.__dict__, "status": d.status} for d in self.domains],
            "vms": [v.to_dict() for v in self.vms],
        }


def assess(inv: Inventory, config: Config, errors: dict[str, FtbridgeError] | None = None) -> Health:
    """Health from an inventory (which carries host state and datastore accessibility)."""
    out = Health()
    for ep in inv.endpoints:
        hosts = [h for h in inv.hosts if h.endpoint == ep.name]
        dss = [d for d in inv.datastores if d.endpoint == ep.name]
        out.endpoints[ep.name] = {
            "reachable": True,
            "error": None,
            "hosts_down": sorted(h.name for h in hosts if h.state is HostState.DOWN),
            "datastores_down": sorted(d.name for d in dss if not d.accessible),
            "hosts": len(hosts),
            "datastores": len(dss),
        }
    for name, exc in (errors or {}).items():
        out.endpoints[name] = {
            "reachable": False,
            "error": exc.one_line(),
            "hosts_down": [],
            "datastores_down": [],
            "hosts": 0,
            "datastores": 0,
        }
    domains: dict[tuple[str, str], DomainState] = {}
    for lvl in (Level.SITE, Level.ROOM, Level.ARRAY):
        for h in inv.hosts:
            if (label := h.domain.label(lvl)) is not None:
                d = domains.setdefault((lvl.value, label), DomainState(lvl.value, label))
                if h.state is HostState.DOWN:
                    d.hosts_down += 1
                else:
                    d.hosts_up += 1
        for ds in inv.datastores:
            if (label := ds.domain.label(lvl)) is not None:
                d = domains.setdefault((lvl.value, label), DomainState(lvl.value, label))
                if ds.accessible:
                    d.datastores_up += 1
                else:
                    d.datastores_down += 1
    out.domains = [domains[k] for k in sorted(domains)]
    for vm in inv.vms:
        policy = config.policy_for(vm)
        host = inv.host(vm.endpoint, vm.host)
        primary_down = (host is not None and host.state is HostState.DOWN) or any(
            (pd := inv.datastore(vm.endpoint, i)) is not None and not pd.accessible for i in vm.primary_datastores
        )
        secs = [s for s in vm.secondaries if policy is None or policy.counts(s.mechanism)]
        best = min(secs, key=lambda s: (s.state is not SecondaryState.IN_SYNC, s.lag or 0.0), default=None)
        rpo = policy.rpo if policy else None
        if primary_down:
            status = "primary-down"
        elif best is None:
            status = "unprotected" if policy is not None and policy.require_secondary else "not-required"
        elif best.state in (SecondaryState.BROKEN, SecondaryState.UNKNOWN):
            status = "broken"
        elif best.state is SecondaryState.STALE or (rpo is not None and best.lag is not None and best.lag > rpo):
            status = "lagging"
        else:
            status = "ok"
        out.vms.append(
            VMProtection(
                vm.endpoint,
                vm.id,
                vm.name,
                policy.name if policy else None,
                status,
                best.id if best else None,
                best.mechanism if best else None,
                best.state.value if best else None,
                best.lag if best else None,
                rpo,
            )
        )
    return out
