"""Reading the two sides of a migration: an endpoint, a saved inventory, or an RVTools export.

``--source`` is an endpoint of the config (read live through its driver), a saved inventory
(``ftbridge inventory -o json``) or an RVTools ``.xlsx`` export, so a migration can be planned
from the file a customer sends. The target is an endpoint (or, offline, a saved inventory).
Either way the operator's failure-domain labels are applied, and VMs are narrowed by name or
id globs and tags.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ftbridge.config import Config
from ftbridge.errors import ConfigError
from ftbridge.inventory import Inventory
from ftbridge.labels import apply_labels
from ftbridge.model import VM


@dataclass(frozen=True)
class Side:
    inventory: Inventory
    endpoint: str
    what: str  # for messages: "endpoint vc-ams", "inventory inv.json", "RVTools export x.xlsx"


def read_side(
    ref: str,
    config: Config,
    collect: Callable[[str], Inventory],
    *,
    endpoint: str | None = None,
) -> Side:
    """``ref`` as an endpoint name, a saved inventory or an RVTools export."""
    path = Path(ref)
    if ref in config.endpoints and not path.is_file():
        return Side(collect(ref), ref, f"endpoint {ref}")
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        from ftbridge.migrate.rvtools import read_rvtools

        inv = read_rvtools(path, endpoint=endpoint)
        return Side(apply_labels(inv, config.domains), inv.endpoints[0].name, f"RVTools export {path}")
    if path.is_file():
        inv = Inventory.load(str(path))
        names = [e.name for e in inv.endpoints]
        if endpoint is None:
            if len(names) != 1:
                raise ConfigError(f"{path}: holds endpoints {', '.join(names) or 'none'}: name one with --*-endpoint")
            endpoint = names[0]
        elif endpoint not in names:
            raise ConfigError(f"{path}: no endpoint {endpoint!r} in it (has: {', '.join(names) or 'none'})")
        return Side(apply_labels(inv, config.domains), endpoint, f"inventory {path}")
    known = ", ".join(config.endpoints) or "none"
    raise ConfigError(f"{ref}: neither an endpoint of {config.source} (configured: {known}) nor a file")


def select(vms: Sequence[VM], endpoint: str, globs: Sequence[str] = (), tags: Sequence[str] = ()) -> list[VM]:
    """The endpoint's VMs whose name or id matches any glob (none: all), with any tag (none: all)."""
    out = []
    for v in vms:
        if v.endpoint != endpoint:
            continue
        if globs and not any(fnmatch.fnmatchcase(v.name, g) or fnmatch.fnmatchcase(v.id, g) for g in globs):
            continue
        if tags and not any(t in v.tags for t in tags):
            continue
        out.append(v)
    if (globs or tags) and not out:
        what = " and ".join(
            x for x in (f"--vm {' '.join(globs)}" if globs else "", f"--tag {' '.join(tags)}" if tags else "") if x
        )
        raise ConfigError(f"{endpoint}: no VM matches {what}")
    return out
