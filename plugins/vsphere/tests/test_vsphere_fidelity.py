"""Fidelity: against a plain, unextended vcsim with 1,250 VMs, ftbridge's inventory (read in a
few round trips and parsed from the raw reply) equals what pyVmomi reads directly, VM by VM."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ftbridge_vsphere.config import VsphereConfig
from ftbridge_vsphere.driver import VsphereDriver
from ftbridge_vsphere.lab import VsphereLab
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from ftbridge.testing.conformance import check_inventory

VMS = 1250


@pytest.fixture(scope="module")
def plain_lab(vcsim_bin: Path) -> Iterator[VsphereLab]:
    lab = VsphereLab(plain=True, vms=VMS, hosts=4, datastores=2)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


def direct(lab: VsphereLab) -> dict[str, Any]:
    """Everything the inventory holds, read the obvious way: object by object, property by property."""
    si = SmartConnect(host="127.0.0.1", port=lab.port, user=lab.user, pwd=lab.secrets()[lab.password_env],
                      sslContext=ssl.create_default_context(cafile=lab.ca_file))
    try:
        content = si.RetrieveContent()

        def objects(kind: type) -> list[Any]:
            view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
            try:
                return list(view.view)
            finally:
                view.DestroyView()

        hosts = {}
        for h in objects(vim.HostSystem):
            parent = h.parent
            hosts[h._moId] = (h.name, parent.name if isinstance(parent, vim.ClusterComputeResource) else None,
                              str(h.runtime.connectionState))
        datastores = {}
        for d in objects(vim.Datastore):
            s = d.summary
            datastores[d._moId] = (d.name, s.type.lower(), s.capacity, s.freeSpace, bool(s.accessible),
                                   tuple(m.key._moId for m in d.host))
        vms = {}
        for v in objects(vim.VirtualMachine):
            config = v.config
            disks = tuple((str(d.key), d.backing.fileName, d.backing.datastore._moId,
                           d.capacityInBytes or d.capacityInKB * 1024)
                          for d in config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk))
            vms[v._moId] = (v.name, v.runtime.host._moId, config.files.vmPathName, config.hardware.numCPU, disks)
        return {"hosts": hosts, "datastores": datastores, "vms": vms}
    finally:
        Disconnect(si)


def test_inventory_equals_what_pyvmomi_reads_vm_by_vm(plain_lab: VsphereLab, monkeypatch: pytest.MonkeyPatch) -> None:
    assert plain_lab.info["plain"] is True and plain_lab.info["vms"] == VMS
    for k, v in plain_lab.secrets().items():
        monkeypatch.setenv(k, v)
    drv = VsphereDriver(VsphereConfig.model_validate(plain_lab.endpoint_config()), endpoint="plain")
    drv.open()
    try:
        before = drv.ex_round_trips
        part = drv.inventory()
        trips = drv.ex_round_trips - before
    finally:
        drv.close()
    assert trips <= 5, f"inventory took {trips} round trips"
    check_inventory(part, "plain")

    want = direct(plain_lab)
    assert len(part.vms) == VMS
    got_hosts = {h.id: (h.name, h.cluster, "connected" if h.state.value == "up" else h.state.value) for h in part.hosts}
    assert got_hosts == want["hosts"]
    got_ds = {d.id: (d.name, d.kind, d.capacity, d.free, d.accessible, d.hosts) for d in part.datastores}
    assert got_ds == want["datastores"]
    got_vms = {v.id: (v.name, v.host, v.config_path, v.vcpus,
                      tuple((d.id, d.path, d.datastore, d.size) for d in v.disks)) for v in part.vms}
    assert got_vms.keys() == want["vms"].keys()
    for vm_id, expected in want["vms"].items():
        assert got_vms[vm_id] == expected, vm_id
    assert sum(len(v.disks) for v in part.vms) >= VMS


def test_plain_vcsim_lacks_fault_tolerance(plain_lab: VsphereLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """The extensions really are ours: plain vcsim answers FT calls with MethodNotFound."""
    from ftbridge_vsphere import client

    from ftbridge.errors import UnsupportedOperation

    for k, v in plain_lab.secrets().items():
        monkeypatch.setenv(k, v)
    session = client.connect(VsphereConfig.model_validate(plain_lab.endpoint_config()), "plain")
    try:
        vm = session.collect({"VirtualMachine": ("name",)})[0].moid
        with pytest.raises(UnsupportedOperation, match="does not implement"):
            with client.translated("plain", "turning FT off"):
                session.turn_off_ft(vm)
    finally:
        session.close()
