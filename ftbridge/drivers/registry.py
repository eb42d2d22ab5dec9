"""Finding and loading drivers: stevedore over the ``ftbridge.drivers`` entry-point group.

Listing reads entry-point metadata only, so ``ftbridge drivers list`` imports no driver and no
SDK. Loading imports exactly the driver asked for, and turns every way that can fail (not
installed, import error, not a Driver, written for another API) into one clear error.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import TYPE_CHECKING

from ftbridge.errors import DriverLoadError, DriverNotFound

if TYPE_CHECKING:  # listing must not import the contract (and pydantic with it)
    from ftbridge.drivers.base import Driver

NAMESPACE = "ftbridge.drivers"


@dataclass(frozen=True, slots=True)
class DriverEntry:
    """An installed driver as its distribution's metadata describes it."""

    name: str
    target: str  # "package.module:Class"
    distribution: str
    version: str


def list_drivers() -> list[DriverEntry]:
    """Every installed driver, sorted by name, without importing any of them."""
    entries = {}
    for ep in metadata.entry_points(group=NAMESPACE):
        dist = ep.dist
        entries[ep.name] = DriverEntry(
            name=ep.name,
            target=ep.value,
            distribution=dist.metadata["Name"] if dist else "?",
            version=dist.version if dist else "?",
        )
    return [entries[k] for k in sorted(entries)]


@cache
def load_driver(name: str) -> type[Driver]:
    """The driver class registered as ``name``; imports it (and nothing else)."""
    from stevedore import driver as sd_driver  # imported here: listing must stay cheap
    from stevedore.exception import NoMatches

    from ftbridge.drivers.base import API_VERSION, Driver

    failures: list[BaseException] = []

    def on_failure(_mgr: object, ep: metadata.EntryPoint, exc: BaseException) -> None:
        failures.append(exc)

    try:
        mgr: sd_driver.DriverManager[type[Driver]] = sd_driver.DriverManager(
            namespace=NAMESPACE,
            name=name,
            invoke_on_load=False,
            on_load_failure_callback=on_failure,
            on_missing_entrypoints_callback=lambda _names: None,  # we say it better, once
        )
    except NoMatches:
        if failures:
            raise _load_error(name, failures[0]) from failures[0]
        known = ", ".join(e.name for e in list_drivers()) or "none"
        raise DriverNotFound(
            f"no driver named {name!r} is installed (installed: {known})",
            hint=f"pip install ftbridge-{name}, or check the 'driver' key",
        ) from None
    cls = mgr.driver
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise DriverLoadError(
            f"driver {name!r} ({mgr.extensions[0].entry_point_target}) is not an ftbridge Driver class"
        )
    if getattr(cls, "name", None) != name:
        raise DriverLoadError(f"driver {name!r} declares name {getattr(cls, 'name', None)!r}; they must match")
    if cls.api_version != API_VERSION:
        raise DriverLoadError(
            f"driver {name!r} is written for driver API {cls.api_version}, this ftbridge speaks {API_VERSION}",
            hint="install a matching version of the driver or of ftbridge",
        )
    return cls


def _load_error(name: str, exc: BaseException) -> DriverLoadError:
    entry = next((e for e in list_drivers() if e.name == name), None)
    where = f" ({entry.distribution} {entry.version})" if entry else ""
    if isinstance(exc, ImportError) and exc.name:
        return DriverLoadError(
            f"driver {name!r}{where} cannot be imported: module {exc.name!r} is missing",
            hint=f"reinstall {entry.distribution if entry else 'the driver'} with its dependencies",
        )
    return DriverLoadError(f"driver {name!r}{where} failed to load: {type(exc).__name__}: {exc}")


def require_sdk(module: str, *, package: str, driver: str, hint: str | None = None) -> object:
    """Import a driver's SDK, or raise DriverLoadError naming the install command.

    For a driver's client module, so a missing SDK reaches the user as one line, not a
    traceback, and only when an endpoint really uses that driver.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DriverLoadError(
            f"driver {driver!r} needs the Python package {package!r} ({module} failed to import: {exc})",
            hint=hint or f"pip install {package}",
        ) from exc
