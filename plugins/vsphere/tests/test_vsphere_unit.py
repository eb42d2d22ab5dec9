"""Unit tests without a lab: config, import cost, the XML reader, the model builder, errors."""

from __future__ import annotations

import http.client
import ssl
import subprocess
import sys

import pytest
from ftbridge_vsphere import client, inventory, wire
from ftbridge_vsphere.config import VsphereConfig
from ftbridge_vsphere.driver import VsphereDriver
from pydantic import ValidationError

from ftbridge.errors import (
    AuthenticationError,
    BackendError,
    BackendUnavailable,
    Conflict,
    NotFound,
    UnsupportedOperation,
)
from ftbridge.model import HostState, PowerState, SecondaryState
from ftbridge.testing.conformance import check_inventory


def test_importing_the_driver_imports_no_sdk() -> None:
    code = (
        "import sys, ftbridge_vsphere.driver, ftbridge_vsphere.lab, ftbridge_vsphere.inventory; "
        "print('pyVmomi' in sys.modules or 'pyVim' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_config_rejects_unknown_keys_and_literal_passwords() -> None:
    base = {"driver": "vsphere", "host": "vc", "user": "u", "password": {"env": "X"}}
    cfg = VsphereConfig.model_validate(base)
    assert cfg.port == 443 and cfg.verify_tls is True and cfg.ca_file is None
    with pytest.raises(ValidationError):
        VsphereConfig.model_validate({**base, "pasword": "typo"})
    with pytest.raises(ValidationError, match="never written in the config"):
        VsphereConfig.model_validate({**base, "password": "hunter2"})
    cfg = VsphereConfig.model_validate({**base, "ca_file": "ca.pem"}, context={"base_dir": "/etc/ftbridge"})
    assert str(cfg.ca_file) == "/etc/ftbridge/ca.pem"


def test_driver_init_does_no_io() -> None:
    cfg = VsphereConfig.model_validate(
        {"driver": "vsphere", "host": "192.0.2.1", "user": "u", "password": {"env": "NOPE"}}
    )
    drv = VsphereDriver(cfg, endpoint="x")
    drv.close()
    drv.close()


REPLY = b"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>
<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval>
<objects><obj type="ClusterComputeResource">domain-c1</obj>
 <propSet><name>name</name><val xsi:type="xsd:string">ams</val></propSet></objects>
<objects><obj type="HostSystem">host-1</obj>
 <propSet><name>name</name><val xsi:type="xsd:string">esx1</val></propSet>
 <propSet><name>parent</name><val type="ClusterComputeResource"
  xsi:type="ManagedObjectReference">domain-c1</val></propSet>
 <propSet><name>runtime.connectionState</name><val xsi:type="HostSystemConnectionState">connected</val></propSet>
 <propSet><name>runtime.inMaintenanceMode</name><val xsi:type="xsd:boolean">false</val></propSet></objects>
<objects><obj type="HostSystem">host-2</obj>
 <propSet><name>name</name><val xsi:type="xsd:string">esx2</val></propSet>
 <propSet><name>parent</name><val type="ComputeResource" xsi:type="ManagedObjectReference">domain-s2</val></propSet>
 <propSet><name>runtime.connectionState</name>
  <val xsi:type="HostSystemConnectionState">notResponding</val></propSet></objects>
<objects><obj type="Datastore">datastore-1</obj>
 <propSet><name>name</name><val xsi:type="xsd:string">shared1</val></propSet>
 <propSet><name>summary.type</name><val xsi:type="xsd:string">NFS41</val></propSet>
 <propSet><name>summary.capacity</name><val xsi:type="xsd:long">1000</val></propSet>
 <propSet><name>summary.freeSpace</name><val xsi:type="xsd:long">400</val></propSet>
 <propSet><name>summary.accessible</name><val xsi:type="xsd:boolean">true</val></propSet>
 <propSet><name>host</name><val xsi:type="ArrayOfDatastoreHostMount">
  <DatastoreHostMount xsi:type="DatastoreHostMount"><key type="HostSystem">host-1</key>
   <mountInfo><mounted>true</mounted><accessible>true</accessible></mountInfo></DatastoreHostMount>
  <DatastoreHostMount xsi:type="DatastoreHostMount"><key type="HostSystem">host-2</key>
   <mountInfo><mounted>true</mounted><accessible>true</accessible></mountInfo></DatastoreHostMount>
 </val></propSet></objects>
<objects><obj type="Datastore">datastore-2</obj>
 <propSet><name>name</name><val xsi:type="xsd:string">local1</val></propSet>
 <propSet><name>summary.type</name><val xsi:type="xsd:string">VMFS</val></propSet>
 <propSet><name>summary.capacity</name><val xsi:type="xsd:long">500</val></propSet>
 <propSet><name>summary.freeSpace</name><val xsi:type="xsd:long">600</val></propSet>
 <propSet><name>host</name><val xsi:type="ArrayOfDatastoreHostMount">
  <DatastoreHostMount xsi:type="DatastoreHostMount"><key type="HostSystem">host-1</key>
   <mountInfo><mounted>true</mounted></mountInfo></DatastoreHostMount></val></propSet></objects>
<objects><obj type="VirtualMachine">vm-1</obj>
 <propSet><name>name</name><val xsi:type="xsd:string">db</val></propSet>
 <propSet><name>config.files.vmPathName</name><val xsi:type="xsd:string">[local1] db/db.vmx</val></propSet>
 <propSet><name>config.files.ftMetadataDirectory</name><val xsi:type="xsd:string">[shared1] db</val></propSet>
 <propSet><name>config.hardware.numCPU</name><val xsi:type="xsd:int">2</val></propSet>
 <propSet><name>config.hardware.memoryMB</name><val xsi:type="xsd:int">1024</val></propSet>
 <propSet><name>config.hardware.device</name><val xsi:type="ArrayOfVirtualDevice">
  <VirtualDevice xsi:type="ParaVirtualSCSIController"><key>1000</key></VirtualDevice>
  <VirtualDevice xsi:type="VirtualDisk"><key>2000</key>
   <backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>[local1] db/db.vmdk</fileName>
    <datastore type="Datastore">datastore-2</datastore></backing>
   <capacityInKB>2048</capacityInKB><capacityInBytes>2097152</capacityInBytes></VirtualDevice>
  <VirtualDevice xsi:type="VirtualDisk"><key>2001</key>
   <backing xsi:type="VirtualDiskRawDiskMappingVer1BackingInfo"><fileName>[shared1] db/rdm.vmdk</fileName>
    <compatibilityMode>physicalMode</compatibilityMode></backing>
   <capacityInKB>4</capacityInKB></VirtualDevice>
  <VirtualDevice xsi:type="VirtualE1000"><key>4000</key></VirtualDevice>
 </val></propSet>
 <propSet><name>config.ftInfo</name><val xsi:type="FaultTolerancePrimaryConfigInfo"><role>1</role>
  <instanceUuids>a</instanceUuids><instanceUuids>b</instanceUuids>
  <configPaths>[local1] db/db.vmx</configPaths><configPaths>[shared1] db-ft/db.vmx</configPaths>
  <secondaries type="VirtualMachine">vm-2</secondaries></val></propSet>
 <propSet><name>runtime.faultToleranceState</name>
  <val xsi:type="VirtualMachineFaultToleranceState">running</val></propSet>
 <propSet><name>runtime.host</name><val type="HostSystem" xsi:type="ManagedObjectReference">host-1</val></propSet>
 <propSet><name>runtime.powerState</name><val xsi:type="VirtualMachinePowerState">poweredOn</val></propSet>
 <propSet><name>runtime.connectionState</name><val xsi:type="VirtualMachineConnectionState">connected</val></propSet>
</objects>
<objects><obj type="VirtualMachine">vm-2</obj>
 <propSet><name>name</name><val xsi:type="xsd:string">db</val></propSet>
 <propSet><name>config.files.vmPathName</name><val xsi:type="xsd:string">[shared1] db-ft/db.vmx</val></propSet>
 <propSet><name>config.hardware.device</name><val xsi:type="ArrayOfVirtualDevice">
  <VirtualDevice xsi:type="VirtualDisk"><key>2000</key>
   <backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>[shared1] db-ft/db.vmdk</fileName></backing>
   <capacityInKB>2048</capacityInKB></VirtualDevice></val></propSet>
 <propSet><name>config.ftInfo</name><val xsi:type="FaultToleranceSecondaryConfigInfo"><role>2</role>
  <primaryVM type="VirtualMachine">vm-1</primaryVM></val></propSet>
 <propSet><name>runtime.host</name><val type="HostSystem" xsi:type="ManagedObjectReference">host-2</val></propSet>
</objects>
<objects><obj type="VirtualMachine">vm-3</obj>
 <propSet><name>name</name><val xsi:type="xsd:string">tmpl</val></propSet>
 <propSet><name>config.template</name><val xsi:type="xsd:boolean">true</val></propSet>
 <propSet><name>config.files.vmPathName</name><val xsi:type="xsd:string">[local1] t/t.vmx</val></propSet></objects>
<token>next-page</token>
</returnval></RetrievePropertiesExResponse></soapenv:Body></soapenv:Envelope>"""


def test_wire_reads_a_reply_fed_in_pieces() -> None:
    feeder = wire.Feeder()
    for i in range(0, len(REPLY), 97):
        feeder.feed(REPLY[i : i + 97])
    page = feeder.page()
    assert page.token == "next-page"
    assert [(o.type, o.moid) for o in page.objects][:2] == [
        ("ClusterComputeResource", "domain-c1"),
        ("HostSystem", "host-1"),
    ]
    assert wire.text(page.objects[0].props["name"]) == "ams"


def test_build_maps_hosts_datastores_vms_and_ft() -> None:
    part = inventory.build(wire.parse(REPLY).objects, "vc")
    check_inventory(part, "vc", frozenset({"vsphere-ft"}))
    hosts = {h.id: h for h in part.hosts}
    assert hosts["host-1"].cluster == "ams" and hosts["host-1"].state is HostState.UP
    assert hosts["host-2"].cluster is None and hosts["host-2"].state is HostState.UNREACHABLE  # not proven down
    ds = {d.id: d for d in part.datastores}
    shared = ds["datastore-1"]
    assert shared.kind == "nfs" and shared.shared and shared.hosts == ("host-1", "host-2")
    assert ds["datastore-2"].kind == "vmfs" and not ds["datastore-2"].shared
    assert ds["datastore-2"].free == 500  # clamped to capacity
    (vm,) = part.vms  # the secondary and the template are not VMs of their own
    assert (vm.id, vm.name, vm.host, vm.power, vm.vcpus) == ("vm-1", "db", "host-1", PowerState.ON, 2)
    assert vm.memory == 1024 * 1024 * 1024 and vm.ha
    assert vm.config_datastore == "datastore-2" and vm.config_path == "[local1] db/db.vmx"
    assert [(d.id, d.size, d.datastore, d.movable, d.kind) for d in vm.disks] == [
        ("2000", 2097152, "datastore-2", True, "disk"),
        ("2001", 4096, "datastore-1", False, "rdm"),
    ]
    (sec,) = vm.secondaries
    assert (sec.id, sec.mechanism, sec.host, sec.config_datastore, sec.metadata_datastore) == (
        "vm-2",
        "vsphere-ft",
        "host-2",
        "datastore-1",
        "datastore-1",
    )
    assert [(x.disk, x.datastore, x.path) for x in sec.disks] == [("2000", "datastore-1", "[shared1] db-ft/db.vmdk")]
    assert sec.state is SecondaryState.BROKEN  # its host does not respond


def test_cluster_filter_keeps_its_hosts_vms_and_their_datastores() -> None:
    part = inventory.build(wire.parse(REPLY).objects, "vc", cluster="ams")
    check_inventory(part, "vc")
    assert [v.id for v in part.vms] == ["vm-1"]
    assert inventory.build(wire.parse(REPLY).objects, "vc", cluster="nope").vms == ()


def test_translate_by_type() -> None:
    sdk = client.sdk()
    vim, vmodl = sdk.vim, sdk.vmodl
    ep = "vc"
    err = client.translate(ssl.SSLCertVerificationError(1, "certificate verify failed"), endpoint=ep)
    assert isinstance(err, AuthenticationError) and "ca_file" in (err.hint or "")
    assert isinstance(client.translate(ConnectionRefusedError(111, "refused"), endpoint=ep), BackendUnavailable)
    assert isinstance(client.translate(http.client.RemoteDisconnected("gone"), endpoint=ep), BackendUnavailable)
    assert isinstance(client.translate(vim.fault.InvalidLogin(), endpoint=ep), AuthenticationError)
    assert isinstance(client.translate(vmodl.fault.ManagedObjectNotFound(), endpoint=ep), NotFound)
    full = client.translate(
        vim.fault.NoDiskSpace(msg="Insufficient disk space on datastore 'x'"), endpoint=ep, doing="moving vm-1"
    )
    assert isinstance(full, Conflict)
    assert str(full) == "vc: moving vm-1: Insufficient disk space on datastore 'x' (NoDiskSpace)"
    busy = client.translate(vim.fault.TaskInProgress(), endpoint=ep)
    assert isinstance(busy, Conflict) and busy.retryable
    assert isinstance(client.translate(vim.fault.VmFaultToleranceTooManyVMsOnHost(), endpoint=ep), Conflict)
    assert isinstance(client.translate(vmodl.fault.MethodNotFound(), endpoint=ep), UnsupportedOperation)
    assert type(client.translate(vmodl.fault.SystemError(), endpoint=ep)) is BackendError


FUTURE = REPLY.replace(
    b'<VirtualDevice xsi:type="VirtualE1000"><key>4000</key></VirtualDevice>',
    b'<VirtualDevice xsi:type="VirtualE1000"><key>4000</key><macAddress>00:50:56:00:00:01'
    b"</macAddress></VirtualDevice>"
    b'<VirtualDevice xsi:type="VirtualQuantumAccelerator"><key>17000</key>'
    b"<qubits>64</qubits></VirtualDevice>",
)


def test_types_newer_than_pyvmomi_break_pyvmomi_not_the_driver() -> None:
    """A vCenter newer than the installed pyVmomi sends device types pyVmomi does not know:
    pyVmomi refuses the whole reply; wire reads it, and the devices the driver must hand back
    to pyVmomi (a disk for FT, a NIC to disconnect) are converted one by one."""
    import io

    sdk = client.sdk()
    pc = sdk.vmodl.query.PropertyCollector
    stub = sdk.soap.SoapStubAdapter("localhost")
    with pytest.raises(Exception, match="VirtualQuantumAccelerator"):
        sdk.soap.SoapResponseDeserializer(stub).Deserialize(io.BytesIO(FUTURE), pc.RetrievePropertiesEx.info.result)
    page = wire.parse(FUTURE, lean=True)
    part = inventory.build(page.objects, "vc")
    assert [d.id for d in part.vms[0].disks] == ["2000", "2001"]
    devices = {wire.ctext(d, "key"): d for d in wire.items(page.objects[5].props["config.hardware.device"])}
    assert set(devices) == {"2000", "2001", "4000", "17000"}  # the controller was cut, the future kept
    disk = client.pyvmomi_device(devices["2000"])
    assert isinstance(disk, sdk.vim.vm.device.VirtualDisk) and disk.key == 2000
    assert disk.backing.fileName == "[local1] db/db.vmdk" and disk.backing.datastore._moId == "datastore-2"
    nic = client.pyvmomi_device(devices["4000"])
    assert isinstance(nic, sdk.vim.vm.device.VirtualE1000) and nic.macAddress == "00:50:56:00:00:01"
    assert client.pyvmomi_device(devices["17000"]) is None
