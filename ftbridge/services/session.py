"""Opening drivers for configured endpoints: the one composition root of the core.

Services never build drivers themselves; they ask a :class:`Session`, which loads each
endpoint's driver through the registry only when it is first used, opens it once, and closes
everything on exit. Tests build a Session from a config like users do.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from ftbridge.config import Config
from ftbridge.drivers.base import Driver
from ftbridge.drivers.registry import load_driver
from ftbridge.errors import ConfigError


class Session:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._open: dict[str, Driver] = {}
        self._lock = threading.Lock()

    def endpoints(self, only: Iterable[str] | None = None) -> list[str]:
        names = list(self.config.endpoints)
        if only:
            wanted = list(only)
            unknown = [n for n in wanted if n not in self.config.endpoints]
            if unknown:
                raise ConfigError(
                    f"{self.config.source}: no endpoint named {unknown[0]!r} (configured: {', '.join(names) or 'none'})"
                )
            names = wanted
        return names

    def driver(self, endpoint: str) -> Driver:
        """The open driver for an endpoint, opened on first use."""
        with self._lock:
            drv = self._open.get(endpoint)
        if drv is not None:
            return drv
        cfg = self.config.endpoints.get(endpoint)
        if cfg is None:
            raise ConfigError(f"{self.config.source}: no endpoint named {endpoint!r}")
        drv = load_driver(cfg.driver)(cfg, endpoint=endpoint)
        drv.open()
        with self._lock:
            self._open[endpoint] = drv
        return drv

    def close(self) -> None:
        with self._lock:
            drivers, self._open = list(self._open.values()), {}
        for d in drivers:
            try:
                d.close()
            except Exception:  # close() must not raise; a driver that does is not our problem now
                pass

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
