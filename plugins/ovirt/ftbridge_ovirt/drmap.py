"""The oVirt disaster-recovery role's mapping file: read what the role runs, write what it runs.

Users of the ``ovirt.ovirt.disaster_recovery`` role keep a YAML "var file" that pairs what exists
at the primary site with its counterpart at the secondary: storage domains (``dr_import_storages``),
clusters, affinity groups and labels, AAA domains, roles, vNIC profiles and direct LUNs. ftbridge
reads the storage pairs as its ``ovirt-dr`` pairing, drives a failover with the rest, and writes
the same format back so the role can act on ftbridge's view.

The rules below are the role's own, read from ovirt-ansible-collection (cited, not copied):

* ``roles/disaster_recovery/tasks/recover_engine.yml`` adds the domains whose
  ``dr_<target>_master_domain`` is true first, then the others; it reads that key with no
  default, so every entry needs it for the side it recovers to.
* ``tasks/recover/add_domain.yml`` picks ``add_<type>_domain.yml`` by ``dr_domain_type``; there
  is none for ``localfs`` (or managed block storage), so such an entry is skipped by the role.
* ``tasks/recover/add_{nfs,glusterfs,posixfs,iscsi,fcp}_domain.yml`` read the keys of
  :data:`SIDE_KEYS` / :data:`SHARED_KEYS` without a default: a missing one fails that domain's
  import, and with it every VM it holds. Keys read ``| default(...)`` are optional.
* The network, LUN and name maps (``recover_engine.yml``, "Set ... Map") default a missing side to
  ``EMPTY_ELEMENT``: a half-filled entry maps something to nothing.
* ``files/validator.py`` (``ovirt-dr validate``) also refuses ``hosted_storage`` and export
  domains, duplicate names and unnamed vNIC profiles; what the role would still run despite
  it (duplicates) is kept as a warning, and every file ftbridge writes passes it.
* ``files/generate_mapping.py`` writes one empty ``dr_role_mappings`` entry the user may leave
  empty; the role maps it to nothing, so it is accepted.

Secrets never sit in a file ftbridge reads or writes as values: a ``*_password`` key holds either
``""`` (no CHAP) or an Ansible reference to a variable of the role's vault file
(``"{{ dr_chap_password }}"``, the file ``ansible-vault encrypt`` protects). A literal is refused,
naming the key, and never echoed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftbridge.errors import ConfigError
from ftbridge_ovirt.config import StorageMapping

SIDES = ("primary", "secondary")
SITE_KEYS = tuple(f"dr_sites_{side}_{what}" for side in SIDES for what in ("url", "username", "ca_file"))
SITE_PASSWORDS = tuple(f"dr_sites_{side}_password" for side in SIDES)
NAME_LISTS = (
    "dr_cluster_mappings",
    "dr_affinity_group_mappings",
    "dr_affinity_label_mappings",
    "dr_domain_mappings",
    "dr_role_mappings",
)
TOP_KEYS = frozenset(
    {*SITE_KEYS, *SITE_PASSWORDS, "dr_import_storages", *NAME_LISTS, "dr_network_mappings", "dr_lun_mappings"}
)

#: per domain type, the ``dr_<side>_*`` keys add_<type>_domain.yml reads without a default
SIDE_KEYS: Mapping[str, tuple[str, ...]] = {
    "nfs": ("name", "master_domain", "dc_name", "path", "address"),
    "glusterfs": ("name", "master_domain", "dc_name", "path", "address"),
    "posixfs": ("name", "master_domain", "dc_name", "path", "address", "vfs_type"),
    "iscsi": ("name", "master_domain", "dc_name", "address", "target"),
    "fcp": ("name", "master_domain", "dc_name"),
}
#: per domain type, the side-less keys it reads without a default
SHARED_KEYS: Mapping[str, tuple[str, ...]] = {
    "nfs": ("dr_storage_domain_type", "dr_critical_space_action_blocker", "dr_wipe_after_delete", "dr_backup"),
    "glusterfs": (
        "dr_storage_domain_type",
        "dr_critical_space_action_blocker",
        "dr_warning_low_space",
        "dr_wipe_after_delete",
        "dr_backup",
    ),
    "posixfs": (
        "dr_storage_domain_type",
        "dr_critical_space_action_blocker",
        "dr_warning_low_space",
        "dr_wipe_after_delete",
        "dr_backup",
    ),
    "iscsi": (
        "dr_domain_id",
        "dr_critical_space_action_blocker",
        "dr_warning_low_space",
        "dr_wipe_after_delete",
        "dr_discard_after_delete",
        "dr_backup",
    ),
    "fcp": (
        "dr_domain_id",
        "dr_critical_space_action_blocker",
        "dr_warning_low_space",
        "dr_wipe_after_delete",
        "dr_discard_after_delete",
        "dr_backup",
    ),
}
#: storage types the API knows that the role has no add_<type>_domain.yml for: it skips them
NOT_IMPORTED = frozenset({"localfs", "managed_block_storage", "cinder", "glance"})
SIDE_OPTIONAL = ("port", "username", "password", "target", "vfs_type", "path", "address")
STORAGE_KEYS = frozenset(
    {
        "dr_domain_type",
        "dr_domain_id",
        "dr_storage_domain_type",
        "dr_wipe_after_delete",
        "dr_backup",
        "dr_critical_space_action_blocker",
        "dr_warning_low_space",
        "dr_discard_after_delete",
        *(f"dr_{side}_{what}" for side in SIDES for what in (*SIDE_KEYS["posixfs"], *SIDE_OPTIONAL)),
    }
)
BOOL_KEYS = frozenset({"master_domain", "dr_wipe_after_delete", "dr_backup", "dr_discard_after_delete"})
INT_KEYS = frozenset({"dr_critical_space_action_blocker", "dr_warning_low_space", "port"})
#: what a domain can be for (the API's StorageDomainType); the validator refuses export domains
DOMAIN_FUNCTIONS = frozenset({"data", "iso", "export", "image", "volume", "managed_block_storage"})
HOSTED_STORAGE = "hosted_storage"  # validator.py and generate_mapping.py match it by this name

NETWORK_KEYS = frozenset(
    f"{side}_{what}" for side in SIDES for what in ("network_name", "profile_name", "profile_id", "network_dc")
)
#: validator.py exits on a network entry whose side lacks these; the role's map needs the target id
NETWORK_REQUIRED = (
    "primary_network_name",
    "primary_profile_name",
    "secondary_network_name",
    "secondary_profile_name",
    "secondary_profile_id",
)
LUN_SIDE = (
    "logical_unit_id",
    "storage_type",
    "logical_unit_address",
    "logical_unit_port",
    "logical_unit_portal",
    "logical_unit_username",
    "logical_unit_password",
    "logical_unit_target",
    # the oVirt site's appendix spells these per side; the generator writes them side-less
    "logical_unit_alias",
    "logical_unit_description",
    "wipe_after_delete",
    "shareable",
)
LUN_KEYS = frozenset(
    {
        "logical_unit_alias",
        "logical_unit_description",
        "wipe_after_delete",
        "shareable",
        *(f"{side}_{k}" for side in SIDES for k in LUN_SIDE),
    }
)
LUN_TYPES = frozenset({"iscsi", "fcp"})

_VAULT_REF = re.compile(r"^\{\{\s*[A-Za-z_][A-Za-z0-9_]*\s*\}\}$")
_TRUE = frozenset({"true", "yes"})
_FALSE = frozenset({"false", "no"})


def vault_ref(var: str) -> str:
    """The Ansible reference to a variable of the role's vault file (never its value)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", var):
        raise ValueError(f"{var!r} is not an Ansible variable name")
    return "{{ " + var + " }}"


def is_vault_ref(value: Any) -> bool:
    return isinstance(value, str) and bool(_VAULT_REF.match(value.strip()))


def as_bool(value: Any) -> bool | None:
    """A YAML or Ansible boolean (``True``, ``"False"``, ``yes``), or None when it is not one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return None


@dataclass(frozen=True)
class DrMapping:
    """A mapping file's content, section by section, as read (order and values kept)."""

    sites: Mapping[str, Any] = field(default_factory=dict)
    storages: tuple[Mapping[str, Any], ...] = ()
    names: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)
    networks: tuple[Mapping[str, Any], ...] | None = None
    luns: tuple[Mapping[str, Any], ...] | None = None
    #: what the role would still run but ``ovirt-dr validate`` or ftbridge would not use
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def storage_mappings(self) -> tuple[StorageMapping, ...]:
        """The data-domain pairs the role imports, as ftbridge's ``dr_storage_mappings``."""
        out = []
        for s in self.storages:
            if s["dr_domain_type"] in NOT_IMPORTED or str(s.get("dr_storage_domain_type", "data")) != "data":
                continue
            out.append(
                StorageMapping(
                    primary_name=str(s["dr_primary_name"]),
                    secondary_name=str(s["dr_secondary_name"]),
                    primary_dc=_opt(s.get("dr_primary_dc_name")),
                    secondary_dc=_opt(s.get("dr_secondary_dc_name")),
                    secondary_id=_opt(s.get("dr_domain_id")),
                )
            )
        return tuple(out)

    def storage(self, *, secondary_name: str | None = None, primary_name: str | None = None) -> Mapping[str, Any]:
        """The entry pairing this domain (KeyError when none does)."""
        for s in self.storages:
            if (secondary_name is not None and s.get("dr_secondary_name") == secondary_name) or (
                primary_name is not None and s.get("dr_primary_name") == primary_name
            ):
                return s
        raise KeyError(secondary_name or primary_name)

    def name_map(self, section: str, *, source: str = "primary", target: str = "secondary") -> dict[str, str]:
        """``{source name: target name}`` of a name list, the generator's empty stubs left out."""
        return {
            str(x[f"{source}_name"]): str(x[f"{target}_name"])
            for x in self.names.get(section, ())
            if x.get(f"{source}_name") not in (None, "")
        }

    def to_data(self) -> dict[str, Any]:
        """The file's structure, in the role's section order."""
        out: dict[str, Any] = {k: self.sites[k] for k in (*SITE_KEYS, *SITE_PASSWORDS) if k in self.sites}
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
        return _Reader().read(data)
    except _Bad as exc:
        raise ConfigError(f"{source}: {exc.key}: {exc.msg}") from None


class _Reader:
    """One file's check; collects warnings for what the role runs but its validator refuses."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def read(self, data: Any) -> DrMapping:
        if not isinstance(data, dict):
            raise _Bad("(top level)", "expected a mapping of dr_* keys")
        for key in data:
            if not isinstance(key, str) or key not in TOP_KEYS:
                raise _Bad(str(key), "unknown key (the role reads: " + ", ".join(sorted(TOP_KEYS)) + ")")
        sites: dict[str, Any] = {}
        for key in SITE_KEYS:  # recover_engine.yml logs in with these; validator.py requires all six
            v = data.get(key)
            if v is None or (isinstance(v, str) and not v.strip()):
                hint = " (fill in the secondary site)" if "secondary" in key else ""
                raise _Bad(key, "missing or empty" + hint)
            if not isinstance(v, str):
                raise _Bad(key, f"expected a string, got {type(v).__name__}")
            sites[key] = v
        for key in SITE_PASSWORDS:
            if key in data:
                sites[key] = self.secret(key, data[key])
        if "dr_import_storages" not in data:
            raise _Bad("dr_import_storages", "missing (the list of storage domain pairs the role imports)")
        storages = tuple(self.storage(i, s) for i, s in enumerate(_list(data, "dr_import_storages")))
        self.duplicates("dr_import_storages", storages, ("dr_primary_name", "dr_secondary_name"), refuse=True)
        imported = [s for s in storages if s["dr_domain_type"] not in NOT_IMPORTED]
        if not imported:
            self.warnings.append(
                "dr_import_storages: no storage domain the role imports: a failover would bring nothing up"
            )
        elif not any(as_bool(s.get("dr_secondary_master_domain")) for s in imported):
            self.warnings.append(
                "dr_import_storages: no entry has dr_secondary_master_domain true: the role "
                "attaches them in file order and the first becomes master"
            )
        names = {}
        for key in NAME_LISTS:
            if key in data:
                names[key] = tuple(self.name_pair(key, i, x) for i, x in enumerate(_list(data, key)))
                self.duplicates(key, names[key], ("primary_name", "secondary_name"), refuse=False)
        networks = None
        if "dr_network_mappings" in data:
            networks = tuple(self.network(i, x) for i, x in enumerate(_list(data, "dr_network_mappings")))
            self.network_duplicates(networks)
        luns = None
        if "dr_lun_mappings" in data:
            luns = tuple(self.lun(i, x) for i, x in enumerate(_list(data, "dr_lun_mappings")))
        return DrMapping(
            sites=sites, storages=storages, names=names, networks=networks, luns=luns, warnings=tuple(self.warnings)
        )

    # values --------------------------------------------------------------------------------
    @staticmethod
    def secret(key: str, value: Any) -> str:
        if value is None or value == "" or is_vault_ref(value):
            return "" if value is None else str(value)
        raise _Bad(
            key,
            "a password written in the file: keep it in the role's vault file (ansible-vault "
            'encrypt ovirt_passwords.yml) and reference it here as "{{ variable }}"',
        )

    @staticmethod
    def text(key: str, value: Any) -> str:
        if value is None or (isinstance(value, str) and not value.strip()):
            hint = " (fill in the secondary site)" if "secondary" in key else ""
            raise _Bad(key, "missing or empty" + hint)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise _Bad(key, f"expected a string, got {type(value).__name__}")
        return str(value)

    def value(self, where: str, key: str, short: str, value: Any) -> Any:
        """Check one storage value by what the role does with it; returns it as read."""
        full = f"{where}.{key}"
        if short == "password":
            return self.secret(full, value)
        if short in BOOL_KEYS:
            if as_bool(value) is None:
                raise _Bad(full, f"expected true or false, got {value!r}")
            return value
        if short in INT_KEYS:
            if isinstance(value, bool) or not (
                isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())
            ):
                raise _Bad(full, f"expected a whole number, got {value!r}")
            if short == "port" and not 0 < int(value) < 65536:
                raise _Bad(full, f"{value} is not a TCP port")
            return value
        if short == "target":  # add_iscsi_domain.yml loops over it (with_items)
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not items or not all(isinstance(t, str) and t.strip() for t in items):
                raise _Bad(full, "expected a list of iSCSI target names (IQNs)")
            return value
        return self.text(full, value)

    # sections ------------------------------------------------------------------------------
    def storage(self, i: int, s: Any) -> dict[str, Any]:
        where = f"dr_import_storages[{i}]"
        if not isinstance(s, dict):
            raise _Bad(where, "expected a mapping of dr_* keys")
        if "dr_master_domain" in s:
            raise _Bad(
                f"{where}.dr_master_domain",
                "the role reads dr_primary_master_domain and "
                "dr_secondary_master_domain (dr_master_domain went in 2018)",
            )
        for key in s:
            if key not in STORAGE_KEYS:
                raise _Bad(
                    f"{where}.{key}",
                    "unknown key (the role reads dr_domain_type, dr_domain_id, "
                    "dr_storage_domain_type, dr_primary_*/dr_secondary_* name, "
                    "master_domain, dc_name, path, address, port, target, ...)",
                )
        kind = self.text(f"{where}.dr_domain_type", s.get("dr_domain_type"))
        for side in SIDES:
            for short in ("name", "dc_name"):  # every entry: ftbridge pairs by them, the cleanup reads them
                self.text(f"{where}.dr_{side}_{short}", s.get(f"dr_{side}_{short}"))
        function = str(s.get("dr_storage_domain_type", "data"))
        if function not in DOMAIN_FUNCTIONS:
            raise _Bad(
                f"{where}.dr_storage_domain_type", f"{function!r} is not one of {', '.join(sorted(DOMAIN_FUNCTIONS))}"
            )
        if function == "export":
            raise _Bad(
                f"{where}.dr_storage_domain_type",
                "export domains are not part of a recovery (the role's validator refuses them)",
            )
        for side in SIDES:
            if s.get(f"dr_{side}_name") == HOSTED_STORAGE:
                raise _Bad(
                    f"{where}.dr_{side}_name",
                    "the hosted engine's domain is not part of a recovery (the role's validator refuses it)",
                )
        if kind in NOT_IMPORTED:
            self.warnings.append(
                f"{where}: the role has no task that imports a {kind} domain: it skips "
                f"{s.get('dr_primary_name')}, and ftbridge does not pair it"
            )
        elif kind not in SIDE_KEYS:
            raise _Bad(
                f"{where}.dr_domain_type", f"{kind!r} is not one of {', '.join(sorted({*SIDE_KEYS, *NOT_IMPORTED}))}"
            )
        else:
            for key in SHARED_KEYS[kind]:
                if key not in s:
                    raise _Bad(
                        f"{where}.{key}",
                        f"missing: the role's add_{kind}_domain.yml reads it "
                        "without a default, so this domain would not be imported",
                    )
            for short in SIDE_KEYS[kind]:  # the failover side must be whole; failback's is a warning
                if f"dr_secondary_{short}" not in s:
                    raise _Bad(
                        f"{where}.dr_secondary_{short}",
                        f"missing: the role's {_task(short, kind)} reads it to recover to the secondary site",
                    )
                if f"dr_primary_{short}" not in s:
                    self.warnings.append(
                        f"{where}.dr_primary_{short}: missing: a failback would not "
                        f"re-import {s.get('dr_primary_name')} at the primary site"
                    )
        for key, v in s.items():
            short = (
                key[len("dr_primary_") :]
                if key.startswith("dr_primary_")
                else key[len("dr_secondary_") :]
                if key.startswith("dr_secondary_")
                else key
            )
            self.value(where, key, short, v)
        return dict(s)

    def name_pair(self, section: str, i: int, x: Any) -> dict[str, Any]:
        where = f"{section}[{i}]"
        if not isinstance(x, dict):
            raise _Bad(where, "expected {primary_name, secondary_name}")
        for key in x:
            if key not in ("primary_name", "secondary_name"):
                raise _Bad(f"{where}.{key}", "unknown key (expected primary_name and secondary_name)")
        empty = [k for k in ("primary_name", "secondary_name") if x.get(k) in (None, "")]
        if len(empty) == 1:  # the role would map one side to EMPTY_ELEMENT
            hint = " (fill in the secondary site)" if empty[0] == "secondary_name" else ""
            raise _Bad(f"{where}.{empty[0]}", "missing or empty" + hint)
        for key in ("primary_name", "secondary_name"):
            if x.get(key) not in (None, "") and (isinstance(x[key], bool) or not isinstance(x[key], (str, int))):
                raise _Bad(f"{where}.{key}", f"expected a name, got {type(x[key]).__name__}")
        return {"primary_name": x.get("primary_name"), "secondary_name": x.get("secondary_name")}

    def network(self, i: int, x: Any) -> dict[str, Any]:
        where = f"dr_network_mappings[{i}]"
        if not isinstance(x, dict):
            raise _Bad(where, "expected a mapping")
        for key in x:
            if key not in NETWORK_KEYS:
                raise _Bad(
                    f"{where}.{key}",
                    "unknown key (expected primary_/secondary_ network_name, profile_name, profile_id, network_dc)",
                )
        for key in NETWORK_REQUIRED:
            self.text(f"{where}.{key}", x.get(key))
        if "primary_profile_id" not in x:
            self.warnings.append(
                f"{where}.primary_profile_id: missing: a failback would leave the NICs of "
                f"profile {x.get('secondary_profile_name')} unmapped"
            )
        return dict(x)

    def lun(self, i: int, x: Any) -> dict[str, Any]:
        where = f"dr_lun_mappings[{i}]"
        if not isinstance(x, dict):
            raise _Bad(where, "expected a mapping")
        for key in x:
            if key not in LUN_KEYS:
                raise _Bad(
                    f"{where}.{key}",
                    "unknown key (expected primary_*/secondary_* logical_unit_id, "
                    "storage_type, logical_unit_address, _port, _portal, _target, "
                    "_username, _password)",
                )
        for side in SIDES:
            self.text(f"{where}.{side}_logical_unit_id", x.get(f"{side}_logical_unit_id"))
            kind = x.get(f"{side}_storage_type")
            if kind not in LUN_TYPES:
                raise _Bad(f"{where}.{side}_storage_type", f"expected iscsi or fcp, got {kind!r}")
            if kind == "iscsi":
                for short in ("logical_unit_address", "logical_unit_target"):
                    self.text(f"{where}.{side}_{short}", x.get(f"{side}_{short}"))
            key = f"{side}_logical_unit_password"
            if key in x:
                self.secret(f"{where}.{key}", x[key])
        return dict(x)

    # the validator's duplicate rules ----------------------------------------------------------
    def duplicates(
        self, section: str, items: Iterable[Mapping[str, Any]], keys: tuple[str, str], *, refuse: bool
    ) -> None:
        for key in keys:
            seen: set[Any] = set()
            for i, x in enumerate(items):
                v = x.get(key)
                if v in (None, ""):
                    continue
                if v in seen:
                    if refuse:
                        raise _Bad(f"{section}[{i}].{key}", f"{v!r} is paired twice")
                    self.warnings.append(
                        f"{section}[{i}].{key}: {v!r} appears twice (ovirt-dr validate refuses duplicates)"
                    )
                seen.add(v)

    def network_duplicates(self, networks: Iterable[Mapping[str, Any]]) -> None:
        for side in SIDES:
            seen: set[tuple[str, str, str]] = set()
            for i, x in enumerate(networks):
                k = (
                    str(x[f"{side}_profile_name"]),
                    str(x[f"{side}_network_name"]),
                    str(x.get(f"{side}_network_dc", "")),
                )
                if k in seen:
                    self.warnings.append(
                        f"dr_network_mappings[{i}]: profile {k[0]} of network {k[1]} appears twice on the {side} "
                        f"side: give {side}_network_dc (ovirt-dr validate refuses it as it is)"
                    )
                seen.add(k)


def _task(short: str, kind: str) -> str:
    return "recover_engine.yml" if short == "master_domain" else f"add_{kind}_domain.yml"


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    v = data[key]
    if v is None:  # the generator leaves a section empty when the engine has none
        return []
    if not isinstance(v, list):
        raise _Bad(key, f"expected a list, got {type(v).__name__}")
    return v


def dumps(mapping: DrMapping) -> str:
    """The mapping as the role's YAML (section order kept, keys as read)."""
    yaml = _yaml()
    head = (
        "# oVirt disaster-recovery mapping (ovirt.ovirt.disaster_recovery), written by ftbridge.\n"
        "# Passwords are references to the role's vault file, never values.\n"
    )
    return head + str(yaml.safe_dump(mapping.to_data(), sort_keys=False, default_flow_style=False, allow_unicode=True))


def save(mapping: DrMapping, path: str | Path) -> None:
    Path(path).write_text(dumps(mapping), encoding="utf-8")


def build(
    storages: Iterable[Mapping[str, Any]],
    *,
    sites: Mapping[str, Any],
    names: Mapping[str, Iterable[tuple[str, str]]] | None = None,
    networks: Iterable[Mapping[str, Any]] | None = None,
    luns: Iterable[Mapping[str, Any]] | None = None,
) -> DrMapping:
    """A mapping from ftbridge's view, checked like a file (so what it writes, it reads), and
    written so ``ovirt-dr validate`` passes it too: no duplicate, every section present."""
    data: dict[str, Any] = dict(sites)
    data["dr_import_storages"] = [dict(s) for s in storages]
    for key in NAME_LISTS:
        pairs = list((names or {}).get(key, ()))
        data[key] = [{"primary_name": p, "secondary_name": s} for p, s in pairs]
    data["dr_network_mappings"] = [dict(x) for x in networks or ()]
    data["dr_lun_mappings"] = [dict(x) for x in luns or ()]
    mapping = parse(data, source="ftbridge DR mapping")
    if mapping.warnings:
        raise ConfigError("ftbridge DR mapping: " + "; ".join(mapping.warnings))
    return mapping
