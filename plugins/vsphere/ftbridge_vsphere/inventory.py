"""One endpoint's inventory in a constant number of round trips.

One ContainerView over every type we need, one RetrievePropertiesEx asking only for the
paths below (continued while the server pages), DestroyView: three round trips on a
vCenter that does not page, plus one to find a datacenter when the config names one.
:func:`build` turns the reply into the model and is pure, so it is tested on its own.

FT secondaries are VirtualMachine objects of their own (``config.ftInfo.role`` 2); they are
folded into their primary as a :class:`~ftbridge.model.Secondary` (mechanism ``vsphere-ft``)
with their own config and disk locations, host, and the FT metadata datastore.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from ftbridge.inventory import InventoryPart
from ftbridge.model import (
    VM,
    Datastore,
    Disk,
    FailureDomain,
    Host,
    HostState,
    PowerState,
    Secondary,
    SecondaryDisk,
    SecondaryState,
)
from ftbridge_vsphere import wire

if TYPE_CHECKING:
    from ftbridge_vsphere.client import Session

MECHANISM = "vsphere-ft"
#: test-failover clones carry this in their name; they are not production VMs
TEST_MARK = "--ftbridge-test-"

HOST_PATHS = ("name", "parent", "runtime.connectionState", "runtime.inMaintenanceMode")
CLUSTER_PATHS = ("name",)
DATASTORE_PATHS = ("name", "summary.type", "summary.url", "summary.capacity", "summary.freeSpace",
                   "summary.accessible", "summary.multipleHostAccess", "host")
VM_PATHS = ("name", "config.template", "config.files.vmPathName", "config.files.ftMetadataDirectory",
            "config.hardware.device", "config.hardware.numCPU", "config.hardware.memoryMB", "config.ftInfo",
            "runtime.faultToleranceState", "runtime.host", "runtime.powerState", "runtime.connectionState")
SPECS: Mapping[str, tuple[str, ...]] = {
    "HostSystem": HOST_PATHS,
    "ClusterComputeResource": CLUSTER_PATHS,
    "Datastore": DATASTORE_PATHS,
    "VirtualMachine": VM_PATHS,
}

_KINDS = {"vmfs": "vmfs", "nfs": "nfs", "nfs41": "nfs", "vsan": "vsan", "vvol": "vvol", "pmem": "pmem"}
_POWER = {"poweredOn": PowerState.ON, "poweredOff": PowerState.OFF, "suspended": PowerState.SUSPENDED}


def read(session: Session, endpoint: str, *, datacenter: str | None = None,
         cluster: str | None = None) -> InventoryPart:
    from ftbridge.errors import NotFound

    container = None
    if datacenter:
        dc = session.find_datacenter(datacenter)
        if dc is None:
            raise NotFound(f"no datacenter {datacenter!r}", endpoint=endpoint,
                           hint="check the endpoint's datacenter key (an inventory path such as dc1)")
        container = ("Datacenter", dc)
    with wire.gc_paused():
        objects = session.collect(SPECS, container=container)
        return build(objects, endpoint, cluster=cluster)


def datastore_of(path: str) -> str | None:
    """``ds1`` from ``[ds1] vm/vm.vmx``."""
    if path.startswith("[") and "]" in path:
        return path[1:path.index("]")]
    return None


def kind_of(summary_type: str) -> str:
    t = summary_type.strip().lower()
    return _KINDS.get(t, t or "unknown")


def host_state(conn: str, maintenance: bool | None) -> HostState:
    if conn == "connected":
        return HostState.MAINTENANCE if maintenance else HostState.UP
    if conn in ("notResponding", "disconnected"):
        return HostState.DOWN
    return HostState.UNKNOWN


def secondary_state(ft_state: str, reachable: bool) -> SecondaryState:
    if not reachable:
        return SecondaryState.BROKEN
    return {"running": SecondaryState.IN_SYNC, "enabled": SecondaryState.IN_SYNC,
            "starting": SecondaryState.SYNCING, "disabled": SecondaryState.STALE,
            "needSecondary": SecondaryState.BROKEN}.get(ft_state, SecondaryState.UNKNOWN)


class _Disk:
    __slots__ = ("key", "size", "datastore", "path", "movable")

    def __init__(self, key: str, size: int, datastore: str | None, path: str, movable: bool) -> None:
        self.key, self.size, self.datastore, self.path, self.movable = key, size, datastore, path, movable


def disks_of(devices: wire.Element | None) -> list[_Disk]:
    """The virtual disks among a VM's devices (controllers, NICs and the rest skipped)."""
    out = []
    for dev in wire.items(devices):
        if wire.xsi_type(dev) != "VirtualDisk":
            continue
        backing = wire.child(dev, "backing")
        size = wire.integer(wire.child(dev, "capacityInBytes")) or wire.integer(wire.child(dev, "capacityInKB")) * 1024
        mode = wire.ctext(backing, "compatibilityMode")
        out.append(_Disk(
            key=wire.ctext(dev, "key"), size=size,
            datastore=wire.moid(wire.child(backing, "datastore")),
            path=wire.ctext(backing, "fileName"),
            movable=mode != "physicalMode",  # a physical RDM maps a LUN: nothing to move
        ))
    return out


def build(objects: Iterable[wire.ObjectContent], endpoint: str, *, cluster: str | None = None) -> InventoryPart:
    """The model of one endpoint from a RetrievePropertiesEx reply (see :data:`SPECS`)."""
    by_type: dict[str, list[wire.ObjectContent]] = {}
    for o in objects:
        by_type.setdefault(o.type, []).append(o)

    clusters = {o.moid: wire.text(o.props.get("name")) for o in by_type.get("ClusterComputeResource", ())}
    hosts: dict[str, Host] = {}
    for o in by_type.get("HostSystem", ()):
        p = o.props
        name = wire.text(p.get("name"), o.moid)
        parent = p.get("parent")
        in_cluster = parent is not None and parent.get("type") == "ClusterComputeResource"
        hosts[o.moid] = Host(
            id=o.moid, name=name, endpoint=endpoint,
            cluster=clusters.get(wire.moid(parent) or "") if in_cluster else None,
            state=host_state(wire.text(p.get("runtime.connectionState")),
                             wire.boolean(p.get("runtime.inMaintenanceMode"))),
            domain=FailureDomain(host=name),
        )

    datastores: dict[str, Datastore] = {}
    ds_by_name: dict[str, str] = {}
    for o in by_type.get("Datastore", ()):
        p = o.props
        name = wire.text(p.get("name"), o.moid)
        mounted = []
        for m in wire.items(p.get("host")):
            info = wire.child(m, "mountInfo")
            key = wire.moid(wire.child(m, "key"))
            if key and wire.boolean(wire.child(info, "mounted"), True) is not False:
                mounted.append(key)
        capacity = wire.integer(p.get("summary.capacity"))
        free = min(max(wire.integer(p.get("summary.freeSpace")), 0), capacity)
        multi = wire.boolean(p.get("summary.multipleHostAccess"))
        datastores[o.moid] = Datastore(
            id=o.moid, name=name, endpoint=endpoint, kind=kind_of(wire.text(p.get("summary.type"))),
            shared=bool(multi) or len(mounted) > 1, hosts=tuple(mounted), capacity=capacity, free=free,
            accessible=wire.boolean(p.get("summary.accessible"), True) is not False,
            domain=FailureDomain(datastore=name),
        )
        ds_by_name[name] = o.moid

    def ds_id(explicit: str | None, path: str) -> str | None:
        if explicit and explicit in datastores:
            return explicit
        name = datastore_of(path)
        return ds_by_name.get(name) if name else None

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
        if "config.files.vmPathName" not in p:
            continue  # no configuration (orphaned, inaccessible): nothing to place
        warnings: list[str] = []
        disks = []
        for d in disks_of(p.get("config.hardware.device")):
            ds = ds_id(d.datastore, d.path)
            if ds is None:
                warnings.append(f"disk {d.key} ({d.path}) is on a datastore outside this inventory")
                continue
            disks.append(Disk(id=d.key, size=d.size, datastore=ds, path=d.path, movable=d.movable))
        host = wire.moid(p.get("runtime.host"))
        host = host if host in hosts else None
        power = _POWER.get(wire.text(p.get("runtime.powerState")), PowerState.UNKNOWN)
        if wire.text(p.get("runtime.connectionState"), "connected") != "connected" or (
                host is not None and hosts[host].state is HostState.DOWN):
            power = PowerState.UNKNOWN
        cfg_path = wire.text(p.get("config.files.vmPathName"))
        secondaries = _secondaries(o, vm_objects, hosts, datastores, ds_id, {d.id: d.size for d in disks})
        vms.append(VM(
            id=o.moid, name=name, endpoint=endpoint, host=host, power=power, disks=tuple(disks),
            config_datastore=ds_id(None, cfg_path), config_path=cfg_path, secondaries=secondaries,
            vcpus=wire.integer(p.get("config.hardware.numCPU"), 1),
            memory=wire.integer(p.get("config.hardware.memoryMB")) * 1024 * 1024,
            ha=ft is not None,  # FT VMs are HA-protected by requirement
            warnings=tuple(warnings),
        ))

    part = InventoryPart(tuple(hosts.values()), tuple(datastores.values()), tuple(vms))
    return _only_cluster(part, cluster) if cluster else part


Resolver = Callable[[str | None, str], str | None]  # (datastore moref, "[name] path") -> datastore id


def _secondaries(o: wire.ObjectContent, vm_objects: Mapping[str, wire.ObjectContent], hosts: Mapping[str, Host],
                 datastores: Mapping[str, Datastore], resolve: Resolver,
                 sizes: Mapping[str, int]) -> tuple[Secondary, ...]:
    ft = o.props.get("config.ftInfo")
    if ft is None:
        return ()
    meta_path = wire.text(o.props.get("config.files.ftMetadataDirectory")) or \
        wire.text(o.props.get("config.files.vmPathName"))
    meta = resolve(None, meta_path)
    ft_state = wire.text(o.props.get("runtime.faultToleranceState"))
    out = []
    for ref in wire.children(ft, "secondaries"):
        sid = wire.moid(ref)
        so = vm_objects.get(sid or "")
        if so is None:
            continue
        sp = so.props
        sdisks = []
        for d in disks_of(sp.get("config.hardware.device")):
            ds = resolve(d.datastore, d.path)
            if ds is not None:
                sdisks.append(SecondaryDisk(disk=d.key, datastore=ds, path=d.path, size=sizes.get(d.key, d.size)))
        shost = wire.moid(sp.get("runtime.host"))
        shost = shost if shost in hosts else None
        reachable = (shost is not None and hosts[shost].state is HostState.UP
                     and all(datastores[x.datastore].accessible for x in sdisks))
        state = secondary_state(ft_state, reachable)
        out.append(Secondary(
            id=so.moid, mechanism=MECHANISM, disks=tuple(sdisks),
            config_datastore=resolve(None, wire.text(sp.get("config.files.vmPathName"))),
            host=shost, state=state, lag=0.0 if state is SecondaryState.IN_SYNC else None,
            metadata_datastore=meta,
        ))
    return tuple(out)


def _only_cluster(part: InventoryPart, cluster: str) -> InventoryPart:
    """The hosts of one cluster, their VMs, and the datastores they mount or use."""
    keep_hosts = {h.id for h in part.hosts if h.cluster == cluster}
    vms = tuple(v for v in part.vms if v.host in keep_hosts)
    used_hosts = set(keep_hosts) | {s.host for v in vms for s in v.secondaries if s.host}
    used_ds = {d.id for d in part.datastores if set(d.hosts) & keep_hosts}
    for v in vms:
        used_ds |= v.primary_datastores
        for s in v.secondaries:
            used_ds |= s.datastores
            if s.metadata_datastore:
                used_ds.add(s.metadata_datastore)
    datastores = []
    for d in part.datastores:
        if d.id in used_ds:
            used_hosts |= set(d.hosts)
            datastores.append(d)
    return InventoryPart(tuple(h for h in part.hosts if h.id in used_hosts), tuple(datastores), vms)
