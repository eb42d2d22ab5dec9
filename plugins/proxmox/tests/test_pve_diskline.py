"""The drive-line parser on every form real PVE configs hold (see ../shared/reference)."""

from __future__ import annotations

import pytest
from ftbridge_proxmox.diskline import DiskLineError, format_size, parse_config, parse_drive, parse_size

GIB = 1024**3


def test_scsi_disk_with_iothread_and_size() -> None:
    d = parse_drive("scsi0", "ceph-a:vm-100-disk-0,iothread=1,size=32G")
    assert (d.kind, d.storage, d.size, d.movable) == ("disk", "ceph-a", 32 * GIB, True)
    assert d.volume == "ceph-a:vm-100-disk-0"
    assert d.options["iothread"] == "1"


@pytest.mark.parametrize("text, size", [("528K", 528 * 1024), ("512M", 512 * 1024**2), ("32G", 32 * GIB),
                                        ("2T", 2 * 1024**4), ("1.5T", int(1.5 * 1024**4)), ("4096", 4096)])
def test_sizes_in_every_unit(text: str, size: int) -> None:
    assert parse_size(text) == size
    assert parse_drive("virtio1", f"local-zfs:vm-100-disk-1,size={text}").size == size


def test_format_size_round_trips() -> None:
    for size in (4 * 1024**2, 32 * GIB, 3 * 1024**4, 1000):
        assert parse_size(format_size(size)) == size


def test_empty_cdrom_is_marked_not_a_disk() -> None:
    d = parse_drive("ide2", "none,media=cdrom")
    assert d.kind == "cdrom" and d.storage is None and not d.movable and not d.is_placed_volume


def test_iso_cdrom_is_marked() -> None:
    d = parse_drive("ide2", "local:iso/debian-12.5.0-amd64-netinst.iso,media=cdrom,size=629M")
    assert d.kind == "cdrom" and d.storage == "local" and not d.movable


def test_physical_cdrom_is_marked() -> None:
    assert parse_drive("ide0", "cdrom,media=cdrom").kind == "cdrom"


def test_cloudinit_drive() -> None:
    d = parse_drive("ide2", "local-lvm:vm-100-cloudinit,media=cdrom")
    assert d.kind == "cloudinit" and d.storage == "local-lvm" and d.size == 4 * 1024**2
    assert parse_drive("scsi2", "nfs-b:100/vm-100-cloudinit.qcow2,media=cdrom").kind == "cloudinit"


def test_efidisk_and_tpmstate() -> None:
    e = parse_drive("efidisk0", "local-zfs:vm-100-disk-1,efitype=4m,pre-enrolled-keys=1,size=1M")
    assert (e.kind, e.size, e.movable) == ("efidisk", 1024**2, True)
    t = parse_drive("tpmstate0", "local-zfs:vm-100-disk-2,size=4M,version=v2.0")
    assert (t.kind, t.size) == ("tpmstate", 4 * 1024**2)
    assert parse_drive("efidisk0", "ceph-a:vm-100-disk-3,efitype=4m").size == 4 * 1024**2  # no size= written


def test_unused_volume() -> None:
    d = parse_drive("unused0", "local-zfs:vm-100-disk-3")
    assert d.kind == "unused" and d.storage == "local-zfs" and d.size is None


def test_passthrough_device_is_not_movable() -> None:
    d = parse_drive("scsi1", "/dev/disk/by-id/ata-ST4000NM0035-1V4107_ZC1A2B3C,backup=0,size=3907018584K")
    assert d.kind == "passthrough" and not d.movable and d.storage is None
    assert d.size == 3907018584 * 1024 and not d.backup


def test_flags_backup_replicate_shared() -> None:
    d = parse_drive("sata0", "local-lvm:vm-100-disk-4,backup=0,replicate=0,shared=1,size=10G")
    assert (d.backup, d.replicate, d.shared) == (False, False, True)
    plain = parse_drive("sata1", "local-lvm:vm-100-disk-5,size=10G")
    assert (plain.backup, plain.replicate, plain.shared) == (True, True, False)


def test_file_key_instead_of_positional_volume() -> None:
    assert parse_drive("virtio0", "file=ceph-a:vm-100-disk-0,size=8G").storage == "ceph-a"


def test_lxc_rootfs_mountpoint_and_bind_mount() -> None:
    r = parse_drive("rootfs", "local-zfs:subvol-101-disk-0,size=8G")
    assert (r.kind, r.storage, r.size) == ("rootfs", "local-zfs", 8 * GIB)
    m = parse_drive("mp0", "ceph-a:vm-101-disk-1,mp=/srv/data,backup=1,size=100G")
    assert (m.kind, m.storage) == ("mountpoint", "ceph-a")
    b = parse_drive("mp1", "/mnt/bindmounts/shared,mp=/shared")
    assert b.kind == "bind" and not b.movable


@pytest.mark.parametrize("key, value", [("scsi0", "ceph-a:vm-1-disk-0,size=lots"), ("scsi0", ",size=1G"),
                                        ("virtio0", "not a volume,size=1G")])
def test_unreadable_lines_raise(key: str, value: str) -> None:
    with pytest.raises(DiskLineError, match=key):
        parse_drive(key, value)


REAL_CONFIG = {
    "boot": "order=scsi0;ide2;net0", "cores": 4, "memory": "8192", "name": "db01", "net0":
    "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1", "numa0": "cpus=0-3,memory=8192", "ostype": "l26",
    "scsi0": "ceph-a:vm-100-disk-0,iothread=1,size=32G", "scsi1": "local-zfs:vm-100-disk-1,backup=0,size=100G",
    "ide2": "none,media=cdrom", "ide0": "local-lvm:vm-100-cloudinit,media=cdrom",
    "efidisk0": "ceph-a:vm-100-disk-2,efitype=4m,size=528K", "tpmstate0": "ceph-a:vm-100-disk-3,size=4M,version=v2.0",
    "unused0": "local-zfs:vm-100-disk-9", "sata2": "/dev/disk/by-id/nvme-Samsung_SSD_980_S64DNX0R,size=1T",
    "smbios1": "uuid=7a3c2b3e-4b1e-4c9a-9f0e-1d2c3b4a5e6f", "vmgenid": "1e7d2c3b-aaaa-4bbb-8ccc-0123456789ab",
    "digest": "0123456789abcdef0123456789abcdef01234567", "nvme0": "ceph-a:vm-100-disk-7,size=64G",
}


def test_a_real_config_every_drive_classified_and_the_unknown_line_reported() -> None:
    parsed = parse_config(REAL_CONFIG)
    kinds = {d.key: d.kind for d in parsed.drives}
    assert kinds == {"efidisk0": "efidisk", "ide0": "cloudinit", "ide2": "cdrom", "sata2": "passthrough",
                     "scsi0": "disk", "scsi1": "disk", "tpmstate0": "tpmstate", "unused0": "unused"}
    assert len(parsed.warnings) == 1
    assert "nvme0" in parsed.warnings[0] and "ceph-a:vm-100-disk-7" in parsed.warnings[0]


def test_an_unreadable_drive_line_is_a_warning_not_dropped() -> None:
    parsed = parse_config({"scsi0": "ceph-a:vm-100-disk-0,size=32G", "scsi1": "ceph-a:vm-100-disk-1,size=huge"})
    assert [d.key for d in parsed.drives] == ["scsi0"]
    assert len(parsed.warnings) == 1 and "scsi1" in parsed.warnings[0] and "huge" in parsed.warnings[0]
