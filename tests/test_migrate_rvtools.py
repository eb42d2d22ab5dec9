"""RVTools exports as a migration source: the real exports in ../shared/real/migration/rvtools
read into inventories that pass the inventory JSON schema; bad files give one line naming the
tab and column."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from test_migrate_formats import REAL, needs_real

from ftbridge.migrate.rvtools import RVToolsError, read_rvtools

SCHEMA = Path(__file__).resolve().parents[1] / "ftbridge" / "schemas" / "inventory.schema.json"


def _rv(name: str) -> Path:
    assert REAL is not None
    return REAL / "rvtools" / name


@needs_real
@pytest.mark.parametrize(
    ("name", "vms"),
    [
        ("kubev2v-migration-planner__example1.xlsx", 9),
        ("mjvincent-rvtools-to-ibm-cloud__SizingWorkshop-RVTools.xlsx", 805),
    ],
)
def test_real_exports_pass_the_inventory_schema(name: str, vms: int) -> None:
    import jsonschema

    inv = read_rvtools(_rv(name), endpoint="customer")
    assert len(inv.vms) <= vms and len(inv.vms) >= vms - 10  # templates and FT secondaries are left out
    data = json.loads(json.dumps(inv.to_dict()))
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))
    assert all(v.endpoint == "customer" for v in inv.vms)


@needs_real
def test_modern_export_reads_disks_nics_and_uuids() -> None:
    inv = read_rvtools(_rv("kubev2v-migration-planner__example1.xlsx"))
    vm = next(v for v in inv.vms if v.name == "vm-1")
    assert vm.id == "vm-89952" and vm.uuid == "500b85c1-ef0d-37fb-6897-61c47157f858"
    assert [(d.id, d.size, d.thin) for d in vm.disks] == [("2000", 103424 * 1024**2, True)]
    assert [n.network for n in vm.nics] == ["VM Network"]
    # the export says nothing of where the disk is: unknown, and said so
    assert any("does not say which datastore" in w for w in vm.warnings)
    assert {n.name for n in inv.networks} >= {"VM Network"}


@needs_real
def test_old_export_without_vm_ids_uses_names_and_provisioned_size() -> None:
    inv = read_rvtools(_rv("mjvincent-rvtools-to-ibm-cloud__SizingWorkshop-RVTools.xlsx"))
    vm = next(v for v in inv.vms if v.name == "wadfs1")
    assert vm.id == "wadfs1" and vm.disks[0].size == 86201 * 1024**2 and vm.memory == 4096 * 1024**2
    assert len(inv.hosts) == 34


def _xlsx(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    first = wb.active
    assert first is not None  # a new workbook has its default sheet
    wb.remove(first)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for r in rows:
            ws.append(r)
    wb.save(path)
    return path


def test_bad_files_name_the_tab_and_column(tmp_path: Path) -> None:
    text = tmp_path / "x.xlsx"
    text.write_text("VM,Host\n")
    with pytest.raises(RVToolsError, match=r"x\.xlsx: not an RVTools export: not an \.xlsx workbook"):
        read_rvtools(text)
    broken = tmp_path / "broken.xlsx"
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("hello.txt", "not a workbook")
    with pytest.raises(RVToolsError, match="the workbook cannot be read"):
        read_rvtools(broken)
    no_info = _xlsx(tmp_path / "noinfo.xlsx", {"vHost": [["Host"], ["esx1"]]})
    with pytest.raises(RVToolsError, match=r"tab vInfo: missing .*found: vHost"):
        read_rvtools(no_info)
    no_col = _xlsx(tmp_path / "nocol.xlsx", {"vInfo": [["Name", "CPUs"], ["a", 1]]})
    with pytest.raises(RVToolsError, match=r"tab vInfo: no column 'VM'"):
        read_rvtools(no_col)
    bad_disk = _xlsx(
        tmp_path / "baddisk.xlsx",
        {"vInfo": [["VM"], ["a"]], "vDisk": [["VM", "Capacity MiB"], ["a", "lots"]]},
    )
    with pytest.raises(RVToolsError, match=r"tab vDisk: column 'Capacity MiB': 'lots' is not a number") as info:
        read_rvtools(bad_disk)
    assert "\n" not in str(info.value)


def test_full_export_places_disks_on_datastores_and_ft_and_ha(tmp_path: Path) -> None:
    f = _xlsx(
        tmp_path / "full.xlsx",
        {
            "vInfo": [
                [
                    "VM",
                    "VM ID",
                    "Powerstate",
                    "Template",
                    "CPUs",
                    "Memory",
                    "Host",
                    "DAS protection",
                    "FT State",
                    "FT Role",
                ],
                ["sql", "vm-1", "poweredOn", "False", 2, 4096, "esx1", "True", "running", "1"],
                ["sql", "vm-2", "poweredOn", "False", 2, 4096, "esx2", "True", "running", "2"],
                ["tpl", "vm-3", "poweredOff", "True", 1, 1024, "esx1", "False", "notConfigured", ""],
            ],
            "vDisk": [
                ["VM", "VM ID", "Disk Key", "Capacity MiB", "Path"],
                ["sql", "vm-1", "2000", 1024, "[ds-a] sql/sql.vmdk"],
            ],
            "vDatastore": [
                ["Name", "Type", "Capacity MiB", "Free MiB", "Hosts"],
                ["ds-a", "VMFS", 10240, 5120, "esx1, esx2"],
            ],
            "vHost": [["Host", "Cluster", "# Memory"], ["esx1", "c1", 65536], ["esx2", "c1", 65536]],
            "vNetwork": [
                ["VM", "VM ID", "NIC label", "Network", "Mac Address"],
                ["sql", "vm-1", "Network adapter 1", "prod", "00:50:56:aa:bb:cc"],
            ],
        },
    )
    inv = read_rvtools(f, endpoint="vc")
    assert [v.id for v in inv.vms] == ["vm-1"]
    vm = inv.vms[0]
    assert vm.ha and vm.host == "esx1" and vm.disks[0].datastore == "ds-a"
    assert vm.secondaries[0].mechanism == "vsphere-ft"
    ds = inv.datastore("vc", "ds-a")
    assert ds is not None and ds.shared and ds.hosts == ("esx1", "esx2") and ds.free == 5120 * 1024**2
    assert vm.nics[0].mac == "00:50:56:aa:bb:cc"
