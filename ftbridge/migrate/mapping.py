"""The mapping model: which target datastore, network and cluster each source one goes to.

Every tool that moves VMs between platforms maps storage and networks the same way, with the
same precedence: a rule for one disk beats a rule for its datastore, which beats the default
(Coriolis' ``storage_mappings`` states it; Forklift maps per datastore; Proxmox's pair lists
have per-storage entries and a default). Networks likewise: per NIC, per network, default.
A :class:`Mapping` is that, as plain values, whatever file it was read from; each format
under :mod:`ftbridge.migrate.formats` reads and writes it.

References are what people write: a datastore's or network's *name* or its platform *id*
(``by`` says which a rule used, so a format that distinguishes them writes back what it read).
Each rule remembers where it was read (``where``, not compared), so a check can name the
entry that is wrong, and any format-specific fields it carried (``options``), so a round trip
through the same format loses nothing.

A network target of ``None`` means "leave the NIC unconnected" (Forklift's ``ignored``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftbridge.model import VM, Datastore, Disk, Network, Nic

#: how a rule names its source: by name, by platform id, or either (ftbridge's own file)
BY = ("name", "id", "any")


@dataclass(frozen=True)
class Rule:
    """``source`` (a datastore, network or cluster) goes to ``target``."""

    source: str
    target: str | None
    by: str = "any"
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    where: str = field(default="", compare=False)

    def matches(self, obj_id: str, name: str) -> bool:
        if self.by == "id":
            return self.source == obj_id
        if self.by == "name":
            return self.source == name
        return self.source in (obj_id, name)


@dataclass(frozen=True)
class ItemRule:
    """One disk (or NIC) of one VM goes to ``target``. ``vm`` None: that item id in any VM."""

    vm: str | None
    item: str
    target: str | None
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    where: str = field(default="", compare=False)

    def matches(self, vm: VM, item_id: str) -> bool:
        return self.item == item_id and (self.vm is None or self.vm in (vm.name, vm.id))


def _rules(rules: Iterable[Rule]) -> tuple[Rule, ...]:
    return tuple(sorted(rules, key=lambda r: (r.source, r.by)))


def _items(rules: Iterable[ItemRule]) -> tuple[ItemRule, ...]:
    return tuple(sorted(rules, key=lambda r: (r.vm or "", r.item)))


@dataclass(frozen=True)
class Mapping:
    """A whole mapping. Rule tuples are kept sorted, so equal mappings compare equal."""

    storage_default: str | None = None
    datastores: tuple[Rule, ...] = ()
    disks: tuple[ItemRule, ...] = ()
    network_default: str | None = None
    networks: tuple[Rule, ...] = ()
    nics: tuple[ItemRule, ...] = ()
    clusters: tuple[Rule, ...] = ()
    #: endpoint names the file says it is for (informative; checked when given)
    source: str | None = None
    target: str | None = None
    #: VMs the file was written for (a Forklift Plan's or Coriolis transfer's instances)
    vms: tuple[str, ...] = ()
    #: file-level fields of the format it was read from, kept for that format's writer
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    #: where it was read from, for messages
    origin: str = field(default="mapping", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "datastores", _rules(self.datastores))
        object.__setattr__(self, "networks", _rules(self.networks))
        object.__setattr__(self, "clusters", _rules(self.clusters))
        object.__setattr__(self, "disks", _items(self.disks))
        object.__setattr__(self, "nics", _items(self.nics))
        object.__setattr__(self, "vms", tuple(sorted(set(self.vms))))

    @property
    def empty(self) -> bool:
        return not (
            self.storage_default
            or self.datastores
            or self.disks
            or self.network_default
            or self.networks
            or self.nics
            or self.clusters
        )

    # -- resolution: per item > per datastore/network > default ---------------------------
    def disk_target(self, vm: VM, disk: Disk, ds: Datastore | None) -> tuple[str, str] | None:
        """(target, which rule: ``disk`` | ``datastore`` | ``default``), or None: unmapped."""
        for r in self.disks:
            if r.matches(vm, disk.id) and r.target is not None:
                return r.target, "disk"
        ds_id, ds_name = (ds.id, ds.name) if ds is not None else (disk.datastore, disk.datastore)
        for rule in self.datastores:
            if rule.matches(ds_id, ds_name) and rule.target is not None:
                return rule.target, "datastore"
        if self.storage_default:
            return self.storage_default, "default"
        return None

    def nic_target(self, vm: VM, nic: Nic, net: Network | None) -> tuple[str | None, str] | None:
        """(target or None for unconnected, which rule: ``nic`` | ``network`` | ``default``)."""
        for r in self.nics:
            if r.matches(vm, nic.id) or (nic.mac and r.matches(vm, nic.mac)):
                return r.target, "nic"
        if nic.network is not None:
            net_id, net_name = (net.id, net.name) if net is not None else (nic.network, nic.network)
            for rule in self.networks:
                if rule.matches(net_id, net_name):
                    return rule.target, "network"
        if self.network_default:
            return self.network_default, "default"
        return None

    def cluster_target(self, cluster: str | None) -> str | None:
        if cluster is None:
            return None
        return next((r.target for r in self.clusters if r.matches(cluster, cluster)), None)


def merged(base: Mapping, over: Mapping) -> Mapping:
    """``over`` wins where both say something (used for several ``--map`` files)."""

    def rules(a: tuple[Rule, ...], b: tuple[Rule, ...]) -> tuple[Rule, ...]:
        keys = {(r.source, r.by) for r in b}
        return (*[r for r in a if (r.source, r.by) not in keys], *b)

    def items(a: tuple[ItemRule, ...], b: tuple[ItemRule, ...]) -> tuple[ItemRule, ...]:
        keys = {(r.vm, r.item) for r in b}
        return (*[r for r in a if (r.vm, r.item) not in keys], *b)

    return Mapping(
        storage_default=over.storage_default or base.storage_default,
        datastores=rules(base.datastores, over.datastores),
        disks=items(base.disks, over.disks),
        network_default=over.network_default or base.network_default,
        networks=rules(base.networks, over.networks),
        nics=items(base.nics, over.nics),
        clusters=rules(base.clusters, over.clusters),
        source=over.source or base.source,
        target=over.target or base.target,
        vms=(*base.vms, *over.vms),
        options={**base.options, **over.options},
        origin=f"{base.origin} + {over.origin}",
    )
