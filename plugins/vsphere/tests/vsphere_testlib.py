"""Helpers shared by the vSphere tests (a uniquely named module: test dirs are not packages)."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

from ftbridge.inventory import InventoryPart

REPO = Path(__file__).resolve().parents[3]


class Names:
    """Ids by name in one inventory (lab morefs are not written in the estate)."""

    def __init__(self, part: InventoryPart) -> None:
        self.part = part
        self.vm = {v.name: v for v in part.vms}
        self.host = {h.name: h.id for h in part.hosts}
        self.ds = {d.name: d.id for d in part.datastores}
        self.ds_name = {d.id: d.name for d in part.datastores}
        self.host_name = {h.id: h.name for h in part.hosts}


def shared_real() -> Path | None:
    """``shared/real`` of the project: ``$FTBRIDGE_SHARED/real``, else the first ``shared/real``
    beside the repository or one of its parents (a worktree sits deeper than the clone)."""
    env = os.environ.get("FTBRIDGE_SHARED")
    if env:
        p = Path(env) / "real"
        return p if p.is_dir() else None
    for parent in REPO.parents:
        p = parent / "shared" / "real"
        if p.is_dir():
            return p
    return None


def direct(lab: Any) -> dict[str, Any]:
    """Everything the inventory holds, read the obvious way with plain pyVmomi: object by object,
    property by property, each datastore path resolved the way a person would (the VM's own
    datastores by name, then its datacenter's). Refused or unreadable properties read as
    ``"refused"`` / None."""
    from pyVim.connect import Disconnect, SmartConnect
    from pyVmomi import vim

    # pyVmomi types its vim/vmodl objects but not pyVim.connect's functions: untyped calls.
    si = SmartConnect(  # type: ignore[no-untyped-call]
        host="127.0.0.1",
        port=lab.port,
        user=lab.user,
        pwd=lab.secrets()[lab.password_env],
        sslContext=ssl.create_default_context(cafile=lab.ca_file),
    )
    try:
        content = si.RetrieveContent()

        def objects(kind: type) -> list[Any]:
            view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
            try:
                return list(view.view)
            finally:
                view.DestroyView()

        def datacenter(entity: Any) -> Any:
            while entity is not None and not isinstance(entity, vim.Datacenter):
                entity = entity.parent
            return entity

        def resolve(path: str, own: list[Any], dc: Any) -> str | None:
            name = path[1 : path.index("]")]
            mine: list[str] = [d._moId for d in own if d.name == name]
            if len(mine) == 1:
                return mine[0]
            there: list[str] = [d._moId for d in (dc.datastore if dc else []) if d.name == name]
            return there[0] if len(there) == 1 else None

        def backing(disk: vim.vm.device.VirtualDisk) -> vim.vm.device.VirtualDevice.FileBackingInfo:
            """A disk's file backing (every disk the lab serves is file-backed)."""
            found = disk.backing
            assert isinstance(found, vim.vm.device.VirtualDevice.FileBackingInfo), found
            return found

        def datastore_of(disk: vim.vm.device.VirtualDisk) -> str:
            """The moref of the datastore holding a disk's file."""
            ds = backing(disk).datastore
            assert ds is not None, backing(disk).fileName
            moid: str = ds._moId
            return moid

        hosts = {}
        for h in objects(vim.HostSystem):
            parent = h.parent
            rt = h.runtime
            hosts[h._moId] = (
                h.name,
                parent.name if isinstance(parent, vim.ClusterComputeResource) else None,
                str(rt.connectionState),
                str(rt.powerState),
                h.summary.hardware.memorySize,
            )
        datastores = {}
        for d in objects(vim.Datastore):
            s = d.summary
            datastores[d._moId] = (
                d.name,
                s.type.lower().replace("nfs41", "nfs"),
                s.capacity,
                s.freeSpace,
                bool(s.accessible),
                tuple(m.key._moId for m in d.host),
            )
        vms: dict[str, Any] = {}
        for v in objects(vim.VirtualMachine):
            try:
                config, runtime, own = v.config, v.runtime, list(v.datastore)
            except vim.fault.NoPermission:
                vms[v._moId] = (v.name, "refused")
                continue
            if config is None:
                vms[v._moId] = (v.name, str(runtime.connectionState))
                continue
            if config.template or (config.ftInfo is not None and config.ftInfo.role != 1):
                continue
            dc = datacenter(v)
            disks = tuple(
                (str(d.key), backing(d).fileName, datastore_of(d), d.capacityInBytes or d.capacityInKB * 1024)
                for d in config.hardware.device
                if isinstance(d, vim.vm.device.VirtualDisk)
            )
            ft = config.ftInfo
            secondaries: tuple[tuple[str, str, str | None, tuple[tuple[str, str], ...]], ...] = ()
            if ft is not None:
                secondaries = tuple(
                    (
                        s._moId,
                        s.runtime.host._moId,
                        resolve(s.config.files.vmPathName, list(s.datastore), dc),
                        tuple(
                            (str(d.key), datastore_of(d))
                            for d in s.config.hardware.device
                            if isinstance(d, vim.vm.device.VirtualDisk)
                        ),
                    )
                    for s in ft.secondaries
                )
            vms[v._moId] = (
                v.name,
                runtime.host._moId if runtime.host else None,
                str(runtime.powerState),
                str(runtime.connectionState),
                resolve(config.files.vmPathName, own, dc),
                config.hardware.numCPU,
                disks,
                ft.role if ft else None,
                secondaries,
            )
        return {"hosts": hosts, "datastores": datastores, "vms": vms}
    finally:
        Disconnect(si)  # type: ignore[no-untyped-call]  # pyVim.connect has no annotations
