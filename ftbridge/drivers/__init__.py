"""The driver contract and registry: everything a driver author imports.

A third-party driver needs only this module, :mod:`ftbridge.model`, :mod:`ftbridge.errors`,
:mod:`ftbridge.configtypes` and, for its tests, :mod:`ftbridge.testing`.

Names resolve lazily (PEP 562), so listing drivers (``ftbridge.drivers.registry``) does not
import the contract and pydantic with it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_WHERE = {
    **dict.fromkeys(
        [
            "API_DEPRECATED",
            "API_OLDEST",
            "API_VERSION",
            "CAPABILITY_METHODS",
            "OPERATION_CAPABILITIES",
            "BackendInfo",
            "Capability",
            "Driver",
            "DriverConfig",
            "Failover",
            "HealthReport",
            "MechanismRules",
            "Operation",
            "OperationStatus",
            "OpState",
            "ProgressCallback",
            "ProgressEvent",
            "PromoteResult",
            "ProtectResult",
            "RestartResult",
            "ResultMissing",
            "SecondarySpec",
            "StoragePlacement",
            "TestFailoverResult",
            "implemented",
            "overrides",
        ],
        "ftbridge.drivers.base",
    ),
    **dict.fromkeys(
        [
            "DriverEntry",
            "FtbridgeDeprecationWarning",
            "list_drivers",
            "load_driver",
            "require_sdk",
        ],
        "ftbridge.drivers.registry",
    ),
    "InventoryPart": "ftbridge.inventory",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'ftbridge.drivers' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)


if TYPE_CHECKING:  # explicit re-exports (`X as X`) for type checkers
    from ftbridge.drivers.base import (
        API_DEPRECATED as API_DEPRECATED,
        API_OLDEST as API_OLDEST,
        API_VERSION as API_VERSION,
        CAPABILITY_METHODS as CAPABILITY_METHODS,
        OPERATION_CAPABILITIES as OPERATION_CAPABILITIES,
        BackendInfo as BackendInfo,
        Capability as Capability,
        Driver as Driver,
        DriverConfig as DriverConfig,
        Failover as Failover,
        HealthReport as HealthReport,
        MechanismRules as MechanismRules,
        Operation as Operation,
        OperationStatus as OperationStatus,
        OpState as OpState,
        ProgressCallback as ProgressCallback,
        ProgressEvent as ProgressEvent,
        PromoteResult as PromoteResult,
        ProtectResult as ProtectResult,
        RestartResult as RestartResult,
        ResultMissing as ResultMissing,
        SecondarySpec as SecondarySpec,
        StoragePlacement as StoragePlacement,
        TestFailoverResult as TestFailoverResult,
        implemented as implemented,
        overrides as overrides,
    )
    from ftbridge.drivers.registry import (
        DriverEntry as DriverEntry,
        FtbridgeDeprecationWarning as FtbridgeDeprecationWarning,
        list_drivers as list_drivers,
        load_driver as load_driver,
        require_sdk as require_sdk,
    )
    from ftbridge.inventory import InventoryPart as InventoryPart
