"""Drivers that fail to load, the two ways a real one can: a missing SDK, a stale contract."""

if "FTBRIDGE_TEST_BROKEN_IMPORT" in __import__("os").environ:
    import vendor_sdk_that_is_not_installed  # noqa: F401

from ftbridge.drivers import Driver  # noqa: E402


class BrokenDriver(Driver):
    name = "broken"


class OldApiDriver(Driver):
    name = "oldapi"
    api_version = 0
