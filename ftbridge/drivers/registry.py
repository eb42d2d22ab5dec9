"""Finding and loading drivers: stevedore over the ``ftbridge.drivers`` entry-point group.

Listing reads entry-point metadata only, so ``ftbridge drivers list`` imports no driver and no
SDK. Loading imports exactly the driver asked for, and turns every way that can fail (not
installed, import error, not a Driver, written for another API) into one clear error.
"""

from __future__ import annotations

import abc
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import TYPE_CHECKING

from ftbridge.errors import DriverLoadError, DriverNotFound

if TYPE_CHECKING:  # listing must not import the contract (and pydantic with it)
    from ftbridge.drivers.base import Driver

NAMESPACE = "ftbridge.drivers"


class FtbridgeDeprecationWarning(FutureWarning):
    """A driver or lab speaks a contract version this ftbridge will stop loading.

    A FutureWarning, so Python shows it by default: the operator who runs the CLI, not only the
    driver's author, learns that an upgrade of ftbridge would refuse the driver.
    """


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

    from ftbridge.drivers.base import Driver

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
    negotiate(cls)
    return cls


def declared_versions(cls: type) -> tuple[int, int]:
    """The contract versions a driver (or lab) class declares, oldest and newest, inclusive.

    ``api_versions = (oldest, newest)`` is the declaration. A class that declares none but has
    the single ``api_version = N`` of the first contract declares ``(N, N)``; one with neither
    gets the contract base's default, ``(1, 1)``.
    """
    own = [k for k in cls.__mro__ if k.__module__ not in _CONTRACT_MODULES and k is not abc.ABC]
    if not any("api_versions" in vars(k) for k in own):
        legacy = next((vars(k)["api_version"] for k in own if "api_version" in vars(k)), None)
        if isinstance(legacy, int) and not isinstance(legacy, bool):
            return (legacy, legacy)
    rng = getattr(cls, "api_versions", None)
    if (
        isinstance(rng, tuple)
        and len(rng) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in rng)
        and rng[0] <= rng[1]
    ):
        return (rng[0], rng[1])
    raise DriverLoadError(
        f"{cls.__module__}.{cls.__qualname__} declares api_versions = {rng!r}: expected (oldest, newest)"
    )


_CONTRACT_MODULES = frozenset({"ftbridge.drivers.base", "ftbridge.labs", "builtins"})


def negotiate(
    cls: type,
    *,
    kind: str = "driver",
    name: str | None = None,
    speaks: tuple[int, int] | None = None,
    deprecated: Mapping[int, str] | None = None,
    warn: bool = True,
) -> int:
    """The newest contract version both ``cls`` and this core speak.

    Raises DriverLoadError when the ranges do not meet; warns (FtbridgeDeprecationWarning, unless
    ``warn`` is False) when the version they share is one this core will stop loading.
    """
    if speaks is None or deprecated is None:
        from ftbridge.drivers.base import API_DEPRECATED, API_OLDEST, API_VERSION

        speaks, deprecated = (API_OLDEST, API_VERSION), API_DEPRECATED
    name = name or str(getattr(cls, "name", cls.__qualname__))
    lo, hi = declared_versions(cls)
    common = min(hi, speaks[1])
    if common < max(lo, speaks[0]):
        theirs = str(lo) if lo == hi else f"{lo} to {hi}"
        ours = str(speaks[0]) if speaks[0] == speaks[1] else f"{speaks[0]} to {speaks[1]}"
        raise DriverLoadError(
            f"{kind} {name!r} is written for {kind} API {theirs}, this ftbridge speaks {ours}",
            hint=f"install a version of the {kind} or of ftbridge that speaks a common one",
        )
    if warn and common in deprecated:
        warnings.warn(
            FtbridgeDeprecationWarning(
                f"{kind} {name!r} speaks {kind} API {common}, which ftbridge {deprecated[common]} will no "
                f"longer load: update it (the contract's changes are listed in the driver author's guide)"
            ),
            stacklevel=2,
        )
    return common


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
