"""Drivers that fail to load, the two ways a real one can: a missing SDK, a stale contract."""

if "FTBRIDGE_TEST_BROKEN_IMPORT" in __import__("os").environ:
    import vendor_sdk_that_is_not_installed  # type: ignore[import-not-found]  # noqa: F401

from ftbridge.drivers import Driver  # noqa: E402
from ftbridge.labs import Lab  # noqa: E402


class BrokenDriver(Driver):
    name = "broken"


class OldApiDriver(Driver):
    name = "oldapi"
    api_version = 0


class LegacyDriver(Driver):
    """Written before contract versions were declared: taken as contract 1, deprecated."""

    name = "legacy"

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def probe(self):  # type: ignore[no-untyped-def]
        raise NotImplementedError


class FutureDriver(Driver):
    """Written for contracts this core does not speak yet."""

    name = "future"
    api_versions = (7, 9)


class FutureLab(Lab):
    """A lab written for lab contracts this core does not speak yet."""

    driver = "future"
    api_versions = (7, 9)
