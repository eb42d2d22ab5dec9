"""Proxmox VE's pair lists (``--target-storage``, ``--target-bridge``) and ``qm remote-migrate``.

The grammar, as Proxmox parses it (read in proxmox/pve-common ``src/PVE/JSONSchema.pm``
``parse_idmap`` and ``map_id``, ``src/PVE/ParseUtils.pm`` ``split_list``; the options in
proxmox/qemu-server ``src/PVE/API2/Qemu.pm`` ``remote_migrate_vm`` and ``src/PVE/CLI/qm.pm``,
formats ``storage-pair-list`` / ``bridge-pair-list``):

- a list split on ``,``, ``;`` and whitespace (on NUL only, if the text holds one);
- ``SRC:DST`` maps SRC (exactly one ``:``); an entry without ``:`` is the default target, at
  most one; ``1`` alone maps every source to itself and combines with nothing else;
- a source appears once; IDs are checked by the format: storage IDs ``pve-storage-id``
  (``parse_id``: two characters or more, a letter first, then letters, digits, ``-_.``, ending
  in a letter or digit), bridge IDs ``pve-bridge-id`` (``[-_.\\w\\d]+``);
- lookup: the explicit entry, else the default, else the source's own name (identity is the
  fallback, so ``1`` means the same as no entry at all).

``qm remote-migrate <vmid> [<target-vmid>] <target-endpoint> --target-storage ...
--target-bridge ... [--online]`` needs both maps (``optional => 0``); the target endpoint is a
``proxmox-remote`` property string (``host``, ``port``, ``apitoken``, ``fingerprint``). Its API
token is a secret, so the lines written here read it from ``$PVE_REMOTE_APITOKEN`` and never hold
it. PVE refuses to remote-migrate a VM that has HA or replication configured ("cannot
remote-migrate VM that is configured for HA", "cannot remote-migrate replicated VM"): the
protection ftbridge plans on the target is added after the move, not carried by it.

The file is plain text: ``target-storage: LIST`` and ``target-bridge: LIST`` lines (the maps
for every VM), then one command line per VM with the pair lists restricted to its storages and
bridges. Reading takes the two map lines, or the options of the command lines when there are
none; ``#`` starts a comment.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from ftbridge.migrate.mapping import Mapping, Rule

NAME = "pve"
_STORAGE_ID = re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", re.IGNORECASE)
_BRIDGE_ID = re.compile(r"^[-_.\w\d]+$")
_VMID = re.compile(r"^[1-9][0-9]{2,8}$")


def _err(msg: str) -> Exception:
    from ftbridge.migrate.formats import MappingError

    return MappingError(msg)


def split_list(text: str) -> list[str]:
    """``PVE::ParseUtils::split_list``: NUL-separated if any NUL, else on ``,;`` and blanks."""
    if "\0" in text:
        return text.split("\0")
    return re.sub(r"[,;]", " ", text).split()


def _check_id(value: str, kind: str) -> str | None:
    if kind == "storage":
        if len(value) < 2:
            return f"storage ID '{value}' cannot be shorter than 2 characters"
        if not _STORAGE_ID.match(value):
            return f"storage ID '{value}' contains illegal characters"
        return None
    if not _BRIDGE_ID.match(value):
        return f"invalid bridge ID '{value}'"
    return None


def parse_pairs(text: str, kind: str, where: str) -> tuple[str | None, dict[str, str]]:
    """A pair list as Proxmox reads it: (default, {source: target}); ``1`` gives (None, {})."""
    default: str | None = None
    entries: dict[str, str] = {}
    identity = False
    for entry in split_list(text):
        if entry == "1":
            identity = True
            continue
        m = re.fullmatch(r"([^:]+):([^:]+)", entry)
        if m:
            src, dst = m.group(1), m.group(2)
            bad = _check_id(src, kind) or _check_id(dst, kind)
            if bad:
                raise _err(f"{where}: entry '{entry}' contains invalid ID - {bad}")
            if src in entries:
                raise _err(f"{where}: duplicate mapping for source '{src}'")
            entries[src] = dst
            continue
        bad = _check_id(entry, kind)
        if bad:
            raise _err(f"{where}: entry '{entry}' contains invalid ID - {bad}")
        if default is not None:
            raise _err(f"{where}: default target ID can only be provided once ('{default}', then '{entry}')")
        default = entry
    if identity and (default is not None or entries):
        raise _err(f"{where}: identity mapping cannot be combined with other mappings")
    return default, entries


def format_pairs(default: str | None, entries: dict[str, str]) -> str:
    """The shortest list Proxmox reads back as the same map (``1`` when it is empty)."""
    parts = [f"{s}:{t}" for s, t in sorted(entries.items()) if s != t or default is not None]
    if default is not None:
        parts.append(default)
    return ",".join(parts) or "1"


def read(text: str, *, source: str = "pve") -> Mapping:
    storage: tuple[str | None, dict[str, str]] | None = None
    bridge: tuple[str | None, dict[str, str]] | None = None
    cmd_storage: dict[str, str] = {}
    cmd_bridge: dict[str, str] = {}
    vms: list[str] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{source}: line {n}"
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("target-storage", "target-bridge") and " " not in key.strip():
            kind = "storage" if key.strip() == "target-storage" else "bridge"
            parsed = parse_pairs(value.strip(), kind, f"{where}: {key.strip()}")
            if kind == "storage":
                if storage is not None:
                    raise _err(f"{where}: target-storage given twice")
                storage = parsed
            else:
                if bridge is not None:
                    raise _err(f"{where}: target-bridge given twice")
                bridge = parsed
            continue
        words = _words(line, where)
        if len(words) >= 2 and words[0] in ("qm", "pct") and words[1] == "remote-migrate":
            vmid, opts = _command(words, where)
            vms.append(vmid)
            for opt, into, kind in (
                ("target-storage", cmd_storage, "storage"),
                ("target-bridge", cmd_bridge, "bridge"),
            ):
                if opt not in opts:
                    raise _err(f"{where}: --{opt} is required by remote-migrate")
                d, e = parse_pairs(opts[opt], kind, f"{where}: --{opt}")
                if d is not None:
                    e = {**e, "": d}
                for s, t in e.items():
                    if into.get(s, t) != t:
                        raise _err(f"{where}: --{opt} maps {s or 'the default'} to {t}, an earlier line to {into[s]}")
                    into[s] = t
            continue
        raise _err(f"{where}: expected 'target-storage: LIST', 'target-bridge: LIST' or a remote-migrate command")
    if storage is None and bridge is None and not vms:
        raise _err(f"{source}: no target-storage, target-bridge or remote-migrate line in it")
    if storage is None:
        storage = (cmd_storage.pop("", None), cmd_storage)
    if bridge is None:
        bridge = (cmd_bridge.pop("", None), cmd_bridge)
    return Mapping(
        storage_default=storage[0],
        datastores=tuple(Rule(s, t, "name", where=f"{source}: target-storage {s}") for s, t in storage[1].items()),
        network_default=bridge[0],
        networks=tuple(Rule(s, t, "name", where=f"{source}: target-bridge {s}") for s, t in bridge[1].items()),
        vms=tuple(vms),
        origin=source,
    )


def _words(line: str, where: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise _err(f"{where}: {exc}") from None


def _command(words: list[str], where: str) -> tuple[str, dict[str, str]]:
    pos: list[str] = []
    opts: dict[str, str] = {}
    i = 2
    while i < len(words):
        w = words[i]
        if w.startswith("--"):
            name, eq, val = w[2:].partition("=")
            if not eq:
                if i + 1 >= len(words):
                    raise _err(f"{where}: --{name} needs a value")
                i += 1
                val = words[i]
            opts[name] = val
        else:
            pos.append(w)
        i += 1
    if len(pos) not in (2, 3) or not _VMID.match(pos[0]):
        raise _err(f"{where}: expected remote-migrate <vmid> [<target-vmid>] <target-endpoint>")
    return pos[0], opts


# -- writing -----------------------------------------------------------------------------------
def _remote() -> str:
    return "host=${PVE_REMOTE_HOST},apitoken=${PVE_REMOTE_APITOKEN},fingerprint=${PVE_REMOTE_FINGERPRINT}"


def write(mapping: Mapping, ctx: Any) -> str:
    storage = {r.source: r.target for r in mapping.datastores if r.target is not None}
    bridges = {r.source: r.target for r in mapping.networks if r.target is not None}
    lines = [
        "# Proxmox VE pair lists (storage-pair-list / bridge-pair-list) and one remote-migrate per VM.",
        "# The target's API token is a secret: export PVE_REMOTE_HOST, PVE_REMOTE_APITOKEN",
        "# ('PVEAPIToken=user@realm!token=SECRET') and PVE_REMOTE_FINGERPRINT before running the lines.",
        f"target-storage: {format_pairs(mapping.storage_default, storage)}",
        f"target-bridge: {format_pairs(mapping.network_default, bridges)}",
    ]
    unconnected = sorted(r.source for r in mapping.networks if r.target is None)
    if unconnected:
        lines.append(
            f"# no bridge pair can leave a NIC unconnected: {', '.join(unconnected)} (disconnect after the move)"
        )
    if mapping.disks or mapping.nics:
        lines.append(
            "# per-disk and per-NIC rules have no pair-list form: the VM lines below use what the plan resolved"
        )
    for vm in ctx.vms:
        if not _VMID.match(vm.id):
            lines.append(f"# {vm.name}: source id {vm.id!r} is not a PVE vmid: move it with the target's import tool")
            continue
        per_storage: dict[str, str] = {}
        clash = []
        for src, dst in vm.storages:
            if per_storage.get(src, dst) != dst:
                clash.append(f"{src} -> {per_storage[src]} and {dst}")
            per_storage.setdefault(src, dst)
        per_bridge = {src: dst for src, dst in vm.networks if dst is not None}
        tool = "pct" if vm.container else "qm"
        cmd = [
            tool,
            "remote-migrate",
            vm.id,
            vm.id,
            f'"{_remote()}"',
            "--target-storage",
            format_pairs(None, {s: t for s, t in per_storage.items()}) if per_storage else "1",
            "--target-bridge",
            format_pairs(None, per_bridge) if per_bridge else "1",
        ]
        if vm.running and tool == "qm":
            cmd += ["--online", "1"]  # a running VM migrates live; PVE refuses it otherwise
        if clash:
            lines.append(
                f"# {vm.name}: disks of one storage go to two targets ({'; '.join(clash)}): move the rest after"
            )
        lines.append(" ".join(cmd))
    return "\n".join(lines) + "\n"
