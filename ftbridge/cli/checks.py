"""Option values checked where they are parsed: before a command reads or changes anything.

Each is a typer ``callback``, so the command never starts and nothing is half done (a plan
computed and then not writable, a fault injected with a negative delay). A value out of range is
a usage error (exit 2, naming the option); an output file that cannot be written is one line
naming it, exit 3, as ``report --out`` always answered.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import typer

from ftbridge.errors import ConfigError


def output_file(value: Path | None) -> Path | None:
    """``--out FILE``: a regular file (or a new one) in an existing folder this user can write to.

    Checked by creating and removing a probe file next to it: permissions, read-only mounts and
    pseudo file systems (``/proc``) answer the same way they would for the real write. Anything
    but a regular file is refused: the writers replace the target atomically, and replacing a
    device node or ``/proc`` entry is never what was meant."""
    if value is None:
        return None
    folder = value.parent
    why = None
    if value.is_dir():
        why = "it is a folder; give a file name"
    elif not folder.is_dir():
        why = f"folder {folder} does not exist"
    elif value.exists() and not value.is_file():
        why = "not a regular file"
    else:
        try:
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".ftbridge-probe-")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            why = f"{exc.strerror or exc} in {folder}"
        else:
            if value.exists() and not os.access(value, os.W_OK):
                why = "permission denied"
    if why:
        raise ConfigError(f"--out {value}: cannot write there: {why}")
    return value


def share(value: float | None) -> float | None:
    """A probability: a finite number from 0 to 1."""
    if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise typer.BadParameter("expected a share from 0 to 1 (0.1 is one in ten)")
    return value


def seconds(value: float | None) -> float | None:
    """A duration in seconds: finite and not negative."""
    if value is not None and not (math.isfinite(value) and value >= 0.0):
        raise typer.BadParameter("expected seconds, 0 or more")
    return value
