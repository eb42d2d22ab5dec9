"""PVE task ids (UPIDs) and what a task's status means for an :class:`Operation`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ftbridge.drivers import OperationStatus, OpState

_UPID = re.compile(
    r"^UPID:(?P<node>[a-zA-Z0-9][a-zA-Z0-9\-]*):(?P<pid>[0-9A-Fa-f]{8}):(?P<pstart>[0-9A-Fa-f]{8,9}):"
    r"(?P<start>[0-9A-Fa-f]{8}):(?P<type>[^:]+):(?P<id>[^:]*):(?P<user>[^:]+):"
)

#: task types as operation kinds, for operations found without a journaled handle
TASK_KINDS = {
    "qmmove": "move_disk",
    "move_volume": "move_disk",
    "qmclone": "protect",
    "qmigrate": "promote",
    "vzmigrate": "promote",
    "hamigrate": "promote",
    "qmstart": "start",
    "vzstart": "start",
    "hastart": "start",
    "qmstop": "fence",
    "vzstop": "fence",
    "hastop": "fence",
    "qmdestroy": "unprotect",
}


@dataclass(frozen=True, slots=True)
class Upid:
    node: str
    type: str
    id: str
    user: str
    starttime: int


def parse_upid(text: str) -> Upid | None:
    m = _UPID.match(text)
    if not m:
        return None
    return Upid(m.group("node"), m.group("type"), m.group("id"), m.group("user"), int(m.group("start"), 16))


def task_status(
    status: Mapping[str, Any], *, running_progress: float = 0.5, result: Mapping[str, str] | None = None
) -> OperationStatus:
    """RUNNING while ``status == running``; then ``exitstatus`` decides (``OK``, ``WARNINGS: n``)."""
    if status.get("status") != "stopped":
        return OperationStatus(OpState.RUNNING, progress=running_progress)
    exit_text = str(status.get("exitstatus") or "")
    if exit_text == "OK" or exit_text.startswith("WARNINGS"):
        return OperationStatus(
            OpState.SUCCEEDED, progress=1.0, message="" if exit_text == "OK" else exit_text, result=dict(result or {})
        )
    return OperationStatus(
        OpState.FAILED,
        progress=1.0,
        message=exit_text or "task failed without a status",
        retryable=exit_text == "unexpected status",
    )
