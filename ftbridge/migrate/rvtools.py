"""An RVTools ``.xlsx`` export read as an offline vSphere inventory.

RVTools is the inventory customers send before a migration: one tab per object type. Columns
move and change names between RVTools versions, so every column is found by its header name,
with the older names as fallbacks (``Capacity MB`` for ``Capacity MiB``: RVTools' old "MB"
columns hold MiB, as kubev2v/migration-planner's ingester also reads them; ``SMBIOS UUID`` or
``VM UUID``). Only tab ``vInfo`` and its ``VM`` column are required; each other tab adds what
it has: ``vDisk`` (disks and, from ``Path``/``Disk Path`` ``[datastore] file``, where they are),
``vDatastore`` (capacity, free space, which hosts mount it), ``vHost`` (hosts, clusters,
maintenance), ``vNetwork`` (NICs, MACs, port groups; else ``vInfo``'s ``Network #n``).
Templates and FT secondary rows (``FT Role`` 2) are not VMs to migrate. ``DAS protection``
gives HA; an ``FT State`` other than ``notConfigured`` gives the primary a lockstep FT
secondary of unknown placement. What the export does not say (a disk's datastore when neither
path column has one) stays unknown and the VM carries a warning saying so.

This is a file format of a vSphere tool, read in the core like the mapping formats (see
:mod:`ftbridge.migrate.formats`): it names the ``vsphere`` driver and its ``vsphere-ft``
mechanism only so the planner finds that driver's rules when it is installed.

openpyxl is an optional extra (``pip install ftbridge[rvtools]``), imported only here.
"""

from __future__ import annotations

import importlib
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ftbridge.errors import ConfigError
from ftbridge.inventory import Inventory
from ftbridge.model import (
    VM,
    Datastore,
    Disk,
    EndpointInfo,
    FailureDomain,
    Host,
    HostState,
    Network,
    Nic,
    PowerState,
    Secondary,
    SecondaryState,
)

MIB = 1024**2
DRIVER = "vsphere"
FT = "vsphere-ft"
UNKNOWN_DS = "unknown-datastore"
_PATH = re.compile(r"^\[([^\]]+)\]\s*(.*)$")
_POWER = {"poweredOn": PowerState.ON, "poweredOff": PowerState.OFF, "suspended": PowerState.SUSPENDED}


class RVToolsError(ConfigError):
    """The file is not an RVTools export ftbridge can read (exit 3)."""


class _Tab:
    """One sheet: rows as dicts keyed by header, with header lookup by candidate names."""

    def __init__(self, path: Path, name: str, rows: list[tuple[Any, ...]]) -> None:
        self.path, self.name = path, name
        self.header = [str(h).strip() if h is not None else "" for h in (rows[0] if rows else ())]
        self.rows = rows[1:]

    def col(self, *names: str, required: bool = False) -> int | None:
        for n in names:
            for i, h in enumerate(self.header):
                if h.lower() == n.lower():
                    return i
        if required:
            raise RVToolsError(f"{self.path}: tab {self.name}: no column {names[0]!r} (an RVTools export has it)")
        return None

    def each(self) -> Iterator[tuple[Any, ...]]:
        for r in self.rows:
            if r and any(v not in (None, "") for v in r):
                yield r


def _get(row: tuple[Any, ...], i: int | None) -> Any:
    if i is None or i >= len(row):
        return None
    v = row[i]
    return None if v == "" else v


def _text(row: tuple[Any, ...], i: int | None) -> str:
    v = _get(row, i)
    return "" if v is None else str(v).strip()


def _bool(row: tuple[Any, ...], i: int | None) -> bool:
    v = _get(row, i)
    return v is True or (isinstance(v, str) and v.strip().lower() in ("true", "yes", "1"))


def _num(tab: _Tab, row: tuple[Any, ...], i: int | None, what: str) -> float | None:
    v = _get(row, i)
    if v is None:
        return None
    try:
        return float(str(v).replace(",", "")) if not isinstance(v, (int, float)) else float(v)
    except ValueError:
        raise RVToolsError(f"{tab.path}: tab {tab.name}: column {what!r}: {v!r} is not a number") from None


def _load(path: Path) -> dict[str, _Tab]:
    if not path.is_file():
        raise RVToolsError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise RVToolsError(f"{path}: not an RVTools export: not an .xlsx workbook")
    try:
        openpyxl = importlib.import_module("openpyxl")
    except ImportError:
        raise RVToolsError(
            f"{path}: reading RVTools exports needs openpyxl", hint="pip install 'ftbridge[rvtools]'"
        ) from None
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged workbook
        raise RVToolsError(f"{path}: not an RVTools export: the workbook cannot be read ({exc})") from None
    try:
        tabs = {}
        for ws in wb.worksheets:
            rows: list[tuple[Any, ...]] = []
            for r in ws.iter_rows(values_only=True):
                rows.append(tuple(r))
            while rows and not any(v not in (None, "") for v in rows[-1]):
                rows.pop()
            tabs[ws.title] = _Tab(path, ws.title, rows)
        return tabs
    finally:
        wb.close()


def read_rvtools(path: str | Path, *, endpoint: str | None = None) -> Inventory:
    """The export as an inventory of one endpoint (named ``endpoint``, else after the file)."""
    path = Path(path)
    tabs = _load(path)
    if "vInfo" not in tabs:
        raise RVToolsError(f"{path}: tab vInfo: missing (an RVTools export has it; found: {', '.join(tabs) or 'none'})")
    ep = endpoint or re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem).strip("-") or "rvtools"
    hosts = _hosts(tabs.get("vHost"), ep)
    host_ids = {h.name: h.id for h in hosts}
    datastores = _datastores(tabs.get("vDatastore"), ep, host_ids)
    info = tabs["vInfo"]
    c = {
        k: info.col(*names)
        for k, names in {
            "id": ("VM ID",),
            "uuid": ("SMBIOS UUID", "VM UUID"),
            "power": ("Powerstate",),
            "template": ("Template",),
            "cpus": ("CPUs",),
            "memory": ("Memory",),
            "host": ("Host",),
            "cluster": ("Cluster",),
            "ha": ("DAS protection",),
            "ft_state": ("FT State",),
            "ft_role": ("FT Role",),
            "prov": ("Provisioned MiB", "Provisioned MB"),
            "version": ("VI SDK API Version",),
        }.items()
    }
    c_vm = info.col("VM", required=True)
    nets_cols = [(n, info.col(f"Network #{n}")) for n in range(1, 9)]
    disks = _disks(tabs.get("vDisk"))
    nics = _nics(tabs.get("vNetwork"))
    networks: dict[str, Network] = {}
    vms: list[VM] = []
    seen: dict[str, int] = {}
    version = ""
    for row in info.each():
        name = _text(row, c_vm)
        if not name or _bool(row, c["template"]) or _text(row, c["ft_role"]) == "2":
            continue
        version = version or _text(row, c["version"])
        vm_id = _text(row, c["id"]) or name
        seen[vm_id] = seen.get(vm_id, 0) + 1
        if seen[vm_id] > 1:
            vm_id = f"{vm_id}#{seen[vm_id]}"
        warnings: list[str] = []
        vm_disks = disks.get(_text(row, c["id"])) or disks.get(name) or []
        if not vm_disks:
            prov = _num(info, row, c["prov"], "Provisioned MiB")
            if prov:
                vm_disks = [("disk", int(prov * MIB), None, False, True)]
                warnings.append("RVTools: no vDisk row: one disk of the provisioned size")
        out_disks = []
        for disk_id, size, ds_name, thin, movable in vm_disks:
            ds_id = _ds_for(ds_name, datastores, ep)
            if ds_name is None:
                warnings.append(f"RVTools: the export does not say which datastore disk {disk_id} is on")
            out_disks.append(
                Disk(
                    id=disk_id,
                    size=size,
                    datastore=ds_id,
                    thin=thin,
                    movable=movable,
                    kind="disk" if movable else "rdm",
                    path="",
                )
            )
        vm_nics = nics.get(_text(row, c["id"])) or nics.get(name)
        if vm_nics is None:
            vm_nics = [(f"nic{n}", _text(row, col), "") for n, col in nets_cols if _text(row, col)]
        out_nics = []
        for nic_id, net, mac in vm_nics:
            if net:
                networks.setdefault(net, Network(id=net, name=net, endpoint=ep, kind="portgroup"))
            out_nics.append(Nic(id=nic_id, network=net or None, mac=mac))
        host_name = _text(row, c["host"])
        ft_state = _text(row, c["ft_state"])
        secs: tuple[Secondary, ...] = ()
        if ft_state and ft_state != "notConfigured":
            state = SecondaryState.IN_SYNC if ft_state == "running" else SecondaryState.BROKEN
            secs = (Secondary(id=f"{vm_id}-ft", mechanism=FT, disks=(), state=state),)
            warnings.append("RVTools: FT secondary of unknown placement (the export does not list its datastores)")
        mem = _num(info, row, c["memory"], "Memory")
        cpus = _num(info, row, c["cpus"], "CPUs")
        vms.append(
            VM(
                id=vm_id,
                name=name,
                endpoint=ep,
                host=host_ids.get(host_name),
                power=_POWER.get(_text(row, c["power"]), PowerState.UNKNOWN),
                disks=tuple(out_disks),
                config_datastore=out_disks[0].datastore if out_disks else None,
                secondaries=secs,
                vcpus=int(cpus or 1),
                memory=int((mem or 0) * MIB),
                ha=_bool(row, c["ha"]),
                warnings=tuple(dict.fromkeys(warnings)),
                cluster=_text(row, c["cluster"]) or None,
                uuid=_text(row, c["uuid"]),
                nics=tuple(out_nics),
            )
        )
    # a disk on UNKNOWN_DS points at no Datastore: an unknown place, which separates nothing
    all_ds = list(datastores.values())
    return Inventory(
        [EndpointInfo(name=ep, driver=DRIVER, version=version)],
        hosts,
        all_ds,
        vms,
        0.0,
        networks=sorted(networks.values(), key=lambda n: n.id),
    )


def _ds_for(name: str | None, datastores: dict[str, Datastore], ep: str) -> str:
    if name is None:
        return UNKNOWN_DS
    d = datastores.get(name)
    if d is None:
        datastores[name] = d = Datastore(
            id=name,
            name=name,
            endpoint=ep,
            kind="unknown",
            shared=False,
            hosts=(),
            capacity=0,
            free=0,
            domain=FailureDomain(datastore=name),
        )
    return d.id


def _hosts(tab: _Tab | None, ep: str) -> list[Host]:
    if tab is None:
        return []
    c_host = tab.col("Host", required=True)
    c_cluster, c_maint = tab.col("Cluster"), tab.col("in Maintenance Mode")
    c_mem, c_state = tab.col("# Memory"), tab.col("Connection state")
    out = []
    for row in tab.each():
        name = _text(row, c_host)
        if not name:
            continue
        mem = _num(tab, row, c_mem, "# Memory")
        state = HostState.MAINTENANCE if _bool(row, c_maint) else HostState.UP
        if _text(row, c_state) in ("disconnected", "notResponding"):
            state = HostState.UNREACHABLE
        out.append(
            Host(
                id=name,
                name=name,
                endpoint=ep,
                cluster=_text(row, c_cluster) or None,
                state=state,
                domain=FailureDomain(host=name),
                memory=int((mem or 0) * MIB),
            )
        )
    return out


def _datastores(tab: _Tab | None, ep: str, host_ids: dict[str, str]) -> dict[str, Datastore]:
    out: dict[str, Datastore] = {}
    if tab is None:
        return out
    c_name = tab.col("Name", required=True)
    c_cap = tab.col("Capacity MiB", "Capacity MB", required=True)
    c_free = tab.col("Free MiB", "Free MB", required=True)
    c_type, c_hosts = tab.col("Type"), tab.col("Hosts")
    c_acc, c_nhosts = tab.col("Accessible"), tab.col("# Hosts")
    for row in tab.each():
        name = _text(row, c_name)
        if not name:
            continue
        mounted = tuple(
            h for x in re.split(r"[,;]\s*", _text(row, c_hosts)) if (h := host_ids.get(x.strip(), x.strip()))
        )
        n = _num(tab, row, c_nhosts, "# Hosts")
        out[name] = Datastore(
            id=name,
            name=name,
            endpoint=ep,
            kind=(_text(row, c_type) or "unknown").lower(),
            shared=len(mounted) > 1 or (n or 0) > 1,
            hosts=mounted,
            capacity=int((_num(tab, row, c_cap, "Capacity MiB") or 0) * MIB),
            free=int((_num(tab, row, c_free, "Free MiB") or 0) * MIB),
            accessible=c_acc is None or _bool(row, c_acc) or _get(row, c_acc) is None,
            domain=FailureDomain(datastore=name),
        )
    return out


DiskRow = tuple[str, int, str | None, bool, bool]


def _disks(tab: _Tab | None) -> dict[str, list[DiskRow]]:
    out: dict[str, list[DiskRow]] = {}
    if tab is None:
        return out
    c_vm = tab.col("VM", required=True)
    c_cap = tab.col("Capacity MiB", "Capacity MB", required=True)
    c_id, c_key, c_label = tab.col("VM ID"), tab.col("Disk Key"), tab.col("Disk")
    c_path, c_dpath = tab.col("Path"), tab.col("Disk Path")
    c_thin, c_raw, c_tmpl = tab.col("Thin"), tab.col("Raw"), tab.col("Template")
    for n, row in enumerate(tab.each()):
        if _bool(row, c_tmpl):
            continue
        key = _text(row, c_id) or _text(row, c_vm)
        ds = None
        for col in (c_path, c_dpath):
            m = _PATH.match(_text(row, col))
            if m:
                ds = m.group(1)
                break
        disk_id = _text(row, c_key) or _text(row, c_label) or str(n)
        size = int((_num(tab, row, c_cap, "Capacity MiB") or 0) * MIB)
        out.setdefault(key, []).append((disk_id, size, ds, _bool(row, c_thin), not _bool(row, c_raw)))
    return out


def _nics(tab: _Tab | None) -> dict[str, list[tuple[str, str, str]]]:
    out: dict[str, list[tuple[str, str, str]]] = {}
    if tab is None:
        return out
    c_vm = tab.col("VM", required=True)
    c_id, c_label = tab.col("VM ID"), tab.col("NIC label")
    c_net, c_mac, c_tmpl = tab.col("Network"), tab.col("Mac Address"), tab.col("Template")
    for n, row in enumerate(tab.each()):
        if _bool(row, c_tmpl):
            continue
        key = _text(row, c_id) or _text(row, c_vm)
        out.setdefault(key, []).append((_text(row, c_label) or f"nic{n}", _text(row, c_net), _text(row, c_mac)))
    return out
