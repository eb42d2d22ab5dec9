"""Secrets: read from an environment variable or a file, never from the config or argv.

A :class:`Secret` in a driver's config is a *reference*; :meth:`Secret.reveal` reads the value
at ``open()`` time and registers it (:func:`remember`). This module is the one registry of
secrets and :func:`redact` the one rule that masks them: the CLI installs
:class:`RedactingStream` around ``sys.stdout`` and ``sys.stderr`` (tables, JSON, messages,
tracebacks and log lines all pass through it) and :class:`RedactingFilter` on its log handlers,
so a secret that an SDK, a proxy or a misconfigured server echoes back is still masked.

A secret is masked in every form it travels in: as is, URL-encoded (``quote``/``quote_plus``),
JSON-escaped, XML-escaped, and as HTTP Basic credentials (base64 of ``user:secret``) when its
user is known. Only whole values are masked: a form counts only where it does not continue a
word (a password ``pass`` leaves the word "password" alone).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import threading
from html import escape as html_escape
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, quote_plus, urlsplit
from xml.sax.saxutils import escape as xml_escape

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator

from ftbridge.errors import MissingSecret

_lock = threading.Lock()
_known: set[str] = set()  # every form of every secret
_pattern: re.Pattern[str] | None = None  # rebuilt when a secret is added
MASK = "********"
#: a secret of any length is masked (whole words only, so a short one masks little else); only
#: the empty value, which would match everywhere, is not a secret
MIN_LENGTH = 1


class Secret(BaseModel):
    """``{ env = "VAR" }`` or ``{ file = "/path" }``: where a secret is, not what it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = None
    file: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_literal(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            raise ValueError('secrets are never written in the config: use { env = "VAR" } or { file = "/path" }')
        base = (info.context or {}).get("base_dir")
        if isinstance(value, dict) and base and isinstance(value.get("file"), str):
            f = os.path.expanduser(value["file"])
            value = {**value, "file": f if os.path.isabs(f) else os.path.join(str(base), f)}
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Secret:
        if (self.env is None) == (self.file is None):
            raise ValueError('give exactly one of env = "VAR" or file = "/path"')
        return self

    def reveal(self, key: str = "secret") -> str:
        """The value; raises :class:`MissingSecret` naming ``key`` and where it looked."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise MissingSecret(f"{key}: environment variable {self.env} is not set or empty")
        else:
            assert self.file is not None
            try:
                with open(self.file, encoding="utf-8") as f:
                    value = f.read().strip()
            except OSError as exc:
                raise MissingSecret(f"{key}: cannot read secret file {self.file}: {exc.strerror}") from exc
            if not value:
                raise MissingSecret(f"{key}: secret file {self.file} is empty")
        remember(value)
        return value


def remember(value: str, *, user: str | None = None) -> None:
    """Register a value that must never be shown (tokens and session ids an SDK hands back count
    too). With ``user``, the HTTP Basic credentials ``base64(user:value)`` are registered as well."""
    if len(value) < MIN_LENGTH:
        return
    forms = _forms(value)
    forms |= {re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), f) for f in forms}  # %2f as well as %2F
    if user is not None:
        basic = base64.b64encode(f"{user}:{value}".encode()).decode()
        forms |= {basic, basic.rstrip("=")}
    global _pattern
    with _lock:
        if not forms - _known:
            return
        _known.update(forms)
        _pattern = None


def _forms(value: str) -> set[str]:
    """The ways ``value`` is written on the wire and in output: as is, URL-encoded (form bodies,
    query strings, cookies), XML-escaped (SOAP, oVirt's API), then each of those JSON-escaped
    (``-o json``, API errors quoting a request)."""
    base = {
        value,
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        xml_escape(value),
        xml_escape(value, {'"': "&quot;", "'": "&apos;"}),
        html_escape(value),
    }
    forms = set(base)
    for f in base:
        forms.add(json.dumps(f)[1:-1])
        forms.add(json.dumps(f, ensure_ascii=False)[1:-1])
    return {f for f in forms if len(f) >= MIN_LENGTH}


def _compile() -> re.Pattern[str] | None:
    global _pattern
    with _lock:
        if _pattern is None and _known:
            # longest first, so a form that contains another is masked whole; a form that starts
            # (ends) with a word character must not follow (be followed by) one: whole values only
            alts = [
                (r"(?<!\w)" if f[0].isalnum() or f[0] == "_" else "")
                + re.escape(f)
                + (r"(?!\w)" if f[-1].isalnum() or f[-1] == "_" else "")
                for f in sorted(_known, key=len, reverse=True)
            ]
            _pattern = re.compile("|".join(alts))
        return _pattern


def redact(text: str) -> str:
    """``text`` with every form of every registered secret masked (the one redaction rule)."""
    pattern = _compile()
    if pattern is None:
        return text
    return pattern.sub(MASK, text)


class RedactingStream(io.TextIOBase):
    """A text stream that writes to ``inner`` what :func:`redact` leaves of it.

    Text is passed on a line at a time (a secret is never split by the writer that made the
    line); a line without its end yet waits for the rest or for :meth:`flush` (prompts and
    progress bars flush). Everything else (``isatty``, ``fileno``, ``encoding``) is ``inner``'s.
    """

    def __init__(self, inner: IO[str]) -> None:
        super().__init__()
        self.inner = inner
        self._pending = ""
        self._lock = threading.RLock()

    def write(self, s: str) -> int:
        with self._lock:
            text = self._pending + s
            cut = text.rfind("\n") + 1
            self._pending = text[cut:]
            if cut:
                self.inner.write(redact(text[:cut]))
        return len(s)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                pending, self._pending = self._pending, ""
                self.inner.write(redact(pending))
            self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self.inner, "encoding", "utf-8"))

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.inner, "errors", None)

    def __getattr__(self, name: str) -> Any:
        if name == "buffer":  # bytes written there would pass unredacted
            raise AttributeError(name)
        return getattr(self.inner, name)


class RedactingFilter(logging.Filter):
    """Masks secrets in a log record (message and arguments), for handlers that write anywhere."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


def install() -> None:
    """Route ``sys.stdout`` and ``sys.stderr`` through :class:`RedactingStream` (idempotent):
    the CLI calls this first, so nothing it prints (rich tables, JSON, errors, ``--debug``
    tracebacks, log lines) reaches the terminal unredacted."""
    import sys

    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)


def tighten_dir(path: Path) -> None:
    """Take group and others' access away from ``path`` when it exists and is ours: a state
    directory made by an older version (or by hand) stops being readable by others, and with it
    every journal, plan and lock inside, whatever their own modes. Creating it is left to the
    writers (0700 under the CLI's umask); a folder we cannot change is left to them to report."""
    try:
        st = path.stat()
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            path.chmod(st.st_mode & 0o700)
    except OSError:
        pass


def refuse_userinfo(value: Any) -> Any:
    """A host or URL with ``user[:password]@`` in it is refused: credentials belong in
    ``user`` and a :class:`Secret`, and a URL is printed in messages. The error never repeats
    the value (its password). Use it as a ``mode="before"`` validator of every host/URL key,
    so no later check quotes the value first; anything but a string is left to those checks."""
    if not isinstance(value, str):
        return value
    netloc = urlsplit(value).netloc if "://" in value else value.split("/", 1)[0]
    if "@" in netloc:
        raise ValueError(
            "credentials in a host or URL (user:password@...) are refused: "
            'give user = "..." and password = { env = "VAR" } or { file = "/path" }'
        )
    return value
