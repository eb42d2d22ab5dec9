"""Timestamps in ftbridge's JSON: one form, RFC 3339 in UTC with a ``Z``.

Whole seconds are written without a fraction (``2025-03-01T10:00:00Z``, as plan files have
always been); times measured to the sub-second (journal events, recovery evidence) keep
milliseconds (``2025-03-01T10:00:00.250Z``). Both are RFC 3339; one parser reads both.
"""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(epoch: float | None) -> str | None:
    """``epoch`` seconds as RFC 3339 UTC, to the millisecond; None stays None (unknown is not the
    epoch). Reading the text back and writing it again gives the same text."""
    if epoch is None:
        return None
    sec, ms = divmod(round(epoch * 1000), 1000)
    text = datetime.fromtimestamp(sec, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}Z" if ms == 0 else f"{text}.{ms:03d}Z"


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch from an RFC 3339 timestamp (``Z`` or a numeric offset).

    Raises ValueError for anything else, so callers can name the bad field.
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone (RFC 3339 needs Z or an offset)")
    return dt.timestamp()


def human(epoch: float | None, *, since: float | None = None) -> str:
    """For tables people read, in UTC: ``2025-03-01 10:00:00`` (or ``-``); only the time of day
    (``10:00:00``) when ``since`` falls on the same day."""
    if epoch is None:
        return "-"
    dt = datetime.fromtimestamp(epoch, tz=UTC)
    if since is not None and datetime.fromtimestamp(since, tz=UTC).date() == dt.date():
        return dt.strftime("%H:%M:%S")
    return dt.strftime("%Y-%m-%d %H:%M:%S")


def checked_time(value: object) -> object:
    """``value`` unchanged when it is not a string or is an RFC 3339 time; else ``ValueError``
    with what was expected (a validator for files that may hold epoch seconds or a time)."""
    if isinstance(value, str):
        try:
            parse_rfc3339(value)
        except ValueError:
            raise ValueError("expected an RFC 3339 time such as 2025-03-01T10:00:00Z") from None
    return value
