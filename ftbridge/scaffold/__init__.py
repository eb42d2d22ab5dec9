"""Scaffolding: ``ftbridge driver new NAME`` writes a driver distribution from these templates.

The templates under ``driver/`` are package data (``*.tmpl``, with ``__NAME__``-style
placeholders in names and text). What they make installs, registers its entry point and
passes the conformance kit against an in-memory fake platform with no edit; the project's own
tests scaffold one, install it and run its kit, so the templates cannot rot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from ftbridge import __version__

#: An entry-point name: lower case, digits, single hyphens; it becomes a package and a class.
NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
SUFFIX = ".tmpl"


@dataclass(frozen=True)
class Names:
    """Every spelling of a driver's name the templates need."""

    name: str  # entry point and Driver.name: "my-cloud"
    package: str  # ftbridge_my_cloud
    cls: str  # MyCloud (MyCloudDriver, MyCloudConfig)
    dist: str  # ftbridge-my-cloud
    title: str  # My Cloud
    env: str  # MY_CLOUD (environment variables of its tests)

    @classmethod
    def of(cls, name: str) -> Names:
        parts = name.split("-")
        return cls(
            name=name,
            package="ftbridge_" + "_".join(parts),
            cls="".join(p.capitalize() for p in parts),
            dist=f"ftbridge-{name}",
            title=" ".join(p.capitalize() for p in parts),
            env="_".join(parts).upper(),
        )


def check_name(name: str, installed: frozenset[str] = frozenset()) -> str | None:
    """Why ``name`` cannot name a new driver, or None when it can."""
    if not NAME_RE.fullmatch(name) or len(name) > 40:
        return (
            f"driver name {name!r}: expected lower-case letters and digits, words joined by single hyphens, "
            f"starting with a letter (e.g. 'acme' or 'acme-cloud')"
        )
    if name in installed:
        return f"driver name {name!r} is taken by an installed driver: pick another"
    return None


def core_range() -> str:
    """The ftbridge versions a new driver may depend on: this one up to the next major."""
    major, minor = (int(x) for x in __version__.split(".")[:2])
    return f">={major}.{minor},<{major + 1}"


def render_driver(name: str, dest: Path) -> list[Path]:
    """Write the driver distribution for ``name`` into ``dest`` (new or empty); the files written.

    Raises ValueError (with a sentence for people) when ``dest`` holds anything already:
    nothing is overwritten.
    """
    from ftbridge.drivers.base import API_VERSION

    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ValueError(f"{dest} exists and is not an empty folder: nothing written")
    n = Names.of(name)
    subst = {
        "__NAME__": n.name,
        "__PACKAGE__": n.package,
        "__CLASS__": n.cls,
        "__DIST__": n.dist,
        "__TITLE__": n.title,
        "__ENV__": n.env,
        "__API__": str(API_VERSION),
        "__CORE_RANGE__": core_range(),
    }
    pattern = re.compile("|".join(re.escape(k) for k in subst))

    def fill(text: str) -> str:
        return pattern.sub(lambda m: subst[m.group(0)], text)

    written: list[Path] = []
    for rel, src in _templates(resources.files(__package__) / "driver", ()):
        target = dest.joinpath(*(fill(p) for p in rel))
        target = target.with_name(target.name.removesuffix(SUFFIX))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(fill(src.read_text(encoding="utf-8")), encoding="utf-8")
        written.append(target)
    return sorted(written)


def _templates(folder: Traversable, rel: tuple[str, ...]) -> list[tuple[tuple[str, ...], Traversable]]:
    out: list[tuple[tuple[str, ...], Traversable]] = []
    for item in folder.iterdir():
        if item.is_dir():
            if item.name != "__pycache__":
                out += _templates(item, (*rel, item.name))
        elif item.name.endswith(SUFFIX):
            out.append(((*rel, item.name), item))
    return out
