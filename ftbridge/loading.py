"""Reading the files a user hands ftbridge: one loader per format (JSON, TOML, YAML), each with limits.

Every file the CLI reads (config, estates, saved inventories, plans, failover and recovery plans,
mapping files) comes through here first, so a hostile or damaged file meets the same limits
wherever it is read:

- size: at most :data:`MAX_BYTES`, checked before the file is read whole;
- encoding: UTF-8 text (a BOM is tolerated); binary data is one clear line, not a traceback;
- nesting: at most :data:`MAX_DEPTH` levels, checked on the text *before* a recursive parser
  runs (JSON, TOML), with the parser's own recursion limit as a backstop (YAML);
- numbers: finite, and integers within 64 bits (no NaN, no Infinity, no 5,000-digit integers:
  they are read as a marker and refused with their key, never converted).

Each error is one line, ``<file>: <key path>: <what was expected>``, raised as the error class
the caller names (:class:`~ftbridge.errors.ConfigError` for config-like files, exit 3;
:class:`~ftbridge.errors.PlanError` for plans, exit 8). No message echoes a value from the file:
a value may be a secret, so messages say its type (:func:`kind_of`).
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ftbridge.errors import ConfigError, FtbridgeError

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "check_values",
    "explain_validation",
    "key_path",
    "kind_of",
    "load_json",
    "load_toml",
    "parse_json",
    "parse_json_streaming",
    "parse_toml",
    "parse_yaml",
    "read_text",
]

#: the largest file read, unless its reader names another limit (a saved inventory does:
#: about 750 bytes a VM, 725 MiB at a million VMs; see ``Inventory.load``)
MAX_BYTES = 256 * 1024 * 1024
#: the deepest nesting of tables/lists any ftbridge file needs is under 10
MAX_DEPTH = 64
#: integers beyond 64 bits mean nothing to any platform ftbridge speaks to
INT_LIMIT = 2**63
#: values in one file (YAML aliases can make a small file huge)
MAX_NODES = 10_000_000

Loc = Sequence[str | int]
ErrorType = type[FtbridgeError]


class _TooBig:
    """An integer literal with more digits than any 64-bit number: kept as a marker, never converted."""

    __slots__ = ()


_TOO_BIG = _TooBig()


def key_path(loc: Iterable[str | int]) -> str:
    """``("actions", 3, "datastores", 0)`` -> ``actions[3].datastores[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _at(source: str, loc: Loc) -> str:
    where = key_path(loc)
    return f"{source}: {where}" if where else source


def kind_of(value: Any) -> str:
    """What a value is, in the file's words (never the value itself: it may be a secret)."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float, _TooBig)):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "a list"
    return "a value of another kind"


# -- reading ---------------------------------------------------------------------------------
def _too_large(path: Path, what: str, limit: int, error: ErrorType) -> FtbridgeError:
    return error(f"{path}: not a {what}: larger than {limit // 2**20} MiB")


def read_text(path: str | Path, *, what: str, error: ErrorType = ConfigError, limit: int = MAX_BYTES) -> str:
    """The file's text: at most ``limit`` bytes (:data:`MAX_BYTES` unless the reader names
    another), UTF-8. ``what`` names the file's role."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            # a regular file says its size: a huge one is refused before a byte is read (a
            # pipe or a device does not: it is read up to the limit)
            if os.fstat(f.fileno()).st_size > limit:
                raise _too_large(path, what, limit, error)
            raw = f.read(limit + 1)
    except IsADirectoryError:
        raise error(f"{path}: cannot read {what}: it is a directory") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    if len(raw) > limit:
        raise _too_large(path, what, limit, error)
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not a {what}: not UTF-8 text (binary data at byte {exc.start})") from None


def load_json(path: str | Path, *, what: str, error: ErrorType = ConfigError, limit: int = MAX_BYTES) -> Any:
    return parse_json(read_text(path, what=what, error=error, limit=limit), source=str(path), what=what, error=error)


def load_toml(path: str | Path, *, what: str, error: ErrorType = ConfigError) -> dict[str, Any]:
    return parse_toml(read_text(path, what=what, error=error), source=str(path), what=what, error=error)


# -- parsing ---------------------------------------------------------------------------------
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_TOML_SKIP = re.compile(r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"[^"\\\n]*(?:\\.[^"\\\n]*)*"|\'[^\'\n]*\'|#[^\n]*')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_PAIR = re.compile(r"\[\]|\{\}")
_LONG_INT = re.compile(r"(?<![\w.])[+-]?\d[\d_]{20,}")
#: for :func:`_no_long_digit_runs`: ASCII digits (all a JSON number holds) become 0, every
#: other byte a space (``str.isdigit`` would count bytes of UTF-8 text such as superscripts)
_DIGITS = bytes(ord("0") if ord("0") <= b <= ord("9") else ord(" ") for b in range(256))


def _no_long_digit_runs(text: str) -> bool:
    """Whether no 19 digits stand in a row in ``text`` (2**63 has 19; strings count too): then
    every integer is in range as the parser reads it. A table lookup per byte in C: a regular
    expression took as long as the parse it spares. A slice at a time (overlapping by a run's
    length), so a 700 MiB file is not copied twice over at once."""
    run = b"0" * 19
    step = _DIGIT_SLICE
    for at in range(0, len(text), step):
        piece = text[max(0, at - len(run)) : at + step]
        if run in piece.encode("utf-8", "surrogatepass").translate(_DIGITS):
            return False
    return True


#: characters checked at a time by :func:`_no_long_digit_runs`
_DIGIT_SLICE = 16 * 2**20


def _nesting(text: str) -> str:
    """ "ok" (brackets balanced within :data:`MAX_DEPTH`), "deep", or "unbalanced" (the parser
    will say where). Innermost pairs are removed a level per pass, in C: a balanced text of depth
    d is empty after d passes."""
    only = _NOT_BRACKET.sub("", text)
    for _ in range(MAX_DEPTH):
        if not only:
            return "ok"
        fewer = _PAIR.sub("", only)
        if fewer == only:
            return "unbalanced"
        only = fewer
    return "deep" if only else "ok"


def _too_deep(text: str, strings: re.Pattern[str]) -> bool:
    """Whether brackets nest deeper than :data:`MAX_DEPTH`, strings and comments aside. Cheap:
    most files have fewer brackets than the limit; a large one is first judged with brackets in
    strings counted (they are rare), and only when that is not plainly fine with strings taken out."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    if _nesting(text) == "ok":
        return False
    return _nesting(strings.sub("", text)) == "deep"


def _deep_error(source: str, what: str, error: ErrorType) -> FtbridgeError:
    return error(f"{source}: not a {what}: nested deeper than {MAX_DEPTH} levels")


def _json_hooks(text: str) -> tuple[dict[str, Any], list[str]]:
    """The decoder's number hooks for ``text``, and the list they flag bad numbers in: NaN,
    Infinity and over-long integers are read as markers, refused (with their key) by
    :func:`check_values`. Integers are left to the parser (in C) when no digit run is long."""
    flagged: list[str] = []  # the hooks see every number as it is parsed; the walk only names the key

    def whole(s: str) -> Any:
        if len(s) > 20:
            flagged.append(s)
            return _TOO_BIG
        value = int(s)
        if not -INT_LIMIT <= value < INT_LIMIT:
            flagged.append(s)
        return value

    def real(s: str) -> float:
        value = float(s)
        if not math.isfinite(value):
            flagged.append(s)
        return value

    def constant(s: str) -> float:
        flagged.append(s)
        return math.nan

    hooks: dict[str, Any] = {"parse_float": real, "parse_constant": constant}
    if not _no_long_digit_runs(text):
        hooks["parse_int"] = whole
    return hooks, flagged


def parse_json(text: str, *, source: str, what: str, error: ErrorType = ConfigError) -> Any:
    """JSON with the limits: NaN/Infinity and over-long integers are read as markers and refused
    (with their key) by :func:`check_values`."""
    if _too_deep(text, _JSON_STRING):
        raise _deep_error(source, what, error)
    hooks, flagged = _json_hooks(text)
    try:
        data = json.loads(text, **hooks)
    except json.JSONDecodeError as exc:
        raise error(f"{source}: not a {what}: not JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise _deep_error(source, what, error) from None
    if flagged:
        check_values(data, source=source, error=error)
    return data


_WS = re.compile(r"[ \t\n\r]*")


def _skip_ws(text: str, at: int) -> int:
    """The first position at or after ``at`` that is not JSON whitespace."""
    found = _WS.match(text, at)
    return found.end() if found else at


def parse_json_streaming(
    text: str,
    *,
    source: str,
    what: str,
    stream: str,
    each: Callable[[int, Any, dict[str, Any]], None],
    error: ErrorType = ConfigError,
) -> Any:
    """:func:`parse_json`, for a document whose top-level object holds one long list under
    ``stream``: each item of it is handed to ``each(index, item, head)`` as soon as it is
    parsed, and not kept (the result holds an empty list there). ``head`` is the top-level
    object as far as it is read (the keys before ``stream``). So the parsed tree of a large
    file never exists whole (a million-VM saved inventory read whole peaked at 3.9 GiB,
    this way at 2.6 GiB).

    The same limits and the same one-line errors as :func:`parse_json` (the whole text is
    checked for depth first; a bad number is named with its key). A document that is not an
    object is parsed whole, and a ``stream`` that is not a list is kept as it is: ``each`` is
    not called for them (the caller's checks say what is wrong). A ``stream`` list twice is
    refused (``json.loads`` would keep the last; the first was handed out already)."""
    if _too_deep(text, _JSON_STRING):
        raise _deep_error(source, what, error)
    hooks, flagged = _json_hooks(text)
    decode = json.JSONDecoder(**hooks).raw_decode

    def value(at: int, loc: tuple[str | int, ...]) -> tuple[Any, int]:
        item, end = decode(text, at)
        if flagged:
            check_values(item, source=source, error=error, loc=loc)
        return item, _skip_ws(text, end)

    def expect(at: int, char: str, msg: str) -> int:
        if not text.startswith(char, at):
            raise json.JSONDecodeError(msg, text, at)
        return _skip_ws(text, at + 1)

    head: dict[str, Any] = {}
    try:
        at = _skip_ws(text, 0)
        if not text.startswith("{", at):
            return parse_json(text, source=source, what=what, error=error)
        at = expect(at, "{", "Expecting value")
        while not text.startswith("}", at):
            if head:
                at = expect(at, ",", "Expecting ',' delimiter")
            if not text.startswith('"', at):
                raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, at)
            key, at = decode(text, at)  # a string: it starts with a quote
            at = expect(_skip_ws(text, at), ":", "Expecting ':' delimiter")
            if key == stream and text.startswith("[", at):
                if key in head:
                    raise error(f"{source}: not a {what}: {key} appears twice")
                head[key] = []
                at = expect(at, "[", "Expecting value")
                n = 0
                while not text.startswith("]", at):
                    if n:
                        at = expect(at, ",", "Expecting ',' delimiter")
                    item, at = value(at, (key, n))
                    each(n, item, head)
                    n += 1
                at = expect(at, "]", "Expecting ',' delimiter")
            else:
                head[key], at = value(at, (key,))
        at = expect(at, "}", "Expecting ',' delimiter")
        if at != len(text):
            raise json.JSONDecodeError("Extra data", text, at)
    except json.JSONDecodeError as exc:
        raise error(f"{source}: not a {what}: not JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise _deep_error(source, what, error) from None
    return head


def parse_toml(text: str, *, source: str, what: str, error: ErrorType = ConfigError) -> dict[str, Any]:
    if _too_deep(text, _TOML_SKIP):
        raise _deep_error(source, what, error)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{source}: not a {what}: malformed TOML: {exc}") from None
    except RecursionError:
        raise _deep_error(source, what, error) from None
    except ValueError:  # int() refused a literal of thousands of digits
        m = _LONG_INT.search(_TOML_SKIP.sub(lambda m: "\n" * m.group().count("\n"), text))
        at = f"line {text.count(chr(10), 0, m.start()) + 1}: " if m else ""
        raise error(f"{source}: not a {what}: {at}integer too large (more than 64 bits)") from None
    check_values(data, source=source, error=error)
    return data


def parse_yaml(text: str, *, source: str, what: str, error: ErrorType = ConfigError, every: bool = False) -> Any:
    """YAML (PyYAML's safe loader only); ``every``: a list of all documents (``---``)."""
    import importlib

    yaml = importlib.import_module("yaml")
    if _too_deep(text, _JSON_STRING):  # flow style nests with brackets like JSON
        raise _deep_error(source, what, error)
    try:
        data = [d for d in yaml.safe_load_all(text) if d is not None] if every else yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise error(f"{source}: not a {what}: not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise _deep_error(source, what, error) from None
    except ValueError:
        raise error(f"{source}: not a {what}: integer too large (more than 64 bits)") from None
    check_values(data, source=source, error=error)
    return data


def check_values(data: Any, *, source: str, error: ErrorType = ConfigError, loc: tuple[str | int, ...] = ()) -> None:
    """Every number finite and within 64 bits, nesting within :data:`MAX_DEPTH`, no more than
    :data:`MAX_NODES` values. Iterative: a deep structure cannot exhaust the stack here.
    ``loc``: where ``data`` sits in its file (a part checked on its own)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, loc)]
    seen = 0
    while stack:
        value, loc = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise error(f"{source}: more than {MAX_NODES} values")
        if len(loc) > MAX_DEPTH:
            raise error(f"{_at(source, loc[:MAX_DEPTH])}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, bool):
            continue
        if isinstance(value, _TooBig) or (isinstance(value, int) and not -INT_LIMIT <= value < INT_LIMIT):
            raise error(f"{_at(source, loc)}: number out of range (more than 64 bits)")
        if isinstance(value, float) and not math.isfinite(value):
            raise error(f"{_at(source, loc)}: expected a finite number (NaN and infinity are not numbers here)")
        if isinstance(value, dict):
            stack.extend((v, (*loc, str(k))) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, (*loc, i)) for i, v in enumerate(value))


# -- typed validation ------------------------------------------------------------------------
_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "list_type": "a list",
    "sequence_str": "a list",
    "is_instance_of": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "frozen_set_type": "a list",
    "none_required": "nothing (null)",
}


def explain_validation(err: Any) -> str:
    """One pydantic error (an item of ``ValidationError.errors()``) as words that never echo the
    input: "expected a string, got a number", "missing", "must be at least 0"."""
    typ: str = err["type"]
    got = err.get("input")
    if typ == "missing":
        return "missing"
    if typ == "extra_forbidden":
        return "unknown key"
    if typ in _EXPECTED:
        return f"expected {_EXPECTED[typ]}, got {kind_of(got)}"
    if typ in ("literal_error", "enum"):
        expected = (err.get("ctx") or {}).get("expected")
        return f"expected {expected}, got {'another ' + kind_of(got).removeprefix('a ').removeprefix('an ')}"
    if typ in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        ctx = err.get("ctx") or {}
        bound = next(iter(ctx.values()), "?")
        words = {
            "greater_than": "more than",
            "greater_than_equal": "at least",
            "less_than": "less than",
            "less_than_equal": "at most",
        }[typ]
        return f"must be {words} {bound}"
    if typ in ("string_too_short", "too_short"):
        return "must not be empty"
    if typ == "string_pattern_mismatch":
        return f"does not have the expected form ({(err.get('ctx') or {}).get('pattern', '')})"
    # value_error (our own validators word their message without the value), and the rest:
    # pydantic's message; its text names the expected type, never the input
    msg: str = err["msg"]
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def validation_line(source: str, err: Any, prefix: Loc = ()) -> str:
    """``<file>: <key path>: <explanation>`` for one pydantic error."""
    loc = [*prefix, *(x for x in err["loc"] if not (isinstance(x, str) and x.startswith("function-")))]
    words = explain_validation(err)
    if words.startswith(("[", ".")) and ": " in words:  # a validator naming an entry further in
        sub, words = words.split(": ", 1)
        return f"{_at(source, loc)}{sub}: {words}"
    return f"{_at(source, loc)}: {words}"
