"""Field types driver authors use in their ``Config`` models.

``Secret`` (see :mod:`ftbridge.secrets`) for anything secret; :data:`ConfigPath` for files named
in the config, resolved against the config file's folder, so a config works from any cwd;
:data:`Duration` for "15m"-style times.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationInfo

from ftbridge.secrets import Secret

__all__ = ["ConfigPath", "Duration", "Secret", "parse_duration"]


def _resolve(value: Any, info: ValidationInfo) -> Path:
    path = Path(str(value)).expanduser()
    base = (info.context or {}).get("base_dir")
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return path


ConfigPath = Annotated[Path, BeforeValidator(_resolve)]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"1h30m"``, ``"1d"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip().lower()
    parts = re.fullmatch(r"((\d+(\.\d+)?)\s*[smhd]\s*)+", text)
    if not parts:
        raise ValueError(f"expected a duration such as 90s, 15m, 1h (got {value!r})")
    return float(sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)\s*([smhd])", text)))


Duration = Annotated[float, BeforeValidator(parse_duration)]
