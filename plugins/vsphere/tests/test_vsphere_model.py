"""What the inventory builder makes of replies vcsim cannot produce, crafted in the shapes real
vCenter replies have (the same envelope, element and attribute forms as the recorded ones in
shared/real/vsphere-replies): two datacenters whose local datastores share a name, refused
properties, linked clones, ISO images, RDMs and raw disks, networks, thin disks, mounts."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from ftbridge_vsphere import inventory, wire

from ftbridge.errors import AuthenticationError
from ftbridge.inventory import InventoryPart
from ftbridge.model import Dependency, HostState, PowerState
from ftbridge.testing.conformance import check_inventory

XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"'


def reply(*objects: str, token: str | None = None) -> bytes:
    tok = f"<token>{token}</token>" if token else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
        f'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" {XSI}><soapenv:Body>'
        f'<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval>{"".join(objects)}{tok}'
        f"</returnval></RetrievePropertiesExResponse></soapenv:Body></soapenv:Envelope>"
    ).encode()


def obj(kind: str, moid: str, props: Mapping[str, str], missing: Mapping[str, str] | None = None) -> str:
    ps = "".join(f"<propSet><name>{k}</name>{v}</propSet>" for k, v in props.items())
    ms = "".join(
        f'<missingSet><path>{k}</path><fault><fault xsi:type="{f}"><object type="{kind}">{moid}</object>'
        f"<privilegeId>System.Read</privilegeId></fault><localizedMessage></localizedMessage></fault>"
        f"</missingSet>"
        for k, f in (missing or {}).items()
    )
    return f'<objects><obj type="{kind}">{moid}</obj>{ps}{ms}</objects>'


def s(text: str) -> str:
    return f'<val xsi:type="xsd:string">{text}</val>'


def ref(kind: str, moid: str) -> str:
    return f'<val type="{kind}" xsi:type="ManagedObjectReference">{moid}</val>'


def refs(kind: str, *moids: str) -> str:
    items = "".join(
        f'<ManagedObjectReference type="{kind}" xsi:type="ManagedObjectReference">{m}</ManagedObjectReference>'
        for m in moids
    )
    return f'<val xsi:type="ArrayOfManagedObjectReference">{items}</val>'


def num(value: int, typ: str = "xsd:long") -> str:
    return f'<val xsi:type="{typ}">{value}</val>'


def host(
    moid: str,
    name: str,
    datastores: tuple[str, ...] = (),
    conn: str = "connected",
    power: str = "poweredOn",
    extra: Mapping[str, str] | None = None,
) -> str:
    props = {
        "name": s(name),
        "runtime.connectionState": f'<val xsi:type="HostSystemConnectionState">{conn}</val>',
        "runtime.powerState": f'<val xsi:type="HostSystemPowerState">{power}</val>',
        "datastore": refs("Datastore", *datastores),
        **(extra or {}),
    }
    return obj("HostSystem", moid, props)


def mount(host_id: str, mounted: str = "true", accessible: str = "true") -> str:
    return (
        f'<DatastoreHostMount xsi:type="DatastoreHostMount"><key type="HostSystem">{host_id}</key>'
        f"<mountInfo><mounted>{mounted}</mounted><accessible>{accessible}</accessible></mountInfo>"
        f"</DatastoreHostMount>"
    )


def datastore(moid: str, name: str, *mounts: str, extra: Mapping[str, str] | None = None) -> str:
    props = {
        "name": s(name),
        "summary.type": s("VMFS"),
        "summary.capacity": num(1000),
        "summary.freeSpace": num(600),
        "summary.accessible": '<val xsi:type="xsd:boolean">true</val>',
        "host": f'<val xsi:type="ArrayOfDatastoreHostMount">{"".join(mounts)}</val>',
        **(extra or {}),
    }
    return obj("Datastore", moid, props)


def disk(key: int, backing: str, size: int = 4096) -> str:
    return (
        f'<VirtualDevice xsi:type="VirtualDisk"><key>{key}</key>{backing}'
        f"<capacityInKB>{size // 1024}</capacityInKB><capacityInBytes>{size}</capacityInBytes></VirtualDevice>"
    )


def flat(path: str, ds: str | None = None, inner: str = "", tag: str = "backing") -> str:
    d = f'<datastore type="Datastore">{ds}</datastore>' if ds else ""
    return f'<{tag} xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>{path}</fileName>{d}{inner}</{tag}>'


def vm(
    moid: str,
    name: str,
    devices: str = "",
    host_id: str | None = "h-a",
    cfg: str | None = None,
    datastores: tuple[str, ...] | None = None,
    missing: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> str:
    props = {
        "name": s(name),
        "runtime.powerState": '<val xsi:type="VirtualMachinePowerState">poweredOn</val>',
        "runtime.connectionState": '<val xsi:type="VirtualMachineConnectionState">connected</val>',
        "config.hardware.device": f'<val xsi:type="ArrayOfVirtualDevice">{devices}</val>',
    }
    if host_id:
        props["runtime.host"] = ref("HostSystem", host_id)
    if cfg:
        props["config.files.vmPathName"] = s(cfg)
    if datastores is not None:
        props["datastore"] = refs("Datastore", *datastores)
    props.update(extra or {})
    for k in missing or {}:
        props.pop(k, None)
    return obj("VirtualMachine", moid, props, missing)


def dc(moid: str, name: str, *datastores: str) -> str:
    return obj("Datacenter", moid, {"name": s(name), "datastore": refs("Datastore", *datastores)})


def build(*objects: str, layouts: tuple[str, ...] = ()) -> InventoryPart:
    part = inventory.build(
        wire.parse(reply(*objects), lean=True).objects,
        "vc",
        layouts=wire.parse(reply(*layouts)).objects if layouts else (),
    )
    check_inventory(part, "vc")
    return part


TWO_DCS = (
    dc("dc-1", "ams", "ds-a", "shared"),
    dc("dc-2", "rtm", "ds-b"),
    host("h-a", "esx-a", ("ds-a", "shared")),
    host("h-b", "esx-b", ("ds-b",)),
    datastore("ds-a", "LocalDS_0", mount("h-a")),
    datastore("ds-b", "LocalDS_0", mount("h-b")),
    datastore("shared", "shared", mount("h-a")),
)


# --- host states ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conn", "power", "maintenance", "das", "state"),
    [
        ("connected", "poweredOn", False, "", HostState.UP),
        ("connected", "poweredOn", True, "", HostState.MAINTENANCE),
        ("connected", "standBy", False, "", HostState.DOWN),  # DPM or a user put it in standby
        ("notResponding", "poweredOff", False, "", HostState.DOWN),  # powered off through vCenter
        ("notResponding", "unknown", False, "hostDown", HostState.DOWN),  # HA's master says it is down
        ("notResponding", "unknown", False, "networkIsolated", HostState.UNREACHABLE),  # alive, cut off
        ("notResponding", "unknown", False, "", HostState.UNREACHABLE),
        ("disconnected", "unknown", False, "", HostState.UNREACHABLE),
        ("", "", None, "", HostState.UNKNOWN),  # refused: nothing read
    ],
)
def test_host_state_map(conn: str, power: str, maintenance: bool | None, das: str, state: HostState) -> None:
    assert inventory.host_state(conn, power, maintenance, das) is state


def test_host_memory_power_and_ha_state_are_read() -> None:
    das = '<val xsi:type="ClusterDasFdmHostState"><state>hostDown</state></val>'
    part = build(
        host("h-1", "esx1", extra={"summary.hardware.memorySize": num(64 << 30)}),
        obj(
            "HostSystem",
            "h-2",
            {
                "name": s("esx2"),
                "runtime.connectionState": '<val xsi:type="HostSystemConnectionState">notResponding</val>',
                "runtime.dasHostState": das,
                "summary.hardware.memorySize": num(32 << 30),
            },
        ),
    )
    hosts = {h.id: h for h in part.hosts}
    assert hosts["h-2"].state is HostState.DOWN and hosts["h-2"].memory == 32 << 30
    assert hosts["h-1"].state is HostState.UP and hosts["h-1"].memory == 64 << 30


# --- datastores by moref, names only when unique in the datacenter ---------------------------------


def test_same_named_datastores_in_two_datacenters_resolve_to_the_vms_own() -> None:
    part = build(
        *TWO_DCS,
        # backing moref given: it decides, whatever the name says
        vm(
            "vm-1",
            "b-moref",
            disk(2000, flat("[LocalDS_0] b/b.vmdk", "ds-b")),
            host_id="h-b",
            cfg="[LocalDS_0] b/b.vmx",
            datastores=("ds-b",),
        ),
        # no backing moref (older vCenters): the name among the VM's own datastores
        vm(
            "vm-2",
            "b-own",
            disk(2000, flat("[LocalDS_0] c/c.vmdk")),
            host_id="h-b",
            cfg="[LocalDS_0] c/c.vmx",
            datastores=("ds-b",),
        ),
        # no own datastore list (refused): the only LocalDS_0 of its host's datacenter
        vm("vm-3", "a-dc", disk(2000, flat("[LocalDS_0] d/d.vmdk")), host_id="h-a", cfg="[LocalDS_0] d/d.vmx"),
        # nothing tells: ambiguous, so unknown, with a warning, never the last one seen
        vm("vm-4", "lost", disk(2000, flat("[LocalDS_0] e/e.vmdk")), host_id=None, cfg="[LocalDS_0] e/e.vmx"),
    )
    vms = {v.name: v for v in part.vms}
    for name in ("b-moref", "b-own"):
        assert vms[name].config_datastore == "ds-b" and [d.datastore for d in vms[name].disks] == ["ds-b"], name
    assert vms["a-dc"].config_datastore == "ds-a" and [d.datastore for d in vms["a-dc"].disks] == ["ds-a"]
    assert vms["lost"].config_datastore is None and vms["lost"].disks == ()
    assert any("ambiguous" in w for w in vms["lost"].warnings)


def test_a_backing_moref_outside_the_inventory_is_not_replaced_by_a_name() -> None:
    part = build(
        *TWO_DCS,
        vm(
            "vm-1",
            "x",
            disk(2000, flat("[shared] x/x.vmdk", "ds-gone")),
            cfg="[shared] x/x.vmx",
            datastores=("shared",),
        ),
    )
    (v,) = part.vms
    assert v.disks == () and v.config_datastore == "shared"
    assert any("not in this inventory" in w for w in v.warnings)


# --- refusals ----------------------------------------------------------------------------------------


def test_refused_vm_and_host_are_listed_with_the_fault() -> None:
    refused = {
        "config.hardware.device": "NoPermission",
        "config.files.vmPathName": "NoPermission",
        "runtime.host": "NoPermission",
    }
    part = build(
        *TWO_DCS,
        vm("vm-1", "secret", missing=refused),
        obj(
            "HostSystem",
            "h-x",
            {"name": s("esx-x")},
            {"runtime.connectionState": "NoPermission", "runtime.powerState": "NoPermission"},
        ),
    )
    (v,) = part.vms
    assert v.name == "secret" and v.host is None and v.disks == () and v.power is PowerState.ON  # what it said
    assert any("config.files.vmPathName" in w and "NoPermission" in w for w in v.warnings)
    assert {h.id: h.state for h in part.hosts}["h-x"] is HostState.UNKNOWN


def test_a_reply_refused_as_a_whole_is_an_authentication_error() -> None:
    everything = reply(
        obj("HostSystem", "h-1", {}, {"name": "NoPermission"}),
        obj("VirtualMachine", "vm-1", {}, {"name": "NoPermission", "config.hardware.device": "NoPermission"}),
    )
    with pytest.raises(AuthenticationError, match="refused every property") as info:
        inventory.check_refusal(wire.parse(everything).objects, "vc")
    assert info.value.exit_code == 6
    session_gone = reply(
        *TWO_DCS, obj("VirtualMachine", "vm-1", {"name": s("x")}, {"config.hardware.device": "NotAuthenticated"})
    )
    with pytest.raises(AuthenticationError, match="NotAuthenticated"):
        inventory.check_refusal(wire.parse(session_gone).objects, "vc")
    inventory.check_refusal(wire.parse(reply(*TWO_DCS)).objects, "vc")  # a readable reply passes
    inventory.check_refusal([], "vc")  # and so does an empty one (a vCenter with nothing in it)


@pytest.mark.parametrize("state", ["orphaned", "inaccessible", "invalid"])
def test_unreadable_vms_are_listed_as_such(state: str) -> None:
    conn = f'<val xsi:type="VirtualMachineConnectionState">{state}</val>'
    part = build(*TWO_DCS, vm("vm-1", "ghost", extra={"runtime.connectionState": conn}))
    (v,) = part.vms
    assert v.power is PowerState.UNKNOWN and any(f"lists it as {state}" in w for w in v.warnings)


# --- files -------------------------------------------------------------------------------------------


def test_linked_clone_iso_rdm_and_raw_disks() -> None:
    grand = flat("[shared] tpl/base.vmdk", "shared", tag="parent")
    parent = flat("[LocalDS_0] tpl/snap.vmdk", "ds-a", inner=grand, tag="parent")
    rdm = (
        '<backing xsi:type="VirtualDiskRawDiskMappingVer1BackingInfo"><fileName>[shared] r/r_{0}.vmdk</fileName>'
        '<datastore type="Datastore">shared</datastore><compatibilityMode>{1}</compatibilityMode>'
        "<deviceName>/vmfs/devices/disks/naa.{0}</deviceName></backing>"
    )
    raw = (
        '<backing xsi:type="VirtualDiskRawDiskVer2BackingInfo"><deviceName>/vmfs/devices/disks/naa.9'
        "</deviceName></backing>"
    )
    raw_descr = (
        '<backing xsi:type="VirtualDiskRawDiskVer2BackingInfo"><descriptorFileName>[shared] r/raw.vmdk'
        "</descriptorFileName><deviceName>/dev/sdb</deviceName></backing>"
    )
    cdroms = (
        '<VirtualDevice xsi:type="VirtualCdrom"><key>3000</key><backing xsi:type="VirtualCdromIsoBackingInfo">'
        '<fileName>[shared] iso/tools.iso</fileName><datastore type="Datastore">shared</datastore></backing>'
        '</VirtualDevice><VirtualDevice xsi:type="VirtualCdrom"><key>3001</key>'
        '<backing xsi:type="VirtualCdromIsoBackingInfo"><fileName>[] /vmimages/tools-isoimages/linux.iso'
        "</fileName></backing></VirtualDevice>"
    )
    part = build(
        *TWO_DCS,
        vm(
            "vm-1",
            "clone",
            disk(2000, flat("[shared] c/c.vmdk", "shared", inner=parent)) + cdroms,
            cfg="[shared] c/c.vmx",
            datastores=("shared", "ds-a"),
        ),
        vm(
            "vm-2",
            "rdms",
            disk(2000, rdm.format(1, "virtualMode"))
            + disk(2001, rdm.format(2, "physicalMode"))
            + disk(2002, raw_descr),
            cfg="[shared] r/r.vmx",
            datastores=("shared",),
        ),
        vm("vm-3", "raw", disk(2000, raw), cfg="[shared] w/w.vmx", datastores=("shared",)),
    )
    vms = {v.name: v for v in part.vms}
    clone = vms["clone"]
    assert clone.depends_on == (
        Dependency("base-disk", "ds-a", "[LocalDS_0] tpl/snap.vmdk"),
        Dependency("base-disk", "shared", "[shared] tpl/base.vmdk"),
        Dependency("iso", "shared", "[shared] iso/tools.iso"),
    )  # the host-local ISO is not one
    assert clone.primary_datastores == {"shared"} and clone.needed_datastores == {"shared", "ds-a"}
    assert clone.mechanisms == ()  # vSphere FT does not protect linked clones
    rdms = vms["rdms"]
    assert [(d.id, d.kind, d.movable, d.datastore) for d in rdms.disks] == [
        ("2000", "rdm", False, "shared"),
        ("2001", "rdm", False, "shared"),
        ("2002", "rdm", False, "shared"),
    ]
    assert rdms.mechanisms == () and any("physical-mode RDM" in w for w in rdms.warnings)
    raw_vm = vms["raw"]
    assert raw_vm.disks == () and raw_vm.mechanisms == ()
    assert any("/vmfs/devices/disks/naa.9" in w and "no datastore" in w for w in raw_vm.warnings)
    assert not any("outside this inventory" in w for w in raw_vm.warnings)


def test_thin_disks_take_what_their_own_files_take() -> None:
    base = flat("[shared] tpl/base.vmdk", "shared", tag="parent")
    thin = flat("[shared] t/t.vmdk", "shared", inner="<thinProvisioned>true</thinProvisioned>" + base)
    files = "".join(
        f"<VirtualMachineFileLayoutExFileInfo><key>{k}</key><name>{n}</name><type>diskExtent</type>"
        f"<size>{size}</size></VirtualMachineFileLayoutExFileInfo>"
        for k, n, size in (
            (0, "[shared] t/t.vmdk", 100),
            (1, "[shared] t/t-delta.vmdk", 700),
            (2, "[shared] tpl/base.vmdk", 5000),
        )
    )
    layout = obj(
        "VirtualMachine",
        "vm-1",
        {
            "layoutEx.file": f'<val xsi:type="ArrayOfVirtualMachineFileLayoutExFileInfo">{files}</val>',
            "layoutEx.disk": '<val xsi:type="ArrayOfVirtualMachineFileLayoutExDiskLayout">'
            "<VirtualMachineFileLayoutExDiskLayout>"
            "<key>2000</key><chain><fileKey>0</fileKey><fileKey>1</fileKey></chain>"
            "<chain><fileKey>2</fileKey></chain></VirtualMachineFileLayoutExDiskLayout></val>",
        },
    )
    objects = (
        *TWO_DCS[:-1],
        datastore(
            "shared",
            "shared",
            mount("h-a"),
            extra={
                "summary.uncommitted": num(250),
                "capability.perFileThinProvisioningSupported": '<val xsi:type="xsd:boolean">true</val>',
            },
        ),
        vm("vm-1", "thin", disk(2000, thin, size=1 << 20), cfg="[shared] t/t.vmx", datastores=("shared",)),
    )
    assert inventory.thin_vms(wire.parse(reply(*objects)).objects) == ["vm-1"]
    part = build(*objects, layouts=(layout,))
    (d,) = part.vms[0].disks
    assert d.thin and d.allocated == 800  # the base disk's 5000 bytes are the template's
    shared = {x.id: x for x in part.datastores}["shared"]
    assert shared.thin and shared.committed == 1000 - 600 + 250
    assert (
        not {x.id: x for x in part.datastores}["ds-a"].thin
        and {x.id: x for x in part.datastores}["ds-a"].committed is None
    )
    assert build(*objects).vms[0].disks[0].allocated is None  # no layout read: unknown


# --- mounts ------------------------------------------------------------------------------------------


def test_a_datastore_counts_only_hosts_that_mount_it_now_from_both_sides() -> None:
    part = build(
        host("h-1", "esx1", ("ds",)),
        host("h-2", "esx2", ("ds",)),
        host("h-3", "esx3", ("ds",)),
        host("h-4", "esx4", ()),
        host("h-5", "esx5", ("ds",)),
        datastore(
            "ds", "nfs", mount("h-1"), mount("h-2", accessible="false"), mount("h-3", mounted="false"), mount("h-4")
        ),  # h-4 does not list ds; h-5 lists it but is not listed
    )
    (d,) = part.datastores
    assert d.hosts == ("h-1",) and d.shared


# --- VM facts -------------------------------------------------------------------------------------


def test_managed_by_uuid_ha_networks_and_nics() -> None:
    portgroups = (
        '<val xsi:type="ArrayOfHostPortGroup">'
        + "".join(
            f"<HostPortGroup><key>k-{n}</key><spec><name>{n}</name><vlanId>{v}</vlanId><vswitchName>vSwitch0"
            f"</vswitchName></spec></HostPortGroup>"
            for n, v in (("app", 100), ("mixed", 10), ("untagged", 0))
        )
        + "</val>"
    )
    portgroups2 = (
        '<val xsi:type="ArrayOfHostPortGroup"><HostPortGroup><key>k</key><spec><name>mixed</name>'
        "<vlanId>20</vlanId><vswitchName>vSwitch0</vswitchName></spec></HostPortGroup></val>"
    )
    dv_vlan = (
        '<val xsi:type="VMwareDVSPortSetting"><vlan xsi:type="VmwareDistributedVirtualSwitchVlanIdSpec">'
        "<inherited>false</inherited><vlanId>{}</vlanId></vlan></val>"
    )
    trunk = (
        '<val xsi:type="VMwareDVSPortSetting"><vlan xsi:type="VmwareDistributedVirtualSwitchTrunkVlanSpec">'
        "<inherited>false</inherited><vlanId><start>1</start><end>99</end></vlanId></vlan></val>"
    )
    nics = (
        '<VirtualDevice xsi:type="VirtualVmxnet3"><key>4000</key>'
        '<backing xsi:type="VirtualEthernetCardNetworkBackingInfo">'
        '<deviceName>app</deviceName><network type="Network">net-app</network></backing>'
        "<macAddress>00:50:56:01:02:03</macAddress></VirtualDevice>"
        '<VirtualDevice xsi:type="VirtualE1000e"><key>4001</key>'
        '<backing xsi:type="VirtualEthernetCardDistributedVirtualPortBackingInfo"><port><switchUuid>50 1a</switchUuid>'
        "<portgroupKey>dvportgroup-7</portgroupKey></port></backing><macAddress>00:50:56:01:02:04</macAddress>"
        "</VirtualDevice>"
        '<VirtualDevice xsi:type="VirtualVmxnet9Future"><key>4002</key>'  # a card type newer than this code
        '<backing xsi:type="VirtualEthernetCardOpaqueNetworkBackingInfo"><opaqueNetworkId>ls-1</opaqueNetworkId>'
        "<opaqueNetworkType>nsx.LogicalSwitch</opaqueNetworkType></backing><macAddress>00:50:56:01:02:05</macAddress>"
        "</VirtualDevice>"
    )
    managed = (
        '<val xsi:type="ManagedByInfo"><extensionKey>com.vmware.vim.eam</extensionKey><type>cluster-agent</type></val>'
    )
    part = build(
        *TWO_DCS[:2],
        host("h-a", "esx-a", ("ds-a", "shared"), extra={"config.network.portgroup": portgroups}),
        host("h-c", "esx-c", (), extra={"config.network.portgroup": portgroups2}),
        *TWO_DCS[3:],
        obj("Network", "net-app", {"name": s("app"), "host": refs("HostSystem", "h-a")}),
        obj("Network", "net-mixed", {"name": s("mixed"), "host": refs("HostSystem", "h-a", "h-c")}),
        obj("Network", "net-untagged", {"name": s("untagged")}),
        obj(
            "DistributedVirtualPortgroup",
            "dvportgroup-7",
            {"name": s("dv-db"), "key": s("dvportgroup-7"), "config.defaultPortConfig": dv_vlan.format(200)},
        ),
        obj(
            "DistributedVirtualPortgroup",
            "dvportgroup-8",
            {"name": s("dv-trunk"), "key": s("dvportgroup-8"), "config.defaultPortConfig": trunk},
        ),
        obj(
            "DistributedVirtualPortgroup",
            "dvportgroup-9",
            {"name": s("uplinks"), "key": s("dvportgroup-9"), "config.uplink": '<val xsi:type="xsd:boolean">1</val>'},
        ),
        obj("OpaqueNetwork", "net-nsx", {"name": s("segment"), "summary.opaqueNetworkId": s("ls-1")}),
        vm(
            "vm-1",
            "vcls-1",
            nics,
            cfg="[shared] v/v.vmx",
            datastores=("shared",),
            extra={
                "config.managedBy": managed,
                "config.uuid": s("4203aa17-0000-0000-0000-000000000001"),
                "runtime.dasVmProtection": '<val xsi:type="VirtualMachineRuntimeInfoDasProtectionState">'
                "<dasProtected>true</dasProtected></val>",
            },
        ),
    )
    nets = {n.id: (n.kind, n.vlan) for n in part.networks}
    assert nets == {
        "net-app": ("portgroup", 100),
        "net-mixed": ("portgroup", None),
        "net-untagged": ("portgroup", None),
        "dvportgroup-7": ("dvportgroup", 200),
        "dvportgroup-8": ("dvportgroup", None),
        "net-nsx": ("opaque", None),
    }
    (v,) = part.vms
    assert v.managed_by == "com.vmware.vim.eam (cluster-agent)" and v.ha
    assert v.uuid == "4203aa17-0000-0000-0000-000000000001"
    assert [(n.id, n.network, n.mac, n.model) for n in v.nics] == [
        ("4000", "net-app", "00:50:56:01:02:03", "vmxnet3"),
        ("4001", "dvportgroup-7", "00:50:56:01:02:04", "e1000e"),
        ("4002", "net-nsx", "00:50:56:01:02:05", "VirtualVmxnet9Future"),
    ]


def test_disks_attached_to_several_vms_are_shared_by_them() -> None:
    d = disk(2001, flat("[shared] q/quorum.vmdk", "shared"))
    part = build(
        *TWO_DCS,
        vm("vm-1", "n1", d, cfg="[shared] n1/n1.vmx"),
        vm("vm-2", "n2", d, cfg="[shared] n2/n2.vmx"),
        vm("vm-3", "solo", disk(2000, flat("[shared] s/s.vmdk", "shared")), cfg="[shared] s/s.vmx"),
    )
    shared = {v.name: v.disks[0].shared_by for v in part.vms}
    assert shared == {"n1": ("vm-2",), "n2": ("vm-1",), "solo": ()}


# --- the wire forms a real server may use ------------------------------------------------------------


def test_booleans_written_1_and_0_and_single_quoted_prefixed_types() -> None:
    devices = (
        "<VirtualDevice xsi:type='ParaVirtualSCSIController'><key>1000</key><busNumber>0</busNumber>"
        "</VirtualDevice>"
        "<VirtualDevice xsi:type='VirtualDisk'><key>2000</key><backing xsi:type='VirtualDiskFlatVer2BackingInfo'>"
        "<fileName>[shared] q/q.vmdk</fileName><datastore type='Datastore'>shared</datastore>"
        "<thinProvisioned>1</thinProvisioned></backing><capacityInKB>4</capacityInKB></VirtualDevice>"
        '<VirtualDevice xmlns:vim25="urn:vim25" xsi:type="vim25:VirtualDisk"><key>2001</key>'
        "<backing xsi:type='VirtualDiskFlatVer2BackingInfo'><fileName>[shared] q/q_1.vmdk</fileName>"
        "<thinProvisioned>0</thinProvisioned></backing><capacityInKB>8</capacityInKB></VirtualDevice>"
    )
    objects = (
        *TWO_DCS,
        vm("vm-1", "q", devices, cfg="[shared] q/q.vmx", datastores=("shared",)),
        vm("vm-2", "tpl", cfg="[shared] t/t.vmx", extra={"config.template": '<val xsi:type="xsd:boolean">1</val>'}),
        datastore("dead", "dead", mount("h-a"), extra={"summary.accessible": '<val xsi:type="xsd:boolean">0</val>'}),
    )
    page = wire.parse(reply(*objects), lean=True)
    (q,) = [o for o in page.objects if o.moid == "vm-1"]
    assert [wire.xsi_type(d) for d in wire.items(q.props["config.hardware.device"])] == ["VirtualDisk", "VirtualDisk"]
    part = build(*objects)
    assert [v.name for v in part.vms] == ["q"]  # config.template 1: a template
    assert [(d.id, d.thin, d.size) for d in part.vms[0].disks] == [("2000", True, 4096), ("2001", False, 8192)]
    assert {d.id: d.accessible for d in part.datastores}["dead"] is False
