"""The conformance kit: the tests every driver passes, shipped inside ftbridge.

A driver author subclasses :class:`DriverConformance` in their own test suite and provides
fixtures (a driver factory and one case per declared capability); the kit checks what the
core relies on. ``ftbridge driver new NAME`` scaffolds a driver whose suite does exactly that.
"""

from ftbridge.testing.conformance import (
    CASE_FIXTURES,
    DriverConformance,
    FailoverCase,
    MoveCase,
    MoveVMCase,
    PendingCase,
    ProtectCase,
    RestartCase,
    check_inventory,
)

__all__ = [
    "CASE_FIXTURES",
    "DriverConformance",
    "FailoverCase",
    "MoveCase",
    "MoveVMCase",
    "PendingCase",
    "ProtectCase",
    "RestartCase",
    "check_inventory",
]
