"""The drive-line parser on every form real PVE configs hold.

Hand-written cases first, each a rule of PVE's own source; then every one of the 1,090 real
lines in ``../shared/real/pve-disk-lines.txt`` (PVE's test configs, docs and real users'
configs; see its header), classified and sized.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from ftbridge_proxmox.diskline import DiskLineError, format_size, parse_config, parse_drive, parse_size
from pve_helpers import REAL

KIB, MIB, GIB, TIB = 1024, 1024**2, 1024**3, 1024**4


def test_scsi_disk_with_iothread_and_size() -> None:
    d = parse_drive("scsi0", "ceph-a:vm-100-disk-0,iothread=1,size=32G")
    assert (d.kind, d.storage, d.size, d.movable) == ("disk", "ceph-a", 32 * GIB, True)
    assert d.volume == "ceph-a:vm-100-disk-0" and d.owner == 100 and d.content == "images"
    assert d.options["iothread"] == "1"


@pytest.mark.parametrize(
    "text, size",
    [
        ("528K", 528 * KIB),
        ("512M", 512 * MIB),
        ("32G", 32 * GIB),
        ("2T", 2 * TIB),
        ("1.5T", int(1.5 * TIB)),
        ("4096", 4096),
        ("32GiB", 32 * GIB),
        ("64KiB", 64 * KIB),
        ("100MiB", 100 * MIB),
        ("3TiB", 3 * TIB),
    ],
)
def test_sizes_in_every_unit_pve_accepts(text: str, size: int) -> None:
    # pve-common PVE/JSONSchema.pm parse_size: K/M/G/T or KiB/MiB/GiB/TiB, powers of 1024
    assert parse_size(text) == size
    d = parse_drive("virtio1", f"local-zfs:vm-100-disk-1,size={text}")
    assert d.size == size and d.kind == "disk"


@pytest.mark.parametrize("text", ["32GB", "32g", "1P", "lots", "-1G", "32 G", "G"])
def test_sizes_pve_refuses_are_refused(text: str) -> None:
    with pytest.raises(DiskLineError, match="does not look like a valid disk size"):
        parse_size(text)


def test_a_size_pve_accepts_keeps_the_disk() -> None:
    parsed = parse_config({"scsi0": "ceph-a:vm-100-disk-0,size=32GiB"})
    assert [(d.key, d.size) for d in parsed.drives] == [("scsi0", 32 * GIB)] and not parsed.warnings


def test_format_size_round_trips() -> None:
    for size in (4 * MIB, 32 * GIB, 3 * TIB, 1000):
        assert parse_size(format_size(size)) == size


def test_empty_cdrom_is_marked_not_a_disk() -> None:
    d = parse_drive("ide2", "none,media=cdrom")
    assert d.kind == "cdrom" and d.storage is None and not d.movable and not d.is_placed_volume


def test_iso_cdrom_is_marked() -> None:
    d = parse_drive("ide2", "local:iso/debian-12.5.0-amd64-netinst.iso,media=cdrom,size=629M")
    assert d.kind == "cdrom" and d.storage == "local" and not d.movable and d.vtype == "iso"


def test_physical_cdrom_is_marked() -> None:
    assert parse_drive("ide0", "cdrom,media=cdrom").kind == "cdrom"


def test_an_iso_without_media_parses_but_pve_will_not_start_it() -> None:
    # qemu-server PVE/QemuServer.pm: "explicit media parameter is required for iso images"
    parsed = parse_config({"ide3": "cifs-store:iso/three.iso,size=112M"})
    (d,) = parsed.drives
    assert d.kind == "disk" and d.vtype == "iso" and not d.movable
    assert parsed.warnings and "explicit media parameter is required for iso images" in parsed.warnings[0]


def test_cloudinit_drive_is_an_anchored_match() -> None:
    # qemu-server Drive.pm drive_is_cloudinit: the volume name ends in [vm-N-]cloudinit[.fmt]
    d = parse_drive("ide2", "local-lvm:vm-100-cloudinit,media=cdrom")
    assert d.kind == "cloudinit" and d.storage == "local-lvm" and d.size == 4 * MIB
    assert parse_drive("scsi2", "nfs-b:100/vm-100-cloudinit.qcow2,media=cdrom").kind == "cloudinit"
    # ... and nothing else: a disk named like one is a disk the guest runs from
    data = parse_drive("scsi3", "nfs-b:100/vm-100-cloudinit-data.qcow2,size=20G")
    assert (data.kind, data.size, data.movable) == ("disk", 20 * GIB, True)
    assert parse_drive("scsi4", "ceph-a:vm-100-cloudinit-1,size=8G").kind == "disk"


def test_efidisk_sizes_are_pves_when_the_line_gives_none() -> None:
    # qemu-server PVE/QemuServer/OVMF.pm get_efivars_size: the firmware's VARS image
    assert parse_drive("efidisk0", "ceph-a:vm-100-disk-3").size == 128 * KIB
    assert parse_drive("efidisk0", "ceph-a:vm-100-disk-3,efitype=4m").size == 528 * KIB
    assert parse_drive("efidisk0", "ceph-a:vm-100-disk-3,efitype=4m", arch="aarch64").size == 64 * MIB
    parsed = parse_config({"arch": "aarch64", "efidisk0": "local:110/vm-110-disk-1.qcow2,efitype=4m"})
    assert parsed.drives[0].size == 64 * MIB
    # a written size wins (LVM rounds 528K up to a 4 MiB extent)
    assert parse_drive("efidisk0", "local-lvm:vm-100-disk-2,efitype=4m,size=4M").size == 4 * MIB


def test_tpmstate() -> None:
    t = parse_drive("tpmstate0", "local-zfs:vm-100-disk-2,size=4M,version=v2.0")
    assert (t.kind, t.size) == ("tpmstate", 4 * MIB)
    assert parse_drive("tpmstate0", "local-zfs:vm-100-disk-2,version=v2.0").size == 4 * MIB


def test_unused_volume() -> None:
    d = parse_drive("unused0", "local-zfs:vm-100-disk-3")
    assert d.kind == "unused" and d.storage == "local-zfs" and d.size is None


def test_passthrough_device_is_not_movable() -> None:
    d = parse_drive("scsi1", "/dev/disk/by-id/ata-ST4000NM0035-1V4107_ZC1A2B3C,backup=0,size=3907018584K")
    assert d.kind == "passthrough" and not d.movable and d.storage is None and d.device
    assert d.size == 3907018584 * KIB and not d.backup
    assert parse_drive("ide2", "/dev/sde,shared=1").shared  # "available on all nodes"


def test_flags_backup_replicate_shared() -> None:
    d = parse_drive("sata0", "local-lvm:vm-100-disk-4,backup=0,replicate=0,shared=1,size=10G")
    assert (d.backup, d.replicate, d.shared) == (False, False, True)
    plain = parse_drive("sata1", "local-lvm:vm-100-disk-5,size=10G")
    assert (plain.backup, plain.replicate, plain.shared) == (True, True, False)


def test_file_key_instead_of_positional_volume() -> None:
    assert parse_drive("virtio0", "file=ceph-a:vm-100-disk-0,size=8G").storage == "ceph-a"


def test_lxc_rootfs_mountpoint_device_and_bind_mount() -> None:
    # pve-container PVE/LXC/Config.pm classify_mountpoint: volume, device (/dev/...), bind
    r = parse_drive("rootfs", "local-zfs:subvol-101-disk-0,size=8G")
    assert (r.kind, r.storage, r.size, r.content, r.owner) == ("rootfs", "local-zfs", 8 * GIB, "rootdir", 101)
    assert parse_drive("rootfs", "volume=local-zfs:subvol-104-disk-0,size=8G").storage == "local-zfs"
    m = parse_drive("mp0", "ceph-a:vm-101-disk-1,mp=/srv/data,backup=1,size=100G")
    assert (m.kind, m.storage, m.content) == ("mountpoint", "ceph-a", "rootdir")
    b = parse_drive("mp1", "/mnt/bindmounts/shared,mp=/shared")
    assert b.kind == "passthrough" and not b.movable and not b.device
    dev = parse_drive("mp2", "/dev/sdb1,mp=/mnt/usb,backup=0")
    assert dev.kind == "passthrough" and dev.device


def test_linked_clone_volumes_name_their_base_and_owner() -> None:
    # pve-storage Plugin.pm / ZFSPoolPlugin.pm parse_volname
    z = parse_drive("scsi0", "local-zfs:base-100-disk-0/vm-101-disk-0,size=8G")
    assert (z.owner, z.base) == (101, "local-zfs:base-100-disk-0")
    f = parse_drive("scsi0", "local:100/base-100-disk-0.qcow2/101/vm-101-disk-0.qcow2,size=8G")
    assert (f.owner, f.base) == (101, "local:100/base-100-disk-0.qcow2")
    assert parse_drive("scsi0", "local:100/vm-100-disk-0.qcow2").base is None


@pytest.mark.parametrize(
    "key, value",
    [
        ("scsi0", "ceph-a:vm-1-disk-0,size=lots"),
        ("scsi0", ",size=1G"),
        ("virtio0", "not a volume,size=1G"),
        ("ide0", "local:x,media=floppy"),
    ],
)
def test_unreadable_lines_raise(key: str, value: str) -> None:
    with pytest.raises(DiskLineError, match=key):
        parse_drive(key, value)


REAL_CONFIG = {
    "boot": "order=scsi0;ide2;net0",
    "cores": 4,
    "memory": "8192",
    "name": "db01",
    "net0": "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1",
    "numa0": "cpus=0-3,memory=8192",
    "ostype": "l26",
    "scsi0": "ceph-a:vm-100-disk-0,iothread=1,size=32G",
    "scsi1": "local-zfs:vm-100-disk-1,backup=0,size=100G",
    "ide2": "none,media=cdrom",
    "ide0": "local-lvm:vm-100-cloudinit,media=cdrom",
    "efidisk0": "ceph-a:vm-100-disk-2,efitype=4m,size=528K",
    "tpmstate0": "ceph-a:vm-100-disk-3,size=4M,version=v2.0",
    "unused0": "local-zfs:vm-100-disk-9",
    "sata2": "/dev/disk/by-id/nvme-Samsung_SSD_980_S64DNX0R,size=1T",
    "smbios1": "uuid=7a3c2b3e-4b1e-4c9a-9f0e-1d2c3b4a5e6f",
    "vmgenid": "1e7d2c3b-aaaa-4bbb-8ccc-0123456789ab",
    "digest": "0123456789abcdef0123456789abcdef01234567",
    "nvme0": "ceph-a:vm-100-disk-7,size=64G",
}


def test_a_real_config_every_drive_classified_and_the_unknown_line_reported() -> None:
    parsed = parse_config(REAL_CONFIG)
    kinds = {d.key: d.kind for d in parsed.drives}
    assert kinds == {
        "efidisk0": "efidisk",
        "ide0": "cloudinit",
        "ide2": "cdrom",
        "sata2": "passthrough",
        "scsi0": "disk",
        "scsi1": "disk",
        "tpmstate0": "tpmstate",
        "unused0": "unused",
    }
    assert len(parsed.warnings) == 1
    assert "nvme0" in parsed.warnings[0] and "ceph-a:vm-100-disk-7" in parsed.warnings[0]


def test_an_unreadable_drive_line_is_a_warning_not_dropped() -> None:
    parsed = parse_config({"scsi0": "ceph-a:vm-100-disk-0,size=32G", "scsi1": "ceph-a:vm-100-disk-1,size=huge"})
    assert [d.key for d in parsed.drives] == ["scsi0"]
    assert len(parsed.warnings) == 1 and "scsi1" in parsed.warnings[0] and "huge" in parsed.warnings[0]


# the real lines ---------------------------------------------------------------------------------
LINES = REAL / "pve-disk-lines.txt"
#: configs among the sources whose guest is aarch64 (qemu-server src/test/cfg2cmd/aarch64:
#: simple-arm.conf sets arch: aarch64; simple-arm-host.conf runs on an aarch64 host without an
#: arch line, so the guest is aarch64 too; simple-x86-on-arm-host.conf sets arch: x86_64)
AARCH64_SOURCES = {
    "qemu-server:src/test/cfg2cmd/aarch64/simple-arm.conf",
    "qemu-server:src/test/cfg2cmd/aarch64/simple-arm-host.conf",
}
#: lines PVE itself would not take as they are (the test config says so: EXPECT_ERROR)
KNOWN_PROBLEMS = {"ide3: cifs-store:iso/three.iso,size=112M": "explicit media parameter is required for iso images"}
#: the tally of every line, reviewed by hand against the file (and what PVE's rules give)
TALLY = {
    "disk": 472,
    "cdrom": 289,
    "rootfs": 166,
    "mountpoint": 56,
    "efidisk": 36,
    "unused": 29,
    "cloudinit": 21,
    "passthrough": 17,
    "tpmstate": 4,
}
_UNIT = {"": 1, "K": KIB, "M": MIB, "G": GIB, "T": TIB}


def _real_lines(path: Path) -> list[tuple[str, str, str]]:
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.startswith("#") or not raw.strip():
            continue
        source, _, line = raw.partition("\t")
        key, _, value = line.partition(": ")
        out.append((source, key, value))
    return out


def _expected_kind(key: str, value: str) -> str:
    """What PVE's rules make of a line, spelled out for the test (not the parser's code)."""
    family = re.sub(r"\d+$", "", key)
    first = value.split(",")[0].removeprefix("volume=").removeprefix("file=")
    opts = dict(p.split("=", 1) for p in value.split(",")[1:] if "=" in p)
    if family in ("unused", "efidisk", "tpmstate"):
        return family
    if family in ("rootfs", "mp"):
        if first.startswith("/"):
            return "passthrough"
        return "rootfs" if family == "rootfs" else "mountpoint"
    if re.search(r"[:/](vm-\d+-)?cloudinit(\.(raw|qcow|qcow2|qed|vmdk|cloop))?$", first):
        return "cloudinit"
    if opts.get("media") == "cdrom" or first == "none":
        return "cdrom"
    return "passthrough" if first.startswith("/") else "disk"


@pytest.mark.skipif(
    not LINES.is_file(),
    reason=f"{LINES} is absent: the real PVE disk lines live in the project's "
    "shared folder (set FTBRIDGE_SHARED), not in the repository",
)
def test_every_real_disk_line_is_classified_and_sized() -> None:
    lines = _real_lines(LINES)
    assert len(lines) == 1090, "the file changed: review the tally"
    tally: Counter[str] = Counter()
    for source, key, value in lines:
        where = f"{source}: {key}: {value}"
        arch = "aarch64" if source in AARCH64_SOURCES else "x86_64"
        parsed = parse_config({key: value, **({"arch": arch} if arch != "x86_64" else {})})
        assert len(parsed.drives) == 1, where
        (d,) = parsed.drives
        tally[d.kind] += 1
        assert d.kind == _expected_kind(key, value), where
        problem = KNOWN_PROBLEMS.get(f"{key}: {value}")
        found = [problem is not None and problem in w for w in parsed.warnings]
        assert found == ([True] if problem else []), (where, parsed.warnings)
        m = re.search(r"(?:^|,)size=(\d+(?:\.\d+)?)([KMGT]?)(?:iB)?(?:,|$)", value)
        if m:
            assert d.size == int(float(m.group(1)) * _UNIT[m.group(2)]), where
        elif d.kind == "efidisk":
            want = 64 * MIB if arch == "aarch64" else 528 * KIB if "efitype=4m" in value else 128 * KIB
            assert d.size == want, where
        elif d.kind in ("tpmstate", "cloudinit"):
            assert d.size == 4 * MIB, where
        else:
            assert d.size is None, where
        # move_disk moves a cloud-init drive too (drive_is_cdrom($drive, 1) leaves it out)
        assert d.movable == (
            d.kind in ("disk", "efidisk", "tpmstate", "cloudinit", "unused", "rootfs", "mountpoint")
            and d.storage is not None
            and "iso/" not in value
        ), where
    assert dict(tally) == TALLY
