"""Secrets: read from an environment variable or a file, never from the config or argv.

A :class:`Secret` in a driver's config is a *reference*; :meth:`Secret.reveal` reads the value
at ``open()`` time and registers it with :func:`redact`, which the CLI's log handler and every
writer of output pass text through, so a secret that leaks into an SDK's error message is still
masked.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator

from ftbridge.errors import MissingSecret

_lock = threading.Lock()
_known: set[str] = set()
MASK = "********"


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


def remember(value: str) -> None:
    """Register a value that must never be shown (tokens an SDK hands back count too)."""
    if len(value) >= 4:
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    """``text`` with every registered secret masked."""
    if not _known:
        return text
    with _lock:
        values = sorted(_known, key=len, reverse=True)
    for v in values:
        if v in text:
            text = text.replace(v, MASK)
    return text
