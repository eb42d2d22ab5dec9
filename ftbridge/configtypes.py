"""Field types driver authors use in their ``Config`` models.

``Secret`` (see :mod:`ftbridge.secrets`) for anything secret; :data:`ConfigPath` for files named
in the config, resolved against the config file's folder, so a config works from any cwd;
:data:`Duration` for "15m"-style times.
"""

from __future__ import annotations

import math
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ValidationInfo

from ftbridge.secrets import Secret

__all__ = ["ConfigPath", "Duration", "Secret", "parse_duration", "strict_bool"]


def _resolve(value: Any, info: ValidationInfo) -> Path:
    if not isinstance(value, (str, Path)) or not str(value):
        raise ValueError("expected a file name (a non-empty string)")
    path = Path(value).expanduser()
    base = (info.context or {}).get("base_dir")
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return path


ConfigPath = Annotated[Path, BeforeValidator(_resolve)]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"1h30m"``, ``"1d"``: finite and not negative
    (a negative backoff would fail every retried action; a NaN RPO would switch the lag rule off).
    The message never repeats the value: the same type carries times next to secrets."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value) or value < 0:
            raise ValueError("expected a duration of 0 seconds or more, such as 90s, 15m, 1h")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 90s, 15m, 1h (a number of seconds or a string)")
    text = value.strip().lower()
    parts = re.fullmatch(r"((\d+(\.\d+)?)\s*[smhd]\s*)+", text)
    if not parts:
        raise ValueError("expected a duration such as 90s, 15m, 1h")
    return float(sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)\s*([smhd])", text)))


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _is_bool(annotation: Any) -> bool:
    if annotation is bool:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args == [bool]
    return False


def strict_bool(cls: type[BaseModel], value: Any, info: ValidationInfo) -> Any:
    """A ``field_validator("*", mode="before")`` for config models: a bool field takes true or
    false only. Pydantic's lax mode would take ``1``, ``"yes"`` or ``"off"``; in a file that
    decides whether a VM needs a copy, ``require_secondary = 1`` is a mistake to report."""
    field = cls.model_fields.get(info.field_name or "")
    if field is not None and _is_bool(field.annotation) and value is not None and not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value
