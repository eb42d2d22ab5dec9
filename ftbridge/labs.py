"""Lab peers: servers that speak a platform's real API on loopback, seeded from an estate.

Each driver distribution may ship one, registered in the ``ftbridge.labs`` entry-point group
under the driver's name, so ``ftbridge lab NAME`` starts it and tests use it the same way for
every platform. Fault injection takes estate *names* (host and datastore names as the estate
file writes them), so one failover test drives every lab.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from importlib import metadata
from typing import Any, ClassVar

from ftbridge.errors import DriverNotFound
from ftbridge.estate import Estate

LAB_NAMESPACE = "ftbridge.labs"

#: The newest lab contract this core speaks (2: ``partition_host``), the oldest it still loads,
#: and the deprecated ones with the release that stops loading each (as for drivers:
#: :data:`ftbridge.drivers.base.API_VERSION`).
LAB_API_VERSION = 2
LAB_API_OLDEST = 1
LAB_API_DEPRECATED: Mapping[int, str] = {1: "1.0"}


class Lab(abc.ABC):
    """A running peer for one driver. ``start()`` binds 127.0.0.1 on a free port."""

    driver: str  # the driver that talks to this lab
    #: the lab contract versions this lab is written for, oldest and newest, inclusive
    #: (undeclared: 1, the contract before ranges existed)
    api_versions: ClassVar[tuple[int, int]] = (1, 1)

    @abc.abstractmethod
    def __init__(self, estate: Estate, *, port: int = 0, **options: Any) -> None: ...

    @abc.abstractmethod
    def start(self) -> None:
        """Serve in the background until :meth:`stop`."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop serving; idempotent."""

    @abc.abstractmethod
    def endpoint_config(self) -> dict[str, Any]:
        """The ``[endpoints.NAME]`` table that reaches this lab (secrets as env references)."""

    @abc.abstractmethod
    def secrets(self) -> Mapping[str, str]:
        """Environment variables (name -> value) the config's secret references need."""

    # faults, by estate names ---------------------------------------------------------
    @abc.abstractmethod
    def fail_host(self, name: str) -> None:
        """The host fails and the platform reports it down (powered off or fenced): proven."""

    def partition_host(self, name: str) -> None:
        """The host stops answering management (the platform reports it unreachable, not
        responding or connecting) while its VMs keep running: not proven down."""
        raise NotImplementedError(f"{type(self).__name__} cannot partition a host")

    @abc.abstractmethod
    def fail_datastore(self, name: str) -> None:
        """The datastore becomes inaccessible."""

    @abc.abstractmethod
    def restore(self) -> None:
        """Undo every injected fault (failed and partitioned hosts, datastores)."""

    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def list_labs() -> list[str]:
    return sorted({ep.name for ep in metadata.entry_points(group=LAB_NAMESPACE)})


def load_lab(name: str) -> type[Lab]:
    """The lab class registered as ``name``, once its contract versions meet this core's.

    Raises DriverNotFound (not installed, not a Lab) or DriverLoadError (another lab API).
    """
    from ftbridge.drivers.registry import negotiate

    for ep in metadata.entry_points(group=LAB_NAMESPACE):
        if ep.name == name:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Lab)):
                raise DriverNotFound(f"lab {name!r} ({ep.value}) is not an ftbridge Lab")
            negotiate(
                cls,
                kind="lab",
                name=name,
                speaks=(LAB_API_OLDEST, LAB_API_VERSION),
                deprecated=LAB_API_DEPRECATED,
            )
            return cls
    raise DriverNotFound(f"no lab named {name!r} is installed (installed: {', '.join(list_labs()) or 'none'})")
