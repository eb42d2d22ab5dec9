"""JSON documents written a piece at a time: the same text as ``json.dumps(doc, indent=2)``.

A 100k-VM inventory is a 200 MB document; building it as one string (and then masking
secrets in that string) doubles the memory and delays the first byte until the last VM is
converted. :func:`chunks` yields the document's text in pieces instead: the top-level keys
one by one, and each element of a top-level list (or iterator: a list can be produced
lazily, one VM at a time) on its own. Joined, the pieces are exactly what
``json.dumps(doc, indent=2, default=str)`` writes for ASCII data, so a consumer cannot tell
streamed from not. Each piece is encoded with orjson when it is installed (several times
faster than the standard library's indenting encoder, which is pure Python); the standard
library is the fallback, and what orjson refuses (integers beyond 64 bits) goes to it too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

_orjson_dumps: Callable[[Any], str] | None
try:
    import orjson

    _OPTS = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS

    def _fast(value: Any) -> str:
        return orjson.dumps(value, default=str, option=_OPTS).decode("utf-8")

    _orjson_dumps = _fast
except ImportError:  # pragma: no cover - orjson is a dependency; keep working without it
    _orjson_dumps = None


def dumps(value: Any) -> str:
    """``json.dumps(value, indent=2, default=str)``, fast when it can be."""
    if _orjson_dumps is not None:
        try:
            return _orjson_dumps(value)
        except TypeError:
            pass  # e.g. an int beyond 64 bits: the standard library takes any
    return json.dumps(value, indent=2, default=str)


def _nested(text: str, depth: int) -> str:
    """``text`` (an indented JSON value) as it appears ``depth`` levels down."""
    return text.replace("\n", "\n" + "  " * depth) if "\n" in text else text


def chunks(doc: Mapping[str, Any] | Any) -> Iterator[str]:
    """The pieces of ``doc``'s indented JSON text (see the module docstring).

    A top-level value that is a list, tuple or iterator is written element by element; any
    other value (and a document that is not a mapping) in one piece."""
    if not isinstance(doc, Mapping):
        yield dumps(doc)
        return
    if not doc:
        yield "{}"
        return
    sep = "{\n  "
    for key, value in doc.items():
        head = sep + dumps(str(key)) + ": "
        sep = ",\n  "
        if isinstance(value, (list, tuple, Iterator)):
            yield from _array(head, value)
        else:
            yield head + _nested(dumps(value), 1)
    yield "\n}"


def _array(head: str, items: Iterable[Any]) -> Iterator[str]:
    opener = head + "[\n    "
    any_item = False
    for item in items:
        yield opener + _nested(dumps(item), 2)
        opener = ",\n    "
        any_item = True
    yield "\n  ]" if any_item else head + "[]"


__all__ = ["chunks", "dumps"]
