"""Sentences a person acts on: sizes, places and constraints said the way an operator says them."""

from __future__ import annotations

from collections.abc import Iterable

from ftbridge.model import FailureDomain, Level

GIB = 1024**3


def size(n: int) -> str:
    """``1,234 GiB`` (or MiB below 1 GiB, so small disks do not read as 0 GiB)."""
    if abs(n) < GIB and n != 0:
        return f"{n / 1024**2:,.0f} MiB"
    return f"{n / GIB:,.0f} GiB"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def outside(level: Level | None, avoid: Iterable[FailureDomain], names: Iterable[str] = ()) -> str:
    """``outside array netapp-a``: what separation from the given domains means here."""
    if level is None:
        return ""
    attr = level.value
    found = [getattr(d, attr) for d in avoid]
    labels = sorted({lbl for lbl in found if lbl is not None})
    if labels and None not in found:
        word = level.value if len(labels) == 1 else f"{level.value}s"
        return f"outside {word} {', '.join(labels)}"
    where = ", ".join(sorted(set(names))) or "the primary"
    return f"separated at {level.value} level from {where} (whose {level.value} label is unknown)"


def joined(parts: Iterable[str], limit: int = 4) -> str:
    items = list(parts)
    more = len(items) - limit
    shown = ", ".join(items[:limit])
    return f"{shown} and {more} more" if more > 0 else shown


def cannot(endpoint: str, capability: str, what: str) -> str:
    """Why a step is not planned where the endpoint does not offer what it needs (``probe()``:
    a bare ESXi host, a read-only account)."""
    return f"endpoint {endpoint} cannot {what} (its driver or site offers no {capability})"
