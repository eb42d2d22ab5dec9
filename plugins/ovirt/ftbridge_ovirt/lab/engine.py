"""The lab engine: oVirt's state and rules, seeded from an estate.

Every change goes through a command of :mod:`.storage`, :mod:`.vms`, :mod:`.hosts` or
:mod:`.dr` that checks what the real engine checks before it accepts it (answered with HTTP 409
and the engine's reason), then either completes at once or starts a job that finishes later.
Jobs carry the caller's correlation id, take ``op_seconds`` (plus any injected slowness), can
be made to fail or held until released; each command also writes the engine's audit-log event
for it (:mod:`.audit`). The HTTP layer (:mod:`.server`) only translates requests into these calls.
"""

from __future__ import annotations

from ftbridge.estate import Estate
from ftbridge_ovirt.lab.dr import DrCommands
from ftbridge_ovirt.lab.seed import STORAGE_TYPES, seed_estate
from ftbridge_ovirt.lab.state import RUNNING, EngineState, Fault, conflict

__all__ = ["RUNNING", "STORAGE_TYPES", "EngineState", "Fault", "LabEngine", "conflict"]


class LabEngine(DrCommands):
    """One engine's state and commands. Callers hold :attr:`lock` (the server does, per request)."""

    def __init__(
        self,
        estate: Estate,
        *,
        op_seconds: float = 0.2,
        ha_restart: bool = True,
        ha_delay: float = 0.3,
        seed: int = 0,
        job_ttl: float = 900.0,
    ) -> None:
        super().__init__(
            estate.name, op_seconds=op_seconds, ha_restart=ha_restart, ha_delay=ha_delay, seed=seed, job_ttl=job_ttl
        )
        self.estate = estate
        seed_estate(self, estate)
