"""``ftbridge drivers list|show``: what is installed and what each driver can do."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ftbridge.cli.common import Output, OutputOpt, emit_json, table
from ftbridge.cli.render import text_col

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

    from ftbridge.drivers.base import MechanismRules

app = typer.Typer(help="Installed drivers and their capabilities.", no_args_is_help=True)


@app.command("list")
def list_(output: OutputOpt = Output.table) -> None:
    """Installed drivers, from package metadata (nothing is imported)."""
    from ftbridge.drivers.registry import list_drivers

    entries = list_drivers()
    if output is Output.json:
        emit_json(
            [
                {"name": e.name, "distribution": e.distribution, "version": e.version, "target": e.target}
                for e in entries
            ]
        )
        return
    table(
        "drivers",
        ["name", "distribution", "version", "class"],
        [[e.name, e.distribution, e.version, e.target] for e in entries],
    )


@app.command()
def show(
    name: Annotated[str, typer.Argument(metavar="NAME", help="driver name, as in 'driver = ...'")],
    output: OutputOpt = Output.table,
) -> None:
    """A driver's capabilities, its secondary mechanisms with their limits, and its config keys with
    the values each allows (imports that driver only)."""
    from ftbridge.drivers.base import Capability
    from ftbridge.drivers.registry import declared_versions, load_driver, negotiate

    cls = load_driver(name)
    lo, hi = declared_versions(cls)
    speaks = negotiate(cls, warn=False)  # load_driver warned already
    keys = [
        {
            "key": k,
            "required": f.is_required(),
            "default": None if f.is_required() else _default(f.default),
            "allowed": allowed(f),
            "help": f.description or "",
        }
        for k, f in cls.Config.model_fields.items()
        if k != "driver"
    ]
    mechs = [
        {"name": m.name, "description": m.description, "limits": limits(m), "rules": _rules(m)}
        for m in cls.mechanisms.values()
    ]
    data = {
        "name": cls.name,
        "api_versions": [lo, hi],
        "api_version": speaks,  # the contract version this core and the driver share
        "supported": cls.supported,
        "capabilities": sorted(c.value for c in cls.capabilities),
        "missing": sorted(c.value for c in Capability if c not in cls.capabilities),
        "mechanisms": mechs,
        "config": keys,
        "doc": (cls.__doc__ or "").strip(),
    }
    if output is Output.json:
        emit_json(data)
        return
    table(
        f"driver {cls.name} (driver API {lo}..{hi}; speaking {speaks})",
        ["capability", "supported"],
        [[c.value, "yes" if c in cls.capabilities else "-"] for c in Capability],
    )
    if mechs:
        table(
            "secondary mechanisms",
            ["name", text_col("description", drop=1), text_col("limits")],
            [[m["name"], m["description"], "; ".join(m["limits"]) or "-"] for m in mechs],
        )
    table(
        "config keys ([endpoints.NAME], plus driver = NAME)",
        ["key", "required", text_col("default", drop=2), text_col("allowed"), text_col("help", drop=1)],
        [
            [
                k["key"],
                "yes" if k["required"] else "",
                _show(k["default"], str(k["allowed"])),
                k["allowed"],
                k["help"],
            ]
            for k in keys
        ],
    )


def allowed(field: FieldInfo) -> str:
    """What a config key accepts, in the config file's words (never a Python type)."""
    from ftbridge.configtypes import parse_duration
    from ftbridge.secrets import Secret

    ann = field.annotation
    optional = False
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    if typing.get_origin(ann) in (typing.Union, types.UnionType) and len(args) < len(typing.get_args(ann)):
        optional = True
        ann = args[0] if len(args) == 1 else ann
    meta = list(field.metadata)
    if typing.get_origin(ann) is typing.Annotated:
        meta += list(getattr(ann, "__metadata__", ()))
        ann = typing.get_args(ann)[0]
    if any(getattr(m, "func", None) is parse_duration for m in meta):
        text = "a duration: seconds, or 90s, 15m, 1h, 1d"
    elif ann is Secret:
        text = 'a secret: { env = "VAR" } or { file = "PATH" }'
    elif ann is Path:
        text = "a file path (relative to the config file)"
    elif ann is bool:
        text = "true or false"
    elif ann in (int, float):
        text = ("a whole number" if ann is int else "a number") + _bounds(meta)
    elif typing.get_origin(ann) is typing.Literal:
        text = "one of " + ", ".join(str(v) for v in typing.get_args(ann))
    elif isinstance(ann, type) and issubclass(ann, enum.Enum):
        text = "one of " + ", ".join(str(m.value) for m in ann)
    elif typing.get_origin(ann) in (list, tuple, frozenset, set):
        inner = typing.get_args(ann)
        text = "a list" + (f" of {_noun(inner[0])}" if inner else "")
    elif ann is str:
        text = "text"
    else:
        text = _noun(ann)
    return text + (" (or leave it out)" if optional and not field.is_required() else "")


def _bounds(meta: list[object]) -> str:
    parts = []
    for m in meta:
        for attr, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            v = getattr(m, attr, None)
            if v is not None:
                parts.append(f"{word} {v}")
    return (" " + " and ".join(parts)) if parts else ""


def _noun(ann: object) -> str:
    words: dict[object, str] = {str: "text", int: "whole numbers", float: "numbers", bool: "true/false"}
    return words.get(ann, "values")


def limits(m: MechanismRules) -> list[str]:
    """A mechanism's placement rules and limits, as sentences (the planner obeys the same data)."""
    out = []
    if m.primary_kinds:
        out.append(f"primary on {', '.join(sorted(m.primary_kinds))}")
    if m.secondary_kinds:
        out.append(f"copy on {', '.join(sorted(m.secondary_kinds))}")
    if m.needs_other_host:
        out.append("copy on another host")
    if m.host_must_mount:
        out.append("the copy's host mounts its datastores")
    if m.same_hosts:
        out.append("copy where the primary's hosts reach (same cluster / data center)")
    if m.needs_metadata_datastore:
        out.append("needs a shared metadata datastore")
    for value, what in (
        (m.max_vms_per_host, "VMs per host"),
        (m.max_vcpus_per_host, "vCPUs per host"),
        (m.max_vcpus_per_vm, "vCPUs per VM"),
        (m.max_disks, "disks per VM"),
        (m.max_secondaries_per_vm, "copies per VM"),
    ):
        if value is not None:
            out.append(f"at most {value} {what}")
    if m.blocks_primary_move:
        out.append("primary storage cannot move while it exists")
    if m.refreshable:
        out.append("a lagging copy is replaced by a fresh one")
    return out


def _rules(m: MechanismRules) -> dict[str, object]:
    data = dataclasses.asdict(m)
    data.pop("name")
    data.pop("description")
    return {k: sorted(v) if isinstance(v, (set, frozenset)) else v for k, v in data.items()}


def _default(value: object) -> object:
    """A default as the config file would spell it (JSON-ready)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (Path, frozenset, set, tuple)):
        return (
            sorted(value)
            if isinstance(value, (frozenset, set))
            else (list(value) if isinstance(value, tuple) else str(value))
        )
    return value


def _show(value: object, allowed: str) -> str:
    if value is None:
        return "-"
    if allowed.startswith("a duration") and isinstance(value, (int, float)):
        return f"{value:g}s"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@app.command()
def matrix(output: OutputOpt = Output.table) -> None:
    """The capability matrix of every installed driver (Markdown: README.md embeds it; or JSON)."""
    if output is Output.json:
        emit_json(capability_data())
        return
    typer.echo(capability_matrix())


def _supported_classes() -> list[Any]:
    from ftbridge.drivers.registry import list_drivers, load_driver
    from ftbridge.errors import DriverError

    classes = []
    for entry in list_drivers():
        try:
            cls = load_driver(entry.name)
        except DriverError:
            continue  # `drivers show NAME` says why; the matrix lists what works
        if cls.supported:
            classes.append(cls)
    return classes


def capability_data() -> dict[str, Any]:
    """The matrix as data: per driver, each capability and its mechanisms."""
    from ftbridge.drivers.base import Capability

    return {
        "capabilities": [c.value for c in Capability],
        "drivers": [
            {
                "name": c.name,
                "capabilities": {cap.value: cap in c.capabilities for cap in Capability},
                "mechanisms": list(c.mechanisms),
            }
            for c in _supported_classes()
        ],
    }


def capability_matrix() -> str:
    """One source for the docs, `drivers show` and the kit: each class's declarations."""
    from ftbridge.drivers.base import Capability

    classes = _supported_classes()
    head = "| capability | " + " | ".join(c.name for c in classes) + " |"
    rule = "|---|" + "---|" * len(classes)
    rows = [
        f"| {cap.value} | " + " | ".join("yes" if cap in c.capabilities else "-" for c in classes) + " |"
        for cap in Capability
    ]
    mechs = "| secondary mechanisms | " + " | ".join(", ".join(c.mechanisms) or "-" for c in classes) + " |"
    return "\n".join([head, rule, *rows, mechs])
