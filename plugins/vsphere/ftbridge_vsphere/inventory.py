"""One endpoint's inventory in a constant number of round trips.

One ContainerView over every type we need, one RetrievePropertiesEx asking only for the
paths below (continued while the server pages), DestroyView; then, only for VMs with thin
disks, one more RetrievePropertiesEx for their file layout (what the thin disks really take).
:func:`build` turns the replies into the model and is pure, so it is tested on its own.

How vSphere facts become the model (each rule's source is in the plugin README's table):

* **Datastores by moref.** A disk's backing names its datastore by moref; a path
  ``[name] file`` names it only by name, and names are unique only within a datacenter (every
  ESXi host's local datastore starts as ``datastore1``). A name is resolved among the
  VM's own ``VirtualMachine.datastore`` morefs first, then within the VM's datacenter, and
  only when exactly one datastore there has it; otherwise the VM gets a warning.
* **Refusals.** ``missingSet`` is read: a VM or host whose properties were refused is listed
  with a warning naming the paths and the fault; a reply whose every object was refused, or
  any ``NotAuthenticated``, is an :class:`~ftbridge.errors.AuthenticationError`, never an
  empty estate. Orphaned, inaccessible and invalid VMs are listed with what vCenter says.
* **Files.** A linked clone's parent disks and mounted ISO images are
  :class:`~ftbridge.model.Dependency` (``base-disk``, ``iso``); an RDM (any compatibility
  mode) is a disk of kind ``rdm`` that cannot move.
* **Hosts.** Power state, HA state and connection state give :class:`HostState` (see
  :func:`host_state`); memory comes from ``summary.hardware.memorySize``; a datastore's hosts
  are those whose mount is mounted and accessible and that list the datastore themselves.

FT secondaries are VirtualMachine objects of their own (``config.ftInfo.role`` 2); they are
folded into their primary as a :class:`~ftbridge.model.Secondary` (mechanism ``vsphere-ft``)
with their own config and disk locations, host, and the FT metadata datastore.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ftbridge.errors import AuthenticationError
from ftbridge.gcpause import gc_paused
from ftbridge.inventory import InventoryPart
from ftbridge.model import (
    VM,
    Datastore,
    Dependency,
    Disk,
    FailureDomain,
    Host,
    HostState,
    Network,
    Nic,
    PowerState,
    Secondary,
    SecondaryDisk,
    SecondaryState,
)
from ftbridge_vsphere import wire

if TYPE_CHECKING:
    from ftbridge_vsphere.client import Session

log = logging.getLogger(__name__)

MECHANISM = "vsphere-ft"
#: test-failover clones carry this in their name; they are not production VMs
TEST_MARK = "--ftbridge-test-"

HOST_PATHS = (
    "name",
    "parent",
    "runtime.connectionState",
    "runtime.powerState",
    "runtime.inMaintenanceMode",
    "runtime.dasHostState",
    "summary.hardware.memorySize",
    "datastore",
    "config.network.portgroup",
)
CLUSTER_PATHS = ("name",)
DATACENTER_PATHS = ("name", "datastore")
DATASTORE_PATHS = (
    "name",
    "summary.type",
    "summary.capacity",
    "summary.freeSpace",
    "summary.uncommitted",
    "summary.accessible",
    "summary.multipleHostAccess",
    "host",
    "capability.perFileThinProvisioningSupported",
)
NETWORK_PATHS = ("name", "host")
DVPORTGROUP_PATHS = ("key", "config.defaultPortConfig", "config.uplink")
DVSWITCH_PATHS = ("uuid",)
OPAQUE_PATHS = ("summary.opaqueNetworkId",)
VM_PATHS = (
    "name",
    "config.template",
    "config.files.vmPathName",
    "config.files.ftMetadataDirectory",
    "config.hardware.device",
    "config.hardware.numCPU",
    "config.hardware.memoryMB",
    "config.ftInfo",
    "config.managedBy",
    "config.uuid",
    "datastore",
    "runtime.faultToleranceState",
    "runtime.host",
    "runtime.powerState",
    "runtime.connectionState",
    "runtime.dasVmProtection",
)
SPECS: Mapping[str, tuple[str, ...]] = {
    "Datacenter": DATACENTER_PATHS,
    "HostSystem": HOST_PATHS,
    "ClusterComputeResource": CLUSTER_PATHS,
    "Datastore": DATASTORE_PATHS,
    "Network": NETWORK_PATHS,  # DistributedVirtualPortgroup and OpaqueNetwork are Networks too
    "DistributedVirtualPortgroup": DVPORTGROUP_PATHS,
    "DistributedVirtualSwitch": DVSWITCH_PATHS,
    "OpaqueNetwork": OPAQUE_PATHS,
    "VirtualMachine": VM_PATHS,
}
#: read afterwards, only for VMs with thin disks (layoutEx is most of a VM's size on the wire)
LAYOUT_PATHS = ("layoutEx.file", "layoutEx.disk")

_KINDS = {"vmfs": "vmfs", "nfs": "nfs", "nfs41": "nfs", "vsan": "vsan", "vvol": "vvol", "pmem": "pmem"}
_POWER = {"poweredOn": PowerState.ON, "poweredOff": PowerState.OFF, "suspended": PowerState.SUSPENDED}
_NIC_MODELS = {
    "VirtualVmxnet3": "vmxnet3",
    "VirtualVmxnet3Vrdma": "vmxnet3-vrdma",
    "VirtualVmxnet2": "vmxnet2",
    "VirtualVmxnet": "vmxnet",
    "VirtualE1000": "e1000",
    "VirtualE1000e": "e1000e",
    "VirtualPCNet32": "pcnet32",
    "VirtualSriovEthernetCard": "sriov",
}
#: VirtualMachineConnectionState values that mean vCenter cannot read or reach the VM's files
_UNREADABLE = {
    "orphaned": "the host no longer has it registered",
    "inaccessible": "its configuration files cannot be read",
    "invalid": "its configuration is corrupt",
}


def read(
    session: Session, endpoint: str, *, datacenter: str | None = None, cluster: str | None = None
) -> InventoryPart:
    from ftbridge.errors import NotFound

    container = None
    if datacenter:
        dc = session.find_datacenter(datacenter)
        if dc is None:
            raise NotFound(
                f"no datacenter {datacenter!r}",
                endpoint=endpoint,
                hint="check the endpoint's datacenter key (an inventory path such as dc1)",
            )
        container = ("Datacenter", dc)
    with gc_paused():
        objects = session.collect(SPECS, container=container)
        check_refusal(objects, endpoint)
        thin = thin_vms(objects)
        layouts = session.fetch("VirtualMachine", thin, LAYOUT_PATHS) if thin else []
        return build(objects, endpoint, cluster=cluster, layouts=layouts)


# --- rules ------------------------------------------------------------------------------------


def datastore_of(path: str) -> str | None:
    """``ds1`` from ``[ds1] vm/vm.vmx`` (None for a path on no datastore, such as ``[] /iso``)."""
    if path.startswith("[") and "]" in path:
        return path[1 : path.index("]")] or None
    return None


def kind_of(summary_type: str) -> str:
    t = summary_type.strip().lower()
    return _KINDS.get(t, t or "unknown")


def host_state(connection: str, power: str, maintenance: bool | None, das: str = "") -> HostState:
    """vSphere's view of a host as :class:`HostState` (vSphere API enums: HostSystemPowerState,
    HostSystemConnectionState, ClusterDasFdmAvailabilityState):

    * ``powerState`` poweredOff or standBy: vCenter itself powered the host off or put it in
      standby: DOWN;
    * HA's ``dasHostState`` hostDown: the HA master reports the host down (no network and no
      datastore heartbeat; HA restarts its VMs): DOWN;
    * ``connectionState`` notResponding or disconnected, anything else: UNREACHABLE: vCenter
      "cannot possibly have knowledge of its power state"; the host may still run its VMs;
    * connected: UP, or MAINTENANCE in maintenance mode. Anything unread: UNKNOWN.
    """
    if power in ("poweredOff", "standBy") or das == "hostDown":
        return HostState.DOWN
    if connection in ("notResponding", "disconnected"):
        return HostState.UNREACHABLE
    if connection == "connected":
        return HostState.MAINTENANCE if maintenance else HostState.UP
    return HostState.UNKNOWN


def secondary_state(ft_state: str, reachable: bool) -> SecondaryState:
    if not reachable:
        return SecondaryState.BROKEN
    return {
        "running": SecondaryState.IN_SYNC,
        "enabled": SecondaryState.IN_SYNC,
        "starting": SecondaryState.SYNCING,
        "disabled": SecondaryState.STALE,
        "needSecondary": SecondaryState.BROKEN,
    }.get(ft_state, SecondaryState.UNKNOWN)


def check_refusal(objects: Iterable[wire.ObjectContent], endpoint: str) -> None:
    """Raise :class:`AuthenticationError` for a reply refused as a whole: any property refused
    with NotAuthenticated (the session is not valid), or every object without a single property."""
    objs = list(objects)
    faults = {f for o in objs for f in o.missing.values()}
    if "NotAuthenticated" in faults:
        raise AuthenticationError(
            "vCenter refused the inventory read: NotAuthenticated (the session is no longer valid)",
            endpoint=endpoint,
            retryable=True,
        )
    if objs and all(not o.props and o.missing for o in objs):
        names = ", ".join(sorted(f or "no fault given" for f in faults))
        raise AuthenticationError(
            f"vCenter refused every property of every object ({names})",
            endpoint=endpoint,
            hint="the user needs System.Read on the inventory (a read-only role suffices)",
        )


def thin_vms(objects: Iterable[wire.ObjectContent]) -> list[str]:
    """VMs with a thin disk: the ones whose file layout is worth a second read."""
    out = []
    for o in objects:
        if o.type == "VirtualMachine" and any(
            wire.boolean(wire.child(wire.child(dev, "backing"), "thinProvisioned"))
            for dev in wire.items(o.props.get("config.hardware.device"))
        ):
            out.append(o.moid)
    return out


def _refused(o: wire.ObjectContent) -> str:
    """``config.hardware.device, runtime.host (NoPermission)``, or ``""``."""
    by_fault: dict[str, list[str]] = {}
    for path, fault in sorted(o.missing.items()):
        by_fault.setdefault(fault or "no fault given", []).append(path)
    return "; ".join(f"{', '.join(paths)} ({fault})" for fault, paths in sorted(by_fault.items()))


# --- devices ----------------------------------------------------------------------------------


@dataclass
class _Disk:
    key: str
    size: int
    datastore: str | None  # moref from the backing
    path: str
    kind: str  # disk | rdm
    mode: str  # RDM compatibility mode
    thin: bool
    parents: list[tuple[str | None, str]] = field(default_factory=list)  # (moref, path), nearest first
    raw_device: str = ""  # a raw disk with no file on a datastore


def disks_of(devices: wire.Element | None) -> list[_Disk]:
    """The virtual disks among a VM's devices, with their backing's facts (vSphere API:
    VirtualDisk, VirtualDiskFlatVer2BackingInfo.parent/thinProvisioned,
    VirtualDiskRawDiskMappingVer1BackingInfo.compatibilityMode, VirtualDiskRawDiskVer2BackingInfo)."""
    out = []
    for dev in wire.items(devices):
        if wire.xsi_type(dev) != "VirtualDisk":
            continue
        backing = wire.child(dev, "backing")
        btype = wire.xsi_type(backing)
        size = wire.integer(wire.child(dev, "capacityInBytes")) or wire.integer(wire.child(dev, "capacityInKB")) * 1024
        kind = (
            "rdm"
            if btype.startswith("VirtualDiskRawDisk") or btype.startswith("VirtualDiskPartitionedRawDisk")
            else "disk"
        )
        path = wire.ctext(backing, "fileName") or wire.ctext(backing, "descriptorFileName")
        d = _Disk(
            key=wire.ctext(dev, "key"),
            size=size,
            datastore=wire.moid(wire.child(backing, "datastore")),
            path=path,
            kind=kind,
            mode=wire.ctext(backing, "compatibilityMode"),
            thin=bool(wire.boolean(wire.child(backing, "thinProvisioned"))),
        )
        if kind == "rdm" and not datastore_of(path):
            d.raw_device = wire.ctext(backing, "deviceName") or "a raw device"
        parent = wire.child(backing, "parent")
        while parent is not None:
            d.parents.append((wire.moid(wire.child(parent, "datastore")), wire.ctext(parent, "fileName")))
            parent = wire.child(parent, "parent")
        out.append(d)
    return out


def isos_of(devices: wire.Element | None) -> list[tuple[str | None, str]]:
    """(datastore moref, path) of each ISO image a CD-ROM mounts from a datastore
    (VirtualCdromIsoBackingInfo); host-local images (``[] /vmimages/...``) are skipped."""
    out = []
    for dev in wire.items(devices):
        backing = wire.child(dev, "backing")
        if wire.xsi_type(backing) == "VirtualCdromIsoBackingInfo":
            path = wire.ctext(backing, "fileName")
            if datastore_of(path):
                out.append((wire.moid(wire.child(backing, "datastore")), path))
    return out


@dataclass
class _Nic:
    key: str
    model: str
    mac: str
    network: str | None = None  # Network moref (standard portgroup)
    portgroup_key: str = ""  # distributed port backing
    switch_uuid: str = ""
    opaque_id: str = ""


def nics_of(devices: wire.Element | None) -> list[_Nic]:
    """Every network card (a VirtualEthernetCard subtype, or any device with a MAC address)."""
    out = []
    for dev in wire.items(devices):
        typ = wire.xsi_type(dev)
        if typ not in _NIC_MODELS and wire.child(dev, "macAddress") is None:
            continue
        backing = wire.child(dev, "backing")
        port = wire.child(backing, "port")
        out.append(
            _Nic(
                key=wire.ctext(dev, "key"),
                model=_NIC_MODELS.get(typ, typ),
                mac=wire.ctext(dev, "macAddress"),
                network=wire.moid(wire.child(backing, "network")),
                portgroup_key=wire.ctext(port, "portgroupKey"),
                switch_uuid=wire.ctext(port, "switchUuid"),
                opaque_id=wire.ctext(backing, "opaqueNetworkId"),
            )
        )
    return out


def allocated_of(layout: wire.ObjectContent | None, disk: _Disk) -> int | None:
    """Bytes the disk's own files take (``layoutEx``: the files of every unit of its chain that
    is not one of its parents, i.e. not a linked clone's base), or None when unknown."""
    if layout is None or "layoutEx.file" not in layout.props:
        return None
    sizes, names = {}, {}
    for f in wire.items(layout.props["layoutEx.file"]):
        k = wire.ctext(f, "key")
        sizes[k], names[k] = wire.integer(wire.child(f, "size")), wire.ctext(f, "name")
    parent_files = {p for _, p in disk.parents}
    for dl in wire.items(layout.props.get("layoutEx.disk")):
        if wire.ctext(dl, "key") != disk.key:
            continue
        total = 0
        for unit in wire.children(dl, "chain"):
            keys = [wire.text(k) for k in wire.children(unit, "fileKey")]
            if any(names.get(k) in parent_files for k in keys):
                continue  # a base disk: not this VM's own
            total += sum(sizes.get(k, 0) for k in keys)
        return total
    return None


# --- the model ----------------------------------------------------------------------------------

#: one VM's datastore references: (the backing's datastore moref, "[name] path") -> datastore id
Resolver = Callable[[str | None, str], str | None]


class _Resolver:
    """Datastore ids for a VM's references: a moref when the reply gives one, else the name
    among the VM's own datastores, else the only datastore of that name in its datacenter."""

    def __init__(self, datastores: Mapping[str, Datastore], dc_of: Mapping[str, frozenset[str]]) -> None:
        self.datastores = datastores
        self.dc_of = dc_of
        self.by_name: dict[str, list[str]] = {}
        for d in datastores.values():
            self.by_name.setdefault(d.name, []).append(d.id)

    def __call__(self, moref: str | None, path: str, own: Iterable[str], dcs: frozenset[str]) -> str | None:
        if moref and moref in self.datastores:
            return moref
        if moref:  # a datastore outside this inventory (another datacenter, filtered out)
            return None
        name = datastore_of(path)
        if name is None:
            return None
        candidates = self.by_name.get(name, [])
        mine = [c for c in candidates if c in set(own)]
        if len(mine) == 1:
            return mine[0]
        if dcs:
            candidates = [c for c in candidates if self.dc_of.get(c, frozenset()) & dcs]
        return candidates[0] if len(candidates) == 1 else None


def build(
    objects: Iterable[wire.ObjectContent],
    endpoint: str,
    *,
    cluster: str | None = None,
    layouts: Iterable[wire.ObjectContent] = (),
) -> InventoryPart:
    """The model of one endpoint from a RetrievePropertiesEx reply (see :data:`SPECS`) and the
    file layouts of its thin VMs (:data:`LAYOUT_PATHS`)."""
    by_type: dict[str, list[wire.ObjectContent]] = {}
    for o in objects:
        by_type.setdefault(o.type, []).append(o)
    layout_of = {o.moid: o for o in layouts}

    dc_of: dict[str, frozenset[str]] = {}
    for dc in by_type.get("Datacenter", ()):
        for ds in wire.morefs(dc.props.get("datastore")):
            dc_of[ds] = dc_of.get(ds, frozenset()) | {dc.moid}

    hosts, host_lists = _hosts(by_type, endpoint)
    datastores = _datastores(by_type, endpoint, hosts, host_lists)
    networks = _networks(by_type, endpoint, hosts)
    resolver = _Resolver(datastores, dc_of)
    dvpg = {(wire.text(o.props.get("key"))): o.moid for o in by_type.get("DistributedVirtualPortgroup", ())}
    opaque = {wire.text(o.props.get("summary.opaqueNetworkId")): o.moid for o in by_type.get("OpaqueNetwork", ())}

    def bind(o: wire.ObjectContent) -> Resolver:
        """The resolver for one VM's references: its own datastores, then its datacenter (that
        of its datastores and of its host's)."""
        own = wire.morefs(o.props.get("datastore"))
        dcs: frozenset[str] = frozenset()
        for ds in [*own, *host_lists.get(wire.moid(o.props.get("runtime.host")) or "", ())]:
            dcs |= dc_of.get(ds, frozenset())
        return lambda moref, path: resolver(moref, path, own, dcs)

    vm_objects = {o.moid: o for o in by_type.get("VirtualMachine", ())}
    vms: list[VM] = []
    for o in vm_objects.values():
        p = o.props
        name = wire.text(p.get("name"), o.moid)
        ft = p.get("config.ftInfo")
        if wire.boolean(p.get("config.template")) or TEST_MARK in name:
            continue
        if ft is not None and wire.integer(wire.child(ft, "role"), 1) != 1:
            continue  # an FT secondary: reported with its primary
        vms.append(_vm(o, endpoint, hosts, datastores, bind, vm_objects, layout_of.get(o.moid), dvpg, opaque))
    _share(vms)

    part = InventoryPart(tuple(hosts.values()), tuple(datastores.values()), tuple(vms), networks)
    return _only_cluster(part, cluster) if cluster else part


def _hosts(
    by_type: Mapping[str, list[wire.ObjectContent]], endpoint: str
) -> tuple[dict[str, Host], dict[str, list[str]]]:
    clusters = {o.moid: wire.text(o.props.get("name")) for o in by_type.get("ClusterComputeResource", ())}
    hosts: dict[str, Host] = {}
    lists: dict[str, list[str]] = {}
    for o in by_type.get("HostSystem", ()):
        p = o.props
        name = wire.text(p.get("name"), o.moid)
        if o.missing:
            log.warning("endpoint %s: host %s: properties refused or missing: %s", endpoint, name, _refused(o))
        parent = p.get("parent")
        in_cluster = parent is not None and parent.get("type") == "ClusterComputeResource"
        hosts[o.moid] = Host(
            id=o.moid,
            name=name,
            endpoint=endpoint,
            cluster=clusters.get(wire.moid(parent) or "") if in_cluster else None,
            state=host_state(
                wire.text(p.get("runtime.connectionState")),
                wire.text(p.get("runtime.powerState")),
                wire.boolean(p.get("runtime.inMaintenanceMode")),
                wire.ctext(p.get("runtime.dasHostState"), "state"),
            ),
            domain=FailureDomain(host=name),
            memory=wire.integer(p.get("summary.hardware.memorySize")),
        )
        if "datastore" in p:
            lists[o.moid] = wire.morefs(p["datastore"])
    return hosts, lists


def _datastores(
    by_type: Mapping[str, list[wire.ObjectContent]],
    endpoint: str,
    hosts: Mapping[str, Host],
    host_lists: Mapping[str, list[str]],
) -> dict[str, Datastore]:
    datastores: dict[str, Datastore] = {}
    for o in by_type.get("Datastore", ()):
        p = o.props
        name = wire.text(p.get("name"), o.moid)
        if o.missing:
            log.warning("endpoint %s: datastore %s: properties refused or missing: %s", endpoint, name, _refused(o))
        listed, mounted = [], []
        for m in wire.items(p.get("host")):
            info = wire.child(m, "mountInfo")
            key = wire.moid(wire.child(m, "key"))
            if not key or key not in hosts:
                continue  # a host outside this inventory (another datacenter, when filtered by one)
            listed.append(key)
            if (
                wire.boolean(wire.child(info, "mounted"), True) is False
                or wire.boolean(wire.child(info, "accessible"), True) is False
            ):
                continue  # HostMountInfo: not mounted, or mounted but not accessible from that host now
            if key in host_lists and o.moid not in host_lists[key]:
                log.warning(
                    "endpoint %s: datastore %s lists host %s, which does not list it: not counted as mounted",
                    endpoint,
                    name,
                    hosts[key].name if key in hosts else key,
                )
                continue
            mounted.append(key)
        for hid, dss in host_lists.items():
            if o.moid in dss and hid not in listed:
                log.warning(
                    "endpoint %s: host %s lists datastore %s, which does not list it: not counted as mounted",
                    endpoint,
                    hosts[hid].name if hid in hosts else hid,
                    name,
                )
        capacity = wire.integer(p.get("summary.capacity"))
        free = min(max(wire.integer(p.get("summary.freeSpace")), 0), capacity)
        multi = wire.boolean(p.get("summary.multipleHostAccess"))
        uncommitted = p.get("summary.uncommitted")
        datastores[o.moid] = Datastore(
            id=o.moid,
            name=name,
            endpoint=endpoint,
            kind=kind_of(wire.text(p.get("summary.type"))),
            shared=bool(multi) or len(listed) > 1,
            hosts=tuple(mounted),
            capacity=capacity,
            free=free,
            accessible=wire.boolean(p.get("summary.accessible"), True) is not False and "summary.accessible" in p,
            domain=FailureDomain(datastore=name),
            # DatastoreCapability.perFileThinProvisioningSupported; DatastoreSummary.uncommitted is
            # what the VMs on it may still grow by (thin disks at full size)
            thin=wire.boolean(p.get("capability.perFileThinProvisioningSupported")) is True,
            committed=None if uncommitted is None else capacity - free + max(wire.integer(uncommitted), 0),
        )
    return datastores


def _networks(
    by_type: Mapping[str, list[wire.ObjectContent]], endpoint: str, hosts: Mapping[str, Host]
) -> tuple[Network, ...]:
    """Standard portgroups (``Network``), distributed portgroups and opaque networks, with the
    VLAN when it is one: a distributed portgroup's ``defaultPortConfig.vlan`` when it is a
    VmwareDistributedVirtualSwitchVlanIdSpec; a standard portgroup's ``spec.vlanId`` on the hosts
    that have it, when they agree. VLAN 0 (no tag), 4095 (all, a trunk), trunk and private-VLAN
    specs give None."""
    host_vlans: dict[str, set[int]] = {}
    for o in by_type.get("HostSystem", ()):
        for pg in wire.items(o.props.get("config.network.portgroup")):
            spec = wire.child(pg, "spec")
            host_vlans.setdefault(wire.ctext(spec, "name"), set()).add(wire.integer(wire.child(spec, "vlanId")))
    dv = {o.moid: o for o in by_type.get("DistributedVirtualPortgroup", ())}
    opaque = {o.moid for o in by_type.get("OpaqueNetwork", ())}
    out = []
    for o in [*by_type.get("Network", ()), *dv.values(), *by_type.get("OpaqueNetwork", ())]:
        name = wire.text(o.props.get("name"), o.moid)
        vlan: int | None = None
        if o.moid in dv:
            if wire.boolean(dv[o.moid].props.get("config.uplink")):
                continue  # a switch's uplinks: no VM attaches there
            kind = "dvportgroup"
            spec = wire.child(dv[o.moid].props.get("config.defaultPortConfig"), "vlan")
            if wire.xsi_type(spec) == "VmwareDistributedVirtualSwitchVlanIdSpec":
                vlan = wire.integer(wire.child(spec, "vlanId"))
        elif o.moid in opaque:
            kind = "opaque"
        else:
            kind = "portgroup"
            seen = host_vlans.get(name, set())
            vlan = next(iter(seen)) if len(seen) == 1 else None
        if vlan in (0, 4095):
            vlan = None
        out.append(
            Network(
                id=o.moid,
                name=name,
                endpoint=endpoint,
                kind=kind,
                vlan=vlan,
                hosts=tuple(h for h in wire.morefs(o.props.get("host")) if h in hosts),
            )
        )
    return tuple(out)


def _vm(
    o: wire.ObjectContent,
    endpoint: str,
    hosts: Mapping[str, Host],
    datastores: Mapping[str, Datastore],
    bind: Callable[[wire.ObjectContent], Resolver],
    vm_objects: Mapping[str, wire.ObjectContent],
    layout: wire.ObjectContent | None,
    dvpg: Mapping[str, str],
    opaque: Mapping[str, str],
) -> VM:
    p = o.props
    resolve = bind(o)
    name = wire.text(p.get("name"), o.moid)
    warnings: list[str] = []
    if o.missing:
        warnings.append(f"vCenter did not return: {_refused(o)}")
    conn = wire.text(p.get("runtime.connectionState"), "connected")
    if conn in _UNREADABLE:
        warnings.append(f"vCenter lists it as {conn}: {_UNREADABLE[conn]}")
    cfg_path = wire.text(p.get("config.files.vmPathName"))
    if not cfg_path:
        warnings.append("its configuration was not returned: where its files are is unknown")
    devices = p.get("config.hardware.device")

    disks: list[Disk] = []
    deps: list[Dependency] = []
    mechanisms: tuple[str, ...] | None = None
    for d in disks_of(devices):
        if d.raw_device:
            warnings.append(f"disk {d.key} is {d.raw_device}, a raw disk on no datastore: it cannot move or be copied")
            mechanisms = ()
            continue
        ds = resolve(d.datastore, d.path)
        if ds is None:
            warnings.append(
                f"disk {d.key} ({d.path}): its datastore is not in this inventory or its name is "
                "ambiguous in the datacenter"
            )
            continue
        rdm = d.kind == "rdm"
        if rdm and d.mode == "physicalMode":  # vSphere Availability: incompatible with FT
            mechanisms = ()
            warnings.append(f"disk {d.key} is a physical-mode RDM: vSphere FT cannot protect this VM")
        disks.append(
            Disk(
                id=d.key,
                size=d.size,
                datastore=ds,
                path=d.path,
                movable=not rdm,
                kind=d.kind,
                thin=d.thin,
                allocated=allocated_of(layout, d) if d.thin else None,
            )
        )
        for moref, path in d.parents:
            base = resolve(moref, path)
            if base is None:
                warnings.append(f"disk {d.key}: base disk {path} is on a datastore outside this inventory")
                continue
            dep = Dependency(kind="base-disk", datastore=base, path=path)
            if dep not in deps:
                deps.append(dep)
        if d.parents:
            mechanisms = ()  # vSphere FT does not protect linked clones
    for moref, path in isos_of(devices):
        ds = resolve(moref, path)
        if ds is None:
            warnings.append(f"ISO image {path}: its datastore is not in this inventory")
            continue
        dep = Dependency(kind="iso", datastore=ds, path=path)
        if dep not in deps:
            deps.append(dep)

    nics = []
    for n in nics_of(devices):
        net = n.network if n.network else dvpg.get(n.portgroup_key) or opaque.get(n.opaque_id)
        nics.append(Nic(id=n.key, network=net, mac=n.mac, model=n.model))

    host = wire.moid(p.get("runtime.host"))
    host = host if host in hosts else None
    power = _POWER.get(wire.text(p.get("runtime.powerState")), PowerState.UNKNOWN)
    if conn != "connected" or (
        host is not None and hosts[host].state is not HostState.UP and hosts[host].state is not HostState.MAINTENANCE
    ):
        power = PowerState.UNKNOWN  # vCenter shows the last state it knew, not the VM's
    ft = p.get("config.ftInfo")
    managed = p.get("config.managedBy")  # ManagedByInfo: the extension running it (vCLS: ESX Agent Manager)
    managed_by = None
    if managed is not None:
        key, typ = wire.ctext(managed, "extensionKey"), wire.ctext(managed, "type")
        managed_by = f"{key} ({typ})" if typ else key
    secondaries = _secondaries(o, vm_objects, hosts, datastores, bind, {d.id: d.size for d in disks}, warnings)
    # VirtualMachineRuntimeInfo.dasVmProtection: HA's own word, unset when HA is off
    ha_protected = wire.boolean(wire.child(p.get("runtime.dasVmProtection"), "dasProtected"))
    return VM(
        id=o.moid,
        name=name,
        endpoint=endpoint,
        host=host,
        power=power,
        disks=tuple(disks),
        config_datastore=resolve(None, cfg_path) if cfg_path else None,
        config_path=cfg_path,
        secondaries=secondaries,
        vcpus=wire.integer(p.get("config.hardware.numCPU"), 1),
        memory=wire.integer(p.get("config.hardware.memoryMB")) * 1024 * 1024,
        ha=ft is not None or ha_protected is True,  # FT VMs are HA-protected by requirement
        warnings=tuple(warnings),
        mechanisms=mechanisms,
        depends_on=tuple(deps),
        managed_by=managed_by,
        uuid=wire.text(p.get("config.uuid")),  # the SMBIOS uuid, which migrations carry (README: VM uuid)
        nics=tuple(nics),
        cluster=hosts[host].cluster if host else None,
    )


def _share(vms: list[VM]) -> None:
    """Fill ``Disk.shared_by``: the other VMs that attach the very same disk file."""
    users: dict[tuple[str, str], list[str]] = {}
    for v in vms:
        for d in v.disks:
            if d.path:
                users.setdefault((d.datastore, d.path), []).append(v.id)
    if not any(len(u) > 1 for u in users.values()):
        return
    from dataclasses import replace

    for i, v in enumerate(vms):
        disks = tuple(
            replace(d, shared_by=tuple(x for x in users[(d.datastore, d.path)] if x != v.id))
            if d.path and len(users[(d.datastore, d.path)]) > 1
            else d
            for d in v.disks
        )
        if disks != v.disks:
            vms[i] = replace(v, disks=disks)


def _secondaries(
    o: wire.ObjectContent,
    vm_objects: Mapping[str, wire.ObjectContent],
    hosts: Mapping[str, Host],
    datastores: Mapping[str, Datastore],
    bind: Callable[[wire.ObjectContent], Resolver],
    sizes: Mapping[str, int],
    warnings: list[str],
) -> tuple[Secondary, ...]:
    ft = o.props.get("config.ftInfo")
    if ft is None:
        return ()
    meta_path = wire.text(o.props.get("config.files.ftMetadataDirectory")) or wire.text(
        o.props.get("config.files.vmPathName")
    )
    meta = bind(o)(None, meta_path)
    ft_state = wire.text(o.props.get("runtime.faultToleranceState"))
    out = []
    for ref in wire.children(ft, "secondaries"):
        sid = wire.moid(ref)
        so = vm_objects.get(sid or "")
        if so is None:
            warnings.append(f"FT secondary {sid} was not returned")
            continue
        if so.missing:
            warnings.append(f"FT secondary {so.moid}: vCenter did not return: {_refused(so)}")
        sp = so.props
        resolve = bind(so)
        sdisks = []
        for d in disks_of(sp.get("config.hardware.device")):
            ds = resolve(d.datastore, d.path)
            if ds is not None:
                sdisks.append(SecondaryDisk(disk=d.key, datastore=ds, path=d.path, size=sizes.get(d.key, d.size)))
        shost = wire.moid(sp.get("runtime.host"))
        shost = shost if shost in hosts else None
        reachable = (
            shost is not None
            and hosts[shost].state is HostState.UP
            and all(datastores[x.datastore].accessible for x in sdisks)
        )
        state = secondary_state(ft_state, reachable)
        out.append(
            Secondary(
                id=so.moid,
                mechanism=MECHANISM,
                disks=tuple(sdisks),
                config_datastore=resolve(None, wire.text(sp.get("config.files.vmPathName"))),
                host=shost,
                state=state,
                lag=0.0 if state is SecondaryState.IN_SYNC else None,
                metadata_datastore=meta,
            )
        )
    return tuple(out)


def _only_cluster(part: InventoryPart, cluster: str) -> InventoryPart:
    """The hosts of one cluster, their VMs, and the datastores and networks they use."""
    keep_hosts = {h.id for h in part.hosts if h.cluster == cluster}
    vms = tuple(v for v in part.vms if v.host in keep_hosts)
    used_hosts = set(keep_hosts) | {s.host for v in vms for s in v.secondaries if s.host}
    used_ds = {d.id for d in part.datastores if set(d.hosts) & keep_hosts}
    for v in vms:
        used_ds |= v.needed_datastores
        for s in v.secondaries:
            used_ds |= s.datastores
            if s.metadata_datastore:
                used_ds.add(s.metadata_datastore)
    datastores = []
    for d in part.datastores:
        if d.id in used_ds:
            used_hosts |= set(d.hosts)
            datastores.append(d)
    used_nets = {n.network for v in vms for n in v.nics if n.network}
    networks = tuple(n for n in part.networks if n.id in used_nets or set(n.hosts) & keep_hosts)
    return InventoryPart(tuple(h for h in part.hosts if h.id in used_hosts), tuple(datastores), vms, networks)
