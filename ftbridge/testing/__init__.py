"""The conformance kit: the tests every driver passes, shipped inside ftbridge.

A driver author subclasses :class:`DriverConformance` in their own test suite and provides
fixtures; the kit checks what the core relies on. See ``contrib/driver-template/``.
"""

from ftbridge.testing.conformance import DriverConformance, MoveCase, ProtectCase, check_inventory

__all__ = ["DriverConformance", "MoveCase", "ProtectCase", "check_inventory"]
