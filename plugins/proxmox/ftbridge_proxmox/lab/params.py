"""Parameter rules of every endpoint the lab serves, written by hand for the lab.

Each endpoint has a small table: parameter name, type, whether it is required, and the checks
PVE applies (range, length, enumeration, named format). PVE answers a request that breaks
them with ``400 Parameter verification failed.`` and an ``errors`` object naming each bad
parameter; so does the lab. Booleans are ``0``/``1`` only. Where real PVE accepts more
parameters than the lab implements (a VM config has a hundred keys), the table is marked
``partial`` and an unimplemented parameter is answered with 501, never silently accepted.

These tables are the lab's own description, kept short on purpose. ``tests/test_fidelity.py``
compares them and every recorded request and response with the official API schema at test
time; the schema itself is not part of this project.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class P:
    """One parameter rule."""

    type: str  # string | integer | number | boolean
    required: bool = False
    fmt: str | None = None
    enum: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    pattern: str | None = None


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str  # template: /nodes/{node}/qemu/{vmid}/config
    params: Mapping[str, P] = field(default_factory=dict)
    partial: bool = False


def req(type_: str, **kw: object) -> P:
    return P(type_, True, **kw)  # type: ignore[arg-type]


def opt(type_: str, **kw: object) -> P:
    return P(type_, False, **kw)  # type: ignore[arg-type]


# building blocks --------------------------------------------------------------------------
NODE = req("string", fmt="pve-node")
VMID = req("integer", fmt="pve-vmid", minimum=100, maximum=999_999_999)
VMID_OPT = opt("integer", fmt="pve-vmid", minimum=100, maximum=999_999_999)
BOOL = opt("boolean")
STORAGE_OPT = opt("string", fmt="pve-storage-id")
NODE_OPT = opt("string", fmt="pve-node")
COMMENT = opt("string", max_length=4096)
DIGEST40 = opt("string", max_length=40)
JOB_ID = req("string", fmt="pve-replication-job-id")
SID = req("string", fmt="pve-ha-resource-or-vm-id")
HA_STATES = ("started", "stopped", "enabled", "disabled", "ignored")
MIGRATION_TYPES = ("secure", "insecure")
DISK_FORMATS = ("raw", "qcow2", "vmdk")

QEMU_DISK_SLOTS = tuple(
    [f"ide{i}" for i in range(4)]
    + [f"scsi{i}" for i in range(31)]
    + [f"virtio{i}" for i in range(16)]
    + [f"sata{i}" for i in range(6)]
    + ["efidisk0", "tpmstate0"]
    + [f"unused{i}" for i in range(256)]
)
LXC_VOLUMES = tuple(["rootfs"] + [f"mp{i}" for i in range(256)] + [f"unused{i}" for i in range(256)])


def endpoints(major: int) -> list[Endpoint]:
    """The lab's API for a PVE major version (8 or 9)."""
    v9 = major >= 9
    storage_types = [
        "btrfs",
        "cephfs",
        "cifs",
        "dir",
        "esxi",
        "iscsi",
        "iscsidirect",
        "lvm",
        "lvmthin",
        "nfs",
        "pbs",
        "rbd",
        "zfs",
        "zfspool",
    ]
    if not v9:
        storage_types.insert(5, "glusterfs")
    qm = "/nodes/{node}/qemu/{vmid}"
    ct = "/nodes/{node}/lxc/{vmid}"
    guest = {"node": NODE, "vmid": VMID}
    eps = [
        Endpoint(
            "POST",
            "/access/ticket",
            {
                "username": req("string", max_length=64),
                "password": req("string"),
                "otp": opt("string"),
                "realm": opt("string", fmt="pve-realm", max_length=32),
                "path": opt("string", max_length=64),
                "privs": opt("string", fmt="pve-priv-list", max_length=64),
                "tfa-challenge": opt("string"),
                "new-format": BOOL,
            },
        ),
        Endpoint("GET", "/version"),
        Endpoint("GET", "/nodes"),
        Endpoint("GET", "/cluster/status"),
        Endpoint("GET", "/cluster/resources", {"type": opt("string", enum=("vm", "storage", "node", "sdn"))}),
        Endpoint("GET", "/cluster/nextid", {"vmid": VMID_OPT}),
        Endpoint("GET", "/storage", {"type": opt("string", enum=tuple(storage_types))}),
        Endpoint(
            "GET",
            "/nodes/{node}/storage",
            {
                "node": NODE,
                "content": opt("string", fmt="pve-storage-content-list"),
                "enabled": BOOL,
                "format": BOOL,
                "storage": STORAGE_OPT,
                "target": NODE_OPT,
            },
        ),
        # QEMU guests
        Endpoint(
            "GET",
            f"{qm}/config",
            {**guest, "current": BOOL, "snapshot": opt("string", fmt="pve-configid", max_length=40)},
        ),
        Endpoint(
            "PUT",
            f"{qm}/config",
            {
                **guest,
                "name": opt("string", fmt="dns-name"),
                "description": opt("string", max_length=8192),
                "tags": opt("string", fmt="pve-tag-list"),
                "onboot": BOOL,
                "protection": BOOL,
                "delete": opt("string", fmt="pve-configid-list"),
                "digest": DIGEST40,
                "skiplock": BOOL,
                "cores": opt("integer", minimum=1),
                "sockets": opt("integer", minimum=1),
                "net[n]": opt("string", fmt="qm-net"),
                "force": BOOL,
                "revert": opt("string", fmt="pve-configid-list"),
            },
            partial=True,
        ),
        Endpoint("GET", f"{qm}/status/current", dict(guest)),
        Endpoint(
            "POST",
            f"{qm}/status/start",
            {
                **guest,
                "skiplock": BOOL,
                "timeout": opt("integer", minimum=0),
                "machine": opt("string"),
                "migratedfrom": NODE_OPT,
                "migration_type": opt("string", enum=MIGRATION_TYPES),
                "migration_network": opt("string", fmt="CIDR"),
                "stateuri": opt("string", max_length=128),
                "targetstorage": opt("string", fmt="storage-pair-list"),
                "force-cpu": opt("string"),
                **(
                    {"with-conntrack-state": BOOL, "nets-host-mtu": opt("string", pattern=r"net\d+=\d+(,net\d+=\d+)*")}
                    if v9
                    else {}
                ),
            },
        ),
        Endpoint(
            "POST",
            f"{qm}/status/stop",
            {
                **guest,
                "skiplock": BOOL,
                "keepActive": BOOL,
                "migratedfrom": NODE_OPT,
                "overrule-shutdown": BOOL,
                "timeout": opt("integer", minimum=0),
            },
        ),
        Endpoint(
            "POST",
            f"{qm}/move_disk",
            {
                **guest,
                "disk": req("string", enum=QEMU_DISK_SLOTS),
                "storage": STORAGE_OPT,
                "delete": BOOL,
                "bwlimit": opt("integer", minimum=0),
                "digest": DIGEST40,
                "format": opt("string", enum=DISK_FORMATS),
                "target-digest": DIGEST40,
                "target-disk": opt("string", enum=QEMU_DISK_SLOTS),
                "target-vmid": VMID_OPT,
            },
        ),
        Endpoint(
            "POST",
            f"{qm}/clone",
            {
                **guest,
                "newid": VMID,
                "name": opt("string", fmt="dns-name"),
                "description": opt("string"),
                "full": BOOL,
                "storage": STORAGE_OPT,
                "target": NODE_OPT,
                "format": opt("string", enum=DISK_FORMATS),
                "pool": opt("string", fmt="pve-poolid"),
                "snapname": opt("string", fmt="pve-configid", max_length=40),
                "bwlimit": opt("integer", minimum=0),
            },
        ),
        Endpoint(
            "POST",
            f"{qm}/migrate",
            {
                **guest,
                "target": req("string", fmt="pve-node"),
                "online": BOOL,
                "force": BOOL,
                "with-local-disks": BOOL,
                "bwlimit": opt("integer", minimum=0),
                "migration_type": opt("string", enum=MIGRATION_TYPES),
                "migration_network": opt("string", fmt="CIDR"),
                "targetstorage": opt("string", fmt="storage-pair-list"),
                **({"with-conntrack-state": BOOL} if v9 else {}),
            },
        ),
        Endpoint("DELETE", qm, {**guest, "purge": BOOL, "destroy-unreferenced-disks": BOOL, "skiplock": BOOL}),
        # LXC guests
        Endpoint(
            "GET",
            f"{ct}/config",
            {**guest, "current": BOOL, "snapshot": opt("string", fmt="pve-configid", max_length=40)},
        ),
        Endpoint("GET", f"{ct}/status/current", dict(guest)),
        Endpoint("POST", f"{ct}/status/start", {**guest, "skiplock": BOOL, "debug": BOOL}),
        Endpoint("POST", f"{ct}/status/stop", {**guest, "skiplock": BOOL, "overrule-shutdown": BOOL}),
        Endpoint(
            "POST",
            f"{ct}/move_volume",
            {
                **guest,
                "volume": req("string", enum=LXC_VOLUMES),
                "storage": STORAGE_OPT,
                "delete": BOOL,
                "bwlimit": opt("number", minimum=0),
                "digest": DIGEST40,
                "target-digest": DIGEST40,
                "target-vmid": VMID_OPT,
                "target-volume": opt("string", enum=LXC_VOLUMES),
            },
        ),
        Endpoint(
            "POST",
            f"{ct}/migrate",
            {
                **guest,
                "target": req("string", fmt="pve-node"),
                "online": BOOL,
                "restart": BOOL,
                "timeout": opt("integer"),
                "bwlimit": opt("number", minimum=0),
                "target-storage": opt("string", fmt="storage-pair-list"),
            },
        ),
        # tasks
        Endpoint(
            "GET",
            "/nodes/{node}/tasks",
            {
                "node": NODE,
                "errors": BOOL,
                "limit": opt("integer", minimum=0),
                "start": opt("integer", minimum=0),
                "source": opt("string", enum=("archive", "active", "all")),
                "typefilter": opt("string"),
                "userfilter": opt("string"),
                "vmid": VMID_OPT,
                "since": opt("integer"),
                "until": opt("integer"),
                "statusfilter": opt("string", fmt="pve-task-status-type-list"),
            },
        ),
        Endpoint("GET", "/nodes/{node}/tasks/{upid}/status", {"node": NODE, "upid": req("string")}),
        # storage replication (pvesr)
        Endpoint("GET", "/cluster/replication"),
        Endpoint(
            "POST",
            "/cluster/replication",
            {
                "id": JOB_ID,
                "target": req("string", fmt="pve-node"),
                "type": req("string", enum=("local",)),
                "comment": COMMENT,
                "disable": BOOL,
                "rate": opt("number", minimum=1),
                "remove_job": opt("string", enum=("local", "full")),
                "schedule": opt("string", fmt="pve-calendar-event", max_length=128),
                "source": NODE_OPT,
            },
        ),
        Endpoint("GET", "/cluster/replication/{id}", {"id": JOB_ID}),
        Endpoint("DELETE", "/cluster/replication/{id}", {"id": JOB_ID, "force": BOOL, "keep": BOOL}),
        Endpoint("GET", "/nodes/{node}/replication", {"node": NODE, "guest": VMID_OPT}),
        Endpoint("GET", "/nodes/{node}/replication/{id}/status", {"node": NODE, "id": JOB_ID}),
        Endpoint("POST", "/nodes/{node}/replication/{id}/schedule_now", {"node": NODE, "id": JOB_ID}),
        # HA
        Endpoint("GET", "/cluster/ha/resources", {"type": opt("string", enum=("ct", "vm"))}),
        Endpoint(
            "POST",
            "/cluster/ha/resources",
            {
                "sid": SID,
                "comment": COMMENT,
                "group": opt("string", fmt="pve-configid"),
                "max_relocate": opt("integer", minimum=0),
                "max_restart": opt("integer", minimum=0),
                "state": opt("string", enum=HA_STATES),
                "type": opt("string", enum=("ct", "vm")),
                **({"failback": BOOL} if v9 else {}),
            },
        ),
        Endpoint("GET", "/cluster/ha/resources/{sid}", {"sid": SID}),
        Endpoint(
            "PUT",
            "/cluster/ha/resources/{sid}",
            {
                "sid": SID,
                "comment": COMMENT,
                "delete": opt("string", fmt="pve-configid-list", max_length=4096),
                "digest": opt("string", max_length=64),
                "group": opt("string", fmt="pve-configid"),
                "max_relocate": opt("integer", minimum=0),
                "max_restart": opt("integer", minimum=0),
                "state": opt("string", enum=HA_STATES),
                **({"failback": BOOL} if v9 else {}),
            },
        ),
        Endpoint("DELETE", "/cluster/ha/resources/{sid}", {"sid": SID, **({"purge": BOOL} if v9 else {})}),
        Endpoint("GET", "/cluster/ha/groups"),
        Endpoint(
            "POST",
            "/cluster/ha/groups",
            {
                "group": req("string", fmt="pve-configid"),
                "nodes": req("string", fmt="pve-ha-node-list"),
                "comment": COMMENT,
                "nofailback": BOOL,
                "restricted": BOOL,
                "type": opt("string", enum=("group",)),
            },
        ),
        Endpoint("DELETE", "/cluster/ha/groups/{group}", {"group": req("string", fmt="pve-configid")}),
        Endpoint("GET", "/cluster/ha/status/current"),
        Endpoint("GET", "/cluster/ha/status/manager_status"),
        # networks
        Endpoint(
            "GET",
            "/nodes/{node}/network",
            {
                "node": NODE,
                "type": opt(
                    "string",
                    enum=tuple(
                        ["bridge", "bond", "eth", "alias", "vlan"]
                        + (["fabric"] if v9 else [])
                        + ["OVSBridge", "OVSBond", "OVSPort", "OVSIntPort", "vnet", "any_bridge", "any_local_bridge"]
                        + (["include_sdn"] if v9 else [])
                    ),
                ),
            },
        ),
        Endpoint("GET", "/cluster/sdn/vnets", {"pending": BOOL, "running": BOOL}),
    ]
    if v9:
        eps += [
            Endpoint(
                "GET",
                "/cluster/ha/rules",
                {"resource": opt("string"), "type": opt("string", enum=("node-affinity", "resource-affinity"))},
            ),
            Endpoint(
                "POST",
                "/cluster/ha/rules",
                {
                    "rule": req("string", fmt="pve-configid"),
                    "type": req("string", enum=("node-affinity", "resource-affinity")),
                    "resources": req("string", fmt="pve-ha-resource-id-list"),
                    "nodes": opt("string", fmt="pve-ha-node-list"),
                    "strict": BOOL,
                    "affinity": opt("string", enum=("positive", "negative")),
                    "comment": COMMENT,
                    "disable": BOOL,
                },
            ),
            Endpoint("DELETE", "/cluster/ha/rules/{rule}", {"rule": req("string", fmt="pve-configid")}),
        ]
    return eps


# named formats ------------------------------------------------------------------------------
_NODE_RE = r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?"
_SIMPLE: dict[str, str] = {
    "pve-node": _NODE_RE,
    "pve-vmid": r"[1-9][0-9]{2,8}",
    "pve-storage-id": r"[a-z][a-z0-9\-_.]*[a-z0-9]",
    "pve-configid": r"[a-zA-Z][a-zA-Z0-9_\-]+",
    "pve-poolid": r"[A-Za-z0-9_\-/]+",
    "pve-realm": r"[A-Za-z][A-Za-z0-9.\-_]+",
    "pve-replication-job-id": r"[1-9][0-9]{2,8}-\d{1,9}",
    "pve-ha-resource-or-vm-id": r"(?:(?:vm|ct):)?[1-9][0-9]{2,8}",
    "dns-name": r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?",
    "CIDR": r"[0-9a-fA-F:.]+/\d{1,3}",
    "pve-calendar-event": r"[\w\s\-*/:,.~\[\]]+",
}
_LISTS: dict[str, tuple[str, str]] = {  # name: (item regex, separators)
    "pve-tag-list": (r"[a-zA-Z0-9_][a-zA-Z0-9_\-+.]*", r"[;, ]"),
    "pve-configid-list": (r"[a-zA-Z][a-zA-Z0-9_\-]*", r"[,; ]"),
    "pve-storage-content-list": (r"images|rootdir|vztmpl|iso|backup|snippets|import", r","),
    "pve-task-status-type-list": (r"ok|error|warning|unknown", r","),
    "pve-ha-node-list": (rf"{_NODE_RE}(?::\d+)?", r"[,; ]"),
    "pve-ha-resource-id-list": (r"(?:(?:vm|ct):)?[1-9][0-9]{2,8}", r","),
    "storage-pair-list": (r"[a-z][a-z0-9\-_.]*[a-z0-9](?::[a-z][a-z0-9\-_.]*[a-z0-9])?|1", r"[,; ]"),
    "pve-priv-list": (r"[A-Za-z.]+", r"[,; ]"),
}
_NET_MODELS = (
    "e1000",
    "e1000-82540em",
    "e1000-82544gc",
    "e1000-82545em",
    "e1000e",
    "i82551",
    "i82557b",
    "i82559er",
    "ne2k_isa",
    "ne2k_pci",
    "pcnet",
    "rtl8139",
    "virtio",
    "vmxnet3",
)
_NET_KEYS = {
    "bridge": "string",
    "firewall": "boolean",
    "link_down": "boolean",
    "macaddr": "string",
    "model": "string",
    "mtu": "integer",
    "queues": "integer",
    "rate": "number",
    "tag": "integer",
    "trunks": "string",
}


def _check_net(value: str) -> str | None:
    """A QEMU ``netN`` property string: ``model[=mac],bridge=...,link_down=0|1,...``."""
    for i, part in enumerate(value.split(",")):
        key, sep, val = part.partition("=")
        if i == 0 and key in _NET_MODELS:
            continue
        if not sep:
            return f"invalid format - missing value for '{key}'"
        kind = _NET_KEYS.get(key)
        if kind is None:
            return f"invalid format - unexpected property '{key}'"
        if kind == "boolean" and val not in ("0", "1"):
            return f"invalid format - {key}: type check ('boolean') failed - got '{val}'"
        if kind == "integer" and not re.fullmatch(r"-?\d+", val):
            return f"invalid format - {key}: type check ('integer') failed - got '{val}'"
    return None


_CUSTOM: dict[str, Callable[[str], str | None]] = {"qm-net": _check_net}


def check_format(fmt: str, value: str) -> str | None:
    """None when ``value`` has format ``fmt``; else PVE-style error text."""
    if fmt in _CUSTOM:
        return _CUSTOM[fmt](value)
    if fmt in _SIMPLE:
        if re.fullmatch(_SIMPLE[fmt], value):
            return None
        return f"value does not match the format '{fmt}'"
    if fmt in _LISTS:
        item, sep = _LISTS[fmt]
        parts = [p for p in re.split(sep, value) if p]
        bad = [p for p in parts if not re.fullmatch(item, p)]
        if not parts or bad:
            return f"value '{bad[0] if bad else value}' does not match the format '{fmt}'"
        return None
    return None  # unknown format names are not checked


def lookup(params: Mapping[str, P], name: str) -> P | None:
    """The rule for ``name``, including indexed families (``net0`` matches ``net[n]``)."""
    if name in params:
        return params[name]
    m = re.fullmatch(r"([a-z_]+)\d+", name)
    return params.get(f"{m.group(1)}[n]") if m else None


def verify(params: Mapping[str, P], given: Mapping[str, str], *, partial: bool) -> tuple[dict[str, str], list[str]]:
    """(errors by parameter, parameters the lab does not implement) for one request."""
    errors: dict[str, str] = {}
    unimplemented: list[str] = []
    for name, rule in params.items():
        if rule.required and name not in given and "[n]" not in name:
            errors[name] = "property is missing and it is not optional"
    for name, value in given.items():
        found = lookup(params, name)
        if found is None:
            if partial:
                unimplemented.append(name)
            else:
                errors[name] = "property is not defined in schema and the schema does not allow additional properties"
            continue
        problem = _check(found, value)
        if problem:
            errors[name] = problem
    return errors, unimplemented


def _check(rule: P, value: str) -> str | None:
    if rule.type == "boolean":
        return None if value in ("0", "1") else f"type check ('boolean') failed - got '{value}'"
    if rule.type == "integer":
        if not re.fullmatch(r"-?\d+", value):
            return f"type check ('integer') failed - got '{value}'"
        number: float = int(value)
    elif rule.type == "number":
        if not re.fullmatch(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?", value):
            return f"type check ('number') failed - got '{value}'"
        number = float(value)
    else:
        number = 0.0
        if rule.max_length is not None and len(value) > rule.max_length:
            return f"value may only be {rule.max_length} characters long"
        if rule.enum is not None and value not in rule.enum:
            shown = ", ".join(rule.enum[:8]) + (", ..." if len(rule.enum) > 8 else "")
            return f"value '{value}' does not have a value in the enumeration '{shown}'"
        if rule.pattern is not None and not re.fullmatch(rule.pattern, value):
            return "value does not match the regex pattern"
        if rule.fmt is not None:
            return check_format(rule.fmt, value)
        return None
    if rule.minimum is not None and number < rule.minimum:
        return f"value must have a minimum value of {rule.minimum:g}"
    if rule.maximum is not None and number > rule.maximum:
        return f"value must have a maximum value of {rule.maximum:g}"
    return None
