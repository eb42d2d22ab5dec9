"""An :class:`Inventory`: everything the drivers saw, indexed, with a stable JSON form.

The JSON form (``schema_version``) is what ``ftbridge inventory -o json`` writes and
``--from FILE`` reads back; ``ftbridge/schemas/inventory.schema.json`` describes it.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from operator import attrgetter
from typing import Any, Protocol, TypeVar

from ftbridge.errors import ConfigError
from ftbridge.model import (
    VM,
    Datastore,
    Dependency,
    Disk,
    EndpointInfo,
    FailureDomain,
    Host,
    HostState,
    Location,
    Network,
    Nic,
    Place,
    PowerState,
    Secondary,
    SecondaryDisk,
    SecondaryState,
)
from ftbridge.timefmt import parse_rfc3339, rfc3339

#: 2 added networks, NICs, dependencies, content types, thin sizes, partial copies; 1 still reads
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
#: the largest saved inventory read back: what ``inventory -o json`` writes is about 750 bytes
#: a VM (725 MiB for the million VMs the planner is measured at), over the 256 MiB every other
#: input may be; reading it back takes about 7.5 times its size in memory
MAX_SAVED_BYTES = 1024 * 1024 * 1024


class _Owned(Protocol):
    @property
    def endpoint(self) -> str: ...
    @property
    def id(self) -> str: ...


_T = TypeVar("_T", bound=_Owned)
_NONE: Mapping[str, Any] = {}


def _by_endpoint(objs: Iterable[_T]) -> dict[str, dict[str, _T]]:
    """Objects by endpoint, then id (a later one of the same ids replaces an earlier one)."""
    out: dict[str, dict[str, _T]] = {}
    for o in objs:
        mine = out.get(o.endpoint)
        if mine is None:
            mine = out[o.endpoint] = {}
        mine[o.id] = o
    return out


@dataclass(frozen=True, slots=True)
class InventoryPart:
    """What one driver's ``inventory()`` returns: one endpoint's objects."""

    hosts: tuple[Host, ...] = ()
    datastores: tuple[Datastore, ...] = ()
    vms: tuple[VM, ...] = ()
    networks: tuple[Network, ...] = ()


class Inventory:
    """All objects of a set of endpoints, looked up by ``(endpoint, id)``."""

    __slots__ = (
        "endpoints",
        "hosts",
        "datastores",
        "vms",
        "networks",
        "collected_at",
        "_hosts",
        "_ds",
        "_vms",
        "_nets",
        "_clusters",
        "_host_places",
        "_store_places",
        "_runners",
        "_fingerprint",
        "_by_host",
    )

    def __init__(
        self,
        endpoints: Iterable[EndpointInfo] = (),
        hosts: Iterable[Host] = (),
        datastores: Iterable[Datastore] = (),
        vms: Iterable[VM] = (),
        collected_at: float = 0.0,
        networks: Iterable[Network] = (),
    ) -> None:
        self.endpoints = tuple(endpoints)
        self.hosts = tuple(hosts)
        self.datastores = tuple(datastores)
        self.vms = tuple(vms)
        self.networks = tuple(networks)
        self.collected_at = collected_at
        # looked up per endpoint, then by id: no (endpoint, id) tuple kept per object (a million
        # VMs: 60 MiB of keys)
        self._hosts = _by_endpoint(self.hosts)
        self._ds = _by_endpoint(self.datastores)
        self._vms = _by_endpoint(self.vms)
        self._nets = _by_endpoint(self.networks)
        self._clusters: dict[tuple[str, str | None], tuple[Host, ...]] = {}
        for h in self.hosts:
            key = (h.endpoint, h.cluster)
            self._clusters[key] = (*self._clusters.get(key, ()), h)
        self._host_places: dict[str, dict[str, Place]] = {}
        self._store_places: dict[str, dict[str, Place]] = {}
        self._runners: dict[tuple[str, str | None, frozenset[str]], tuple[Place, ...]] = {}
        self._fingerprint: str | None = None
        self._by_host: tuple[VM, ...] | None = None

    # lookups ---------------------------------------------------------------------------
    def host(self, endpoint: str, host_id: str | None) -> Host | None:
        return self._hosts.get(endpoint, _NONE).get(host_id) if host_id else None

    def datastore(self, endpoint: str, ds_id: str | None) -> Datastore | None:
        return self._ds.get(endpoint, _NONE).get(ds_id) if ds_id else None

    def datastores_of(self, endpoint: str) -> Mapping[str, Datastore]:
        """One endpoint's datastores by id (for loops that look up many of the same endpoint)."""
        return self._ds.get(endpoint, _NONE)

    def vm(self, endpoint: str, vm_id: str) -> VM | None:
        return self._vms.get(endpoint, _NONE).get(vm_id)

    def vms_of(self, endpoint: str) -> Mapping[str, VM]:
        """One endpoint's VMs by id."""
        return self._vms.get(endpoint, _NONE)

    def vms_by_host(self) -> tuple[VM, ...]:
        """Every VM, those of one host together, the hosts of one cluster together (endpoint,
        cluster, host id; VMs with no host last in their endpoint), each host's VMs in inventory
        order. Asked once, then kept.

        For a pass over every VM whose result does not depend on the order and whose work per VM
        asks many lookups (the audit): VMs of one host and cluster ask about the same hosts,
        datastores and places, which then stay in the processor's cache. Inventory order
        interleaves the clusters (drivers list VMs as the platform does, by creation); at a
        million VMs over 20,000 datastores the audit takes 1.0-1.5 CPU s less this way (of
        12-13; ``plan_scale.py``). A pass with little work per VM is faster in inventory order,
        which reads the VMs as they lie in memory (the planner's preparation: 1.7 s against 2.2)."""
        if self._by_host is not None:
            return self._by_host
        per_ep: dict[str, dict[str | None, list[VM]]] = {}
        for vm in self.vms:
            mine = per_ep.get(vm.endpoint)
            if mine is None:
                mine = per_ep[vm.endpoint] = {}
            on = mine.get(vm.host)
            if on is None:
                on = mine[vm.host] = []
            on.append(vm)
        out: list[VM] = []
        for ep in sorted(per_ep):
            hosts = self._hosts.get(ep, _NONE)

            def where(hid: str | None, hosts: Mapping[str, Host] = hosts) -> tuple[bool, str, str]:
                h = hosts.get(hid) if hid is not None else None
                return (hid is None, (h.cluster or "") if h is not None else "", hid or "")

            for hid in sorted(per_ep[ep], key=where):
                out += per_ep[ep][hid]
        self._by_host = tuple(out)
        return self._by_host

    def network(self, endpoint: str, net_id: str | None) -> Network | None:
        return self._nets.get(endpoint, _NONE).get(net_id) if net_id else None

    def cluster_of(self, vm: VM) -> str | None:
        if vm.cluster is not None:
            return vm.cluster
        host = self.host(vm.endpoint, vm.host)
        return host.cluster if host else None

    # locations: the model's one answer to "separated?" -----------------------------------
    def primary_location(self, vm: VM, datastores: Iterable[str] | None = None) -> Location:
        """What the VM's primary needs: its host (plus, with HA on, every host of its cluster
        that mounts all its storage; with no host, any such host) and every datastore it needs,
        its own files and what it depends on. A datastore missing from the inventory is an
        unknown place: it separates nothing. ``datastores`` replaces the VM's own file places (a
        planned placement); what it depends on is added either way."""
        needed = (
            vm.needed_datastores if datastores is None else frozenset(datastores) | {d.datastore for d in vm.depends_on}
        )
        stores = tuple(self.store_place(vm.endpoint, i) for i in sorted(needed))
        hosts: tuple[Place, ...] = ()
        if vm.host is not None:
            hosts = (self.host_place(vm.endpoint, vm.host),)
        if vm.ha or vm.host is None:
            extra = self._runners_for(vm.endpoint, self.cluster_of(vm), needed)
            hosts = (*hosts, *(p for p in extra if p not in hosts))
        return Location(hosts, stores)

    def primary_unreadable(self, vm: VM) -> str | None:
        """Why the VM's primary cannot be read in this inventory (None: it can); see
        :meth:`ftbridge.model.VM.primary_unreadable`, the one rule."""
        return vm.primary_unreadable(self.host(vm.endpoint, vm.host), lambda x: self.datastore(vm.endpoint, x))

    def secondary_location(self, vm: VM, sec: Secondary) -> Location:
        """What one secondary needs: its datastores (the FT tie-breaker and the primary's copy
        of any disk it lacks included) and its host where the mechanism pins one, else any host
        of its endpoint that mounts all of them."""
        ep = sec.target_endpoint or vm.endpoint
        ids = sec.needed_datastores
        stores = [self.store_place(ep, i) for i in sorted(ids)]
        if sec.missing:
            missing = set(sec.missing)
            stores += [self.store_place(vm.endpoint, d.datastore) for d in vm.disks if d.id in missing]
        if sec.host is not None:
            hosts: tuple[Place, ...] = (self.host_place(ep, sec.host),)
        else:
            hosts = self._runners_for(ep, None, ids)
            if not hosts and sec.target_endpoint is not None:
                # a replica another site keeps is mounted there only once failover imports it:
                # any host of that endpoint the platform does not report down can then run it
                hosts = tuple(
                    self.host_place(ep, h.id)
                    for h in sorted(self.hosts, key=lambda h: h.id)
                    if h.endpoint == ep and not h.state.proven_down
                )
        return Location(hosts, tuple(stores))

    def host_place(self, endpoint: str, host_id: str) -> Place:
        """A host as a place in the failure model (its own name labels it at host level)."""
        places = self._host_places.get(endpoint)
        if places is None:
            places = self._host_places[endpoint] = {}
        place = places.get(host_id)
        if place is None:
            h = self.host(endpoint, host_id)
            if h is None:
                place = Place("host", host_id, FailureDomain())
            else:
                dom = h.domain if h.domain.host else h.domain.merged({"host": h.name})
                place = Place("host", h.name, dom)
            places[host_id] = place
        return place

    def store_place(self, endpoint: str, ds_id: str) -> Place:
        """A datastore as a place in the failure model (unknown when not in the inventory)."""
        places = self._store_places.get(endpoint)
        if places is None:
            places = self._store_places[endpoint] = {}
        place = places.get(ds_id)
        if place is None:
            d = self.datastore(endpoint, ds_id)
            if d is None:
                place = Place("datastore", ds_id, FailureDomain(), shared=False)
            else:
                dom = d.domain
                if not d.shared and dom.host is None and len(d.hosts) == 1:
                    h = self.host(endpoint, d.hosts[0])
                    dom = dom.merged({"host": h.name if h else d.hosts[0]})
                place = Place("datastore", d.name, dom, shared=d.shared)
            places[ds_id] = place
        return place

    def _runners_for(self, endpoint: str, cluster: str | None, ds_ids: frozenset[str]) -> tuple[Place, ...]:
        """Hosts (of ``cluster`` when given) that mount every one of ``ds_ids`` and are not
        reported down: where a copy on that storage can be started."""
        key = (endpoint, cluster, ds_ids)
        found = self._runners.get(key)
        if found is None:
            stores = [self.datastore(endpoint, i) for i in ds_ids]
            if any(d is None for d in stores):
                found = ()
            else:
                pool: Iterable[Host]
                if stores:  # the hosts that mount the first, not all of the endpoint's (perf)
                    first = stores[0]
                    assert first is not None
                    mine = self._hosts.get(endpoint, _NONE)
                    pool = (h for x in first.hosts if (h := mine.get(x)) is not None)
                else:
                    pool = (h for h in self.hosts if h.endpoint == endpoint)
                found = tuple(
                    self.host_place(endpoint, h.id)
                    for h in sorted({h.id: h for h in pool}.values(), key=lambda h: h.id)
                    if (cluster is None or h.cluster == cluster)
                    and not h.state.proven_down
                    and all(h.id in d.hosts for d in stores if d is not None)
                )
            self._runners[key] = found
        return found

    def endpoint(self, name: str) -> EndpointInfo | None:
        return next((e for e in self.endpoints if e.name == name), None)

    def find_vm(self, ref: str) -> VM | None:
        """A VM by ``endpoint/id``, ``endpoint/name``, or a name unique in the estate."""
        if "/" in ref:
            ep, _, key = ref.partition("/")
            found = self.vm(ep, key)
            if found:
                return found
            matches = [v for v in self.vms if v.endpoint == ep and v.name == key]
        else:
            matches = [v for v in self.vms if v.name == ref]
        return matches[0] if len(matches) == 1 else None

    def with_parts(self, endpoint: EndpointInfo, part: InventoryPart) -> Inventory:
        """A new inventory with one endpoint's objects replaced by ``part``."""
        keep = lambda o: o.endpoint != endpoint.name  # noqa: E731
        return Inventory(
            [e for e in self.endpoints if e.name != endpoint.name] + [endpoint],
            [*filter(keep, self.hosts), *part.hosts],
            [*filter(keep, self.datastores), *part.datastores],
            [*filter(keep, self.vms), *part.vms],
            self.collected_at,
            [*filter(keep, self.networks), *part.networks],
        )

    # JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, Iterator) else v for k, v in self.lazy_dict().items()}

    def lazy_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` with its lists as iterators, each element converted when read: a
        large inventory is written a VM at a time, never held twice."""
        return {
            "schema_version": SCHEMA_VERSION,
            "collected_at": rfc3339(self.collected_at) if self.collected_at else None,
            "endpoints": (asdict(e) for e in self.endpoints),
            "hosts": (_host_dict(h) for h in self.hosts),
            "datastores": (_ds_dict(d) for d in self.datastores),
            "networks": (asdict(n) for n in self.networks),
            "vms": (_vm_dict(v) for v in self.vms),
        }

    def fingerprint(self) -> str:
        """A digest of placement facts only: what a plan depends on, not free space or lag.
        Computed once: the audit and the plan document both ask (an inventory is not changed
        in place; :meth:`with_parts` makes a new one)."""
        if self._fingerprint is not None:
            return self._fingerprint
        self._fingerprint = self._digest()
        return self._fingerprint

    def _digest(self) -> str:
        h = hashlib.sha256()
        for ep in sorted(e.name for e in self.endpoints):
            h.update(f"E{ep}\n".encode())
        for d in sorted(self.datastores, key=lambda d: (d.endpoint, d.id)):
            h.update(f"D{d.endpoint}/{d.id}/{d.shared}/{','.join(d.hosts)}/{d.accessible}\n".encode())
        for hst in sorted(self.hosts, key=lambda x: (x.endpoint, x.id)):
            h.update(f"H{hst.endpoint}/{hst.id}/{hst.state.value}\n".encode())
        lines: list[str] = []  # the same bytes as one update per line, hashed a block at a time
        add = lines.append
        # in (endpoint, id) order: per endpoint, sorted by the id string alone (the sort's fast
        # path for str keys, and no key tuple per VM: 0.15 s instead of 0.38 s at a million VMs)
        in_order = (v for ep in sorted(self._vms) for v in sorted(self._vms[ep].values(), key=attrgetter("id")))
        for v in in_order:
            add(f"V{v.endpoint}/{v.id}/{v.host}/{v.config_datastore}\n")
            for dk in v.disks:
                add(f" d{dk.id}/{dk.datastore}/{dk.size}\n")
            for s in v.secondaries:
                ds = ",".join([f"{x.disk}:{x.datastore}" for x in s.disks])
                add(f" s{s.id}/{s.mechanism}/{s.host}/{s.config_datastore}/{ds}/{s.metadata_datastore}\n")
            if len(lines) > 8192:
                h.update("".join(lines).encode())
                lines.clear()
        h.update("".join(lines).encode())
        return h.hexdigest()[:32]

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "inventory") -> Inventory:
        """An inventory from its JSON form (:meth:`to_dict`), checked first (one line per bad
        entry, :class:`ConfigError`)."""
        from ftbridge.inventory_shape import check_inventory

        _check_version(data, source)
        check_inventory(data, source=source)
        return _built(data, source, lambda: [_vm_from(v) for v in data["vms"]])

    @classmethod
    def load(cls, path: str) -> Inventory:
        """A saved inventory (``--from FILE``), up to :data:`MAX_SAVED_BYTES`.

        The VMs are read one at a time (:func:`~ftbridge.loading.parse_json_streaming`): each
        is checked and made an object as it is parsed, and its parsed form dropped, so the
        file's parsed tree never exists whole (a million VMs: 3.9 GiB at peak when it did, 2.6 GiB
        without it; 1.9 GiB with repeated names shared, :func:`_one`). The
        keys before ``vms`` (``Inventory.to_dict`` and key-sorted copies put every other key
        first) are checked before the first VM; a file with its VMs first is checked whole."""
        from ftbridge.gcpause import gc_paused
        from ftbridge.inventory_shape import VmCheck, check_head
        from ftbridge.loading import parse_json_streaming, read_text

        what = "saved inventory"
        text = read_text(path, what=what, limit=MAX_SAVED_BYTES)
        vms: list[VM] = []
        early: list[Any] | None = None  # VMs that came before those keys: read whole at the end
        check = VmCheck(path)

        def each(i: int, vm: Any, head: dict[str, Any]) -> None:
            nonlocal early
            if i == 0:
                if _HEAD_KEYS <= head.keys():
                    _check_version(head, path)
                    check_head(head, source=path)
                else:
                    early = []
            if early is not None:
                early.append(vm)
                return
            check(i, vm)
            try:
                vms.append(_vm_from(vm))
            except (KeyError, TypeError, ValueError) as exc:  # the shape check lets none through
                raise _malformed(path, exc) from exc

        with gc_paused():
            data = parse_json_streaming(text, source=path, what=what, stream="vms", each=each)
            del text
            if early is not None:
                data["vms"] = early
            if early is not None or not vms:  # VMs first, none, or not a list: the whole-file checks
                return cls.from_dict(data, source=path)
            check_head(data, source=path)  # again, for keys after the VMs
            return _built(data, path, lambda: vms)


#: the keys checked before the first VM is (the version: a file that is no inventory is not
#: judged by its VMs; the rest: a bad one is named before any VM's, as ``from_dict`` names it)
_HEAD_KEYS = frozenset({"schema_version", "endpoints", "hosts", "datastores"})


def _check_version(data: Any, source: str) -> None:
    if not isinstance(data, dict) or data.get("schema_version") not in READABLE_VERSIONS:
        raise ConfigError(
            f"{source}: not an ftbridge inventory (expected schema_version {' or '.join(map(str, READABLE_VERSIONS))})"
        )


def _built(data: dict[str, Any], source: str, vms: Callable[[], list[VM]]) -> Inventory:
    """The inventory of a checked document; ``vms`` makes (or hands over) its VMs."""
    try:
        return Inventory(
            [_endpoint_from(e) for e in data["endpoints"]],
            [_host_from(h) for h in data["hosts"]],
            [_ds_from(d) for d in data["datastores"]],
            vms(),
            _epoch(data.get("collected_at")) or 0.0,
            [_net_from(n) for n in data.get("networks", [])],
        )
    except (KeyError, TypeError, ValueError) as exc:  # the shape check lets none through
        raise _malformed(source, exc) from exc


def _malformed(source: str, exc: Exception) -> ConfigError:
    return ConfigError(f"{source}: malformed inventory: {type(exc).__name__}")


def _dom(d: FailureDomain) -> dict[str, str]:
    return d.as_dict()


def _host_dict(h: Host) -> dict[str, Any]:
    return {
        "id": h.id,
        "name": h.name,
        "endpoint": h.endpoint,
        "cluster": h.cluster,
        "state": h.state.value,
        "memory": h.memory,
        "domain": _dom(h.domain),
    }


def _ds_dict(d: Datastore) -> dict[str, Any]:
    return {
        "id": d.id,
        "name": d.name,
        "endpoint": d.endpoint,
        "kind": d.kind,
        "shared": d.shared,
        "hosts": list(d.hosts),
        "capacity": d.capacity,
        "free": d.free,
        "accessible": d.accessible,
        "domain": _dom(d.domain),
        "content": None if d.content is None else sorted(d.content),
        "thin": d.thin,
        "committed": d.committed,
        "reserve": d.reserve,
    }


def _vm_dict(v: VM) -> dict[str, Any]:
    return {
        "id": v.id,
        "name": v.name,
        "endpoint": v.endpoint,
        "host": v.host,
        "power": v.power.value,
        "config_datastore": v.config_datastore,
        "config_path": v.config_path,
        "tags": list(v.tags),
        "vcpus": v.vcpus,
        "memory": v.memory,
        "ha": v.ha,
        "warnings": list(v.warnings),
        "mechanisms": None if v.mechanisms is None else list(v.mechanisms),
        "managed_by": v.managed_by,
        "cluster": v.cluster,
        "uuid": v.uuid,
        "depends_on": [asdict(d) for d in v.depends_on],
        "nics": [asdict(n) for n in v.nics],
        "disks": [{**asdict(d), "shared_by": list(d.shared_by)} for d in v.disks],
        "secondaries": [
            {
                **{
                    k: getattr(s, k)
                    for k in (
                        "id",
                        "mechanism",
                        "config_datastore",
                        "host",
                        "lag",
                        "metadata_datastore",
                        "target_endpoint",
                    )
                },
                "last_sync": rfc3339(s.last_sync),
                "state": s.state.value,
                "missing": list(s.missing),
                **({"reason": s.reason} if s.reason else {}),
                "disks": [asdict(x) for x in s.disks],
            }
            for s in v.secondaries
        ],
    }


def _endpoint_from(e: dict[str, Any]) -> EndpointInfo:
    caps = e.get("capabilities")
    return EndpointInfo(
        name=e["name"],
        driver=e["driver"],
        version=e.get("version", ""),
        mechanisms=tuple(e.get("mechanisms", ())),
        capabilities=None if caps is None else tuple(caps),
    )


def _net_from(n: dict[str, Any]) -> Network:
    return Network(
        id=n["id"],
        name=n["name"],
        endpoint=n["endpoint"],
        kind=n["kind"],
        vlan=None if n.get("vlan") is None else int(n["vlan"]),
        hosts=tuple(n.get("hosts", ())),
    )


def _one(x: str | None) -> str | None:
    """One string object for a name that many objects repeat (an endpoint, a host, a datastore,
    a mechanism, a disk id): parsed JSON holds a copy per mention. A million VMs read back took
    about 500 bytes a VM more than the same estate from a driver, and the audit over it ran a
    third slower (its lookups missed the cache where they hit one shared string)."""
    return None if x is None else sys.intern(x)


def _disk_from(d: dict[str, Any]) -> Disk:
    out = {**d, "shared_by": tuple(d.get("shared_by", ()))}
    for key in ("id", "datastore", "kind", "content"):
        if isinstance(out.get(key), str):
            out[key] = sys.intern(out[key])
    return Disk(**out)


def _secondary_disk_from(x: dict[str, Any]) -> SecondaryDisk:
    return SecondaryDisk(**{**x, "disk": sys.intern(x["disk"]), "datastore": sys.intern(x["datastore"])})


def _host_from(h: dict[str, Any]) -> Host:
    return Host(
        id=h["id"],
        name=h["name"],
        endpoint=h["endpoint"],
        cluster=h.get("cluster"),
        state=HostState(h["state"]),
        domain=FailureDomain(**h.get("domain", {})),
        memory=int(h.get("memory", 0)),
    )


def _ds_from(d: dict[str, Any]) -> Datastore:
    return Datastore(
        id=d["id"],
        name=d["name"],
        endpoint=d["endpoint"],
        kind=d["kind"],
        shared=bool(d["shared"]),
        hosts=tuple(d["hosts"]),
        capacity=int(d["capacity"]),
        free=int(d["free"]),
        accessible=bool(d.get("accessible", True)),
        domain=FailureDomain(**d.get("domain", {})),
        content=None if d.get("content") is None else frozenset(d["content"]),
        thin=bool(d.get("thin", False)),
        committed=None if d.get("committed") is None else int(d["committed"]),
        reserve=int(d.get("reserve", 0)),
    )


def _epoch(value: Any) -> float | None:
    """A time as the JSON holds it: RFC 3339 (what ftbridge writes) or epoch seconds (files written
    before); None stays None."""
    if value is None:
        return None
    return parse_rfc3339(value) if isinstance(value, str) else float(value)


def _vm_from(v: dict[str, Any]) -> VM:
    secs = tuple(
        Secondary(
            id=s["id"],
            mechanism=sys.intern(s["mechanism"]),
            config_datastore=_one(s.get("config_datastore")),
            host=_one(s.get("host")),
            state=SecondaryState(s["state"]),
            last_sync=_epoch(s.get("last_sync")),
            lag=s.get("lag"),
            metadata_datastore=_one(s.get("metadata_datastore")),
            target_endpoint=_one(s.get("target_endpoint")),
            missing=tuple(s.get("missing", ())),
            reason=str(s.get("reason", "")),
            disks=tuple(_secondary_disk_from(x) for x in s["disks"]),
        )
        for s in v.get("secondaries", [])
    )
    return VM(
        id=v["id"],
        name=v["name"],
        endpoint=sys.intern(v["endpoint"]),
        host=_one(v.get("host")),
        power=PowerState(v["power"]),
        config_datastore=_one(v.get("config_datastore")),
        config_path=v.get("config_path", ""),
        tags=tuple(map(sys.intern, v.get("tags", ()))),
        vcpus=int(v.get("vcpus", 1)),
        memory=int(v.get("memory", 0)),
        ha=bool(v.get("ha", False)),
        warnings=tuple(v.get("warnings", ())),
        mechanisms=None if v.get("mechanisms") is None else tuple(v["mechanisms"]),
        managed_by=_one(v.get("managed_by")),
        cluster=_one(v.get("cluster")),
        uuid=str(v.get("uuid", "")),
        depends_on=tuple(Dependency(**d) for d in v.get("depends_on", ())),
        nics=tuple(Nic(**n) for n in v.get("nics", ())),
        disks=tuple(_disk_from(d) for d in v["disks"]),
        secondaries=secs,
    )
