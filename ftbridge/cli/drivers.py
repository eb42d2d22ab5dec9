"""``ftbridge drivers list|show``: what is installed and what each driver can do."""

from __future__ import annotations

from typing import Annotated

import typer

from ftbridge.cli.common import Output, OutputOpt, emit_json, table

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
    name: Annotated[str, typer.Argument(help="driver name, as in 'driver = ...'")], output: OutputOpt = Output.table
) -> None:
    """A driver's capabilities, secondary mechanisms and config keys (imports that driver only)."""
    from ftbridge.drivers.base import Capability
    from ftbridge.drivers.registry import declared_versions, load_driver, negotiate

    cls = load_driver(name)
    lo, hi = declared_versions(cls)
    speaks = negotiate(cls, warn=False)  # load_driver warned already
    keys = [
        {
            "key": k,
            "type": _type(f.annotation),
            "required": f.is_required(),
            "default": None if f.is_required() else _default(f.default),
            "help": f.description or "",
        }
        for k, f in cls.Config.model_fields.items()
    ]
    mechs = [{"name": m.name, "description": m.description} for m in cls.mechanisms.values()]
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
        table("secondary mechanisms", ["name", "description"], [[m["name"], m["description"]] for m in mechs])
    table(
        "config keys ([endpoints.NAME])",
        ["key", "type", "required", "default", "help"],
        [[k["key"], k["type"], "yes" if k["required"] else "", k["default"], k["help"]] for k in keys],
    )


def _type(ann: object) -> str:
    text = getattr(ann, "__name__", None) or str(ann)
    return text.replace("typing.", "").replace("ftbridge.secrets.", "").replace("pathlib.", "")


def _default(value: object) -> object:
    return None if value is None else value


@app.command()
def matrix() -> None:
    """The capability matrix of every installed driver, as Markdown (README.md embeds it)."""
    typer.echo(capability_matrix())


def capability_matrix() -> str:
    """One source for the docs, `drivers show` and the kit: each class's declarations."""
    from ftbridge.drivers.base import Capability, Driver
    from ftbridge.drivers.registry import list_drivers, load_driver
    from ftbridge.errors import DriverError

    classes: list[type[Driver]] = []
    for entry in list_drivers():
        try:
            cls = load_driver(entry.name)
        except DriverError:
            continue  # `drivers show NAME` says why; the matrix lists what works
        if cls.supported:
            classes.append(cls)
    head = "| capability | " + " | ".join(c.name for c in classes) + " |"
    rule = "|---|" + "---|" * len(classes)
    rows = [
        f"| {cap.value} | " + " | ".join("yes" if cap in c.capabilities else "-" for c in classes) + " |"
        for cap in Capability
    ]
    mechs = "| secondary mechanisms | " + " | ".join(", ".join(c.mechanisms) or "-" for c in classes) + " |"
    return "\n".join([head, rule, *rows, mechs])
