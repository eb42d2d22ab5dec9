"""Tables that fit: every command's tabular output goes through :func:`table`.

Rules, in the order they are applied:

* an identifier (a VM, host or datastore name, an id, a number) is never broken across
  lines: its column is as wide as its widest value;
* free text (reasons, fixes, findings) wraps between words;
* when that does not fit the width, columns marked droppable go first (highest ``drop``
  first), then the table becomes a list of ``field: value`` records;
* on a terminal the width is the terminal's; piped, it is ``$COLUMNS`` when set, else the
  table is written plain (aligned columns, one row per line, no borders, no colour) for
  ``grep``, ``awk`` and pagers;
* on a terminal, a command whose table has more rows than the screen has lines prints a
  summary instead (counts per endpoint, rule, datastore..., then the first rows) unless given
  ``--all`` (:func:`summarise`); piped, every row is written, always;
* severities (and other states given a style) are coloured on a terminal (``NO_COLOR``
  is honoured by rich).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

SEVERITY_STYLES: Mapping[str, str] = {
    "critical": "bold red",
    "error": "red",
    "warning": "yellow",
    "info": "cyan",
}
STATE_STYLES: Mapping[str, str] = {
    "ok": "green",
    "done": "green",
    "succeeded": "green",
    "promoted": "green",
    "restarted": "green",
    "cleaned-up": "green",
    "in_sync": "green",
    "protected": "green",
    "up": "green",
    "kept": "yellow",
    "skipped": "cyan",
    "degraded": "yellow",
    "lagging": "yellow",
    "running": "yellow",
    "interrupted": "yellow",
    "failed": "red",
    "blocked": "red",
    "broken": "red",
    "unprotected": "red",
    "down": "red",
    "primary-down": "bold red",
    "cleanup-failed": "red",
}


@dataclass(frozen=True)
class Col:
    """A column: ``kind`` "id" (never broken), "num" (never broken, right-aligned) or "text"
    (wraps between words); ``drop`` > 0 lets it go when the table does not fit (highest first);
    ``styles`` colours cells by value."""

    name: str
    kind: str = "id"
    drop: int = 0
    styles: Mapping[str, str] | None = None


Cell = Any
_BORDER = 3  # rich's default box: a rule and one space of padding each side per column


def text_col(name: str, drop: int = 0) -> Col:
    return Col(name, "text", drop)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 finding``, ``2 findings``, ``0 findings`` (``many`` for irregular plurals)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def gib(n: int | float) -> str:
    return f"{n / 1024**3:,.0f} GiB"


def human_bytes(n: int | float | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit in ("B", "GiB", "TiB") else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.0f} TiB"  # pragma: no cover


def seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m}m{sec:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


# -- where tables go -------------------------------------------------------------------------
#: ``FTBRIDGE_TERMINAL=1`` (or ``0``): treat stdout as a terminal (or not) whatever it is, for
#: tests, ``script``-like wrappers and pagers that want the terminal layout
TERMINAL_ENV = "FTBRIDGE_TERMINAL"
#: rows a summary shows of the full table (the most severe findings, the first actions...)
SUMMARY_ROWS = 10
#: rows of a summary's "the busiest ..." lists
TOP_ROWS = 10


def on_terminal() -> bool:
    """Is stdout a person's terminal? (``$FTBRIDGE_TERMINAL`` = 1 or 0 overrides the check.)"""
    forced = os.environ.get(TERMINAL_ENV, "")
    if forced in ("0", "1"):
        return forced == "1"
    return sys.stdout.isatty()


def screen_rows() -> int:
    """Lines on the terminal's screen (``$LINES`` when set; 25 when it cannot be told)."""
    from ftbridge.cli.common import out

    return max(5, int(out().size.height))


def summarise(n_rows: int, all_rows: bool) -> bool:
    """Should a table of ``n_rows`` rows be summarised? Only on a terminal, only when it would
    not fit the screen, never with ``--all`` (``all_rows``): piped output keeps every row, so
    scripts read the same text whatever the estate's size."""
    return not all_rows and n_rows > screen_rows() and on_terminal()


def output_width() -> int | None:
    """The width tables are laid out for; None: write them plain (piped, no ``$COLUMNS``)."""
    if on_terminal():
        from ftbridge.cli.common import out

        return int(out().width)
    cols = os.environ.get("COLUMNS", "")
    if cols.isdigit() and int(cols) > 0:
        return int(cols)
    return None


def table(title: str | None, columns: Sequence[str | Col], rows: Sequence[Sequence[Cell]]) -> None:
    """Print a table to stdout following the rules in the module docstring."""
    from ftbridge.cli.common import out

    cols = [c if isinstance(c, Col) else Col(c) for c in columns]
    cells = [["" if v is None else str(v) for v in r] for r in rows]
    width = output_width()
    console = out()
    if width is None:
        _plain(console, title, cols, cells)
        return
    keep = _fit(cols, cells, width)
    if keep is None:
        _records(console, title, cols, cells, width)
        return
    _boxed(console, title, [cols[i] for i in keep], [[r[i] for i in keep] for r in cells], width)


def _need(col: Col, values: Sequence[str]) -> tuple[int, int]:
    """(least, widest) width a column can take without breaking a word."""
    widest = max([_len(col.name), *(_len(v) for v in values)])
    if col.kind != "text":
        return widest, widest
    words = [len(w) for v in [col.name, *values] for line in v.splitlines() for w in line.split()]
    return max([1, *words]), widest


def _len(text: str) -> int:
    from rich.cells import cell_len

    return max([0, *(cell_len(line) for line in text.splitlines())])


def _fit(cols: list[Col], cells: list[list[str]], width: int) -> list[int] | None:
    """Indices of the columns kept, or None when even the essential ones do not fit."""
    keep = list(range(len(cols)))
    needs = [_need(c, [r[i] for r in cells]) for i, c in enumerate(cols)]
    droppable = sorted((i for i, c in enumerate(cols) if c.drop), key=lambda i: (-cols[i].drop, -i))
    while sum(needs[i][0] for i in keep) + _BORDER * len(keep) + 1 > width:
        if not droppable:
            return None
        keep.remove(droppable.pop(0))
    return keep


def _boxed(console: Console, title: str | None, cols: list[Col], cells: list[list[str]], width: int) -> None:
    from rich.table import Table

    needs = [_need(c, [r[i] for r in cells]) for i, c in enumerate(cols)]
    room = width - (_BORDER * len(cols) + 1)
    widths = [lo for lo, _ in needs]
    spare = room - sum(widths)
    # give text columns what they would like, narrowest wish first, as long as room remains
    wishes = sorted((hi - lo, i) for i, (lo, hi) in enumerate(needs) if hi > lo)
    for n, (gap, i) in enumerate(wishes):
        share = min(gap, spare // (len(wishes) - n)) if spare > 0 else 0
        widths[i] += share
        spare -= share
    from rich.text import Text

    # cells and titles are text, never markup: "[ds1] vm/vm.vmdk" must stay as it is
    t = Table(title=Text(title) if title is not None else None, title_justify="left", show_lines=False)
    for c, w in zip(cols, widths, strict=True):
        if c.kind == "text":
            t.add_column(c.name, width=w, overflow="fold")
        else:
            t.add_column(c.name, width=w, no_wrap=True, justify="right" if c.kind == "num" else "left")
    for r in cells:
        t.add_row(*(_styled(c, v) for c, v in zip(cols, r, strict=True)))
    console.print(t, width=width, soft_wrap=False)


def facts(title: str | None, pairs: Sequence[tuple[str, Any]]) -> None:
    """``name  value`` lines on stdout (one thing described): values wrap between words."""
    import textwrap

    from ftbridge.cli.common import out

    width = output_width() or 10_000  # piped without $COLUMNS: one line per fact
    label = max([0, *(len(k) for k, _ in pairs)]) + 2
    lines = [title] if title else []
    for k, v in pairs:
        text = "-" if v is None else str(v)
        avail = max(20, width - label)
        wrapped = textwrap.wrap(text, avail, break_long_words=False, break_on_hyphens=False) or [""]
        lines.append(k.ljust(label) + wrapped[0])
        lines += [" " * label + more for more in wrapped[1:]]
    _write(out(), lines)


def _styled(col: Col, value: str) -> Any:
    from rich.text import Text

    return Text(value, style=(col.styles or {}).get(value, ""))


def _records(console: Console, title: str | None, cols: list[Col], cells: list[list[str]], width: int) -> None:
    """Too wide for a table: one block per row, ``field: value`` (values wrap between words)."""
    import textwrap

    lines: list[str] = []
    if title:
        lines.append(title)
    label = max(len(c.name) for c in cols) + 2
    for r in cells:
        lines.append("")
        for c, v in zip(cols, r, strict=True):
            head = f"{c.name}:".ljust(label)
            avail = max(20, width - label)
            wrapped = textwrap.wrap(v, avail, break_long_words=False, break_on_hyphens=False) or [""]
            lines.append(head + wrapped[0])
            lines += [" " * label + more for more in wrapped[1:]]
    _write(console, lines)


def _plain(console: Console, title: str | None, cols: list[Col], cells: list[list[str]]) -> None:
    """Piped: aligned columns, one row per line, headers in capitals; nothing cut, no colour."""
    flat = [[" ".join(v.split()) for v in r] for r in cells]
    heads = [c.name.upper().replace(" ", "_") for c in cols]
    widths = [max([len(h), *(len(r[i]) for r in flat)]) for i, h in enumerate(heads)]
    lines = [title] if title else []

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    lines.append(line(heads))
    lines += [line(r) for r in flat]
    _write(console, lines)


def _write(console: Console, lines: list[str]) -> None:
    del console  # plain lines go straight to stdout: no markup, no wrapping
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


# -- something to look at while the estate is read --------------------------------------------
@contextmanager
def busy(message: str) -> Iterator[None]:
    """A spinner with ``message`` on stderr while the block runs (terminals only)."""
    from ftbridge.cli.common import err

    console = err()
    if not console.is_terminal:
        yield
        return
    with console.status(message, spinner="dots"):
        yield


__all__ = [
    "SEVERITY_STYLES",
    "STATE_STYLES",
    "SUMMARY_ROWS",
    "TERMINAL_ENV",
    "TOP_ROWS",
    "Col",
    "busy",
    "facts",
    "gib",
    "human_bytes",
    "on_terminal",
    "output_width",
    "plural",
    "screen_rows",
    "seconds",
    "summarise",
    "table",
    "text_col",
]
