"""The driver contract and registry: everything a driver author imports.

A third-party driver needs only this module, :mod:`ftbridge.model`, :mod:`ftbridge.errors`,
:mod:`ftbridge.secrets` and, for its tests, :mod:`ftbridge.testing`.
"""

from ftbridge.drivers.base import (
    API_VERSION,
    CAPABILITY_METHODS,
    BackendInfo,
    Capability,
    Driver,
    DriverConfig,
    Failover,
    HealthReport,
    MechanismRules,
    Operation,
    OperationStatus,
    OpState,
    ProgressCallback,
    ProgressEvent,
    SecondarySpec,
    StoragePlacement,
    implemented,
)
from ftbridge.drivers.registry import DriverEntry, list_drivers, load_driver, require_sdk
from ftbridge.inventory import InventoryPart

__all__ = [
    "API_VERSION", "CAPABILITY_METHODS", "BackendInfo", "Capability", "Driver", "DriverConfig",
    "DriverEntry", "Failover", "HealthReport", "InventoryPart", "MechanismRules", "Operation",
    "OperationStatus", "OpState", "ProgressCallback", "ProgressEvent", "SecondarySpec",
    "StoragePlacement", "implemented", "list_drivers", "load_driver", "require_sdk",
]
