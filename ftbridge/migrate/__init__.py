"""Migration projects: move VMs between hypervisors without losing their protection.

``ftbridge migrate plan`` places a source estate's VMs (an endpoint, a saved inventory or an
RVTools export: :mod:`~ftbridge.migrate.source`) on a target endpoint: primaries on shared
storage within capacity across the whole migration (:mod:`~ftbridge.migrate.placement`),
secondaries planned by the core's planner with the target driver's rules
(:mod:`~ftbridge.migrate.planner`), the protection each VM gains or loses
(:mod:`~ftbridge.migrate.gaps`), all in a versioned file (:mod:`~ftbridge.migrate.planfile`).
Mappings come in and go out in the formats the moving tools use
(:mod:`~ftbridge.migrate.formats`); :mod:`~ftbridge.migrate.verify` checks the target after the
move and turns what is missing into ordinary plan actions.

Small modules, one job each; none imports a driver or an SDK.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ftbridge.config import Config
from ftbridge.inventory import Inventory
from ftbridge.migrate.mapping import Mapping
from ftbridge.migrate.planner import Migration, plan_migration
from ftbridge.model import VM


def make_migration(
    source: Inventory,
    source_endpoint: str,
    target: Inventory,
    target_endpoint: str,
    config: Config,
    mapping: Mapping | None = None,
    vms: Sequence[VM] | None = None,
    *,
    wave_size: int | None = None,
    created_at: float | None = None,
) -> tuple[Migration, dict[str, Any]]:
    """The migration and its plan document (deterministic except ``created_at``)."""
    from datetime import UTC, datetime

    from ftbridge import __version__
    from ftbridge.migrate.gaps import gap_report
    from ftbridge.migrate.planfile import migration_document
    from ftbridge.planning import default_created_at, rules_for

    _, source_known = rules_for(source)
    m = plan_migration(source, source_endpoint, target, target_endpoint, config, mapping, vms, wave_size=wave_size)
    _, target_known = rules_for(m.projected)
    gaps = gap_report(m, config, source_known, target_known)
    when = default_created_at() if created_at is None else created_at
    doc = migration_document(
        m,
        config,
        gaps,
        created_at=datetime.fromtimestamp(when, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        generator=f"ftbridge {__version__}",
        mapping=(mapping or Mapping()).origin if mapping is not None and not mapping.empty else "",
    )
    return m, doc


__all__ = ["Mapping", "Migration", "make_migration", "plan_migration"]
