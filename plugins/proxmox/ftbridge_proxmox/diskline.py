"""Reading the drive lines of PVE guest configs (``scsi0: ceph-a:vm-100-disk-0,size=32G``).

A drive line is a property string: a volume (``STORAGE:VOLNAME``, ``none``, ``cdrom``, a
``/dev/...`` device or a host path) followed by ``key=value`` options. Every line that names a
drive is classified the way PVE itself tells them apart, so the driver can tell a movable disk
from a CD-ROM, a cloud-init drive, EFI vars or TPM state, a detached (``unused``) volume, a
container root or mount point, or a pass-through device or host path that lives on one node.
A line PVE would not accept is reported as a warning; nothing is dropped silently.

The rules, each from PVE's own source (read there, not copied):

- CD-ROM: ``media=cdrom`` and nothing else (qemu-server ``PVE/QemuServer/Drive.pm``
  ``drive_is_cdrom``); an ISO volume without ``media`` is refused at start with "explicit media
  parameter is required for iso images" (``PVE/QemuServer.pm``).
- cloud-init: the volume *name* ends in ``[vm-N-]cloudinit[.fmt]`` (``drive_is_cloudinit``, an
  anchored match: ``vm-100-cloudinit-data.qcow2`` is an ordinary disk).
- sizes: ``size=`` is a ``disk-size``: digits with an optional ``K``/``M``/``G``/``T`` or
  ``KiB``/``MiB``/``GiB``/``TiB`` unit, powers of 1024 (pve-common ``PVE/JSONSchema.pm``
  ``parse_size``). A drive without ``size=`` has PVE's own default where PVE allocates it:
  EFI vars are the size of the firmware's VARS image (``PVE/QemuServer/OVMF.pm``
  ``get_efivars_size``: 128 KiB for x86 2M firmware, 528 KiB for ``efitype=4m``, 64 MiB on
  aarch64), TPM state is ``TPMSTATE_DISK_SIZE`` (4 MiB, ``Drive.pm``), a cloud-init image
  4 MiB (``PVE/QemuServer/Cloudinit.pm``).
- containers: a mount point is a volume, a device (``/dev/...``) or a bind mount (any other
  path) (pve-container ``PVE/LXC/Config.pm`` ``classify_mountpoint``).
- volume names: owner VMID, base volume of a linked clone, and content type as pve-storage
  parses them (``PVE/Storage/Plugin.pm`` and ``ZFSPoolPlugin.pm`` ``parse_volname``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: QEMU drive slots and LXC volumes, and which kind of drive each family holds
_DRIVE_KEY = re.compile(r"^(?P<family>scsi|virtio|sata|ide|efidisk|tpmstate|unused|mp)(?P<index>\d+)$|^rootfs$")
#: families of numbered keys that are not drives (read, understood, ignored)
_OTHER_FAMILIES = frozenset(
    {"net", "numa", "serial", "usb", "hostpci", "ipconfig", "parallel", "virtiofs", "dev", "audio", "smbios", "rng"}
)
_NUMBERED = re.compile(r"^(?P<family>[a-z_]+?)(?P<index>\d+)$")
#: ``STORAGE:VOLNAME`` (pve-storage ``parse_volume_id``)
_VOLID = re.compile(r"^(?P<storage>[a-z][a-z0-9\-_.]*[a-z0-9]):(?P<volname>.+)$", re.IGNORECASE)
#: pve-common ``parse_size``: case matters, no other units
_SIZE = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>[KMGT](?:iB)?)?$")
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
#: qemu-server ``drive_is_cloudinit`` (QEMU_FORMAT_RE lists the formats)
_CLOUDINIT = re.compile(r"[:/](?:vm-\d+-)?cloudinit(?:\.(?:raw|qcow|qcow2|qed|vmdk|cloop))?$")
#: owner and base of a volume name: dir-style ``100/vm-100-disk-0.qcow2`` (and a linked clone
#: ``100/base-100-disk-0.qcow2/101/vm-101-disk-0.qcow2``), block-style ``vm-100-disk-0`` (and
#: ``base-100-disk-0/vm-101-disk-0``)
_DIR_LINKED = re.compile(r"^(?P<bvmid>\d+)/(?P<base>[^/]+)/(?P<vmid>\d+)/[^/]+$")
_DIR_PLAIN = re.compile(r"^(?P<vmid>\d+)/[^/]+$")
_BLOCK = re.compile(r"^(?:(?P<base>(?:base|basevol)-\d+-[^/\s]+)/)?(?:base|basevol|vm|subvol)-(?P<vmid>\d+)-\S+$")
_CONTENT_DIR = re.compile(r"^(?P<vtype>iso|vztmpl|backup|snippets|import)/")

MIB = 1024**2
KIB = 1024
#: sizes of drives PVE allocates itself, when the line carries no size=
EFIVARS_X86_2M = 128 * KIB
EFIVARS_X86_4M = 528 * KIB
EFIVARS_AARCH64 = 64 * MIB
TPMSTATE_SIZE = 4 * MIB
CLOUDINIT_SIZE = 4 * MIB

#: what each kind of drive is, for the model
KINDS = ("disk", "efidisk", "tpmstate", "cloudinit", "cdrom", "unused", "passthrough", "rootfs", "mountpoint")


class DiskLineError(ValueError):
    """A drive line that cannot be read; its message names the key and what is wrong."""


@dataclass(frozen=True, slots=True)
class DriveLine:
    """One drive of a guest config, classified."""

    key: str  # scsi0, efidisk0, unused1, rootfs, mp0
    kind: str  # one of KINDS
    volume: str  # as written: "ceph-a:vm-100-disk-0", "none", "cdrom", "/dev/disk/by-id/..."
    storage: str | None = None  # the storage id for STORAGE:VOLNAME volumes
    size: int | None = None  # bytes, when the line (or PVE's default for the drive kind) tells
    options: Mapping[str, str] = field(default_factory=dict)
    #: why PVE would refuse this line although it parses (the VM cannot start with it)
    problem: str | None = None

    @property
    def volname(self) -> str:
        return self.volume.partition(":")[2] if self.storage is not None else ""

    @property
    def vtype(self) -> str | None:
        """The volume's content type (``images``, ``iso``, ...); None for devices and paths."""
        if self.storage is None:
            return None
        m = _CONTENT_DIR.match(self.volname)
        return m.group("vtype") if m else "images"

    @property
    def owner(self) -> int | None:
        """The VMID that owns the volume, as pve-storage parses the name (None: no owner)."""
        if self.vtype != "images":
            return None
        name = self.volname
        for rx in (_DIR_LINKED, _DIR_PLAIN, _BLOCK):
            if m := rx.match(name):
                return int(m.group("vmid"))
        return None

    @property
    def base(self) -> str | None:
        """The base (template) volume id a linked clone's volume is built on."""
        if self.storage is None:
            return None
        name = self.volname
        if (m := _DIR_LINKED.match(name)) is not None:
            return f"{self.storage}:{m.group('bvmid')}/{m.group('base')}"
        if (m := _BLOCK.match(name)) is not None and m.group("base"):
            return f"{self.storage}:{m.group('base')}"
        return None

    @property
    def device(self) -> bool:
        """A host device (``/dev/...``) rather than a host path (bind mount)."""
        return self.storage is None and self.volume.startswith("/dev/")

    @property
    def movable(self) -> bool:
        """Can ``move_disk``/``move_volume`` relocate it? Devices, host paths and CD-ROMs cannot."""
        return self.storage is not None and self.kind not in ("cdrom", "passthrough") and self.vtype == "images"

    @property
    def replicate(self) -> bool:
        """Does pvesr consider it? (``replicate=0`` opts a drive out.)"""
        return self.options.get("replicate", "1") not in ("0", "off", "no", "false")

    @property
    def backup(self) -> bool:
        return self.options.get("backup", "1") not in ("0", "off", "no", "false")

    @property
    def shared(self) -> bool:
        """``shared=1``: the admin marks a device, host path or local volume as reachable from
        every node (qemu-server ``Drive.pm``, pve-container ``Config.pm``: "available on all
        nodes"; it does not share anything, it asserts that it already is)."""
        return self.options.get("shared", "0") in ("1", "on", "yes", "true")

    @property
    def content(self) -> str:
        """What a storage must hold for this volume: ``rootdir`` for container volumes."""
        return "rootdir" if self.kind in ("rootfs", "mountpoint") else "images"

    @property
    def is_placed_volume(self) -> bool:
        """A volume on a storage that counts as one of the VM's disks (not a CD-ROM)."""
        return self.storage is not None and self.kind != "cdrom"


@dataclass(frozen=True, slots=True)
class ParsedConfig:
    drives: tuple[DriveLine, ...]
    warnings: tuple[str, ...]


def parse_size(text: str) -> int:
    """Bytes from PVE's ``disk-size`` values: ``32G``, ``512M``, ``528K``, ``1.5T``, ``4GiB``, ``4096``."""
    m = _SIZE.match(text.strip())
    if not m:
        raise DiskLineError(f"value does not look like a valid disk size: {text}")
    unit = (m.group("unit") or "")[:1]
    return int(float(m.group("n")) * _UNITS[unit])


def format_size(size: int) -> str:
    """The shortest exact ``size=`` spelling of ``size`` bytes (what PVE writes)."""
    for unit in ("T", "G", "M", "K"):
        if size and size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return str(size)


def efivars_size(options: Mapping[str, str], arch: str = "x86_64") -> int:
    """The size PVE gives an EFI vars disk: that of the firmware's VARS image."""
    if arch == "aarch64":
        return EFIVARS_AARCH64
    return EFIVARS_X86_4M if options.get("efitype") == "4m" else EFIVARS_X86_2M


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


def parse_drive(key: str, value: str, *, arch: str = "x86_64") -> DriveLine:
    """Classify one drive line. Raises :class:`DiskLineError` if it cannot be read.

    ``arch`` is the guest's (``arch:`` in its config), for the size of EFI vars.
    """
    m = _DRIVE_KEY.match(key)
    if not m:
        raise DiskLineError(f"{key}: not a drive key")
    family = m.group("family") or "rootfs"
    volume, opts = split_property_string(str(value), "volume" if family in ("rootfs", "mp") else "file")
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

    if family in ("rootfs", "mp"):
        if storage is None:
            if not volume.startswith("/"):
                raise DiskLineError(f"{key}: {volume!r} is neither STORAGE:VOLUME nor a path")
            return DriveLine(key, "passthrough", volume, None, size, opts)
        return DriveLine(key, "rootfs" if family == "rootfs" else "mountpoint", volume, storage, size, opts)

    if family == "unused":
        if storage is None:
            raise DiskLineError(f"{key}: {volume!r} is not a STORAGE:VOLUME")
        return DriveLine(key, "unused", volume, storage, size, opts)

    media = opts.get("media")
    if media is not None and media not in ("cdrom", "disk"):
        raise DiskLineError(f"{key}: media: value '{media}' does not have a value in the enumeration 'cdrom, disk'")
    if _CLOUDINIT.search(volume) and storage is not None:
        return DriveLine(key, "cloudinit", volume, storage, size if size is not None else CLOUDINIT_SIZE, opts)
    if media == "cdrom":
        return DriveLine(key, "cdrom", volume, storage, size, opts)
    if volume == "none":
        return DriveLine(key, "cdrom", volume, None, size, opts)  # an empty drive: nothing to place
    if storage is None:
        if not volume.startswith("/"):
            raise DiskLineError(f"{key}: {volume!r} is neither STORAGE:VOLUME, a device nor a path")
        return DriveLine(key, "passthrough", volume, None, size, opts)
    kind = family if family in ("efidisk", "tpmstate") else "disk"
    if size is None:
        size = efivars_size(opts, arch) if kind == "efidisk" else TPMSTATE_SIZE if kind == "tpmstate" else None
    line = DriveLine(key, kind, volume, storage, size, opts)
    if media is None and line.vtype == "iso":
        # PVE parses it but refuses to start the guest with it (PVE/QemuServer.pm)
        return DriveLine(
            key,
            kind,
            volume,
            storage,
            size,
            opts,
            problem=f"{key}: explicit media parameter is required for iso images",
        )
    return line


def parse_config(config: Mapping[str, Any]) -> ParsedConfig:
    """Every drive of a QEMU or LXC config, and a warning for each line it could not read.

    Keys that are not drives (``name``, ``net0``, ``numa0`` ...) are ignored; a numbered key of
    an unknown family (a bus a newer PVE may add) is reported, since it may hold a disk.
    """
    drives: list[DriveLine] = []
    warnings: list[str] = []
    arch = str(config.get("arch") or "x86_64")
    for key in sorted(config, key=_natural):
        value = config[key]
        if is_drive_key(key):
            try:
                line = parse_drive(key, str(value), arch=arch)
            except DiskLineError as exc:
                warnings.append(f"unreadable drive line '{key}: {value}': {exc}")
                continue
            drives.append(line)
            if line.problem:
                warnings.append(f"{line.problem} ('{key}: {value}'); PVE will not start the guest with it")
            continue
        m = _NUMBERED.match(key)
        if m and m.group("family") not in _OTHER_FAMILIES:
            warnings.append(
                f"unknown config line '{key}: {value}' (not a drive ftbridge knows; "
                "if it holds a disk, its placement is not audited)"
            )
    return ParsedConfig(tuple(drives), tuple(warnings))


def _natural(key: str) -> tuple[str, int]:
    m = re.match(r"^(.*?)(\d+)$", key)
    return (m.group(1), int(m.group(2))) if m else (key, -1)
