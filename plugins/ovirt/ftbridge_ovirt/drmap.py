"""The oVirt disaster-recovery role's mapping file: read it, check it, write it back.

Users of the ``ovirt.ovirt.disaster_recovery`` role keep a YAML "var file" that pairs what
exists at the primary site with its counterpart at the secondary: storage domains
(``dr_import_storages``, ``dr_primary_*``/``dr_secondary_*`` keys), and ``{primary_name,
secondary_name}`` lists for clusters, affinity groups and labels, AAA domains and roles, plus
network and external-LUN mappings. ftbridge reads the storage pairs as its ``ovirt-dr``
pairing, and writes the same format back so the role can act on ftbridge's view.

Every key is checked, and every error names the key that is wrong, so a typo does not silently
drop a pairing. Anything accepted is kept as it was read, so import -> export -> import loses
nothing. The file never holds passwords (the role asks for them at run time); a
``*_password`` key is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftbridge.errors import ConfigError
from ftbridge_ovirt.config import StorageMapping

SITE_KEYS = tuple(f"dr_sites_{side}_{what}" for side in ("primary", "secondary")
                  for what in ("url", "username", "ca_file"))
NAME_LISTS = ("dr_cluster_mappings", "dr_affinity_group_mappings", "dr_affinity_label_mappings",
              "dr_domain_mappings", "dr_role_mappings")
NETWORK_KEYS = frozenset(f"{side}_{what}" for side in ("primary", "secondary")
                         for what in ("network_name", "profile_name", "profile_id", "network_dc"))
LUN_SHARED_KEYS = frozenset({"logical_unit_alias", "logical_unit_description", "wipe_after_delete", "shareable"})
DOMAIN_TYPES = frozenset({"nfs", "iscsi", "fcp", "glusterfs", "posixfs", "localfs"})
STORAGE_REQUIRED = ("dr_domain_type", "dr_primary_name", "dr_secondary_name")
STORAGE_KEYS = frozenset({
    "dr_domain_type", "dr_domain_id", "dr_storage_domain_type", "dr_master_domain", "dr_primary_master_domain",
    "dr_secondary_master_domain", "dr_wipe_after_delete", "dr_backup", "dr_critical_space_action_blocker",
    "dr_warning_low_space", "dr_discard_after_delete",
    *(f"dr_{side}_{what}" for side in ("primary", "secondary")
      for what in ("name", "dc_name", "path", "address", "port", "target", "mount_options", "vfs_type",
                   "nfs_version", "nfs_retrans", "nfs_timeout", "portal", "lun_id", "username",
                   "storage_type")),
})
TOP_KEYS = frozenset({*SITE_KEYS, "dr_import_storages", *NAME_LISTS, "dr_network_mappings", "dr_lun_mappings"})


@dataclass(frozen=True)
class DrMapping:
    """A mapping file's content, section by section, as read (order kept)."""

    sites: Mapping[str, Any] = field(default_factory=dict)
    storages: tuple[Mapping[str, Any], ...] = ()
    names: Mapping[str, tuple[Mapping[str, str], ...]] = field(default_factory=dict)
    networks: tuple[Mapping[str, Any], ...] | None = None
    luns: tuple[Mapping[str, Any], ...] | None = None

    def storage_mappings(self) -> tuple[StorageMapping, ...]:
        """The storage pairs as ftbridge's ``dr_storage_mappings``."""
        return tuple(StorageMapping(
            primary_name=str(s["dr_primary_name"]), secondary_name=str(s["dr_secondary_name"]),
            primary_dc=_opt(s.get("dr_primary_dc_name")), secondary_dc=_opt(s.get("dr_secondary_dc_name")),
            secondary_id=_opt(s.get("dr_domain_id"))) for s in self.storages)

    def to_data(self) -> dict[str, Any]:
        """The file's structure, in the role's section order."""
        out: dict[str, Any] = {k: self.sites[k] for k in SITE_KEYS if k in self.sites}
        out["dr_import_storages"] = [dict(s) for s in self.storages]
        for key in NAME_LISTS:
            if key in self.names:
                out[key] = [dict(x) for x in self.names[key]]
        if self.networks is not None:
            out["dr_network_mappings"] = [dict(x) for x in self.networks]
        if self.luns is not None:
            out["dr_lun_mappings"] = [dict(x) for x in self.luns]
        return out


def _opt(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)


class _Bad(Exception):
    def __init__(self, key: str, msg: str) -> None:
        super().__init__(f"{key}: {msg}")
        self.key, self.msg = key, msg


def _yaml() -> Any:
    import yaml  # PyYAML: the role's own format; safe_load/safe_dump only

    return yaml


def load(path: str | Path) -> DrMapping:
    """Read and check a mapping file; errors name the file and the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read DR mapping file: {exc.strerror}") from exc
    return loads(text, source=str(path))


def loads(text: str, *, source: str = "DR mapping") -> DrMapping:
    yaml = _yaml()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{source}: not valid YAML{line}: {getattr(exc, 'problem', exc)}") from None
    return parse(data, source=source)


def parse(data: Any, *, source: str = "DR mapping") -> DrMapping:
    try:
        return _parse(data)
    except _Bad as exc:
        raise ConfigError(f"{source}: {exc.key}: {exc.msg}") from None


def _parse(data: Any) -> DrMapping:
    if not isinstance(data, dict):
        raise _Bad("(top level)", "expected a mapping of dr_* keys")
    for key in data:
        if not isinstance(key, str) or key not in TOP_KEYS:
            if isinstance(key, str) and key.endswith("_password"):
                raise _Bad(key, "passwords do not belong in the mapping file (the role asks for them)")
            raise _Bad(str(key), f"unknown key (expected one of: {', '.join(sorted(TOP_KEYS))})")
    sites = {}
    for key in SITE_KEYS:
        if key in data:
            v = data[key]
            if v is not None and not isinstance(v, str):
                raise _Bad(key, f"expected a string, got {type(v).__name__}")
            sites[key] = v
    if "dr_import_storages" not in data:
        raise _Bad("dr_import_storages", "missing (the list of storage domain pairs)")
    storages = tuple(_storage(i, s) for i, s in enumerate(_list(data, "dr_import_storages")))
    names = {}
    for key in NAME_LISTS:
        if key in data:
            names[key] = tuple(_name_pair(key, i, x) for i, x in enumerate(_list(data, key)))
    networks = None
    if "dr_network_mappings" in data:
        networks = tuple(_keyed("dr_network_mappings", i, x, lambda k: k in NETWORK_KEYS, "primary_/secondary_ "
                                "network_name, profile_name, profile_id")
                         for i, x in enumerate(_list(data, "dr_network_mappings")))
    luns = None
    if "dr_lun_mappings" in data:
        luns = tuple(_keyed("dr_lun_mappings", i, x,
                            lambda k: k in LUN_SHARED_KEYS or bool(re.fullmatch(r"(primary|secondary)_[a-z_]+", k)),
                            "primary_*/secondary_* logical unit keys")
                     for i, x in enumerate(_list(data, "dr_lun_mappings")))
    return DrMapping(sites=sites, storages=storages, names=names, networks=networks, luns=luns)


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    v = data[key]
    if v is None:  # "# No mapping should be here" leaves an empty value
        return []
    if not isinstance(v, list):
        raise _Bad(key, f"expected a list, got {type(v).__name__}")
    return v


def _storage(i: int, s: Any) -> dict[str, Any]:
    where = f"dr_import_storages[{i}]"
    if not isinstance(s, dict):
        raise _Bad(where, "expected a mapping of dr_* keys")
    for key in s:
        if key not in STORAGE_KEYS:
            if isinstance(key, str) and key.endswith("_password"):
                raise _Bad(f"{where}.{key}", "passwords do not belong in the mapping file")
            raise _Bad(f"{where}.{key}", "unknown key (storage keys are dr_domain_type, dr_primary_*/dr_secondary_* "
                                         "name, dc_name, path, address, port, target, ...)")
    for key in STORAGE_REQUIRED:
        v = s.get(key)
        if v is None or (isinstance(v, str) and not v.strip()):
            hint = " (fill in the secondary site)" if "secondary" in key else ""
            raise _Bad(f"{where}.{key}", "missing or empty" + hint)
        if not isinstance(v, str):
            raise _Bad(f"{where}.{key}", f"expected a string, got {type(v).__name__}")
    if s["dr_domain_type"] not in DOMAIN_TYPES:
        raise _Bad(f"{where}.dr_domain_type",
                   f"{s['dr_domain_type']!r} is not one of {', '.join(sorted(DOMAIN_TYPES))}")
    for key, v in s.items():
        if isinstance(v, (dict, set)):
            raise _Bad(f"{where}.{key}", "expected a scalar or a list")
    return dict(s)


def _name_pair(section: str, i: int, x: Any) -> dict[str, str]:
    where = f"{section}[{i}]"
    if not isinstance(x, dict):
        raise _Bad(where, "expected {primary_name, secondary_name}")
    for key in x:
        if key not in ("primary_name", "secondary_name"):
            raise _Bad(f"{where}.{key}", "unknown key (expected primary_name and secondary_name)")
    for key in ("primary_name", "secondary_name"):
        v = x.get(key)
        if not isinstance(v, str) or not v.strip():
            raise _Bad(f"{where}.{key}", "missing or empty")
    return {"primary_name": x["primary_name"], "secondary_name": x["secondary_name"]}


def _keyed(section: str, i: int, x: Any, ok: Any, expected: str) -> dict[str, Any]:
    where = f"{section}[{i}]"
    if not isinstance(x, dict):
        raise _Bad(where, "expected a mapping")
    for key in x:
        if not isinstance(key, str) or not ok(key):
            raise _Bad(f"{where}.{key}", f"unknown key (expected {expected})")
    return dict(x)


def dumps(mapping: DrMapping) -> str:
    """The mapping as the role's YAML (section order kept, keys as read)."""
    yaml = _yaml()
    head = "# oVirt disaster-recovery mapping (ovirt.ovirt.disaster_recovery), written by ftbridge\n"
    return head + str(yaml.safe_dump(mapping.to_data(), sort_keys=False, default_flow_style=False,
                                     allow_unicode=True))


def save(mapping: DrMapping, path: str | Path) -> None:
    Path(path).write_text(dumps(mapping), encoding="utf-8")


def build(storages: Iterable[Mapping[str, Any]], *, clusters: Iterable[tuple[str, str]] = (),
          sites: Mapping[str, Any] | None = None) -> DrMapping:
    """A mapping from ftbridge's view (checked like a file, so what it writes, it can read)."""
    data: dict[str, Any] = dict(sites or {})
    data["dr_import_storages"] = [dict(s) for s in storages]
    pairs = [{"primary_name": p, "secondary_name": s} for p, s in clusters]
    if pairs:
        data["dr_cluster_mappings"] = pairs
    return parse(data, source="ftbridge DR mapping")
