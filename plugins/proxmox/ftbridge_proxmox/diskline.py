"""Reading the drive lines of PVE guest configs (``scsi0: ceph-a:vm-100-disk-0,size=32G``).

A drive line is a property string: a volume (``STORAGE:VOLNAME``, ``none``, ``cdrom``, a
``/dev/...`` device or a path) followed by ``key=value`` options. Every line that names a
drive is classified, so the driver can tell a movable disk from a CD-ROM, a cloud-init drive,
an EFI vars or TPM state volume, a detached (``unused``) volume, or a pass-through device that
lives on one host and cannot move. A line that looks like a drive but cannot be read is
reported as a warning; nothing is silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: QEMU drive slots and LXC volumes, and which kind of drive each family holds
_DRIVE_KEY = re.compile(r"^(?P<family>scsi|virtio|sata|ide|efidisk|tpmstate|unused|mp)(?P<index>\d+)$|^rootfs$")
#: families of numbered keys that are not drives (read, understood, ignored)
_OTHER_FAMILIES = frozenset({"net", "numa", "serial", "usb", "hostpci", "ipconfig", "parallel", "virtiofs",
                             "dev", "audio", "smbios", "rng"})
_NUMBERED = re.compile(r"^(?P<family>[a-z_]+?)(?P<index>\d+)$")
_VOLID = re.compile(r"^(?P<storage>[a-z][a-z0-9\-_.]*[a-z0-9]):(?P<volname>.+)$", re.IGNORECASE)
_SIZE = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>[KMGTP]?)B?$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
#: default sizes of small drives whose lines often carry no size
_SMALL = {"efidisk": 4 * 1024**2, "tpmstate": 4 * 1024**2, "cloudinit": 4 * 1024**2}


class DiskLineError(ValueError):
    """A drive line that cannot be read; its message names the key and what is wrong."""


@dataclass(frozen=True, slots=True)
class DriveLine:
    """One drive of a guest config, classified."""

    key: str  # scsi0, efidisk0, unused1, rootfs, mp0
    kind: str  # disk | cdrom | cloudinit | efidisk | tpmstate | unused | rootfs | mountpoint | passthrough | bind
    volume: str  # as written: "ceph-a:vm-100-disk-0", "none", "cdrom", "/dev/disk/by-id/..."
    storage: str | None = None  # the storage id for STORAGE:VOLNAME volumes
    size: int | None = None  # bytes, when the line (or the drive kind) tells
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def movable(self) -> bool:
        """Can ``move_disk``/``move_volume`` relocate it? Devices, bind mounts and CD-ROMs cannot."""
        return self.storage is not None and self.kind not in ("cdrom", "passthrough", "bind")

    @property
    def replicate(self) -> bool:
        """Does pvesr copy it? (``replicate=0`` opts a volume out.)"""
        return self.options.get("replicate", "1") != "0"

    @property
    def backup(self) -> bool:
        return self.options.get("backup", "1") != "0"

    @property
    def shared(self) -> bool:
        """``shared=1``: the admin marks a node-local volume as reachable from every node."""
        return self.options.get("shared", "0") == "1"

    @property
    def is_placed_volume(self) -> bool:
        """A volume on a storage that counts as one of the VM's disks (not a CD-ROM)."""
        return self.storage is not None and self.kind != "cdrom"


@dataclass(frozen=True, slots=True)
class ParsedConfig:
    drives: tuple[DriveLine, ...]
    warnings: tuple[str, ...]


def parse_size(text: str) -> int:
    """Bytes from PVE's ``size=`` values: ``32G``, ``512M``, ``528K``, ``1.5T``, ``4096``."""
    m = _SIZE.match(text.strip())
    if not m:
        raise DiskLineError(f"bad size {text!r} (expected a number with an optional K/M/G/T unit)")
    return int(float(m.group("n")) * _UNITS[m.group("unit").upper()])


def format_size(size: int) -> str:
    """The shortest exact ``size=`` spelling of ``size`` bytes (what PVE writes)."""
    for unit in ("T", "G", "M", "K"):
        if size and size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return str(size)


def split_property_string(value: str, default_key: str) -> tuple[str | None, dict[str, str]]:
    """(the default-key value, the options) of ``vol,key=value,...``."""
    first: str | None = None
    options: dict[str, str] = {}
    for i, part in enumerate(value.split(",")):
        part = part.strip()
        if not part:
            continue
        if "=" in part:
            k, _, v = part.partition("=")
            options[k.strip()] = v.strip()
        elif i == 0:
            first = part
        else:
            raise DiskLineError(f"option {part!r} has no value")
    if first is None:
        first = options.pop(default_key, None)
        if first is None and default_key == "file":
            first = options.pop("volume", None)
    return first, options


def is_drive_key(key: str) -> bool:
    return bool(_DRIVE_KEY.match(key))


def parse_drive(key: str, value: str) -> DriveLine:
    """Classify one drive line. Raises :class:`DiskLineError` if it cannot be read."""
    m = _DRIVE_KEY.match(key)
    if not m:
        raise DiskLineError(f"{key}: not a drive key")
    family = m.group("family") or "rootfs"
    lxc = family in ("rootfs", "mp")
    volume, opts = split_property_string(str(value), "volume" if lxc else "file")
    if not volume:
        raise DiskLineError(f"{key}: no volume in {value!r}")
    size = None
    if "size" in opts:
        try:
            size = parse_size(opts["size"])
        except DiskLineError as exc:
            raise DiskLineError(f"{key}: {exc}") from None
    volm = _VOLID.match(volume)
    storage = volm.group("storage") if volm else None
    volname = volm.group("volname") if volm else ""

    if lxc:
        if storage is None:
            if not volume.startswith("/"):
                raise DiskLineError(f"{key}: {volume!r} is neither STORAGE:VOLUME nor a path")
            kind = "passthrough" if volume.startswith("/dev/") else "bind"
        else:
            kind = "rootfs" if family == "rootfs" else "mountpoint"
        return DriveLine(key, kind, volume, storage, size, opts)

    if opts.get("media") == "cdrom" and "cloudinit" not in volname:
        return DriveLine(key, "cdrom", volume, storage, size, opts)
    if volume in ("none", "cdrom"):
        # an empty or physical CD drive written without media=cdrom is still a CD drive
        return DriveLine(key, "cdrom", volume, None, size, opts)
    if storage is None:
        if not volume.startswith("/"):
            raise DiskLineError(f"{key}: {volume!r} is neither STORAGE:VOLUME, a device nor a path")
        return DriveLine(key, "passthrough", volume, None, size, opts)
    if "cloudinit" in volname:
        kind = "cloudinit"
    elif family in ("efidisk", "tpmstate", "unused"):
        kind = family
    else:
        kind = "disk"
    if size is None:
        size = _SMALL.get(kind)
    return DriveLine(key, kind, volume, storage, size, opts)


def parse_config(config: Mapping[str, Any]) -> ParsedConfig:
    """Every drive of a QEMU or LXC config, and a warning for each line it could not read.

    Keys that are not drives (``name``, ``net0``, ``numa0`` ...) are ignored; a numbered key of
    an unknown family (a bus a newer PVE may add) is reported, since it may hold a disk.
    """
    drives: list[DriveLine] = []
    warnings: list[str] = []
    for key in sorted(config, key=_natural):
        value = config[key]
        if is_drive_key(key):
            try:
                drives.append(parse_drive(key, str(value)))
            except DiskLineError as exc:
                warnings.append(f"unreadable drive line '{key}: {value}': {exc}")
            continue
        m = _NUMBERED.match(key)
        if m and m.group("family") not in _OTHER_FAMILIES:
            warnings.append(f"unknown config line '{key}: {value}' (not a drive ftbridge knows; "
                            "if it holds a disk, its placement is not audited)")
    return ParsedConfig(tuple(drives), tuple(warnings))


def _natural(key: str) -> tuple[str, int]:
    m = re.match(r"^(.*?)(\d+)$", key)
    return (m.group(1), int(m.group(2))) if m else (key, -1)
